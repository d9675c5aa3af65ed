"""The words of `/pulse` (DESIGN.md §8) other than the update modal: `status`, `away`,
`back`, `delegate` and `help`. Days are read by the one day parser of the domain
(`timescales.parse_day`), so `/pulse away Jan 2027` means what "Jan 2027" means in an email.
"""

from __future__ import annotations

import re
from datetime import date

from bot.domain.status import local_date
from bot.domain.timescales import parse_day
from bot.messages import slack_blocks as kit
from digests.slack import escape_mrkdwn
from handlers.slack.answers import NOT_LINKED, Refused, SlackAnswers
from storage.slack_people import SlackPeople

__all__ = ["HELP", "reply_to"]

HELP = (
    "*Plan Pulse*\n"
    "• `/pulse` — give an update on your milestones\n"
    "• `/pulse status` — your milestones and how they stand\n"
    "• `/pulse away 31/01/27` — you are away until then: your delegate is asked instead\n"
    "• `/pulse back` — you are back\n"
    "• `/pulse delegate @someone [until 31/01/27]` — who answers for you while you are away\n"
    "• `/pulse help` — this message"
)
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


async def reply_to(answers: SlackAnswers, user: str, verb: str, rest: str) -> str:
    """The reply to `/pulse VERB REST` (all but the modal and help)."""
    now = answers.clock()
    async with answers.writing, answers.sessions() as session, session.begin():
        person = await answers.person(session, user)
        if person is None:
            raise Refused(NOT_LINKED)
        people = SlackPeople(session)
        if verb == "status":
            lines = []
            for plan in await answers.milestones_of(session, person, now):
                lines.append(f"*{escape_mrkdwn(plan.title)}*")
                lines.extend(f"• {kit.milestone_line(i)}" for i in plan.items)
            return "\n".join(lines) or "You lead no milestones."
        if verb == "away":
            day = parse_day(rest)
            if day is None:
                raise Refused("Give the date you are back, e.g. `/pulse away 31/01/27`.")
            if day < local_date(now, person.timezone or "Europe/London"):
                raise Refused("That date is in the past.")
            await people.set_away(person.id, day, at=now, channel="slack")
            return f"You are away until {day:%-d %b %Y}; your delegate is asked instead."
        if verb == "back":
            await people.set_away(person.id, None, at=now, channel="slack")
            return "Welcome back: you will be asked about your milestones again."
        if verb == "delegate":
            mention = _MENTION.match(rest)
            if mention is None:
                raise Refused("Name someone, e.g. `/pulse delegate @Sam until 31/01/27`.")
            until_text = rest[mention.end() :].strip()
            until: date | None = None
            if until_text:
                if not until_text.lower().startswith("until "):
                    raise Refused("Write `until DATE` after the name, e.g. `until 31/01/27`.")
                until = parse_day(until_text[6:])
                if until is None:
                    raise Refused("That date could not be read; write it as 31/01/27.")
            delegate = await people.by_slack_id(mention[1])
            if delegate is None:
                raise Refused("That person is not in Plan Pulse, so cannot answer for you.")
            if delegate.id == person.id:
                raise Refused("You cannot be your own delegate.")
            await people.set_delegate(person.id, delegate.id, at=now, channel="slack")
            if until is not None:
                await people.set_away(person.id, until, at=now, channel="slack")
                return f"{delegate.name} answers for you until {until:%-d %b %Y}."
            return f"{delegate.name} answers for you while you are away."
    return f"I do not know `{verb}`.\n{HELP}"
