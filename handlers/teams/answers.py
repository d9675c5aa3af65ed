"""What a lead does in their 1:1 chat with the bot: submit a prompt's card, or write a
command (`status`, `away DATE`, `back`, `delegate NAME [until DATE]`, `delegate none`,
`help`). Away, back and delegate are decided and recorded by the absences service
(bot/services/absences.py), as in Slack and on the update page.

A card submission is a message activity whose `value` carries the card's inputs. It goes
through the one answers service (bot/services/answers.py) in one transaction, all or
nothing as in the Slack modal and the web form, keyed by the activity's id so that Teams
delivering it twice records it once. Only once that transaction is committed is Teams
answered: the card is updated in place to show what was recorded, or shown again with the
refusals beside their fields and what was typed kept.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from aiohttp import web
from microsoft_agents.activity import Activity

from bot.clock import Clock
from bot.domain.absences import AbsenceRefusal
from bot.domain.model import Source
from bot.domain.replies import LineRefusal, Refusal, refused_field
from bot.domain.status import local_date
from bot.messages.absences import absence_reply
from bot.messages.teams_cards import (
    CardState,
    card_activity,
    milestone_facts,
    notice_card,
    read_submission,
    recorded_card,
    refused_card,
    submitted_prompt,
    submitted_refs,
)
from bot.services.absences import AbsenceRequest, Absences, ByName
from bot.services.answers import (
    AnswerBatch,
    AnswerRefused,
    AnswerRequest,
    Recording,
    Who,
)
from bot.services.cycles import led_by, prompt_items
from handlers.teams.connector import Connector, TokenUnavailable
from storage.db import Sessions, is_duplicate
from storage.repositories import PlanRepository
from storage.slack_people import SlackPeople
from storage.teams_chats import TeamsConversations

log = logging.getLogger(__name__)

NOT_LINKED = (
    "This Teams account is not linked to anyone in Plan Pulse, so nothing was recorded. Ask "
    "your plan's coordinator to check the email address they have for you."
)
HELP = (
    "Plan Pulse answers these here:\n\n"
    "- status: the milestones you lead, and how they stand\n"
    "- away 31/01/27: you are away until then; your delegate is asked instead\n"
    "- back: you are back, and asked again\n"
    "- delegate Sam Murray [until 31/01/27]: who answers for you while you are away\n"
    "- delegate none: nobody answers for you\n"
    "- help: this list\n\n"
    "Answer a prompt on its card, or with Open in browser."
)


class Refused(Exception):
    """What the lead is told when their command or card cannot be acted on."""


def _sentence(reason: str) -> str:
    return reason[0].upper() + reason[1:] + ("" if reason.endswith(".") else ".")


class TeamsAnswers:
    """The bot's handler of message activities (`TeamsBot.on_message`)."""

    def __init__(
        self,
        sessions: Sessions,
        connector: Connector,
        *,
        clock: Clock,
        web_base_url: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.connector = connector
        self.clock = clock
        self.web_base_url = web_base_url

    async def __call__(self, activity: Activity) -> web.StreamResponse | None:
        if activity.type != "message":
            return None
        prompt_id = submitted_prompt(activity.value)
        if prompt_id is not None:
            await self.submit(activity, prompt_id)
        elif activity.value is None and (activity.text or "").strip():
            await self.command(activity)
        return None

    # -- cards ----------------------------------------------------------------------------

    def _link(self, value: Mapping[str, Any]) -> str | None:
        """The update-page link a card carried, when it is one of ours."""
        url = value.get("url")
        if not isinstance(url, str) or not self.web_base_url:
            return None
        return url if url.startswith(self.web_base_url + "/u/") else None

    async def submit(self, activity: Activity, prompt_id: int) -> None:
        value: Mapping[str, Any] = activity.value if isinstance(activity.value, Mapping) else {}
        user = activity.from_property.id if activity.from_property else None
        if not user:
            return
        link = self._link(value)
        try:
            # Teams gives every activity an id, and the same one when it delivers it again.
            key = f"teams:{activity.id}" if activity.id else f"teams:{uuid.uuid4()}"
            card = await self._record(user, key, prompt_id, value, link)
        except Refused as refused:
            card = notice_card(str(refused))
        except Exception as failed:
            if not is_duplicate(failed):
                raise
            # A concurrent delivery of the same submission committed it first.
            log.info("teams: a repeated card submission for prompt %d", prompt_id)
            return
        await self._show(activity, card)

    async def _record(
        self,
        user: str,
        key: str,
        prompt_id: int,
        value: Mapping[str, Any],
        link: str | None,
    ) -> dict[str, Any]:
        """Judge and record one submission in one transaction; the card to show after."""
        now = self.clock()
        async with self.sessions() as session, session.begin():
            person = await TeamsConversations(session).person_for_user(user)
            if person is None:
                raise Refused(NOT_LINKED)
            who = Who(person_key=person)
            answers = await AnswerBatch.load(session, prompt_ids=[prompt_id], person_keys=[person])
            try:
                context = answers.context(who, prompt_id, now=now)
            except AnswerRefused as refused:
                raise Refused(_refused_whole(refused.refusal)) from refused
            tracked = await PlanRepository(session).tracked(context.plan.key)
            refs = submitted_refs(value, context.answerable())
            items = prompt_items(tracked, refs, context.today, context.owner.key)
            submission = read_submission(value, prompt_id, refs, today=context.today)
            unreadable = [
                LineRefusal(field.partition(":")[2], Refusal.UNREADABLE, message)
                for field, message in submission.errors.items()
            ]
            answers.decide(
                AnswerRequest(
                    who,
                    prompt_id,
                    submission.lines,
                    now,
                    key,
                    Source.TEAMS,
                    Recording.ALL_OR_NOTHING,
                    now,
                    unreadable,
                )
            )
            (result,) = await answers.record(session)
            if result.refusal is not None:
                raise Refused(_refused_whole(result.refusal))
            errors = dict(submission.errors)
            for line in result.refused:
                if line.refusal is not Refusal.UNREADABLE:
                    kind = refused_field(line)
                    errors.setdefault(f"{kind}:{line.ref}", _sentence(line.reason))
            if errors or not submission.lines:
                message = (
                    "Nothing was recorded: put right what is marked below and send again."
                    if errors
                    else "Nothing was recorded: rate a milestone, or add a note or a date."
                )
                state = CardState(submission.values, errors, message)
                return refused_card(
                    context.plan.title,
                    context.writer.name,
                    items,
                    prompt_id,
                    update_url=link,
                    state=state,
                )
            log.info(
                "teams: %d answers recorded for prompt %d by %s",
                result.recorded,
                prompt_id,
                context.writer.key,
            )
            return recorded_card(context.plan.title, items, result.kept, update_url=link)

    async def _show(self, activity: Activity, card: Mapping[str, Any]) -> None:
        """Replace the submitted card with `card`; a new message when it cannot be."""
        service_url = activity.service_url
        conversation = activity.conversation.id if activity.conversation else None
        if not service_url or not conversation:
            return
        outgoing = Activity.model_validate(card_activity(card, summary="Plan Pulse"))
        try:
            if activity.reply_to_id:
                await self.connector.update(
                    service_url, conversation, activity.reply_to_id, outgoing
                )
            else:
                await self.connector.send(service_url, conversation, outgoing)
        except (aiohttp.ClientError, TimeoutError, TokenUnavailable) as failed:
            # Recorded all the same; the card just still shows its fields.
            log.warning("teams: cannot update the card: %s", type(failed).__name__)

    # -- commands -------------------------------------------------------------------------

    async def command(self, activity: Activity) -> None:
        user = activity.from_property.id if activity.from_property else None
        if not user:
            return
        text = _command_text(activity.text or "")
        verb, _, rest = text.partition(" ")
        try:
            reply = await self._command(user, verb.lower(), rest.strip())
        except Refused as refused:
            reply = str(refused)
        await self._say(activity, reply)

    async def _command(self, user: str, verb: str, rest: str) -> str:
        if verb in ("help", ""):
            return HELP
        now = self.clock()
        async with self.sessions() as session, session.begin():
            teams = TeamsConversations(session)
            key = await teams.person_for_user(user)
            if key is None:
                raise Refused(NOT_LINKED)
            people = SlackPeople(session)
            person = await teams.person(key)
            if verb == "status":
                lines = []
                for plan in await people.plans():
                    tracked = await PlanRepository(session).tracked(plan.key)
                    items = led_by(tracked, key, local_date(now, tracked.plan.timezone))
                    if items:
                        lines.append(tracked.plan.title)
                        lines += [
                            f"- {i.milestone_ref} {i.title}: {milestone_facts(i)}" for i in items
                        ]
                return "\n".join(lines) or "You lead no milestones."
            if verb in ("away", "back", "delegate"):
                request = _request(verb, rest)
                outcome = await Absences(session, channel="teams", now=now).ask(person, request)
                return absence_reply(outcome, hints=_HINTS)
        return f"I do not know {verb!r}.\n\n{HELP}"

    async def _say(self, activity: Activity, text: str) -> None:
        service_url = activity.service_url
        conversation = activity.conversation.id if activity.conversation else None
        if not service_url or not conversation:
            return
        # Plain text, never markdown: names and titles are shown as written.
        reply = Activity.model_validate({"type": "message", "text": text, "textFormat": "plain"})
        try:
            await self.connector.send(service_url, conversation, reply)
        except (aiohttp.ClientError, TimeoutError, TokenUnavailable) as failed:
            log.warning("teams: cannot answer a command: %s", type(failed).__name__)


def _command_text(text: str) -> str:
    """The command as written, without a leading mention of the bot or a slash."""
    cleaned = text.strip()
    if cleaned.lower().startswith("<at>"):
        _, _, cleaned = cleaned.partition("</at>")
    return " ".join(cleaned.strip().lstrip("/").split())


_HINTS = {
    AbsenceRefusal.NO_DAY: "For example: away 31/01/27.",
    AbsenceRefusal.NO_NAME: "For example: delegate Sam Murray until 31/01/27.",
    AbsenceRefusal.UNKNOWN_PERSON: "Write their full name, e.g. delegate Sam Murray.",
}


def _request(verb: str, rest: str) -> AbsenceRequest:
    """The absence asked for by `away|back|delegate REST` in the chat."""
    if verb == "away":
        return AbsenceRequest(away=rest)
    if verb == "back":
        return AbsenceRequest(back=True)
    if rest.lower() in ("none", "nobody"):
        return AbsenceRequest(no_delegate=True)
    name, marker, until_text = rest.rpartition(" until ")
    if not marker:
        name, until_text = rest, ""
    return AbsenceRequest(delegate=ByName(name.strip()), delegate_until=until_text.strip() or None)


def _refused_whole(refusal: Refusal) -> str:
    if refusal is Refusal.NOT_LINKED:
        return NOT_LINKED
    if refusal is Refusal.NO_PROMPT:
        return "That prompt no longer exists; nothing was recorded."
    return "This prompt was sent to someone else, so your answer was not recorded."


__all__: Sequence[str] = ("HELP", "NOT_LINKED", "TeamsAnswers")
