"""The outbox worker: claims due messages with a lease, hands each to its transport, and
records the outcome; rows whose sender vanished are reconciled before anything is resent.

A message is sent only by the worker that holds its lease at the moment it is handed over:
the worker records the hand-over with a statement that matches only a row it still holds
(its row count says whether it does), and a row it lost is never sent. While a batch is
in hand its leases are renewed, so a slow server does not let them run out; if they do
(a stalled worker), another worker takes the rows over and the first sends none of them.

One summary log line per message sent, per retry and per failure. Shutdown never leaves a
message half sent: the current message finishes, then unsent leases are given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NoReturn

from bot.clock import Clock
from bot.domain.errors import OutboxEntryError
from bot.domain.mail_states import OutboxKind, OutboxState
from bot.metrics import count_prompts_sent
from bot.services.alerts import AdminAlerts, AlertKind
from bot.services.transports import DeliveryOutcome, HandsOver, Reconciled, Result, Transport
from storage.db import Session, Sessions
from storage.outbox import OutboxMessage, OutboxProblem, OutboxRepository
from storage.prompts import PromptRepository

log = logging.getLogger(__name__)


def backoff(attempts: int, *, base: float = 30.0, cap: float = 3600.0) -> timedelta:
    """30 s, 60 s, 2 min, … up to an hour: failures wait longer, never in a tight loop."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    review: int = 0
    reconciled: int = 0
    lost: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{id(object()):x}"


