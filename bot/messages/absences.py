"""What the chat channels (Slack's `/pulse`, the Teams chat) say back about an absence:
the outcome of the absences service (bot/services/absences.py) in words. Names are passed
through the channel's own escape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bot.domain.absences import AbsenceOutcome, AbsenceRefusal, reason

__all__ = ["absence_reply"]


def absence_reply(
    outcome: AbsenceOutcome,
    *,
    escape: Callable[[str], str] = str,
    hints: Mapping[AbsenceRefusal, str] | None = None,
) -> str:
    """The refusal (the first, with the channel's example when it has one), or what was set."""
    for refusal in outcome.refusals.values():
        hint = (hints or {}).get(refusal)
        return reason(refusal) if hint is None else f"{reason(refusal)} {hint}"
    day = f"{outcome.away_until:%-d %b %Y}" if outcome.away_until is not None else None
    if outcome.delegate_set:
        if outcome.delegate_name is None:
            return "Nobody answers for you now: while you are away, nobody is asked instead."
        name = escape(outcome.delegate_name)
        if day is not None:
            return f"{name} answers for you until {day}."
        return f"{name} answers for you while you are away."
    if day is not None:
        return f"You are away until {day}; your delegate is asked instead."
    return "Welcome back: you will be asked about your milestones again."
