"""The outbox under stress, against a real aiosmtpd server on loopback and real databases:
two workers and a slow server, a worker killed mid-send, a database that goes away.
Every message is delivered exactly once, or handed to a person when it may have gone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import make_msgid
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from bot.app import PlanPulse, Runner
from bot.clock import system_clock
from bot.domain.errors import OutboxEntryError
from bot.services.delivery import OutboxWorker, resolve_message, retry_message
from handlers.email.smtp import SmtpTransport
from storage.models import OutboxRow, PromptRow
from storage.outbox import NewMessage, OutboxRepository
from tests.conftest import Clock, import_small_plan, running_pulse
from tests.postgres import PostgresServer, create_database

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
BOT = "bot@council.example"


@dataclass
class SlowMailbox:
    """An aiosmtpd handler that takes `delay` seconds over each message, records the
    Message-IDs it accepted, and can stall at MAIL FROM until `gate` is set."""

    delay: float = 0.0
    accepted: list[str] = field(default_factory=list)
    mail_seen: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event | None = None
    on_mail: Callable[[int], None] | None = None
    mails: int = 0

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.mails += 1
        self.mail_seen.set()
        if self.on_mail is not None:
            self.on_mail(self.mails)
        if self.gate is not None:
            await self.gate.wait()
        envelope.mail_from = address
        return "250 2.1.0 Sender OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.delay)  # a slow server: the time goes after the final dot
        assert isinstance(envelope.original_content, bytes)
        for line in envelope.original_content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                self.accepted.append(line.split(b":", 1)[1].strip().decode())
        return f"250 2.0.0 OK queued as {len(self.accepted)}"


@contextlib.asynccontextmanager
async def smtp_server(mailbox: SlowMailbox) -> AsyncIterator[int]:
    """The mailbox served on a free loopback port of the test's loop."""
    protocols: list[SMTP] = []

    def factory() -> SMTP:
        protocols.append(SMTP(mailbox, hostname="test"))
        return protocols[-1]

    listener = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        if mailbox.gate is not None:
            mailbox.gate.set()
        listener.close()
        await listener.wait_closed()
        for protocol in protocols:
            if protocol.transport is not None:
                protocol.transport.close()
        tasks = [p._handler_coroutine for p in protocols if p._handler_coroutine is not None]
        await asyncio.gather(*tasks, return_exceptions=True)


def smtp_transport(port: int) -> SmtpTransport:
    return SmtpTransport(
        host="127.0.0.1",
        port=port,
        tls="none",
        username=None,
        password=None,
        token_provider=None,
        mail_from=f"Plan Pulse <{BOT}>",
        local_hostname="pulse.test",
        per_minute=0,
        timeout=5,
    )


def prompt_mail(n: int) -> NewMessage:
    mail = EmailMessage()
    mail["From"] = f"Plan Pulse <{BOT}>"
    mail["To"] = f"lead{n}@council.example"
    mail["Subject"] = f"Plan update due [PP-{n:05d}]"
    mail["Message-ID"] = make_msgid(idstring=f"m{n}", domain="pulse.test")
    mail.set_content("Please rate your milestones.\n")
    return NewMessage(
        dedupe_key=f"test:{n}",
        kind="prompt",
        channel="email",
        recipient=f"lead{n}@council.example",
        payload={"raw": mail.as_bytes(policy=SMTP_POLICY).decode("ascii")},
        message_id=str(mail["Message-ID"]),
    )


async def enqueue(pulse: PlanPulse, count: int, *, now: datetime) -> None:
    async with pulse.sessions() as session, session.begin():
        await OutboxRepository(session).enqueue_many(
            [prompt_mail(n) for n in range(count)], now=now
        )


async def states(pulse: PlanPulse) -> dict[str, int]:
    async with pulse.sessions() as session:
        rows = await session.execute(
            select(OutboxRow.state, func.count()).group_by(OutboxRow.state)
        )
        return {state: int(n) for state, n in rows.tuples()}


