"""The absence rules every channel shares (bot/domain/absences.py) and the chat channels'
words for their outcome (bot/messages/absences.py)."""

from __future__ import annotations

from datetime import date

from bot.domain.absences import AbsenceOutcome, AbsenceRefusal, day_back, delegate_refusal
from bot.messages.absences import absence_reply

TODAY = date(2026, 11, 23)


def test_a_day_back_must_be_given_readable_and_not_past() -> None:
    """No day, a recurring timescale and yesterday are refused; today and later are taken."""
    assert day_back("  ", TODAY) is AbsenceRefusal.NO_DAY
    assert day_back("quarterly", TODAY) is AbsenceRefusal.UNREADABLE_DAY
    assert day_back("22/11/26", TODAY) is AbsenceRefusal.PAST_DAY
    assert day_back("23/11/26", TODAY) == TODAY
    assert day_back("Jan 2027", TODAY) == date(2027, 1, 31)


def test_a_delegate_must_be_found_and_someone_else() -> None:
    """Nobody found and oneself are refused; anyone else is allowed."""
    assert delegate_refusal(1, None) is AbsenceRefusal.UNKNOWN_PERSON
    assert delegate_refusal(1, 1) is AbsenceRefusal.OWN_DELEGATE
    assert delegate_refusal(1, 2) is None


def test_the_chat_reply_says_what_was_set_or_why_not() -> None:
    """A refusal in words with the channel's example; otherwise the day, the delegate's name
    escaped for the channel, or that nobody answers for the lead now."""
    refused = AbsenceOutcome({"away": AbsenceRefusal.NO_DAY})
    hints = {AbsenceRefusal.NO_DAY: "For example: away 31/01/27."}
    assert absence_reply(refused, hints=hints) == (
        "Give the date you are back. For example: away 31/01/27."
    )
    away = AbsenceOutcome({}, away_until=date(2027, 1, 31), away_set=True)
    assert absence_reply(away).startswith("You are away until 31 Jan 2027")
    assert absence_reply(AbsenceOutcome({}, away_set=True)).startswith("Welcome back")
    named = AbsenceOutcome({}, delegate_name="Sam *M*", delegate_set=True)
    assert absence_reply(named, escape=lambda s: s.replace("*", "\\*")) == (
        "Sam \\*M\\* answers for you while you are away."
    )
    cleared = AbsenceOutcome({}, delegate_set=True)
    assert absence_reply(cleared).startswith("Nobody answers for you now")
