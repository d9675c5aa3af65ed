"""The inbound SMTP listener against a real aiosmtplib client on loopback, on the test's own
loop: a message is answered 250 only once stored, stored once however often it is sent,
kept when storing fails (4xx, the sender retries), refused when too large (552) or not for
our domain (550), and started and stopped by the running bot."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import func, select

from bot.app import PlanPulse, Runner
from bot.settings import Settings
from handlers.email.listener import SmtpListener
from storage.models import InboundRow, UpdateRow
from tests.conftest import FIXTURES, Clock, import_small_plan

PLANS = FIXTURES / "plans"
MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
DOMAIN = "council.example"
BOT = f"pulse@{DOMAIN}"
LEAD = "dana.cole@council.example"


def message(
    *, message_id: str = "<m1@mail.council.example>", body: str = "1.2-1 3 on track"
) -> bytes:
    """A small message with CRLF line ends, as it travels over SMTP."""
    lines = [
        f"From: Dana Cole <{LEAD}>",
        f"To: {BOT}",
        "Subject: RE: progress",
        f"Message-ID: {message_id}",
        "Date: Mon, 23 Nov 2026 10:15:00 +0000",
        "",
        body,
        "",
    ]
    return "\r\n".join(lines).encode()


def client(port: int) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=port,
        start_tls=False,
        use_tls=False,
        local_hostname="client.test",
        timeout=10,
    )


# --- against a fake take_in ----------------------------------------------------------------


@dataclass
class Store:
    """A fake `take_in` that records the bytes it kept, deduplicating on the exact bytes,
    and fails the next `fail` calls when told to."""

    kept: list[bytes] = field(default_factory=list)
    fail: int = 0
    calls: int = 0

    async def take_in(self, raw: bytes) -> bool:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database unavailable")
        if raw in self.kept:
            return False
        self.kept.append(raw)
        return True


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
async def listener(store: Store) -> AsyncIterator[SmtpListener]:
    smtp = SmtpListener(store.take_in, domains=[DOMAIN], hostname="test", max_bytes=20_000)
    await smtp.start("127.0.0.1", 0)
    yield smtp
    await smtp.stop()


async def test_a_message_is_stored_once_with_its_exact_bytes(
    listener: SmtpListener, store: Store
) -> None:
    """A message sent to the bot's address is handed to take_in once, byte for byte, and the
    client is told it was accepted."""
    raw = message()
    async with client(listener.port) as smtp:
        errors, reply = await smtp.sendmail(LEAD, [BOT], raw)
    assert errors == {}
    assert reply.startswith("2.0.0 OK")
    assert store.kept == [raw]
    assert listener.stats.stored == 1


async def test_250_comes_only_after_take_in_returned(listener: SmtpListener) -> None:
    """While take_in is still storing, the client has no answer; it gets 250 once it is done."""
    started, release = asyncio.Event(), asyncio.Event()
    kept: list[bytes] = []

    async def slow_take_in(raw: bytes) -> bool:
        started.set()
        await release.wait()
        kept.append(raw)
        return True

    listener.handler.take_in = slow_take_in
    async with client(listener.port) as smtp:
        sending = asyncio.create_task(smtp.sendmail(LEAD, [BOT], message()))
        await started.wait()
        for _ in range(20):  # give a premature answer every chance to arrive
            await asyncio.sleep(0)
        assert not sending.done()
        assert kept == []
        release.set()
        errors, _ = await sending
    assert errors == {}
    assert len(kept) == 1


async def test_a_client_hanging_up_mid_store_does_not_cut_the_store_short(
    listener: SmtpListener,
) -> None:
    """A store under way when the client disconnects still completes (the client, having no
    250, will resend, and dedupe absorbs it)."""
    started, release = asyncio.Event(), asyncio.Event()
    kept: list[bytes] = []

    async def slow_take_in(raw: bytes) -> bool:
        started.set()
        await release.wait()
        kept.append(raw)
        return True

    listener.handler.take_in = slow_take_in
    smtp = client(listener.port)
    await smtp.connect()
    sending = asyncio.create_task(smtp.sendmail(LEAD, [BOT], message()))
    await started.wait()
    smtp.close()
    with pytest.raises(aiosmtplib.SMTPException):
        await sending
    release.set()
    await listener.handler.settle()
    assert len(kept) == 1


async def test_sending_the_same_message_twice_keeps_one_copy(
    listener: SmtpListener, store: Store
) -> None:
    """A resent message is accepted again (so the sender stops) but kept once."""
    raw = message()
    async with client(listener.port) as smtp:
        await smtp.sendmail(LEAD, [BOT], raw)
        errors, _ = await smtp.sendmail(LEAD, [BOT], raw)
    assert errors == {}
    assert store.kept == [raw]
    assert (listener.stats.stored, listener.stats.duplicates) == (1, 1)


async def test_a_failing_store_answers_4xx_and_the_resend_is_kept(
    listener: SmtpListener, store: Store
) -> None:
    """When take_in raises, the client sees a temporary 451 and nothing is kept; its resend
    on the same connection is kept once."""
    store.fail = 1
    raw = message()
    async with client(listener.port) as smtp:
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.sendmail(LEAD, [BOT], raw)
        assert refused.value.code == 451
        assert store.kept == []
        errors, _ = await smtp.sendmail(LEAD, [BOT], raw)
    assert errors == {}
    assert store.kept == [raw]
    assert listener.stats.failed == 1


async def test_an_oversized_message_is_refused_with_552(
    listener: SmtpListener, store: Store
) -> None:
    """A message over the size cap is refused permanently (552) and never reaches take_in."""
    raw = message(body="x" * 70 + ("\r\n" + "x" * 70) * 400)  # about 29 kB over a 20 kB cap
    async with client(listener.port) as smtp:
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await smtp.sendmail(LEAD, [BOT], raw)
        assert refused.value.code == 552
        with pytest.raises(aiosmtplib.SMTPResponseException) as declared:
            await smtp.sendmail(LEAD, [BOT], message(), mail_options=["SIZE=50000"])
        assert declared.value.code == 552
        errors, _ = await smtp.sendmail(LEAD, [BOT], message())  # the connection still works
    assert errors == {}
    assert store.calls == 1


async def test_mail_for_another_domain_is_refused_with_550(
    listener: SmtpListener, store: Store
) -> None:
    """The listener is no open relay: a recipient outside the bot's domain gets 550, and a
    message with only such recipients is never taken in."""
    async with client(listener.port) as smtp:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await smtp.sendmail(LEAD, ["victim@elsewhere.example", "x@council.example.evil"], b"")
        assert {r.code for r in refused.value.recipients} == {550}
        errors, _ = await smtp.sendmail(LEAD, [BOT, "victim@elsewhere.example"], message())
    assert set(errors) == {"victim@elsewhere.example"}
    assert errors["victim@elsewhere.example"].code == 550
    assert len(store.kept) == 1
    assert listener.stats.relay_refused == 3


# --- through the real inbound path on SQLite ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _settings(data: Path, *, listen_port: int | None = None) -> Settings:
    return Settings(
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{data / 'pulse.db'}",
        PULSE_DATA_DIR=data,
        MAIL_FROM=f"Plan Pulse <{BOT}>",
        SMTP_LISTEN_PORT=listen_port,
        METRICS_PORT=0,
    )


async def _prompted(settings: Settings, clock: Clock) -> PlanPulse:
    """The small plan imported and this Monday's prompts sent as local mail files."""
    pulse = PlanPulse(settings, clock=clock)
    await pulse.migrate()
    await import_small_plan(pulse.sessions, now=clock())
    await Runner(pulse).run_once()
    return pulse