async def test_two_workers_and_a_slow_server_send_each_message_exactly_once(
    db_url: str, tmp_path: Path
) -> None:
    """Two workers whose batches outlast their lease (a slow server) never both send a
    message: each of 24 messages arrives once, and every row is recorded as sent."""
    mailbox = SlowMailbox(delay=0.15)
    count = 24
    async with (
        running_pulse(db_url, tmp_path / "a", system_clock) as first,
        running_pulse(db_url, tmp_path / "b", system_clock) as second,
        smtp_server(mailbox) as port,
    ):
        await enqueue(first, count, now=system_clock())
        transports = [smtp_transport(port), smtp_transport(port)]
        # Batches of 8 take 1.2 s; a lease is 0.5 s.
        workers = [
            OutboxWorker(
                app.sessions,
                {"email": t},
                clock=system_clock,
                lease=timedelta(seconds=0.5),
                batch=8,
            )
            for app, t in zip((first, second), transports, strict=True)
        ]

        async def keep_delivering(worker: OutboxWorker) -> None:
            # Until nothing is left unsettled, so a worker that ran out of work looks for
            # expired leases of the other's, as a replica would.
            deadline = asyncio.get_running_loop().time() + 60
            while set(await states(first)) & {"pending", "claimed", "sending"}:
                assert asyncio.get_running_loop().time() < deadline, await states(first)
                if await worker.run_once() == 0:
                    await asyncio.sleep(0.05)

        try:
            await asyncio.gather(*(keep_delivering(w) for w in workers))
        finally:
            for transport in transports:
                await transport.close()
        final = await states(first)
    assert (len(mailbox.accepted), len(set(mailbox.accepted))) == (count, count)
    assert final == {"sent": count}


async def test_a_worker_killed_before_the_final_dot_leaves_a_message_that_is_resent(
    db_url: str, tmp_path: Path
) -> None:
    """A worker killed while its message is on the way (here: the server stalls at MAIL
    FROM) never handed it over: once its lease runs out the message is sent, once, and
    nothing waits for review."""
    clock = Clock(MONDAY)
    mailbox = SlowMailbox(gate=asyncio.Event())
    async with running_pulse(db_url, tmp_path, clock) as pulse, smtp_server(mailbox) as port:
        await enqueue(pulse, 1, now=clock())
        dying = smtp_transport(port)
        worker = OutboxWorker(pulse.sessions, {"email": dying}, clock=clock)
        task = asyncio.create_task(worker.run_once())
        await asyncio.wait_for(mailbox.mail_seen.wait(), timeout=10)
        task.cancel()  # killed: nothing after this point reaches the database
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await dying.close()
        assert await states(pulse) == {"claimed": 1}
        assert mailbox.gate is not None
        mailbox.gate.set()
        clock.now += timedelta(minutes=6)
        survivor_transport = smtp_transport(port)
        survivor = OutboxWorker(pulse.sessions, {"email": survivor_transport}, clock=clock)
        try:
            assert await survivor.drain() == 1
        finally:
            await survivor_transport.close()
        assert await states(pulse) == {"sent": 1}
    assert len(mailbox.accepted) == 1


async def test_a_row_another_worker_took_over_is_not_sent_by_the_first(
    db_url: str, tmp_path: Path
) -> None:
    """A worker whose lease ran out and was taken over cannot mark the row as handed over,
    so it never sends it; the new holder can."""
    clock = Clock(MONDAY)
    async with running_pulse(db_url, tmp_path, clock) as pulse:
        await enqueue(pulse, 1, now=clock())
        lease = timedelta(minutes=5)
        async with pulse.sessions() as session, session.begin():
            [message] = await OutboxRepository(session).claim(
                owner="slow", now=clock(), lease=lease, limit=1
            )
        later = clock() + timedelta(minutes=6)
        async with pulse.sessions() as session, session.begin():
            repo = OutboxRepository(session)
            assert await repo.take_over(message.id, owner="other", now=later, lease=lease)
        async with pulse.sessions() as session, session.begin():
            repo = OutboxRepository(session)
            assert (
                await repo.mark_sending([message.id], owner="slow", now=later, lease=lease) == set()
            )
            assert await repo.renew([message.id], owner="slow", now=later, lease=lease) == 0
            assert await repo.mark_sending([message.id], owner="other", now=later, lease=lease) == {
                message.id
            }


