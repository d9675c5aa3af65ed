"""Teams as an outbox transport: posts a prompt's card to the lead's 1:1 conversation, once,
within Teams' limits.

The outbox payload of a Teams row::

    {
        "service_url": "https://smba.trafficmanager.net/uk/",
        "conversation_id": "a:1…",
        "activity": {"type": "message", "attachments": [...]},
        "fallback": {...},          # the email version, sent when Teams refuses for good
    }

The Bot Connector has no idempotency key and a conversation cannot be searched for what the
bot posted, so an outcome that may or may not have reached Teams (a 5xx, a dropped
connection, a timeout after the request went) is `UNKNOWN`: the row waits for a person
(`pulse outbox`), never posted again blindly; reconciling a row whose sender died mid-send
says the same. A 429 reschedules the row at its `Retry-After`; a refusal (400, 401, 403,
404: the app removed, the conversation gone) fails the row and its email goes instead.

Posts are paced below Teams' limits (per conversation 7 a second and 60 in 30 seconds; the
whole app 30 a second), each counted from when Teams answered it (`Pacer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta

import aiohttp
from microsoft_agents.activity import Activity
from pydantic import ValidationError

from bot.clock import Clock
from bot.services.transports import DeliveryOutcome, Reconciled, Result
from handlers.teams.connector import Connector, TokenUnavailable
from storage.outbox import OutboxMessage

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 30.0
# (calls, seconds): Teams' documented limits per bot, with 2 % room for clocks.
PER_CONVERSATION = ((7, 1.02), (60, 30.6))
PER_APP = ((30, 1.02),)
_REFUSED = frozenset({400, 401, 403, 404, 410, 413})


class Pacer:
    """Sliding windows per key: `slot(key)` waits until a call now stays within each, and
    counts the call as made when it has been answered, the latest Teams can have seen it,
    so however long a request spends on the way no window Teams counts ever holds more."""

    def __init__(
        self,
        *,
        per_key: tuple[tuple[int, float], ...] = PER_CONVERSATION,
        overall: tuple[tuple[int, float], ...] = PER_APP,
        monotonic: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.per_key = per_key
        self.overall = overall
        self.monotonic = monotonic
        self.max_keys = max_keys
        # Each call's time, in a one-item list: set when it starts, moved when it ends.
        self._calls: dict[str, deque[list[float]]] = {}
        self._all: deque[list[float]] = deque()
        self._lock = asyncio.Lock()

    @staticmethod
    def _delay(
        calls: deque[list[float]], limits: tuple[tuple[int, float], ...], now: float
    ) -> float:
        longest = max(seconds for _, seconds in limits)
        while calls and now - calls[0][0] >= longest:
            calls.popleft()
        delay = 0.0
        times = sorted(t[0] for t in calls)
        for count, seconds in limits:
            recent = [t for t in times if now - t < seconds]
            if len(recent) >= count:
                delay = max(delay, recent[-count] + seconds - now)
        return delay

    @contextlib.asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        async with self._lock:
            while True:
                now = self.monotonic()
                calls = self._calls.setdefault(key, deque())
                delay = max(
                    self._delay(calls, self.per_key, now), self._delay(self._all, self.overall, now)
                )
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
            made = [now]
            calls.append(made)
            self._all.append(made)
            if len(self._calls) > self.max_keys:
                self._calls.pop(next(iter(self._calls)))
        try:
            yield
        finally:
            made[0] = self.monotonic()


def _retry_after(headers: Mapping[str, str] | None) -> float:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return DEFAULT_RETRY_AFTER


class TeamsTransport:
    """Delivers Teams rows through the bot's connector, one at a time, paced."""

    settle_every = 1  # an unknown outcome needs a person: record each at once

    def __init__(self, connector: Connector, *, clock: Clock, pacer: Pacer | None = None) -> None:
        self.connector = connector
        self.clock = clock
        self.pacer = pacer or Pacer()
        # Chats Teams answered 429 for, and until when (by the clock the outbox runs on).
        self._held: dict[str, datetime] = {}

    def _held_for(self, conversation: str) -> float:
        until = self._held.get(conversation)
        if until is None:
            return 0.0
        left = (until - self.clock()).total_seconds()
        if left <= 0:
            del self._held[conversation]
            return 0.0
        return left

    async def deliver(self, message: OutboxMessage) -> DeliveryOutcome:
        payload = message.payload
        service_url = payload.get("service_url")
        conversation = payload.get("conversation_id")
        if not isinstance(service_url, str) or not isinstance(conversation, str):
            return DeliveryOutcome(Result.FAILED, "the payload names no Teams conversation")
        try:
            activity = Activity.model_validate(payload.get("activity"))
        except ValidationError:
            return DeliveryOutcome(Result.FAILED, "the payload's activity is malformed")
        held = self._held_for(conversation)
        if held > 0:
            # The chat's other cards (a long prompt) wait out a 429 without asking again.
            return DeliveryOutcome(Result.RETRY, "rate limited by Teams", retry_after=held)
        try:
            async with self.pacer.slot(conversation):
                sent_id = await self.connector.send(service_url, conversation, activity)
        except TokenUnavailable as failed:
            return DeliveryOutcome(Result.RETRY, str(failed))
        except aiohttp.ClientResponseError as answered:
            status = answered.status
            if status == 429:
                wait = _retry_after(answered.headers)
                self._held[conversation] = self.clock() + timedelta(seconds=wait)
                return DeliveryOutcome(Result.RETRY, "rate limited by Teams", retry_after=wait)
            if status in _REFUSED:
                return DeliveryOutcome(Result.FAILED, f"Teams refused the message (HTTP {status})")
            if status >= 500:
                return DeliveryOutcome(Result.UNKNOWN, f"Teams answered HTTP {status}")
            return DeliveryOutcome(Result.FAILED, f"Teams answered HTTP {status}")
        except aiohttp.ClientConnectorError:
            # No connection was made: nothing went.
            return DeliveryOutcome(Result.RETRY, "cannot connect to the Bot Connector")
        except (aiohttp.ClientError, TimeoutError) as failed:
            return DeliveryOutcome(
                Result.UNKNOWN, f"no answer from Teams ({type(failed).__name__})"
            )
        return DeliveryOutcome(Result.SENT, external_id=sent_id or None)

    async def reconcile(self, message: OutboxMessage) -> Reconciled:
        # A conversation cannot be searched for what the bot posted: a person must look.
        return Reconciled.UNKNOWN