class OutboxWorker:
    """Delivers the outbox through one transport per channel."""

    def __init__(
        self,
        sessions: Sessions,
        transports: Mapping[str, Transport],
        *,
        clock: Clock,
        owner: str | None = None,
        lease: timedelta = timedelta(minutes=5),
        batch: int = 50,
        max_attempts: int = 8,
        alerts: AdminAlerts | None = None,
    ) -> None:
        self.sessions = sessions
        self.alerts = alerts
        self.transports = transports
        self.clock = clock
        self.owner = owner or worker_name()
        self.lease = lease
        self.batch = batch
        self.max_attempts = max_attempts
        self.stats = DeliveryStats()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the message in hand, then stop taking more."""
        self._stopping.set()

    async def reconcile_expired(self) -> int:
        """Settle rows left 'sending' by a worker that died: look before resending."""
        now = self.clock()
        async with self.sessions() as session, session.begin():
            expired = await OutboxRepository(session).expired_leases(now=now, limit=self.batch)
        settled = 0
        for message in expired:
            async with self.sessions() as session, session.begin():
                if not await OutboxRepository(session).take_over(
                    message.id, owner=self.owner, now=now, lease=self.lease
                ):
                    continue
            if message.state == OutboxState.CLAIMED:
                verdict = Reconciled.NOT_SENT  # its worker never started sending it
            else:
                verdict = await self._transport(message).reconcile(message)
            async with self.sessions() as session, session.begin():
                repo = OutboxRepository(session)
                if verdict is Reconciled.SENT:
                    await repo.finish(message.id, owner=self.owner, state=OutboxState.SENT, now=now)
                    await self._after_sent(session, message, now)
                elif verdict is Reconciled.NOT_SENT:
                    await repo.finish(
                        message.id,
                        owner=self.owner,
                        state=OutboxState.PENDING,
                        now=now,
                        retry_at=now,
                    )
                else:
                    await repo.finish(
                        message.id,
                        owner=self.owner,
                        state=OutboxState.NEEDS_REVIEW,
                        now=now,
                        error="sender stopped mid-send; outcome unknown",
                    )
                    log.warning("outbox %s needs review: outcome unknown", message.id)
                    await self._alert_review(session, message, "sender stopped mid-send", now)
            settled += 1
            self.stats.reconciled += 1
            log.info("outbox %s reconciled: %s", message.id, verdict.value)
        return settled

    async def run_once(self) -> int:
        """One pass: reconcile expired leases, then claim and deliver one batch."""
        await self.reconcile_expired()
        now = self.clock()
        async with self.sessions() as session, session.begin():
            claimed = await OutboxRepository(session).claim(
                owner=self.owner, now=now, lease=self.lease, limit=self.batch
            )
        if not claimed:
            return 0
        async with self._leases_kept([m.id for m in claimed]):
            done = await self._deliver_batch(claimed)
        if len(claimed) > done:
            async with self.sessions() as session, session.begin():
                await OutboxRepository(session).release(
                    owner=self.owner, ids=[m.id for m in claimed[done:]]
                )
        return done

    async def _deliver_batch(self, claimed: list[OutboxMessage]) -> int:
        """Deliver the claimed rows in order until told to stop; how many were taken."""
        done = 0
        delivered: list[tuple[OutboxMessage, DeliveryOutcome, datetime]] = []
        # Transports that reconcile exactly are marked as handed over in one statement;
        # the others row by row, at the last moment before the far end can have it.
        batched = [m.id for m in claimed if self._transport(m).settle_every > 1]
        held: set[int] = set()
        if batched:
            held = await self._mark_sending(batched)
        for message in claimed:
            if self._stopping.is_set():
                break
            done += 1
            transport = self._transport(message)
            if transport.settle_every > 1 and message.id not in held:
                outcome = self._lost(message)
            elif transport.settle_every > 1:
                outcome = await self._send(message)
            elif isinstance(transport, HandsOver):
                outcome = await self._send_handing_over(transport, message)
            elif await self._mark_sending([message.id]):
                outcome = await self._send(message)
            else:
                outcome = self._lost(message)
            if outcome.result is Result.LOST:
                continue  # its new holder records it
            delivered.append((message, outcome, self.clock()))
            if len(delivered) >= max(1, transport.settle_every):
                await self._settle(delivered)
                delivered = []
        await self._settle(delivered)
        return done

    async def _mark_sending(self, ids: list[int]) -> set[int]:
        async with self.sessions() as session, session.begin():
            return await OutboxRepository(session).mark_sending(
                ids, owner=self.owner, now=self.clock(), lease=self.lease
            )

    def _lost(self, message: OutboxMessage) -> DeliveryOutcome:
        self.stats.lost += 1
        log.warning("outbox %s: lease lost before sending; left to its new holder", message.id)
        return DeliveryOutcome(Result.LOST, "lease lost")

    @contextlib.asynccontextmanager
    async def _leases_kept(self, ids: list[int]) -> AsyncIterator[None]:
        """Renew the batch's leases every third of a lease while it is in hand."""

        async def renew() -> None:
            every = max(self.lease.total_seconds() / 3, 0.01)
            while True:
                await asyncio.sleep(every)
                try:
                    async with self.sessions() as session, session.begin():
                        await OutboxRepository(session).renew(
                            ids, owner=self.owner, now=self.clock(), lease=self.lease
                        )
                except Exception as exc:  # the hand-over check still guards every row
                    log.warning("could not renew outbox leases: %s", type(exc).__name__)

        keeper = asyncio.create_task(renew())
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def drain(self) -> int:
        """Deliver until nothing is due now (for `run --once` and tests)."""
        total = 0
        while not self._stopping.is_set():
            n = await self.run_once()
            total += n
            if n == 0:
                break
        return total

    async def run_forever(self, *, idle: float = 1.0) -> None:
        while not self._stopping.is_set():
            try:
                n = await self.run_once()
            except Exception:  # a database outage must not kill the loop: retried next pass
                log.exception("outbox pass failed; retrying")
                n = 0
            if n == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=idle)
        async with self.sessions() as session, session.begin():
            released = await OutboxRepository(session).release(owner=self.owner)
        if released:
            log.info("released %d unsent outbox rows on shutdown", released)

    def _transport(self, message: OutboxMessage) -> Transport:
        return self.transports[message.channel]

    async def _send(self, message: OutboxMessage) -> DeliveryOutcome:
        try:
            return await self._transport(message).deliver(message)
        except Exception as exc:  # a transport bug must not lose the row: retry it
            log.exception("outbox %s: transport error", message.id)
            return DeliveryOutcome(Result.RETRY, f"{type(exc).__name__}: {exc}")

    async def _send_handing_over(
        self, transport: HandsOver, message: OutboxMessage
    ) -> DeliveryOutcome:
        async def hand_over() -> bool:
            if await self._mark_sending([message.id]):
                return True
            self._lost(message)
            return False

        try:
            return await transport.deliver_handing_over(message, hand_over)
        except Exception as exc:  # a transport bug must not lose the row: retry it
            log.exception("outbox %s: transport error", message.id)
            return DeliveryOutcome(Result.RETRY, f"{type(exc).__name__}: {exc}")

    async def _settle(
        self, delivered: list[tuple[OutboxMessage, DeliveryOutcome, datetime]]
    ) -> None:
        """Record outcomes in one transaction: the sent in bulk, the rest one by one."""
        if not delivered:
            return
        async with self.sessions() as session, session.begin():
            repo = OutboxRepository(session)
            sent = [(m, o, at) for m, o, at in delivered if o.result is Result.SENT]
            if sent:
                now = sent[-1][2]
                await repo.finish_sent(
                    [(m.id, o.external_id) for m, o, _ in sent], owner=self.owner, now=now
                )
                await PromptRepository(session).mark_sent_many(
                    [
                        m.prompt_id
                        for m, _, _ in sent
                        if m.prompt_id and m.kind == OutboxKind.PROMPT
                    ],
                    now,
                )
                count_prompts_sent(
                    session, [m.channel for m, _, _ in sent if m.kind == OutboxKind.PROMPT]
                )
                for message, _, _ in sent:
                    self.stats.sent += 1
                    self.stats.by_kind[message.kind] = self.stats.by_kind.get(message.kind, 0) + 1
                    log.info(
                        "sent %s %s to %s (outbox %s)",
                        message.kind,
                        message.channel,
                        message.recipient,
                        message.id,
                    )
            for message, outcome, now in delivered:
                if outcome.result is not Result.SENT:
                    await self._record_failure(repo, message, outcome, now)
                    await self._alert_token(session, message, now)

    async def _record_failure(
        self,
        repo: OutboxRepository,
        message: OutboxMessage,
        outcome: DeliveryOutcome,
        now: datetime,
    ) -> None:
        if outcome.result is Result.RETRY and message.attempts < self.max_attempts:
            wait = (
                timedelta(seconds=outcome.retry_after)
                if outcome.retry_after is not None
                else backoff(message.attempts)
            )
            await repo.finish(
                message.id,
                owner=self.owner,
                state=OutboxState.PENDING,
                now=now,
                error=outcome.error,
                retry_at=now + wait,
            )
            self.stats.retried += 1
            log.warning(
                "retry %s to %s (outbox %s, attempt %d) in %ds: %s",
                message.kind,
                message.recipient,
                message.id,
                message.attempts,
                int(wait.total_seconds()),
                outcome.error,
            )
        elif outcome.result is Result.UNKNOWN:
            await repo.finish(
                message.id,
                owner=self.owner,
                state=OutboxState.NEEDS_REVIEW,
                now=now,
                error=outcome.error,
            )
            self.stats.review += 1
            log.warning("outbox %s needs review: %s", message.id, outcome.error)
            await self._alert_review(repo.session, message, outcome.error, now)
        else:
            await repo.finish(
                message.id, owner=self.owner, state=OutboxState.FAILED, now=now, error=outcome.error
            )
            self.stats.failed += 1
            log.error(
                "failed %s to %s (outbox %s): %s",
                message.kind,
                message.recipient,
                message.id,
                outcome.error,
            )
            await self._fall_back(repo, message, now)

    async def _alert_review(
        self, session: Session, message: OutboxMessage, error: str | None, now: datetime
    ) -> None:
        if self.alerts is not None:
            await self.alerts.alert(
                session,
                AlertKind.NEEDS_REVIEW,
                f"Outbox message {message.id} ({message.kind} by {message.channel} to "
                f"{message.recipient}) may or may not have arrived ({error or 'outcome unknown'})."
                " Check with the recipient, then settle it with `pulse outbox resolve "
                f"{message.id} --sent` or `--not-sent`, or `pulse outbox retry {message.id}`.",
                now=now,
            )

    async def _alert_token(self, session: Session, message: OutboxMessage, now: datetime) -> None:
        refused = getattr(self._transport(message), "alert", None)
        if self.alerts is not None and isinstance(refused, str):
            await self.alerts.alert(session, AlertKind.SLACK_TOKEN, refused + ".", now=now)

    async def _fall_back(
        self, repo: OutboxRepository, message: OutboxMessage, now: datetime
    ) -> None:
        """A message that failed for good and carries a fallback (a Slack prompt's email
        version) sends that instead, once."""
        fallback = message.payload.get("fallback")
        if not isinstance(fallback, dict):
            return
        await repo.enqueue(
            dedupe_key=f"fallback:{message.id}",
            kind=message.kind,
            channel=str(fallback["channel"]),
            recipient=str(fallback["recipient"]),
            payload=dict(fallback["payload"]),
            message_id=fallback.get("message_id"),
            prompt_id=message.prompt_id,
            now=now,
        )
        log.warning(
            "outbox %s falls back to %s for %s", message.id, fallback["channel"], message.recipient
        )

    async def _after_sent(self, session: Session, message: OutboxMessage, now: datetime) -> None:
        if message.prompt_id is not None and message.kind == OutboxKind.PROMPT:
            await PromptRepository(session).mark_sent(message.prompt_id, now)
            count_prompts_sent(session, [message.channel])


