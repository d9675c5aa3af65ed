"""Answers given in Slack (DESIGN.md §8), as the listeners ask for them: a rating click, a
page of the "Update with notes" modal, the prompt `/pulse` opens, the person's own view.

Answers are exactly once (RELIABILITY.md, "Decisions"): the answers service checks that the
Slack user is the prompt's person (or their delegate, or a joint lead), validates the answer
with the same note rule as email, and records it in one transaction keyed by the Slack
action; the listener acks only after the commit. A replayed or double-sent action carries
the same key, so it is recorded once (the `(source, external_id)` unique constraint settles
a race). When the database fails the user is told to try again; nothing is acked as saved.

Rating clicks come in bursts (a prompt round goes out to every lead at once), so concurrent
clicks share a transaction (`bot/services/group_commit.py`): their reads are made once for
the lot, their rows written together, and each click is acked only once that commit is
done; each is still judged on its own, in turn, as if the ones before it were saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock
from bot.domain.cycles import PromptItem
from bot.domain.model import Source
from bot.domain.replies import LineRefusal, Refusal, ReplyLine, refused_field
from bot.domain.status import local_date
from bot.messages import slack_blocks as kit
from bot.services.answers import (
    AnswerBatch,
    AnswerContext,
    AnswerRefused,
    AnswerRequest,
    AnswerResult,
    Recording,
    Who,
)
from bot.services.cycles import led_by, prompt_items, prompt_on_demand
from bot.services.group_commit import GroupCommit
from storage.db import Session, is_duplicate
from storage.evidence import EvidenceRepository
from storage.repositories import PersonRecord, PlanRepository
from storage.slack_people import SlackPeople

log = logging.getLogger(__name__)

__all__ = ["NOT_LINKED", "RETRY", "Followups", "Refused", "SlackAnswers"]

Sessions = Callable[[], Session]

RETRY = "Sorry, your update could not be saved just now. Nothing was recorded; please try again."
NOT_LINKED = (
    "Your Slack account is not linked to anyone in Plan Pulse, so nothing was recorded. "
    "Ask your plan's coordinator to add your Slack user id to the people list."
)


class Refused(Exception):
    """An answer that is not recorded; the message tells the lead why and what to do."""


class Followups:
    """Slack calls made after the ack (updating the DM), so the ack is not held up by them.
    `wait()` lets a test (or shutdown) see them through; `close()` also closes the HTTP
    session `keep_alive` gave the client."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def keep_alive(self, client: AsyncWebClient) -> None:
        """Give `client` a lasting HTTP session when it has none: without one slack_sdk
        opens a new session, so a new connection (and TLS handshake), for every call, and
        every click is followed by a call."""
        if client.session is None or client.session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=client.timeout)
            )
            client.session = self._session

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.wait()
        if self._session is not None:
            await self._session.close()
            self._session = None


