"""The rules of a lead's absence, whichever channel sets it (Slack, Teams, the update page):
the day they are back, and who answers for them meanwhile. Pure: the day is read by the one
day parser (`timescales.parse_day`) and today is given, never read from a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from bot.domain.timescales import parse_day

__all__ = ["AbsenceOutcome", "AbsenceRefusal", "day_back", "delegate_refusal", "reason"]


class AbsenceRefusal(StrEnum):
    """Why an absence or a delegate was not set; nothing was changed."""

    NO_DAY = "no_day"  # away, but no day back given
    UNREADABLE_DAY = "unreadable_day"  # a day that is not one day (e.g. "quarterly")
    PAST_DAY = "past_day"  # a day back before today
    NO_NAME = "no_name"  # delegate, but nobody named
    UNKNOWN_PERSON = "unknown_person"  # nobody in Plan Pulse (or no longer) by that name
    OWN_DELEGATE = "own_delegate"  # a lead cannot answer for themselves


@dataclass(frozen=True, slots=True)
class AbsenceOutcome:
    """What was set, or why nothing was: `refusals` by what they are about (`away` for the
    day, `delegate` for the person), empty when recorded."""

    refusals: dict[str, AbsenceRefusal]
    away_until: date | None = None  # set to this day (with `away_set`)
    away_set: bool = False  # the absence was set (or cleared: away_until None)
    delegate_name: str | None = None  # named this delegate
    delegate_set: bool = False  # the delegate was named (or cleared: delegate_name None)

    @property
    def refused(self) -> bool:
        return bool(self.refusals)


_REASONS = {
    AbsenceRefusal.NO_DAY: "Give the date you are back.",
    AbsenceRefusal.UNREADABLE_DAY: "Give the date you are back as one day, written as 31/01/27.",
    AbsenceRefusal.PAST_DAY: "That date is in the past.",
    AbsenceRefusal.NO_NAME: "Name someone to answer for you.",
    AbsenceRefusal.UNKNOWN_PERSON: (
        "Nobody in Plan Pulse has that name, so they cannot answer for you."
    ),
    AbsenceRefusal.OWN_DELEGATE: "You cannot be your own delegate.",
}


def reason(refusal: AbsenceRefusal) -> str:
    """The refusal in words, the same in every channel (which may add its own example)."""
    return _REASONS[refusal]


def day_back(text: str, today: date) -> date | AbsenceRefusal:
    """The day back that `text` names, or why it cannot be one: none given, not one day, or
    before `today` (the lead's own today). Today itself is allowed: back tomorrow."""
    if not text.strip():
        return AbsenceRefusal.NO_DAY
    day = parse_day(text)
    if day is None:
        return AbsenceRefusal.UNREADABLE_DAY
    if day < today:
        return AbsenceRefusal.PAST_DAY
    return day


def delegate_refusal(own_id: int, delegate_id: int | None) -> AbsenceRefusal | None:
    """Why this delegate cannot be named (None: nobody found), or None when they can."""
    if delegate_id is None:
        return AbsenceRefusal.UNKNOWN_PERSON
    if delegate_id == own_id:
        return AbsenceRefusal.OWN_DELEGATE
    return None