# -- what an admin does with messages that failed or need review (`pulse outbox`) ---------


async def outbox_problems(sessions: Sessions) -> list[OutboxProblem]:
    """Failed and needs-review messages, oldest first."""
    async with sessions() as session:
        return await OutboxRepository(session).problems()


async def _refuse(repo: OutboxRepository, message_id: int) -> NoReturn:
    state = await repo.state_of(message_id)
    if state is None:
        raise OutboxEntryError(f"there is no outbox message {message_id}")
    raise OutboxEntryError(
        f"outbox message {message_id} is {state.replace('_', ' ')}, not failed or "
        "waiting for review: nothing to do"
    )


async def retry_message(sessions: Sessions, message_id: int, *, now: datetime) -> None:
    """Send a failed or needs-review message again, with a fresh count of attempts (for a
    needs-review one: a person checked that it did not arrive)."""
    async with sessions() as session, session.begin():
        repo = OutboxRepository(session)
        if not await repo.retry(message_id, now=now):
            await _refuse(repo, message_id)
    log.info("outbox %s queued again by an admin", message_id)


async def resolve_message(
    sessions: Sessions, message_id: int, *, sent: bool, now: datetime
) -> OutboxMessage:
    """Settle a failed or needs-review message as a person found it: sent (a prompt then
    counts as sent) or not sent (it stays unsent and leaves the list)."""
    async with sessions() as session, session.begin():
        repo = OutboxRepository(session)
        message = await repo.resolve(message_id, sent=sent, now=now)
        if message is None:
            await _refuse(repo, message_id)
        if sent and message.prompt_id is not None and message.kind == OutboxKind.PROMPT:
            await PromptRepository(session).mark_sent(message.prompt_id, now)
    log.info("outbox %s resolved by an admin as %s", message_id, "sent" if sent else "not sent")
    return message