def reply_to_dana(pulse: PlanPulse, *, message_id: str) -> bytes:
    """Dana's reply to her prompt, as her mail client would send it."""
    prompts = [
        message_from_bytes(p.read_bytes(), policy=default)
        for p in sorted((pulse.settings.mail_dir / "outbox").glob("*.eml"))
    ]
    prompt = next(p for p in prompts if LEAD in str(p["To"]))
    reply = EmailMessage()
    reply["From"] = f"Dana Cole <{LEAD}>"
    reply["To"] = str(prompt["From"])
    reply["Subject"] = "RE: " + str(prompt["Subject"])
    reply["Message-ID"] = message_id
    reply["In-Reply-To"] = str(prompt["Message-ID"])
    reply["References"] = str(prompt["Message-ID"])
    reply["Date"] = "Mon, 23 Nov 2026 10:15:00 +0000"
    reply.set_content("1.2-1 3 Analysis under way with HR\n1.2-2 in progress - need support\n")
    return reply.as_bytes(policy=default.clone(linesep="\r\n"))


@pytest.fixture
async def prompted(tmp_path: Path) -> AsyncIterator[PlanPulse]:
    clock = Clock(MONDAY)
    pulse = await _prompted(_settings(tmp_path / "var"), clock)
    clock.now = MONDAY + timedelta(hours=2)
    yield pulse
    await pulse.close()