async def test_a_message_cut_off_after_the_final_dot_waits_for_a_person(
    db_url: str, tmp_path: Path
) -> None:
    """A message whose worker died after the final dot is never resent by itself: it waits
    for review, is listed, and a person resolves it as sent (its prompt then counts as
    sent) or sends it again."""
    clock = Clock(MONDAY)
    async with running_pulse(db_url, tmp_path, clock) as pulse:
        await import_small_plan(pulse.sessions, now=clock())
        await Runner(pulse).cycles.tick()
        lease = timedelta(minutes=5)
        async with pulse.sessions() as session, session.begin():
            repo = OutboxRepository(session)
            claimed = await repo.claim(owner="dead", now=clock(), lease=lease, limit=2)
            ids = [m.id for m in claimed]
            assert await repo.mark_sending(ids, owner="dead", now=clock(), lease=lease) == set(ids)
        clock.now += timedelta(minutes=6)
        survivor = OutboxWorker(pulse.sessions, {"email": smtp_transport(1)}, clock=clock)
        assert await survivor.reconcile_expired() == 2
        assert (await states(pulse))["needs_review"] == 2
        async with pulse.sessions() as session:
            problems = await OutboxRepository(session).problems()
        assert [(p.id, p.state, p.kind) for p in problems] == [
            (i, "needs_review", "prompt") for i in ids
        ]
        assert "outcome unknown" in problems[0].why
        resolved = await resolve_message(pulse.sessions, ids[0], sent=True, now=clock())
        await retry_message(pulse.sessions, ids[1], now=clock())
        with pytest.raises(OutboxEntryError, match="is sent, not failed"):
            await retry_message(pulse.sessions, ids[0], now=clock())
        with pytest.raises(OutboxEntryError, match="no outbox message 999"):
            await resolve_message(pulse.sessions, 999, sent=False, now=clock())
        async with pulse.sessions() as session:
            prompt = await session.get(PromptRow, resolved.prompt_id)
            assert prompt is not None
            assert prompt.sent_at is not None
            retried = await session.get(OutboxRow, ids[1])
            assert retried is not None
            assert (retried.state, retried.attempts) == ("pending", 0)


# --- RELIABILITY.md scenario 56: the database goes away at tick and at dispatch ----------


class Cable:
    """A TCP forwarder between the application and PostgreSQL that the test can cut (every
    connection dropped, new ones refused) and mend."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.is_cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self.is_cut = True
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    def mend(self) -> None:
        self.is_cut = False

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


async def test_a_database_outage_at_tick_and_at_dispatch_loses_and_duplicates_nothing(
    postgres_server: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL unreachable at a tick, then again in the middle of sending a cycle: the
    tick is retried at the next one, and every prompt is delivered exactly once after."""
    name = await create_database(postgres_server)
    cable = Cable(postgres_server.port)
    port = await cable.start()
    url = f"postgresql+asyncpg://{postgres_server.user}@127.0.0.1:{port}/{name}"
    clock = Clock(MONDAY)
    mailbox = SlowMailbox()
    try:
        async with running_pulse(url, tmp_path, clock) as pulse, smtp_server(mailbox) as smtp:
            await import_small_plan(pulse.sessions, now=clock())
            runner = Runner(pulse)
            cable.cut()
            await runner._tick()  # what the scheduler calls: it must not raise
            assert "tick failed; retrying at the next one" in caplog.text
            cable.mend()
            await runner._tick()
            prompts = (await states(pulse))["pending"]
            assert prompts == 4

            # The database goes when the second message reaches the server.
            mailbox.on_mail = lambda n: cable.cut() if n == 2 else None
            transport = smtp_transport(smtp)
            worker = OutboxWorker(pulse.sessions, {"email": transport}, clock=clock)
            try:
                with pytest.raises((OSError, SQLAlchemyError)):
                    await worker.run_once()
                assert len(mailbox.accepted) == 1
                cable.mend()
                mailbox.on_mail = None
                await worker.drain()  # the rows it held wait for their lease to run out
                clock.now += timedelta(minutes=6)
                await worker.drain()
            finally:
                await transport.close()
            assert await states(pulse) == {"sent": prompts}
    finally:
        await cable.stop()
    assert len(mailbox.accepted) == prompts
    assert len(set(mailbox.accepted)) == prompts
