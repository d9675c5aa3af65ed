"""Slack as an outbox transport: posts a row's messages at most once, and settles an unknown
outcome by looking in the channel rather than by posting again (RELIABILITY.md, "Decisions").

The outbox payload of a Slack row::

    {
        "channel": "C0123ABCD",          # a channel id, or "U…"/"W…": a DM to that user
        "posts": [                       # at least one
            {"text": "fallback text", "blocks": [...]},   # the parent message
            {"text": "...", "blocks": [...]},             # thread replies to the parent
        ],
    }

`blocks` may be left out. The first post is the parent message; each further post is a
reply in its thread, so a digest too long for one message (50 blocks, 3,000 characters a
text block) continues in the thread instead of being cut (DESIGN.md §10). Splitting is the
renderer's job; a post Slack still finds too long fails the row with a message that says so.

Slack has no idempotency key, so:

* The SDK's automatic retries are switched off: a retried post is a second message.
* Every post carries the row's identity in message metadata,
  `{"event_type": "plan_pulse_outbox", "event_payload": {"outbox_id": 42, "part": 0}}`.
* When the outcome of a post is unknown (5xx, `fatal_error`, a dropped connection, a
  timeout) the transport looks for it at once with `conversations.history` (the parent) or
  `conversations.replies` (a thread reply), both with `include_all_metadata=true`. Found:
  carry on with the next part. Not found: retry the row later, never post blindly.
* A retried row (attempts > 1) and `reconcile` look for the parts already posted first,
  and only the missing ones are posted.

Other answers: 429 reschedules the row at `Retry-After` (one short wait inside the
transport when Slack asks for a second or less); a permanent error (`channel_not_found`,
`not_in_channel`, `is_archived`, ...) fails the row; a refused bot token (`invalid_auth`,
`token_revoked`, ...) fails the row and opens a circuit breaker: every later delivery is
put off without calling Slack, and `alert` says why, until the token is fixed and the
process restarted (or `close_breaker()` is called). Posts to one channel are paced at one
a second, Slack's limit for `chat.postMessage`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.services.transports import DeliveryOutcome, Reconciled, Result
from storage.outbox import OutboxMessage

log = logging.getLogger(__name__)

EVENT_TYPE = "plan_pulse_outbox"
DEFAULT_RETRY_AFTER = 30.0  # a 429 without a usable Retry-After

# The bot token itself was refused: nothing sent with it can succeed.
TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired"})
# Refers to the token's account on some methods, to a recipient on others: auth.test decides.
ACCOUNT_INACTIVE = "account_inactive"
# Slack may have carried the call out before failing: look before trying again.
UNKNOWN_ERRORS = frozenset({"fatal_error", "internal_error", "service_unavailable"})
# Slack did not carry the call out, and may well do so later.
TRANSIENT_ERRORS = frozenset({"ratelimited", "team_added_to_org", "message_limit_exceeded"})
# Any other error is permanent: Slack did not carry the call out and never will for this
# row (channel_not_found, not_in_channel, is_archived, users_not_found, user_not_found,
# user_disabled, cannot_dm_bot, msg_too_long, msg_blocks_too_long, invalid_blocks,
# invalid_metadata_format, no_text, restricted_action, missing_scope, ...): Slack answered,
# so nothing was posted, and the same request will get the same answer.
_EXPLAINED = {
    "msg_blocks_too_long": "too many blocks or characters for one Slack message; "
    "the renderer must split it into more posts",
    "msg_too_long": "the text is too long for one Slack message; the renderer must split it",
    "invalid_blocks": "Slack rejected the blocks as malformed",
    "not_in_channel": "the bot is not a member of the channel; invite it",
    "is_archived": "the channel is archived",
    "channel_not_found": "no such channel, or the bot cannot see it",
}


class _Kind(Enum):
    RATE_LIMITED = "rate limited"
    UNKNOWN = "outcome unknown"
    TRANSIENT = "temporary"
    PERMANENT = "permanent"
    TOKEN = "token refused"
    ACCOUNT_INACTIVE = "account inactive"


class _SlackFault(Exception):
    """A call to Slack that did not succeed, sorted by what it means for the row."""

    def __init__(self, kind: _Kind, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.kind = kind
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class SlackPost:
    """One message of a row: the parent, or a reply in its thread."""

    text: str
    blocks: Sequence[Mapping[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class SlackPayload:
    channel: str
    posts: tuple[SlackPost, ...]

    def as_outbox(self) -> dict[str, Any]:
        """The JSON stored in the outbox row."""
        return {
            "channel": self.channel,
            "posts": [
                {"text": p.text, **({"blocks": list(p.blocks)} if p.blocks is not None else {})}
                for p in self.posts
            ],
        }


def parse_payload(message: OutboxMessage) -> SlackPayload:
    """The row's payload, checked; ValueError says what is wrong with it."""
    payload = message.payload
    channel = payload.get("channel") or message.recipient
    if not isinstance(channel, str) or not channel:
        raise ValueError("the payload names no channel")
    raw_posts = payload.get("posts")
    if not isinstance(raw_posts, list) or not raw_posts:
        raise ValueError("the payload has no posts")
    posts = []
    for index, raw in enumerate(raw_posts):
        if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
            raise ValueError(f"post {index} has no text")
        blocks = raw.get("blocks")
        if blocks is not None and not isinstance(blocks, list):
            raise ValueError(f"post {index}: blocks must be a list")
        posts.append(SlackPost(raw["text"], blocks))
    return SlackPayload(channel, tuple(posts))