async def _inbound_rows(pulse: PlanPulse) -> list[InboundRow]:
    async with pulse.sessions() as session:
        return list((await session.scalars(select(InboundRow).order_by(InboundRow.id))).all())


async def test_a_reply_over_smtp_is_stored_once_and_recorded(prompted: PlanPulse) -> None:
    """A lead's reply sent twice to the listener is one `inbound` row (source smtp),
    committed before the 250, and processing it records her two answers."""
    runner = Runner(prompted)
    listener = SmtpListener.from_settings(prompted.settings, runner.inbound)
    await listener.start("127.0.0.1", 0)
    try:
        raw = reply_to_dana(prompted, message_id="<smtp-1@mail.council.example>")
        async with client(listener.port) as smtp:
            await smtp.sendmail(LEAD, [BOT], raw)
            rows = await _inbound_rows(prompted)  # right after the 250: already committed
            assert [(r.source, r.state, r.raw) for r in rows] == [("smtp", "new", raw)]
            await smtp.sendmail(LEAD, [BOT], raw)
    finally:
        await listener.stop()
    assert len(await _inbound_rows(prompted)) == 1
    outcomes = await runner.inbound.process_pending()
    assert [o.state for o in outcomes] == ["processed"]
    async with prompted.sessions() as session:
        answers = await session.scalar(
            select(func.count()).select_from(UpdateRow).where(UpdateRow.source == "email")
        )
    assert answers == 2
    assert (listener.stats.stored, listener.stats.duplicates) == (1, 1)


@pytest.mark.parametrize("fails", ["before the commit", "after the commit"])
async def test_a_store_that_fails_loses_and_duplicates_nothing(
    prompted: PlanPulse, fails: str
) -> None:
    """Whether storing fails before its commit or after it (the answer lost), the client sees
    a 4xx, resends, and exactly one `inbound` row results."""
    runner = Runner(prompted)
    failed = False

    async def flaky_take_in(raw: bytes) -> bool:
        nonlocal failed
        if not failed:
            failed = True
            if fails == "after the commit":
                await runner.inbound.take_in(raw, source="smtp")
            raise ConnectionError("database went away")
        return await runner.inbound.take_in(raw, source="smtp")

    listener = SmtpListener(flaky_take_in, domains=[DOMAIN], hostname="test")
    await listener.start("127.0.0.1", 0)
    try:
        raw = reply_to_dana(prompted, message_id="<smtp-2@mail.council.example>")
        async with client(listener.port) as smtp:
            with pytest.raises(aiosmtplib.SMTPDataError) as refused:
                await smtp.sendmail(LEAD, [BOT], raw)
            assert 400 <= refused.value.code < 500
            await smtp.sendmail(LEAD, [BOT], raw)
    finally:
        await listener.stop()
    assert [r.raw for r in await _inbound_rows(prompted)] == [raw]
    assert [o.state for o in await runner.inbound.process_pending()] == ["processed"]


