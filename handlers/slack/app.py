"""Plan Pulse in Slack (DESIGN.md §8): rating selects and the "Update with notes" modal on
prompt DMs, the `/pulse` command, and the App Home tab, on a slack_bolt `AsyncApp`.

Answers are exactly once (RELIABILITY.md, "Decisions"): a listener checks that the Slack
user is the prompt's person (or their delegate, or a joint lead), validates the answer with
the same note rule as email, records it in one transaction keyed by the Slack action, and
only after the commit acks. A replayed or double-sent action carries the same key, so it is
recorded once (the `(source, external_id)` unique constraint settles a race). When the
database fails the user is told to try again; nothing is acked as saved.

Rating clicks come in bursts (a prompt round goes out to every lead at once), so concurrent
clicks share a transaction (`bot/services/group_commit.py`): their reads are made once for
the lot, their rows written together, and each click is acked only once that commit is
done; each is still judged on its own, in turn, as if the ones before it were saved.

Ingress hardening (scenarios 5-7): `build_http_app` puts a guard in front of bolt that caps
the body, rejects a missing, non-numeric or overlong timestamp and a bad signature, and
refuses a body that does not parse or a payload with fields of types Slack never sends or
nested past any real payload, all before bolt reads it; no stack trace ever reaches the
caller or the log.

`SlackChannel` runs the app in Socket Mode when an app token is given (no public URL), else
over HTTP at `/slack/events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.signature import Clock as SdkClock
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock, system_clock
from bot.domain.cycles import PromptItem
from bot.domain.model import Source
from bot.domain.replies import LineRefusal, Refusal, ReplyLine
from bot.domain.status import local_date
from bot.domain.timescales import parse_day
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
from bot.services.cycles import led_by, prompt_on_demand
from bot.services.cycles import prompt_items as _items
from bot.services.group_commit import GroupCommit
from digests.slack import escape_mrkdwn
from storage.db import DATABASE_ERRORS, Session, is_duplicate
from storage.repositories import PersonRecord, PlanRepository
from storage.slack_people import SlackPeople

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_BODY",
    "Followups",
    "SlackChannel",
    "build_http_app",
    "build_slack_app",
    "parse_day",
]

Sessions = Callable[[], Session]

DEFAULT_MAX_BODY = 256 * 1024  # a big modal submission is tens of kilobytes
RETRY = "Sorry, your update could not be saved just now. Nothing was recorded; please try again."
NOT_LINKED = (
    "Your Slack account is not linked to anyone in Plan Pulse, so nothing was recorded. "
    "Ask your plan's coordinator to add your Slack user id to the people list."
)
# A database that is down or refuses the transaction. Anything else is a bug and goes to
# the log via bolt.
_DB_ERRORS = DATABASE_ERRORS


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


# --- the app --------------------------------------------------------------------------------


class _Pulse:
    """The listeners' shared state; one unit of work per Slack request."""

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
        self._writer: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if sqlite else contextlib.nullcontext()
        )
        # Rating clicks come in bursts: concurrent ones are recorded in one transaction.
        self._ratings = GroupCommit(sessions, self._record_ratings, lock=self._writer)

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
        async with self._writer, self.sessions() as session:
            answers = await AnswerBatch.load(session, prompt_ids=[prompt_id], slack_user_ids=[user])
            context = self._context(answers, user, prompt_id)
            tracked = await PlanRepository(session).tracked(context.plan.key)
        return _items(tracked, context.answerable(), context.today, context.owner.key), (
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
            async with self._writer, self.sessions() as session, session.begin():
                answers = await AnswerBatch.load(
                    session, prompt_ids=[meta.prompt_id], slack_user_ids=[user]
                )
                context = self._context(answers, user, meta.prompt_id)
                tracked = await PlanRepository(session).tracked(context.plan.key)
                items = _items(tracked, context.answerable(), context.today, context.owner.key)
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
                        errors.setdefault(f"note:{line.ref}"[:255], _sentence(line.reason))
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
    ) -> list[tuple[str, list[PromptItem]]]:
        out = []
        for plan in await SlackPeople(session).plans():
            tracked = await PlanRepository(session).tracked(plan.key)
            items = led_by(tracked, person.key, local_date(now, tracked.plan.timezone))
            if items:
                out.append((tracked.plan.title, items))
        return out

    async def prompt_for_command(self, user: str) -> tuple[int, list[PromptItem]] | None:
        """The prompt `/pulse` opens (`prompt_on_demand`); None when there is nothing to ask
        about."""
        now = self.clock()
        async with self._writer, self.sessions() as session, session.begin():
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


