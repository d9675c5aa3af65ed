"""Teams channel posts through Workflows webhooks, as an outbox transport.

A network's digest reaches its Teams channel through a Workflows flow "Post to a channel
when a webhook request is received": one HTTP POST of a message with an Adaptive Card
(`digests.teams`) per post. The outbox payload of a Teams row is one post::

    {"network": "north", "part": 1, "parts": 3, "message": {"type": "message", ...}}

The row's recipient is the network's key; the webhook's URL is looked up when the row is
sent (`webhook_for`), so it is stored once, with the network, and never copied into the
outbox, a log line or an error (it carries the flow's signature).

Workflows answers 202 Accepted as soon as the flow is triggered, before the flow posts: a 202
means the post is in Workflows' hands, not that it has reached the channel. A channel cannot
be searched as Slack's can, so a post is never sent twice blindly:

* 2xx: sent.
* 429: Workflows' throttling. `Retry-After` is honoured: a wait of a second or less is
  waited here, a longer one reschedules the row for then.
* 408, 500, 502, 503, or no connection at all: the flow was not triggered; retried later.
* 504, a connection dropped or reset after the request was sent, or no answer in time: the
  flow may have run. The row is marked for review (`pulse outbox`), never resent blindly.
* Any other answer (400 a card refused, 401/403 a signature refused, 404 a flow deleted or
  turned off — a flow dies with its owner's account): failed, with the reason.

A network's posts keep their order: once one is put off, the later ones to the same network
are put off until the same moment without being sent, and the outbox claims rows in order.
Posts are paced: at least `interval` seconds from the answer to one post to the next post,
since a site's flows usually share one account's Teams connection, which Power Automate
throttles.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

from bot.services.transports import DeliveryOutcome, Reconciled, Result
from digests.teams import post_body
from storage.outbox import OutboxMessage

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 60.0  # a 429 without a usable Retry-After
RETRY_AFTER_CAP = 3600.0
NOT_TRIGGERED = frozenset({408, 500, 502, 503})  # nothing ran: the same post may go again
MAYBE_TRIGGERED = frozenset({504})  # a gateway gave up waiting: the flow may have run
_REFUSED = {
    400: "Workflows refused the card (400)",
    401: "Workflows refused the webhook's signature (401): copy the URL from the flow again",
    403: "Workflows refused the webhook's signature (403): copy the URL from the flow again",
    404: "no such flow (404): it was deleted or turned off, or its owner's account was removed",
}

WebhookFor = Callable[[str], Awaitable[str | None]]


def retry_after(value: str | None, *, now: datetime | None = None) -> float:
    """Seconds to wait from a `Retry-After` header (seconds, or an HTTP date); the default
    when it is missing or unreadable, never less than zero nor more than an hour."""
    if value is None or not value.strip():
        return DEFAULT_RETRY_AFTER
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return DEFAULT_RETRY_AFTER
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


class WorkflowsTransport:
    """Posts Teams rows to their network's Workflows webhook, one post per row."""

    # Each row is recorded at once: an unknown outcome needs a person, never a resend.
    settle_every = 1

    def __init__(
        self,
        webhook_for: WebhookFor,
        *,
        timeout: float = 30.0,
        interval: float = 1.0,
        short_wait: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.webhook_for = webhook_for
        self.timeout = timeout
        self.interval = interval
        self.short_wait = short_wait
        self.monotonic = monotonic
        self.sleep = sleep
        self._last_post: float | None = None
        self._held: dict[str, float] = {}  # network -> monotonic time its posts may resume
        self._pacing = asyncio.Lock()

    async def _pace(self) -> None:
        """Wait until `interval` has passed since the last post was answered. Counting from
        its answer, not its start, keeps posts `interval` apart where they arrive too,
        however long each took to connect and send."""
        if self._last_post is not None:
            wait = self._last_post + self.interval - self.monotonic()
            if wait > 0:
                await self.sleep(wait)

    async def _send(self, url: str, body: bytes) -> tuple[int, str | None]:
        """One POST; the answer's status and `Retry-After`."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session,
            session.post(
                URL(url.strip(), encoded=True),
                data=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
                allow_redirects=False,
            ) as response,
        ):
            await response.read()
            return response.status, response.headers.get("Retry-After")

    async def post(self, url: str, message: Mapping[str, Any]) -> tuple[Result, str | None, float]:
        """One POST of `message` to `url`, paced; (result, error, seconds to wait before a
        retry). Errors never include the URL."""
        body = post_body(message)
        waited = False
        while True:
            async with self._pacing:  # one post at a time, however many callers
                await self._pace()
                try:
                    status, header = await self._send(url, body)
                except (aiohttp.InvalidURL, ValueError):  # its message would show the URL
                    return Result.FAILED, "the webhook URL is not a URL", 0.0
                except aiohttp.ClientConnectorError as exc:  # no connection: nothing sent
                    return Result.RETRY, f"could not connect: {type(exc).__name__}", 0.0
                except (aiohttp.ClientError, TimeoutError) as exc:
                    # Sent, or partly sent, and no answer: the flow may have run.
                    return Result.UNKNOWN, f"no answer after sending: {type(exc).__name__}", 0.0
                finally:
                    self._last_post = self.monotonic()
            if 200 <= status < 300:
                return Result.SENT, None, 0.0
            if status == 429:
                wait = retry_after(header)
                if wait <= self.short_wait and not waited:
                    waited = True
                    await self.sleep(wait)
                    continue
                return Result.RETRY, f"throttled (429), retry after {wait:.0f} s", wait
            if status in NOT_TRIGGERED:
                return Result.RETRY, f"Workflows answered {status}", 0.0
            if status in MAYBE_TRIGGERED:
                return Result.UNKNOWN, f"Workflows answered {status}: the flow may have run", 0.0
            return Result.FAILED, _REFUSED.get(status, f"Workflows answered {status}"), 0.0

    async def deliver(self, message: OutboxMessage) -> DeliveryOutcome:
        network = message.recipient
        part = message.payload.get("part", 1)
        held_until = self._held.get(network)
        if held_until is not None:
            remaining = held_until - self.monotonic()
            if remaining > 0:  # an earlier post to this network was put off: keep the order
                return DeliveryOutcome(
                    Result.RETRY, "waiting for an earlier post", retry_after=remaining + 0.001
                )
            del self._held[network]
        url = await self.webhook_for(network)
        if url is None:
            return DeliveryOutcome(
                Result.FAILED, f"network {network} has no Teams webhook any more"
            )
        result, error, wait = await self.post(url, message.payload["message"])
        if result is Result.RETRY:
            wait = wait or min(30.0 * 2 ** max(0, message.attempts - 1), RETRY_AFTER_CAP)
            self._held[network] = self.monotonic() + wait
            log.info("teams post %s to %s put off %.0f s: %s", part, network, wait, error)
            return DeliveryOutcome(Result.RETRY, error, retry_after=wait)
        if result is Result.SENT:
            log.info(
                "teams post %s of %s to %s accepted", part, message.payload.get("parts"), network
            )
            return DeliveryOutcome(Result.SENT)
        return DeliveryOutcome(result, error)

    async def reconcile(self, message: OutboxMessage) -> Reconciled:
        # A Teams channel cannot be searched for what a flow posted: a person must look.
        return Reconciled.UNKNOWN