class SlackAnswers:
    """What the listeners share and call: one unit of work per Slack request, answers
    through the answers service. Bolt hands it to each listener as `context["answers"]`."""

    def __init__(
        self, sessions: Sessions, client: AsyncWebClient, clock: Clock, followups: Followups
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.clock = clock
        self.followups = followups
        # SQLite mode is one process and one writer at a time: queueing writers here, not in
        # SQLite's busy handler (which sleeps and retries), keeps a burst of clicks fast.
        bind = getattr(sessions, "kw", {}).get("bind")
        sqlite = getattr(getattr(bind, "dialect", None), "name", "") == "sqlite"
        self.writing: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if sqlite else contextlib.nullcontext()
        )
        # Rating clicks come in bursts: concurrent ones are recorded in one transaction.
        self._ratings = GroupCommit(sessions, self._record_ratings, lock=self.writing)

    # -- answering ---------------------------------------------------------------------

    def _context(self, answers: AnswerBatch, user: str, prompt_id: int) -> AnswerContext:
        """What `user` may answer on the prompt; raises `Refused`."""
        try:
            return answers.context(Who(slack_user_id=user), prompt_id, now=self.clock())
        except AnswerRefused as refused:
            raise Refused(
                _refused_whole(refused.refusal, refused.reason, user, prompt_id)
            ) from refused

    async def record_rating(
        self, user: str, prompt_id: int, ref: str, rating: int, *, key: str, given_at: datetime
    ) -> int:
        """Record one rating from the DM; returns how many updates were new (0 or 1), once
        the transaction holding it (shared with concurrent clicks) is committed."""
        click = AnswerRequest(
            Who(slack_user_id=user),
            prompt_id,
            (ReplyLine(ref, rating, None, None, False, 0),),
            given_at,
            key,
            Source.SLACK,
            Recording.ALL_OR_NOTHING,
            self.clock(),
        )
        try:
            return await self._ratings.submit(click)
        except Exception as failed:
            if not is_duplicate(failed):
                raise
            # The same action committed by a concurrent delivery of it: already recorded.
            return 0

    async def _record_ratings(
        self, session: Session, clicks: Sequence[AnswerRequest]
    ) -> list[int | Exception]:
        """A batch of rating clicks in one transaction, through the answers service: each
        one's count of new updates, or the `Refused` that says why it was not recorded."""
        answers = await AnswerBatch.load(
            session,
            prompt_ids={c.prompt_id for c in clicks},
            slack_user_ids={c.who.slack_user_id for c in clicks if c.who.slack_user_id},
        )
        for click in clicks:
            answers.decide(click)
        return [_click_result(result) for result in await answers.record(session)]

    async def modal_items(self, prompt_id: int, user: str) -> tuple[list[PromptItem], str]:
        """The prompt's milestones this user may answer, for the modal; and the plan title."""
        async with self.writing, self.sessions() as session:
            answers = await AnswerBatch.load(session, prompt_ids=[prompt_id], slack_user_ids=[user])
            context = self._context(answers, user, prompt_id)
            tracked = await PlanRepository(session).tracked(context.plan.key)
        return prompt_items(tracked, context.answerable(), context.today, context.owner.key), (
            context.plan.title
        )

    async def record_modal(
        self, user: str, meta: kit.ModalMetadata, values: dict[str, Any], *, key: str
    ) -> tuple[list[ReplyLine], dict[str, str], list[PromptItem]]:
        """Validate and record one page of the modal in one transaction, through the answers
        service: (recorded lines, errors by block id, the prompt's items). With errors
        nothing is recorded."""
        now = self.clock()
        try:
            async with self.writing, self.sessions() as session, session.begin():
                answers = await AnswerBatch.load(
                    session, prompt_ids=[meta.prompt_id], slack_user_ids=[user]
                )
                context = self._context(answers, user, meta.prompt_id)
                tracked = await PlanRepository(session).tracked(context.plan.key)
                items = prompt_items(
                    tracked, context.answerable(), context.today, context.owner.key
                )
                page = [i.milestone_ref for i in kit.page_items(items, meta.page)]
                draft = kit.read_update(values, page, today=context.today)
                unreadable = [
                    LineRefusal(block.partition(":")[2], Refusal.UNREADABLE, message)
                    for block, message in draft.errors.items()
                ]
                answers.decide(
                    AnswerRequest(
                        Who(slack_user_id=user),
                        meta.prompt_id,
                        draft.lines,
                        now,
                        key,
                        Source.SLACK,
                        Recording.ALL_OR_NOTHING,
                        now,
                        unreadable,
                    )
                )
                (result,) = await answers.record(session)
                if result.refusal is not None:
                    raise Refused(
                        _refused_whole(result.refusal, result.reason, user, meta.prompt_id)
                    )
                errors = dict(draft.errors)
                for line in result.refused:
                    if line.refusal is not Refusal.UNREADABLE:
                        kind = refused_field(line)
                        errors.setdefault(f"{kind}:{line.ref}"[:255], _sentence(line.reason))
                if errors:
                    return [], errors, items
                return list(result.kept), {}, items
        except Exception as failed:
            if not is_duplicate(failed):
                raise
            return [], {}, []  # a concurrent submission of the same view recorded it

    # -- the person's own view ---------------------------------------------------------

    async def person(self, session: Session, user: str) -> PersonRecord | None:
        return await SlackPeople(session).by_slack_id(user)

    async def milestones_of(
        self, session: Session, person: PersonRecord, now: datetime
    ) -> list[kit.HomePlan]:
        """The person's milestones plan by plan, with the evidence of those rated 1."""
        out = []
        for plan in await SlackPeople(session).plans():
            tracked = await PlanRepository(session).tracked(plan.key)
            items = led_by(tracked, person.key, local_date(now, tracked.plan.timezone))
            if not items:
                continue
            achieved = [i.milestone_ref for i in items if i.rating == 1]
            found = (
                await EvidenceRepository(session).of_plan(plan.key, refs=achieved)
                if achieved
                else {}
            )
            evidence = {ref: e.text for ref, e in found.items()}
            out.append(kit.HomePlan(tracked.plan.title, items, evidence))
        return out

    async def prompt_for_command(self, user: str) -> tuple[int, list[PromptItem]] | None:
        """The prompt `/pulse` opens (`prompt_on_demand`); None when there is nothing to ask
        about."""
        now = self.clock()
        async with self.writing, self.sessions() as session, session.begin():
            person = await self.person(session, user)
            if person is None:
                raise Refused(NOT_LINKED)
            return await prompt_on_demand(
                session, person_id=person.id, person_key=person.key, channel="slack", now=now
            )

    # -- Slack calls after the ack -----------------------------------------------------

    async def update_message(
        self, channel: str, ts: str, blocks: list[dict[str, Any]], text: str
    ) -> None:
        self.followups.keep_alive(self.client)
        try:
            await self.client.chat_update(channel=channel, ts=ts, blocks=blocks, text=text)
        except (SlackApiError, SlackClientError, OSError, TimeoutError) as failed:
            # The answer is recorded; only the DM's look is stale.
            log.warning("could not update the prompt message %s/%s: %s", channel, ts, failed)


def _refused_whole(refusal: Refusal, reason: str, user: str, prompt_id: int) -> str:
    """What a Slack user is told when none of their answer could be recorded."""
    if refusal is Refusal.NOT_LINKED:
        return NOT_LINKED
    if refusal is Refusal.NO_PROMPT:
        return "That prompt no longer exists; nothing was recorded."
    log.info("slack answer refused: %s (user %s, prompt %s)", reason, user, prompt_id)
    return "This prompt was sent to someone else, so your answer was not recorded."


def _click_result(result: AnswerResult) -> int | Exception:
    """A click's count of new updates, or the `Refused` telling the user why it is none."""
    request = result.request
    if result.refusal is not None:
        user = request.who.slack_user_id or ""
        return Refused(_refused_whole(result.refusal, result.reason, user, request.prompt_id))
    if not result.refused:
        return result.recorded
    line = result.refused[0]
    if line.refusal is Refusal.NOT_ASKED:
        return Refused("That milestone is not in this prompt; nothing was recorded.")
    if line.refusal is Refusal.NOT_A_LEAD:
        return Refused(f"You do not lead {line.ref}, so your rating was not recorded.")
    return Refused(
        f"Not recorded: {line.reason}. Use *Update with notes* to give the rating with a note."
    )


def _sentence(reason: str) -> str:
    return reason[0].upper() + reason[1:] + "."