async def _tell(respond: AsyncRespond, text: str) -> None:
    """An ephemeral message to the user through the response URL; never raises."""
    try:
        await respond(text=text, response_type="ephemeral", replace_original=False)
    except (SlackApiError, SlackClientError, OSError, TimeoutError, ValueError) as failed:
        log.warning("could not tell the user: %s", failed)


def _given_at(action: dict[str, Any], now: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(float(action["action_ts"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        return now


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


def build_slack_app(
    *,
    sessions: Sessions,
    client: AsyncWebClient,
    signing_secret: str,
    clock: Clock,
    followups: Followups | None = None,
) -> AsyncApp:
    """The bolt app with Plan Pulse's listeners. Web API calls (`auth.test` included) go
    through `client`; requests are verified with `signing_secret`."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,
        request_verification_enabled=True,
        logger=logging.getLogger("handlers.slack.app.bolt"),
    )
    pulse = _Pulse(sessions, client, clock, followups or Followups())

    @app.action("rate")
    async def rate(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        user = str((body.get("user") or {}).get("id", ""))
        option = action.get("selected_option") or {}
        choice = kit.parse_choice(option.get("value") if isinstance(option, dict) else None)
        if choice is None or not user:
            log.warning("slack rating refused: unreadable value from %s", user or "nobody")
            await ack()
            await _tell(respond, "That choice could not be read; nothing was recorded.")
            return
        prompt_id, ref, rating = choice
        key = f"slack:{action.get('action_ts') or body.get('trigger_id')}:{user}"
        try:
            recorded = await pulse.record_rating(
                user, prompt_id, ref, rating, key=key, given_at=_given_at(action, pulse.clock())
            )
        except Refused as refused:
            await ack()
            await _tell(respond, str(refused))
            return
        except _DB_ERRORS:
            log.exception("slack rating of %s on prompt %s not saved", ref, prompt_id)
            await ack()
            await _tell(respond, RETRY)
            return
        await ack()
        log.info("slack rating %s for %s on prompt %s: %d new", rating, ref, prompt_id, recorded)
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        ts = container.get("message_ts") or message.get("ts")
        if channel and ts and isinstance(message.get("blocks"), list):
            when = pulse.clock().strftime("%-d %b %Y")
            blocks = kit.mark_recorded(message["blocks"], ref, rating, when=when)
            text = f"Recorded rating {rating} for {ref}"
            pulse.followups.start(pulse.update_message(str(channel), str(ts), blocks, text))

    @app.action("open_web")
    async def open_web(ack: AsyncAck) -> None:
        await ack()  # a link button: the browser opens the page; nothing to do here

    @app.action("open_update")
    async def open_update(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        user = str((body.get("user") or {}).get("id", ""))
        value = str(action.get("value", ""))
        if not value.isascii() or not value.isdigit():
            await _tell(respond, "That button could not be read.")
            return
        try:
            items, _ = await pulse.modal_items(int(value), user)
        except Refused as refused:
            await _tell(respond, str(refused))
            return
        except _DB_ERRORS:
            log.exception("could not open the update modal for prompt %s", value)
            await _tell(respond, "Sorry, the update form could not be opened; please try again.")
            return
        container = body.get("container") or {}
        view = kit.update_modal(
            int(value),
            items,
            channel=container.get("channel_id"),
            ts=container.get("message_ts"),
        )
        await client.views_open(trigger_id=str(body.get("trigger_id", "")), view=view)

    @app.view("pulse_update")
    async def submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str((body.get("user") or {}).get("id", ""))
        meta = kit.parse_metadata(view.get("private_metadata"))
        values = (view.get("state") or {}).get("values") or {}
        first_block = next(iter(values), None)
        if meta is None or not isinstance(values, dict):
            await ack(
                response_action="errors", errors={first_block or "": "This form could not be read."}
            )
            return
        key = f"slack:view:{view.get('id')}:{meta.page}:{user}"
        try:
            recorded, errors, items = await pulse.record_modal(user, meta, values, key=key)
        except Refused as refused:
            await ack(response_action="errors", errors={first_block or "": str(refused)})
            return
        except _DB_ERRORS:
            log.exception("slack modal for prompt %s not saved", meta.prompt_id)
            await ack(response_action="errors", errors={first_block or "": RETRY})
            return
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        if meta.page + 1 < kit.page_count(items):
            await ack(
                response_action="update",
                view=kit.update_modal(
                    meta.prompt_id, items, page=meta.page + 1, channel=meta.channel, ts=meta.ts
                ),
            )
        else:
            await ack()
        log.info("slack modal for prompt %s: %d answers", meta.prompt_id, len(recorded))
        if meta.channel and meta.ts and recorded:
            pulse.followups.start(
                pulse.update_message(
                    meta.channel, meta.ts, kit.summary_blocks(recorded), "Your update was recorded"
                )
            )

    @app.command("/pulse")
    async def command(
        ack: AsyncAck, body: dict[str, Any], command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        user = str(command.get("user_id", ""))
        words = str(command.get("text") or "").strip()
        verb, _, rest = words.partition(" ")
        verb = verb.lower()
        try:
            if not verb:
                await ack()
                found = await pulse.prompt_for_command(user)
                if found is None:
                    await _tell(respond, "You have no open milestones to update.")
                    return
                view = kit.update_modal(found[0], found[1])
                await client.views_open(trigger_id=str(command.get("trigger_id", "")), view=view)
                return
            if verb == "help":
                await ack(text=HELP)
                return
            text = await _command(pulse, user, verb, rest.strip())
        except Refused as refused:
            await ack(text=str(refused))
            return
        except _DB_ERRORS:
            log.exception("/pulse %s failed", verb)
            await ack(text="Sorry, that did not work just now; please try again.")
            return
        await ack(text=text)

    @app.event("app_home_opened")
    async def home(event: dict[str, Any]) -> None:
        # Publishing the same view again is harmless, so a retried event needs no memory.
        user = str(event.get("user", ""))
        if event.get("tab", "home") != "home" or not user:
            return
        now = pulse.clock()
        async with pulse._writer, pulse.sessions() as session:
            person = await pulse.person(session, user)
            if person is None:
                view = {
                    "type": "home",
                    "blocks": [
                        {"type": "section", "text": {"type": "plain_text", "text": NOT_LINKED}}
                    ],
                }
            else:
                view = kit.home_view(person.name, await pulse.milestones_of(session, person, now))
        await client.views_publish(user_id=user, view=view)

    return app


async def _command(pulse: _Pulse, user: str, verb: str, rest: str) -> str:
    """The reply to `/pulse VERB REST` (all but the modal and help)."""
    now = pulse.clock()
    async with pulse._writer, pulse.sessions() as session, session.begin():
        person = await pulse.person(session, user)
        if person is None:
            raise Refused(NOT_LINKED)
        people = SlackPeople(session)
        if verb == "status":
            lines = []
            for title, items in await pulse.milestones_of(session, person, now):
                lines.append(f"*{escape_mrkdwn(title)}*")
                lines.extend(f"• {kit.milestone_line(i)}" for i in items)
            return "\n".join(lines) or "You lead no milestones."
        if verb == "away":
            day = parse_day(rest)
            if day is None:
                raise Refused("Give the date you are back, e.g. `/pulse away 31/01/27`.")
            if day < local_date(now, person.timezone or "Europe/London"):
                raise Refused("That date is in the past.")
            await people.set_away(person.id, day, at=now)
            return f"You are away until {day:%-d %b %Y}; your delegate is asked instead."
        if verb == "back":
            await people.set_away(person.id, None, at=now)
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
            await people.set_delegate(person.id, delegate.id, at=now)
            if until is not None:
                await people.set_away(person.id, until, at=now)
                return f"{delegate.name} answers for you until {until:%-d %b %Y}."
            return f"{delegate.name} answers for you while you are away."
    return f"I do not know `{verb}`.\n{HELP}"


# --- HTTP ingress ---------------------------------------------------------------------------


# Slack's own rule: a request whose timestamp is further than this from our clock is refused
# (a replay defence), however good its signature.
TIMESTAMP_TOLERANCE = 300


class _SdkClock(SdkClock):
    """Our clock, as the SDK's signature verifier asks for it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock().timestamp()


class SkewAlarm:
    """Tells a skewed server clock from a forger (RELIABILITY.md scenario 55).

    A refused request whose signature is right for its own timestamp came from Slack: only
    the timestamp's distance from our clock failed it, so our clock (or Slack's) is off and
    every click is being refused. That is logged as an error with the measured offset, at
    most once per `every` seconds; a wrong signature is only a warning, as before.
    """

    def __init__(self, signing_secret: str, clock: Clock, every: float = 600) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._clock = clock
        self._every = every
        self._last: float | None = None

    def refused(self, body: str, timestamp: str, signature: str) -> None:
        expected = self._verifier.generate_signature(timestamp=timestamp, body=body)
        now = self._clock().timestamp()
        offset = int(timestamp) - int(now)
        if expected is None or not hmac.compare_digest(expected, signature):
            log.warning("slack request refused: invalid signature")
            return
        if abs(offset) <= TIMESTAMP_TOLERANCE:
            return
        if self._last is not None and now - self._last < self._every:
            return
        self._last = now
        log.error(
            "slack requests are refused because the clocks disagree: a correctly signed "
            "request is stamped %d s %s ours (Slack allows %d s). Check this server's "
            "time synchronisation (NTP); until then no click or form can be recorded",
            abs(offset),
            "ahead of" if offset > 0 else "behind",
            TIMESTAMP_TOLERANCE,
        )


# Seconds since 1970 have 10 digits until the year 2286; a longer stamp is not a time, and
# one of thousands of digits is more than Python will turn into an int.
MAX_TIMESTAMP_DIGITS = 12


def _bad_request(reason: str) -> web.Response:
    """400 for a request that cannot be read, logged as one line (never its body)."""
    log.warning("slack request refused (400): %s", reason)
    return web.Response(status=400, text=reason.partition(":")[0])


def build_http_app(
    app: AsyncApp,
    *,
    signing_secret: str,
    path: str = "/slack/events",
    max_body: int = DEFAULT_MAX_BODY,
    clock: Clock = system_clock,
) -> web.Application:
    """An aiohttp app serving `app` at `path` behind a guard that refuses, before bolt
    parses anything: an oversized body (413), a missing timestamp or signature (401), a
    non-numeric or overlong timestamp (400), a bad signature or a stale timestamp (401, and a
    clock-skew alert when the signature shows the request came from Slack: see `SkewAlarm`),
    a body that does not parse and a payload bolt or our listeners could not read safely
    (`shape_problem`) (400, logged as one line)."""
    verifier = SignatureVerifier(signing_secret, clock=_SdkClock(clock))
    alarm = SkewAlarm(signing_secret, clock)

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        if request.content_length is not None and request.content_length > max_body:
            return web.Response(status=413, text="request body too large")
        try:
            raw = await request.read()  # aiohttp stops at client_max_size
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="request body too large")
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        if timestamp is None or signature is None:
            return web.Response(status=401, text="missing signature")
        stamp = timestamp.strip()
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > MAX_TIMESTAMP_DIGITS:
            return _bad_request("bad timestamp")
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _bad_request("body is not UTF-8")
        if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
            alarm.refused(body, stamp, signature)
            return web.Response(status=401, text="invalid signature")
        parsed = _parse(body, request.content_type)
        if parsed is None:
            return _bad_request("malformed body")
        problem = shape_problem(parsed)
        if problem is not None:
            return _bad_request(f"malformed payload: {problem}")
        request[_PARSED] = (body, parsed)
        return await handler(request)

    async def events(request: web.Request) -> web.StreamResponse:
        body, parsed = request[_PARSED]
        # The body parsed once, here, and handed to bolt as parsed; bolt still checks the
        # signature of the raw body itself. A rating click carries its whole prompt message
        # (URL-encoded JSON), and parsing that twice was a large share of a click's time.
        bolt_request = AsyncBoltRequest(
            body=parsed,
            query=request.query_string,
            headers=dict(request.headers),
            mode="socket_mode",
        )
        bolt_request.raw_body, bolt_request.mode = body, "http"
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    http = web.Application(middlewares=[guard], client_max_size=max_body)
    http.router.add_post(path, events)
    return http


_PARSED = web.RequestKey("pulse_slack_body", tuple)


def _parse(body: str, content_type: str) -> dict[str, Any] | None:
    """The body as bolt reads it (JSON, or a form whose `payload`, if any, is JSON), or
    None when it does not parse: a form field without `=`, JSON that is not an object,
    JSON nested past what the parser can follow."""
    if not (content_type == "application/json" or body.startswith("{")):
        if body and not all("=" in field for field in body.split("&")):
            return None  # what parse_qs(strict_parsing=True) refuses, without decoding
    try:
        parsed = parse_body(body, content_type)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


# --- the shape of a payload -------------------------------------------------------------
#
# Bolt's request parsing and our listeners read fields of a payload by name and take their
# types on trust (`body["actions"][0]`, `"callback_id" in body["view"]`, `user.get("id")`).
# A signed payload whose fields have other types would raise inside bolt, which answers 500
# with a traceback in the log. So before bolt sees it, every field either of them reads
# must have a type Slack sends; nesting deeper than any Slack payload is refused too.

MAX_PAYLOAD_DEPTH = 32  # a modal's state is about 6 deep, a message's rich text about 10

_Types = tuple[type, ...]
_Spec = dict[str, "tuple[_Types, _Spec | None]"]

_TEXT: _Types = (str, type(None))
_OBJECT: _Types = (dict, type(None))
_LIST: _Types = (list, type(None))
_ID_OR_OBJECT: _Types = (str, dict, type(None))


def _texts(names: str) -> _Spec:
    """Text fields, named in one space-separated string."""
    return {name: (_TEXT, None) for name in names.split()}


_IDS = _texts("id team_id enterprise_id user_id name")
_OPTION: _Spec = _texts("value")
_ACTION: _Spec = {
    **_texts("type action_id block_id value action_ts selected_date"),
    "selected_option": (_OBJECT, _OPTION),
    "selected_options": (_LIST, _OPTION),
}
_BLOCK: _Spec = {
    **_texts("type block_id"),
    "accessory": (_OBJECT, {"options": (_LIST, _OPTION), "initial_option": (_OBJECT, _OPTION)}),
}
_MESSAGE: _Spec = {
    **_texts("type subtype ts thread_ts user bot_id channel_type"),
    "blocks": (_LIST, _BLOCK),
}
_EVENT: _Spec = {
    **_texts(
        "type subtype tab ts thread_ts channel_type team user_team bot_id "
        "function_execution_id bot_access_token enterprise_id team_id"
    ),
    "user": (_ID_OR_OBJECT, _IDS),
    "channel": (_ID_OR_OBJECT, _IDS),
    "item": (_OBJECT, _texts("channel ts type")),
    "message": (_OBJECT, _MESSAGE),
    "previous_message": (_OBJECT, _MESSAGE),
    "assistant_thread": (_OBJECT, _texts("channel_id thread_ts")),
    "view": (_OBJECT, None),
}
_VIEW: _Spec = {
    **_texts(
        "id type callback_id private_metadata hash team_id app_installed_team_id "
        "external_id root_view_id previous_view_id"
    ),
    "state": (_OBJECT, {"values": (_OBJECT, None)}),
}
_PAYLOAD: _Spec = {
    **_texts(
        "type token team_id enterprise_id user_id channel_id api_app_id trigger_id "
        "response_url thread_ts command text callback_id action_id action_ts "
        "function_execution_id bot_access_token challenge event_id context_team_id "
        "context_enterprise_id"
    ),
    "team": (_ID_OR_OBJECT, _IDS),
    "enterprise": (_ID_OR_OBJECT, _IDS),
    "user": (_OBJECT, _IDS),
    "channel": (_OBJECT, _IDS),
    "container": (_OBJECT, _texts("type channel_id message_ts view_id")),
    "message": (_OBJECT, _MESSAGE),
    "actions": (_LIST, _ACTION),
    "view": (_OBJECT, _VIEW),
    "event": (_OBJECT, _EVENT),
    "authorizations": (_LIST, _IDS),
    "response_urls": (_LIST, _texts("response_url block_id action_id channel_id")),
    "function_data": (_OBJECT, None),
}
# What bolt indexes without looking, per payload type: these must be there, non-empty.
_REQUIRED: dict[str, tuple[tuple[str, type], ...]] = {
    "block_actions": (("actions", list),),
    "interactive_message": (("actions", list),),
    "view_submission": (("view", dict),),
    "view_closed": (("view", dict),),
    "event_callback": (("event", dict),),
    "block_suggestion": (("action_id", str),),
}


def _too_deep(node: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _type_problem(node: dict[str, Any], spec: _Spec, where: str) -> str | None:
    for name, (types, inner) in spec.items():
        value = node.get(name)
        if not isinstance(value, types):
            return f"{where}{name} is {type(value).__name__}"
        if inner is None or value is None:
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if isinstance(value, list) and not isinstance(item, dict):
                return f"{where}{name}[{index}] is {type(item).__name__}"
            if isinstance(item, dict):
                found = _type_problem(item, inner, f"{where}{name}.")
                if found is not None:
                    return found
    return None


def shape_problem(payload: dict[str, Any]) -> str | None:
    """Why bolt or our listeners could not read `payload` safely (a field of a type Slack
    never sends, a required field missing, nesting past `MAX_PAYLOAD_DEPTH`), or None."""
    if _too_deep(payload, MAX_PAYLOAD_DEPTH):
        return f"nested deeper than {MAX_PAYLOAD_DEPTH}"
    found = _type_problem(payload, _PAYLOAD, "")
    if found is not None:
        return found
    for name, kind in _REQUIRED.get(str(payload.get("type")), ()):
        value = payload.get(name)
        if not isinstance(value, kind) or not value:
            return f"{name} is missing"
    view = payload.get("view")
    if payload.get("type") in ("view_submission", "view_closed") and isinstance(view, dict):
        if not isinstance(view.get("callback_id"), str):
            return "view.callback_id is missing"
    event = payload.get("event")
    if isinstance(event, dict) and payload.get("type") == "event_callback":
        if not isinstance(event.get("type"), str):
            return "event.type is missing"
    values = ((view or {}).get("state") or {}).get("values") if isinstance(view, dict) else None
    if isinstance(values, dict):
        for block in values.values():
            if not isinstance(block, dict) or not all(isinstance(a, dict) for a in block.values()):
                return "view.state.values is not blocks of actions"
            for action in block.values():
                found = _type_problem(action, _ACTION, "view.state.values.")
                if found is not None:
                    return found
    return None


# --- running it -----------------------------------------------------------------------------


class SlackChannel:
    """The Slack app running: Socket Mode when `app_token` is given, else HTTP, whose route
    (`http_app`, mounted at `/slack` so Slack posts to `/slack/events`) the one web server
    of `pulse run` serves (handlers/web/server.py)."""

    def __init__(
        self,
        app: AsyncApp,
        *,
        signing_secret: str,
        app_token: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        followups: Followups | None = None,
    ) -> None:
        self.app = app
        self.signing_secret = signing_secret
        self.app_token = app_token
        self.max_body = max_body
        self.followups = followups
        self._socket: AsyncSocketModeHandler | None = None

    def http_app(self) -> web.Application | None:
        """The events route to mount at `/slack` in HTTP mode; None in Socket Mode."""
        if self.app_token:
            return None
        return build_http_app(
            self.app, signing_secret=self.signing_secret, path="/events", max_body=self.max_body
        )

    async def start(self) -> None:
        if self.app_token:
            self._socket = AsyncSocketModeHandler(self.app, self.app_token)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("slack: connected in Socket Mode")

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self.followups is not None:
            await self.followups.close()