def _is_user(channel: str) -> bool:
    return channel[:1] in ("U", "W")


def _error_code(response: AsyncSlackResponse) -> str | None:
    data = response.data
    if isinstance(data, dict):
        error = data.get("error")
        return str(error) if error else None
    return None


def _retry_after(response: AsyncSlackResponse, default: float) -> float:
    for name, value in (response.headers or {}).items():
        if str(name).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return default


def _fault(exc: Exception) -> _SlackFault:
    """What a failed call means: did Slack do it, might it, or will it never?"""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        error = _error_code(exc.response)
        if status == 429 or error == "ratelimited":
            wait = _retry_after(exc.response, DEFAULT_RETRY_AFTER)
            return _SlackFault(_Kind.RATE_LIMITED, "rate limited by Slack", wait)
        if status >= 500:
            return _SlackFault(_Kind.UNKNOWN, f"Slack answered HTTP {status}")
        if status != 200:
            return _SlackFault(_Kind.TRANSIENT, f"Slack answered HTTP {status}")
        if error in TOKEN_ERRORS:
            return _SlackFault(_Kind.TOKEN, error)
        if error == ACCOUNT_INACTIVE:
            return _SlackFault(_Kind.ACCOUNT_INACTIVE, error)
        if error in UNKNOWN_ERRORS:
            return _SlackFault(_Kind.UNKNOWN, error)
        if error in TRANSIENT_ERRORS:
            return _SlackFault(_Kind.TRANSIENT, error)
        return _SlackFault(_Kind.PERMANENT, error or "Slack answered ok:false")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        # Never connected, so nothing was sent.
        return _SlackFault(_Kind.TRANSIENT, f"cannot reach Slack: {exc}")
    if isinstance(exc, TimeoutError):
        return _SlackFault(_Kind.UNKNOWN, "no answer from Slack in time")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return _SlackFault(_Kind.UNKNOWN, f"connection to Slack lost: {type(exc).__name__}")
    if isinstance(exc, SlackClientError):  # the SDK refused the request before sending it
        return _SlackFault(_Kind.PERMANENT, str(exc))
    raise exc


