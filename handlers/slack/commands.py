"""The words of `/pulse` (DESIGN.md §8) other than the update modal: `status`, `away`,
`back`, `delegate` (`@someone [until DATE]` or `none`) and `help`. Away, back and delegate
are decided and recorded by the absences service (bot/services/absences.py), as in Teams and
on the update page; this reads the mention and renders the outcome. Days are read by the one
day parser of the domain, so `/pulse away Jan 2027` means what "Jan 2027" means in an email.
"""

from __future__ import annotations

import re

from bot.domain.absences import AbsenceRefusal
from bot.messages import slack_blocks as kit
from bot.messages.absences import absence_reply
from bot.services.absences import AbsenceRequest, Absences, BySlackId
from digests.slack import escape_mrkdwn
from handlers.slack.answers import NOT_LINKED, Refused, SlackAnswers

__all__ = ["HELP", "reply_to"]

HELP = (
    "*Plan Pulse*\n"
    "• `/pulse` — give an update on your milestones\n"
    "• `/pulse status` — your milestones and how they stand\n"
    "• `/pulse away 31/01/27` — you are away until then: your delegate is asked instead\n"
    "• `/pulse back` — you are back\n"
    "• `/pulse delegate @someone [until 31/01/27]` — who answers for you while you are away\n"
    "• `/pulse delegate none` — nobody answers for you\n"
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
        if verb == "status":
            lines = []
            for plan in await answers.milestones_of(session, person, now):
                lines.append(f"*{escape_mrkdwn(plan.title)}*")
                lines.extend(f"• {kit.milestone_line(i)}" for i in plan.items)
            return "\n".join(lines) or "You lead no milestones."
        if verb in ("away", "back", "delegate"):
            request = _request(verb, rest)
            outcome = await Absences(session, channel="slack", now=now).ask(person, request)
            reply = absence_reply(outcome, escape=escape_mrkdwn, hints=_HINTS)
            if outcome.refused:
                raise Refused(reply)
            return reply
    return f"I do not know `{verb}`.\n{HELP}"


_HINTS = {
    AbsenceRefusal.NO_DAY: "For example `/pulse away 31/01/27`.",
    AbsenceRefusal.NO_NAME: "For example `/pulse delegate @Sam until 31/01/27`.",
}


def _request(verb: str, rest: str) -> AbsenceRequest:
    """The absence asked for by `/pulse away|back|delegate REST`; a malformed delegate is
    refused here, as only Slack writes mentions."""
    if verb == "away":
        return AbsenceRequest(away=rest)
    if verb == "back":
        return AbsenceRequest(back=True)
    if rest.lower() in ("none", "nobody"):
        return AbsenceRequest(no_delegate=True)
    mention = _MENTION.match(rest)
    if mention is None:
        raise Refused("Name someone, e.g. `/pulse delegate @Sam until 31/01/27`, or `none`.")
    until_text = rest[mention.end() :].strip()
    if until_text and not until_text.lower().startswith("until "):
        raise Refused("Write `until DATE` after the name, e.g. `until 31/01/27`.")
    return AbsenceRequest(
        delegate=BySlackId(mention[1]), delegate_until=until_text[6:] if until_text else None
    )