async def test_the_running_bot_listens_when_a_port_is_set_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    """With SMTP_LISTEN_PORT set, `run_forever` takes mail in over SMTP while it runs and
    closes the port when stopped; `run_once` never listens."""
    port = _free_port()
    clock = Clock(MONDAY)
    settings = _settings(tmp_path / "var", listen_port=port)
    pulse = await _prompted(settings, clock)
    try:
        runner = Runner(pulse)
        assert runner.smtp_listener is not None
        assert runner.smtp_listener.server is None  # run_once (in _prompted) did not listen
        stop = asyncio.Event()
        running = asyncio.create_task(runner.run_forever(stop, tick_every=3600, inbox_every=3600))
        for _ in range(500):
            if runner.smtp_listener.server is not None or running.done():
                break
            await asyncio.sleep(0.01)
        assert runner.smtp_listener.port == port
        raw = reply_to_dana(pulse, message_id="<smtp-3@mail.council.example>")
        async with client(port) as smtp:
            await smtp.sendmail(LEAD, [BOT], raw)
        stop.set()
        await running
        assert [r.source for r in await _inbound_rows(pulse)] == ["smtp"]
        with pytest.raises(aiosmtplib.SMTPConnectError):
            async with client(port):
                pass
    finally:
        await pulse.close()
    off = PlanPulse(_settings(tmp_path / "other"))
    assert Runner(off).smtp_listener is None
    await off.close()


async def test_an_oversized_message_is_refused_and_kept_as_a_note_for_review(
    prompted: PlanPulse,
) -> None:
    """A message refused as too large (552, whether its SIZE said so or its data did) is
    never held whole, and leaves a row for the admin naming its sender and size, which is
    never decided nor answered."""
    runner = Runner(prompted)
    settings = prompted.settings.model_copy(update={"smtp_listen_max_bytes": 20_000})
    listener = SmtpListener.from_settings(settings, runner.inbound)
    await listener.start("127.0.0.1", 0)
    try:
        async with client(listener.port) as smtp:
            with pytest.raises(aiosmtplib.SMTPResponseException) as declared:
                await smtp.sendmail(LEAD, [BOT], message(), mail_options=["SIZE=50000"])
            assert declared.value.code == 552
            # Without SIZE (sendmail would declare it): the data itself is too much.
            await smtp.mail("pat@agency.example")
            await smtp.rcpt(BOT)
            big = message(body="x" * 70 + ("\r\n" + "x" * 70) * 400)
            with pytest.raises(aiosmtplib.SMTPResponseException) as sent:
                await smtp.data(big)
            assert sent.value.code == 552
    finally:
        await listener.stop()
    rows = await _inbound_rows(prompted)
    assert [(r.source, r.state, r.raw) for r in rows] == [("smtp", "unprocessable", b"")] * 2
    assert [r.outcome for r in rows] == [
        f"too large (50000 bytes; the limit is 20000), refused; from {LEAD}",
        "too large (over the size limit; the limit is 20000), refused; from pat@agency.example",
    ]
    assert listener.stats.too_large == 2
    assert await runner.inbound.process_all() == []


async def test_a_failing_store_is_logged_without_the_message(
    listener: SmtpListener, caplog: pytest.LogCaptureFixture
) -> None:
    """When storing fails with an error that quotes the message, the sender gets 451 and
    the log says where it failed, but nothing of what the message said."""

    async def take_in(raw: bytes) -> bool:
        raise ValueError(f"cannot store {raw!r}")

    listener.handler.take_in = take_in
    async with client(listener.port) as smtp:
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.sendmail(LEAD, [BOT], message(body="1.2-1 3 my private note"))
    assert refused.value.code == 451
    assert "private note" not in caplog.text
    assert "ValueError at take_in" in caplog.text