class SlackTransport:
    """Delivers Slack outbox rows; one instance per bot token, shared by all channels."""

    # A Slack outcome is settled at once: an unknown one costs a search of the channel.
    settle_every = 1

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
        per_channel_interval: float = 1.0,
        history_window: float = 7 * 24 * 3600.0,
        max_inline_wait: float = 1.0,
        unknown_retry_after: float = 15.0,
        breaker_retry_after: float = 3600.0,
        page_size: int = 200,
        max_pages: int = 25,
    ) -> None:
        # Slack has no idempotency key: an automatic retry of a post is a second message.
        client.retry_handlers = []
        self.client = client
        self.clock = clock
        self.sleep = sleep
        self.wall_clock = wall_clock  # Slack's ts are seconds since the epoch
        self.per_channel_interval = per_channel_interval
        self.history_window = history_window
        self.max_inline_wait = max_inline_wait
        self.unknown_retry_after = unknown_retry_after
        self.breaker_retry_after = breaker_retry_after
        self.page_size = page_size
        self.max_pages = max_pages
        self.alert: str | None = None
        self._dm_channels: dict[str, str] = {}
        self._next_slot: dict[str, float] = {}

    # -- the circuit breaker -------------------------------------------------------------

    def _open_breaker(self, error: str) -> None:
        if self.alert is None:
            self.alert = (
                f"Slack refused the bot token ({error}): all Slack sending is stopped "
                "until SLACK_BOT_TOKEN is fixed and the bot restarted"
            )
            log.error("slack circuit breaker open: %s", self.alert)

    def close_breaker(self) -> None:
        """Resume sending (after the token was fixed)."""
        self.alert = None

    def _stopped(self) -> DeliveryOutcome:
        return DeliveryOutcome(Result.RETRY, self.alert, retry_after=self.breaker_retry_after)

    # -- Slack calls ---------------------------------------------------------------------

    async def _call(self, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        try:
            return await call
        except Exception as exc:
            raise _fault(exc) from exc

    async def _channel_for(self, target: str) -> str:
        """The channel to post in: a DM is opened (once per user) for a user id."""
        if not _is_user(target):
            return target
        if target not in self._dm_channels:
            response = await self._call(self.client.conversations_open(users=target))
            channel = response.get("channel") or {}
            self._dm_channels[target] = str(channel["id"])
        return self._dm_channels[target]

    async def _pace(self, channel: str) -> None:
        """At most one post a second to a channel. The slot is taken before waiting, so
        concurrent deliveries to one channel queue up instead of bursting together."""
        now = self.clock()
        slot = max(now, self._next_slot.get(channel, now))
        self._next_slot[channel] = slot + self.per_channel_interval
        if slot > now:
            await self.sleep(slot - now)

    async def _post(
        self, message: OutboxMessage, channel: str, index: int, post: SlackPost, parent: str | None
    ) -> str:
        await self._pace(channel)
        kwargs: dict[str, Any] = {
            "channel": channel,
            "text": post.text,
            "metadata": {
                "event_type": EVENT_TYPE,
                "event_payload": {"outbox_id": message.id, "part": index},
            },
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if post.blocks is not None:
            kwargs["blocks"] = list(post.blocks)
        if parent is not None:
            kwargs["thread_ts"] = parent
        response = await self._call(self.client.chat_postMessage(**kwargs))
        return str(response["ts"])

    # -- looking for what was posted -----------------------------------------------------

    @staticmethod
    def _part_of(found: Mapping[str, Any], outbox_id: int) -> int | None:
        metadata = found.get("metadata")
        if not isinstance(metadata, dict) or metadata.get("event_type") != EVENT_TYPE:
            return None
        payload = metadata.get("event_payload")
        if not isinstance(payload, dict) or str(payload.get("outbox_id")) != str(outbox_id):
            return None
        try:
            return int(payload.get("part", 0))
        except (TypeError, ValueError):
            return None

    async def _find_parent(self, outbox_id: int, channel: str) -> str | None:
        """The ts of the row's parent message in the channel, if it is there."""
        oldest = f"{self.wall_clock() - self.history_window:.6f}"
        cursor: str | None = None
        for _ in range(self.max_pages):
            response = await self._call(
                self.client.conversations_history(
                    channel=channel,
                    oldest=oldest,
                    limit=self.page_size,
                    include_all_metadata=True,
                    cursor=cursor,
                )
            )
            for found in response.get("messages") or []:  # newest first: ours is near the top
                if self._part_of(found, outbox_id) == 0:
                    return str(found["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        log.warning("outbox %s: searched %d pages of %s", outbox_id, self.max_pages, channel)
        return None

    async def _find_replies(self, outbox_id: int, channel: str, parent: str) -> dict[int, str]:
        """{part: ts} of the row's replies in the parent's thread."""
        found: dict[int, str] = {}
        cursor: str | None = None
        for _ in range(self.max_pages):
            response = await self._call(
                self.client.conversations_replies(
                    channel=channel,
                    ts=parent,
                    limit=self.page_size,
                    include_all_metadata=True,
                    cursor=cursor,
                )
            )
            for reply in response.get("messages") or []:
                part = self._part_of(reply, outbox_id)
                if part is not None and part > 0 and reply.get("ts") != parent:
                    found.setdefault(part, str(reply["ts"]))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return found

    async def _find_posted(
        self, message: OutboxMessage, channel: str, parts: int
    ) -> dict[int, str]:
        """{part: ts} of the row's posts already in Slack."""
        parent = await self._find_parent(message.id, channel)
        if parent is None:
            return {}  # no reply can exist without its parent
        found = {0: parent}
        if parts > 1:
            found |= await self._find_replies(message.id, channel, parent)
        return found

    async def _find_part(
        self, message: OutboxMessage, channel: str, index: int, parent: str | None
    ) -> str | None:
        if index == 0 or parent is None:
            return await self._find_parent(message.id, channel)
        return (await self._find_replies(message.id, channel, parent)).get(index)

    # -- the Transport protocol ----------------------------------------------------------

    async def deliver(self, message: OutboxMessage) -> DeliveryOutcome:
        if self.alert is not None:
            return self._stopped()
        try:
            payload = parse_payload(message)
        except ValueError as exc:
            return DeliveryOutcome(Result.FAILED, f"bad Slack payload: {exc}")
        try:
            return await self._deliver(message, payload)
        except _SlackFault as fault:
            return await self._outcome(fault)

    async def _deliver(self, message: OutboxMessage, payload: SlackPayload) -> DeliveryOutcome:
        channel = await self._channel_for(payload.channel)
        # A retried row may have gone out, wholly or in part, on an earlier attempt.
        posted = (
            await self._find_posted(message, channel, len(payload.posts))
            if message.attempts > 1
            else {}
        )
        if posted:
            log.info("outbox %s: parts %s already in Slack", message.id, sorted(posted))
        waited = False
        for index, post in enumerate(payload.posts):
            if index in posted:
                continue
            parent = posted.get(0)
            while True:
                try:
                    posted[index] = await self._post(message, channel, index, post, parent)
                    break
                except _SlackFault as fault:
                    if (
                        fault.kind is _Kind.RATE_LIMITED
                        and not waited
                        and (fault.retry_after or 0.0) <= self.max_inline_wait
                    ):
                        waited = True  # once: a longer or repeated wait is the outbox's
                        await self.sleep(fault.retry_after or 0.0)
                        continue
                    if fault.kind is not _Kind.UNKNOWN:
                        raise self._with_progress(fault, index, posted) from fault
                    found = await self._find_part(message, channel, index, parent)
                    if found is None:
                        log.warning(
                            "outbox %s part %d: %s, and not in Slack; retrying later",
                            message.id,
                            index,
                            fault.error,
                        )
                        return DeliveryOutcome(
                            Result.RETRY,
                            f"part {index}: {fault.error}; not found in Slack",
                            retry_after=self.unknown_retry_after,
                        )
                    log.info(
                        "outbox %s part %d: %s, but found in Slack", message.id, index, fault.error
                    )
                    posted[index] = found
                    break
        return DeliveryOutcome(Result.SENT, external_id=posted[0])

    @staticmethod
    def _with_progress(fault: _SlackFault, index: int, posted: Mapping[int, str]) -> _SlackFault:
        explained = _EXPLAINED.get(fault.error)
        error = f"part {index}: {fault.error}" + (f" ({explained})" if explained else "")
        if posted:
            error += f"; parts {sorted(posted)} are posted"
        return _SlackFault(fault.kind, error, fault.retry_after)

    async def _outcome(self, fault: _SlackFault) -> DeliveryOutcome:
        if fault.kind is _Kind.RATE_LIMITED:
            return DeliveryOutcome(Result.RETRY, fault.error, retry_after=fault.retry_after)
        if fault.kind is _Kind.TOKEN:
            self._open_breaker(fault.error)
            return DeliveryOutcome(Result.FAILED, fault.error)
        if fault.kind is _Kind.ACCOUNT_INACTIVE:
            return await self._account_inactive(fault)
        if fault.kind is _Kind.PERMANENT:
            return DeliveryOutcome(Result.FAILED, fault.error)
        if fault.kind is _Kind.UNKNOWN:  # a look-up failed: the next attempt looks again
            return DeliveryOutcome(Result.RETRY, fault.error, retry_after=self.unknown_retry_after)
        return DeliveryOutcome(Result.RETRY, fault.error)

    async def _account_inactive(self, fault: _SlackFault) -> DeliveryOutcome:
        """`account_inactive` is about the bot's own account, or about the recipient's:
        if auth.test still accepts the token, only this row fails."""
        try:
            await self._call(self.client.auth_test())
        except _SlackFault as check:
            if check.kind in (_Kind.TOKEN, _Kind.ACCOUNT_INACTIVE):
                self._open_breaker(check.error)
                return DeliveryOutcome(Result.FAILED, fault.error)
            return DeliveryOutcome(Result.RETRY, f"{fault.error}; auth.test: {check.error}")
        return DeliveryOutcome(Result.FAILED, fault.error)

    async def reconcile(self, message: OutboxMessage) -> Reconciled:
        """SENT when every part is in Slack. Otherwise NOT_SENT, which is safe however much
        was posted: the row's next delivery looks first and posts only the missing parts."""
        if self.alert is not None:
            return Reconciled.NOT_SENT  # the retry waits behind the breaker, and looks
        try:
            payload = parse_payload(message)
        except ValueError:
            return Reconciled.NOT_SENT  # delivery will fail it with the reason
        try:
            channel = await self._channel_for(payload.channel)
            posted = await self._find_posted(message, channel, len(payload.posts))
        except _SlackFault as fault:
            if fault.kind is _Kind.TOKEN:
                self._open_breaker(fault.error)
            log.warning("outbox %s: cannot look in Slack (%s)", message.id, fault.error)
            return Reconciled.NOT_SENT
        return Reconciled.SENT if len(posted) == len(payload.posts) else Reconciled.NOT_SENT


async def lookup_user_by_email(client: AsyncWebClient, email: str) -> str | None:
    """The Slack user id for an email address (`users.lookupByEmail`), or None when nobody
    has it (scenario 25)."""
    try:
        response = await client.users_lookupByEmail(email=email.strip())
    except SlackApiError as exc:
        if _error_code(exc.response) in ("users_not_found", "user_not_found"):
            return None
        raise
    user = response.get("user") or {}
    return str(user["id"]) if "id" in user else None
