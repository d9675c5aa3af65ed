"""The IMAP receiver against a real Dovecot (and, for faults Dovecot will not make, a
small fake server on loopback): every unseen message taken in once, marked \\Seen only
after it was committed, nothing lost to an error, a timeout or a refused login."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.app import PlanPulse
from bot.services.inbound import Inbound
from bot.settings import Settings
from handlers.email.imap import (
    ImapCommandRefused,
    ImapLoginRefused,
    ImapReceiver,
    ImapUnavailable,
)
from handlers.email.xoauth2 import xoauth2_string
from storage.models import InboundRow
from tests.dovecot import CAROL, Dovecot

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


def message(subject: str, *, message_id: str | None = None) -> bytes:
    """A lead's reply as a mail client would send it (CRLF, as IMAP stores it)."""
    mail = EmailMessage()
    mail["From"] = "Dana Cole <dana.cole@council.example>"
    mail["To"] = "plan-pulse@council.example"
    mail["Subject"] = subject
    mail["Message-ID"] = message_id or make_msgid(domain="mail.council.example")
    mail.set_content("1.1a 2 Strategy review done; sign-off on 14 Dec\n")
    return mail.as_bytes(policy=SMTP)


class FakeTakeIn:
    """Records what it was given; can fail, answer "duplicate", or look at the mailbox
    while it holds a message (to see that it is not yet marked \\Seen)."""

    def __init__(self, mailbox: Dovecot | None = None) -> None:
        self.taken: list[bytes] = []
        self.failures = 0  # how many calls to fail before succeeding
        self.new = True  # what to answer: new, or a duplicate
        self.seen_while_held: list[bool] = []
        self.arrived = asyncio.Event()
        self._mailbox = mailbox

    async def __call__(self, raw: bytes) -> bool:
        if self._mailbox is not None:
            stored = await asyncio.to_thread(self._mailbox.messages)
            self.seen_while_held.extend(m.seen for m in stored if m.raw == raw)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database is down")
        self.taken.append(raw)
        self.arrived.set()
        return self.new


class Tokens:
    """An OAuth2 token provider like msal's: it hands out its cached token until told to
    forget it (`invalidate`), then the next one of `tokens`; it records what it gave."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.given: list[str] = []
        self.invalidated = 0

    async def __call__(self) -> str:
        token = self.tokens[min(self.invalidated, len(self.tokens) - 1)]
        self.given.append(token)
        return token

    def invalidate(self) -> None:
        self.invalidated += 1


Receivers = Callable[..., ImapReceiver]


@pytest.fixture
async def receivers(mailbox: Dovecot) -> AsyncIterator[Receivers]:
    """Makes receivers for alice's mailbox (password login unless told otherwise), and
    closes every one of them after the test."""
    made: list[ImapReceiver] = []

    def make(take_in: Any, **options: Any) -> ImapReceiver:
        settings: dict[str, Any] = {
            "host": mailbox.host,
            "port": mailbox.port,
            "username": mailbox.user,
            "timeout": 5.0,
        }
        if "token_provider" not in options:
            settings["password"] = mailbox.password
        settings.update(options)
        receiver = ImapReceiver(take_in=take_in, **settings)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        await receiver.close()


# -- sweeping ------------------------------------------------------------------------------


async def test_a_sweep_takes_in_each_unseen_message_once_and_marks_it_seen_after(
    mailbox: Dovecot, receivers: Receivers
) -> None:
    """Each unseen message is handed over once, is still unseen while take_in holds it, and
    is \\Seen afterwards; a second sweep hands over nothing."""
    first, second = message("RE: [PP-7Q2K9] one"), message("RE: [PP-7Q2K9] two")
    mailbox.deliver(first)
    mailbox.deliver(second)
    take_in = FakeTakeIn(mailbox)
    receiver = receivers(take_in)
    assert await receiver.sweep() == 2
    assert take_in.taken == [first, second]
    assert take_in.seen_while_held == [False, False]
    assert all(m.seen for m in mailbox.messages())
    assert await receiver.sweep() == 0
    assert len(take_in.taken) == 2


async def test_a_failing_take_in_leaves_the_message_unseen_for_the_next_sweep(
    mailbox: Dovecot, receivers: Receivers
) -> None:
    """When take_in raises (a crash before the commit), that message stays unseen, the next
    message is still taken, and the next sweep takes the first one (scenario 50)."""
    failing, fine = message("first"), message("second")
    mailbox.deliver(failing)
    mailbox.deliver(fine)
    take_in = FakeTakeIn()
    take_in.failures = 1
    receiver = receivers(take_in)
    assert await receiver.sweep() == 1
    assert take_in.taken == [fine]
    assert [m.seen for m in mailbox.messages()] == [False, True]
    assert await receiver.sweep() == 1
    assert take_in.taken == [fine, failing]
    assert all(m.seen for m in mailbox.messages())


async def test_a_message_already_stored_is_still_marked_seen(
    mailbox: Dovecot, receivers: Receivers
) -> None:
    """A message take_in reports as a duplicate (committed before a crash that came before
    \\Seen) is marked seen and not counted as new."""
    mailbox.deliver(message("again"))
    take_in = FakeTakeIn()
    take_in.new = False
    assert await receivers(take_in).sweep() == 0
    assert len(take_in.taken) == 1
    assert all(m.seen for m in mailbox.messages())


async def test_seen_messages_are_not_fetched(mailbox: Dovecot, receivers: Receivers) -> None:
    """Messages already \\Seen (read by a person, or taken before) are left alone."""
    mailbox.deliver(message("read by someone"), seen=True)
    unseen = message("not yet read")
    mailbox.deliver(unseen)
    take_in = FakeTakeIn()
    assert await receivers(take_in).sweep() == 1
    assert take_in.taken == [unseen]


def large_message(subject: str, size: int) -> bytes:
    """A reply with an attachment-sized body of about `size` bytes."""
    mail = EmailMessage()
    mail["From"] = "Dana Cole <dana.cole@council.example>"
    mail["To"] = "plan-pulse@council.example"
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="mail.council.example")
    mail.set_content("1.1a 2 done\n" + "attachment text\n" * (size // 16))
    return mail.as_bytes(policy=SMTP)


async def test_a_message_over_the_size_limit_is_never_fetched_whole(
    mailbox: Dovecot, receivers: Receivers
) -> None:
    """A message whose RFC822.SIZE is over the limit is not fetched: only its header
    section and size go to `too_large`, the smaller one beside it to take_in, and both are
    \\Seen once handed over."""
    small, big = message("small"), large_message("big", 50_000)
    mailbox.deliver(small)
    mailbox.deliver(big)
    take_in = FakeTakeIn()
    kept: list[tuple[bytes, int]] = []

    async def too_large(head: bytes, size: int) -> bool:
        kept.append((head, size))
        return True

    receiver = receivers(take_in, max_bytes=20_000, too_large=too_large)
    assert await receiver.sweep() == 2
    assert take_in.taken == [small]
    [(head, size)] = kept
    assert size == len(big)
    assert head == big[: big.index(b"\r\n\r\n") + 4]
    assert all(m.seen for m in mailbox.messages())


async def test_a_message_over_the_limit_without_a_keeper_stays_unseen(
    mailbox: Dovecot, receivers: Receivers
) -> None:
    """With a size limit but nowhere to keep what is over it, an oversized message is left
    unseen and unfetched, and the others are taken in."""
    small, big = message("small"), large_message("big", 50_000)
    mailbox.deliver(big)
    mailbox.deliver(small)
    take_in = FakeTakeIn()
    assert await receivers(take_in, max_bytes=20_000).sweep() == 1
    assert take_in.taken == [small]
    assert [m.seen for m in mailbox.messages()] == [False, True]


async def test_a_folder_that_does_not_exist_is_a_clear_error(
    mailbox: Dovecot, receivers: Receivers
) -> None:
    """SELECT of a missing folder raises ImapCommandRefused naming the folder."""
    receiver = receivers(FakeTakeIn(), folder="Replies")
    with pytest.raises(ImapCommandRefused, match="Replies"):
        await receiver.sweep()


# -- logging in ----------------------------------------------------------------------------


async def test_a_wrong_password_fails_cleanly_and_a_good_one_then_works(
    mailbox: Dovecot, receivers: Receivers, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused password raises ImapLoginRefused (again on the next sweep, without a
    crash or a hang) and is never logged; a receiver with the right one then works."""
    caplog.set_level(logging.DEBUG)
    mailbox.deliver(message("waiting"))
    wrong = receivers(FakeTakeIn(), password="not-the-password")
    with pytest.raises(ImapLoginRefused, match="IMAP_PASSWORD"):
        await wrong.sweep()
    with pytest.raises(ImapLoginRefused):
        await wrong.sweep()
    assert "not-the-password" not in caplog.text
    assert "imap sweep" in caplog.text
    take_in = FakeTakeIn()
    assert await receivers(take_in).sweep() == 1


async def test_a_password_that_needs_quoting_logs_in_and_is_never_logged(
    mailbox: Dovecot, receivers: Receivers, caplog: pytest.LogCaptureFixture
) -> None:
    """A password with a quote, a backslash and a space is sent quoted, works, and appears
    in no log line, aioimaplib's debug lines included."""
    caplog.set_level(logging.DEBUG)
    user, password = CAROL
    assert await receivers(FakeTakeIn(), username=user, password=password).sweep() == 0
    assert "LOGIN" in caplog.text  # aioimaplib's debug log of what it sent is captured
    assert password not in caplog.text
    assert password.replace("\\", "\\\\").replace('"', '\\"') not in caplog.text


async def test_xoauth2_logs_in_with_a_bearer_token(
    mailbox: Dovecot, receivers: Receivers, caplog: pytest.LogCaptureFixture
) -> None:
    """With a token provider the receiver logs in by AUTHENTICATE XOAUTH2 (Dovecot asks
    the introspection endpoint about the token), and neither the token nor the XOAUTH2
    string is logged."""
    caplog.set_level(logging.DEBUG)
    mailbox.tokens["tok-good-1"] = "alice"
    mailbox.deliver(message("by oauth"))
    tokens = Tokens("tok-good-1")
    take_in = FakeTakeIn()
    assert await receivers(take_in, token_provider=tokens).sweep() == 1
    assert mailbox.introspections == ["tok-good-1"]
    assert tokens.invalidated == 0
    assert "AUTHENTICATE" in caplog.text
    assert "tok-good-1" not in caplog.text
    assert xoauth2_string("alice", "tok-good-1") not in caplog.text


async def test_a_refused_token_is_fetched_anew_once(mailbox: Dovecot, receivers: Receivers) -> None:
    """A token the server refuses is invalidated and a new one fetched, on a new
    connection, once; the sweep then goes on."""
    mailbox.tokens["tok-fresh"] = "alice"
    mailbox.deliver(message("after refresh"))
    tokens = Tokens("tok-stale", "tok-fresh")
    take_in = FakeTakeIn()
    assert await receivers(take_in, token_provider=tokens).sweep() == 1
    assert tokens.given == ["tok-stale", "tok-fresh"]
    assert tokens.invalidated == 1
    assert mailbox.introspections == ["tok-stale", "tok-fresh"]


async def test_a_token_refused_twice_fails_the_sweep_promptly(
    mailbox: Dovecot, receivers: Receivers
) -> None:
    """Two refused tokens raise ImapLoginRefused; the refusal (a continuation carrying the
    error, answered with an empty line) does not wait out the timeout."""
    tokens = Tokens("tok-revoked")
    receiver = receivers(FakeTakeIn(), token_provider=tokens, timeout=30.0)
    async with asyncio.timeout(15):
        with pytest.raises(ImapLoginRefused, match="Microsoft 365"):
            await receiver.sweep()
    assert tokens.given == ["tok-revoked", "tok-revoked"]
    assert tokens.invalidated == 1


async def test_a_token_revoked_mid_session_reconnects_without_losing_mail(
    mailbox: Dovecot, receivers: Receivers, caplog: pytest.LogCaptureFixture
) -> None:
    """When the server drops a long session and the old token no longer works, the next
    sweep reconnects with a new token and takes in what arrived (scenario 58)."""
    caplog.set_level(logging.INFO, logger="handlers.email.imap")
    mailbox.tokens["tok-morning"] = "alice"
    tokens = Tokens("tok-morning", "tok-afternoon")
    take_in = FakeTakeIn()
    receiver = receivers(take_in, token_provider=tokens)
    mailbox.deliver(message("morning"))
    assert await receiver.sweep() == 1
    del mailbox.tokens["tok-morning"]
    mailbox.tokens["tok-afternoon"] = "alice"
    mailbox.kick()
    afternoon = message("afternoon")
    mailbox.deliver(afternoon)
    assert await receiver.sweep() == 1
    assert take_in.taken[-1] == afternoon
    assert tokens.given == ["tok-morning", "tok-morning", "tok-afternoon"]
    assert tokens.invalidated == 1
    assert "kept connection is gone" in caplog.text
    assert all(m.seen for m in mailbox.messages())


# -- waiting for mail ----------------------------------------------------------------------


async def until(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    """Wait until `condition` holds (checked often), or fail after `within` seconds."""
    async with asyncio.timeout(within):
        # What is polled (`idling`, a connection count) has no event to wait on.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_new_mail_ends_the_idle_wait_early(
    mailbox: Dovecot, receivers: Receivers, caplog: pytest.LogCaptureFixture
) -> None:
    """A message appended while the receiver idles wakes it long before max_wait (by the
    server's news, not by some trouble ending the wait)."""
    caplog.set_level(logging.INFO, logger="handlers.email.imap")
    receiver = receivers(FakeTakeIn())
    await receiver.sweep()
    max_wait = 60.0
    started = time.monotonic()
    waiting = asyncio.create_task(receiver.wait_for_mail(max_wait))
    await until(lambda: receiver.idling)
    await mailbox.adeliver(message("wake up"))
    async with asyncio.timeout(max_wait / 2):
        await waiting
    assert time.monotonic() - started < max_wait
    assert not receiver.idling
    assert "IDLE" not in caplog.text
    assert await receiver.sweep() == 1


async def test_mail_that_came_since_the_last_sweep_ends_the_wait_at_once(
    mailbox: Dovecot, receivers: Receivers
) -> None:
    """Mail delivered between a sweep and the start of IDLE (which IDLE would never
    announce) makes wait_for_mail return at once."""
    receiver = receivers(FakeTakeIn())
    await receiver.sweep()
    mailbox.deliver(message("in between"))
    async with asyncio.timeout(30):
        await receiver.wait_for_mail(60.0)
    assert not receiver.idling


async def test_run_takes_in_mail_as_it_arrives_and_stops_when_told(
    mailbox: Dovecot, receivers: Receivers
) -> None:
    """`run` sweeps, idles, is woken by new mail and takes it in, well before its polling
    interval, and returns soon after `stop` is set."""
    take_in = FakeTakeIn()
    receiver = receivers(take_in)
    stop = asyncio.Event()
    running = asyncio.create_task(receiver.run(stop, every=120))
    await until(lambda: receiver.idling)
    arriving = message("while running")
    await mailbox.adeliver(arriving)
    async with asyncio.timeout(30):
        await take_in.arrived.wait()
    assert take_in.taken == [arriving]
    stop.set()
    async with asyncio.timeout(10):
        await running


# -- faults a real server will not make ----------------------------------------------------


class FakeImapServer:
    """A bare IMAP server on loopback that misbehaves on purpose:

    silent             accepts the connection and never says a word
    stall_after_login  greets, logs anyone in, then never answers again
    drop_in_idle       accepts IDLE, then closes the connection
    mute_idle          never answers IDLE at all
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()
        for writer in self._writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            if self.mode == "silent":
                await reader.read()
                return
            writer.write(b"* OK fake IMAP ready\r\n")
            while line := await reader.readline():
                tag, _, rest = line.decode().strip().partition(" ")
                command = rest.split(" ")[0].upper()
                if command == "CAPABILITY":
                    writer.write(b"* CAPABILITY IMAP4rev1 IDLE\r\n%s OK done\r\n" % tag.encode())
                elif command == "LOGIN":
                    writer.write(b"%s OK logged in\r\n" % tag.encode())
                elif self.mode == "stall_after_login":
                    continue
                elif command == "SELECT":
                    writer.write(
                        b"* 0 EXISTS\r\n* OK [UIDNEXT 1] next\r\n%s OK [READ-WRITE] done\r\n"
                        % tag.encode()
                    )
                elif command == "UID":
                    writer.write(b"* SEARCH\r\n%s OK done\r\n" % tag.encode())
                elif command == "IDLE" and self.mode == "drop_in_idle":
                    writer.write(b"+ idling\r\n")
                    await writer.drain()
                    return
                elif command == "LOGOUT":
                    writer.write(b"* BYE\r\n%s OK bye\r\n" % tag.encode())
                    await writer.drain()
                    return
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def fake_server(request: pytest.FixtureRequest) -> AsyncIterator[FakeImapServer]:
    server = FakeImapServer(request.param)
    await server.start()
    yield server
    await server.stop()


def fake_receiver(server: FakeImapServer, take_in: Any, timeout: float) -> ImapReceiver:
    return ImapReceiver(
        host="127.0.0.1",
        port=server.port,
        username="alice",
        password="secret",
        timeout=timeout,
        take_in=take_in,
    )


@pytest.mark.parametrize("fake_server", ["silent", "stall_after_login"], indirect=True)
async def test_a_stalled_server_times_out_instead_of_hanging(fake_server: FakeImapServer) -> None:
    """A server that stops answering (before its greeting, or after the login) makes the
    sweep raise ImapUnavailable after the timeout, and the next sweep tries again."""
    receiver = fake_receiver(fake_server, FakeTakeIn(), timeout=0.5)
    try:
        async with asyncio.timeout(10):
            with pytest.raises(ImapUnavailable, match=r"no answer in 0\.5s"):
                await receiver.sweep()
            with pytest.raises(ImapUnavailable):
                await receiver.sweep()
        assert fake_server.connections == 2
    finally:
        await receiver.close()


@pytest.mark.parametrize("fake_server", ["drop_in_idle", "mute_idle"], indirect=True)
async def test_trouble_in_idle_just_ends_the_wait(
    fake_server: FakeImapServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection dropped during IDLE (where aioimaplib alone would hang), or an IDLE
    never answered, ends wait_for_mail quietly and long before max_wait."""
    caplog.set_level(logging.INFO, logger="handlers.email.imap")
    receiver = fake_receiver(fake_server, FakeTakeIn(), timeout=1.0)
    try:
        assert await receiver.sweep() == 0
        async with asyncio.timeout(20):
            await receiver.wait_for_mail(600.0)
        assert not receiver.idling
        expected = "lost" if fake_server.mode == "drop_in_idle" else "no answer in 1s"
        assert "IDLE ended early" in caplog.text
        assert expected in caplog.text
    finally:
        await receiver.close()


@pytest.mark.parametrize("fake_server", ["silent"], indirect=True)
async def test_run_survives_a_server_that_never_answers(fake_server: FakeImapServer) -> None:
    """`run` logs each failed round and tries again; it stops when told, without error."""
    receiver = fake_receiver(fake_server, FakeTakeIn(), timeout=0.2)
    stop = asyncio.Event()
    running = asyncio.create_task(receiver.run(stop, every=0.05))
    await until(lambda: fake_server.connections >= 3)
    stop.set()
    async with asyncio.timeout(10):
        await running


# -- the real inbound path -----------------------------------------------------------------


@pytest.fixture
async def pulse(tmp_path: Path) -> AsyncIterator[PlanPulse]:
    settings = Settings(
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'pulse.db'}",
        PULSE_DATA_DIR=tmp_path / "var",
    )
    app = PlanPulse(settings, clock=lambda: NOW)
    await app.migrate()
    yield app
    await app.close()


async def inbound_rows(pulse: PlanPulse) -> list[InboundRow]:
    async with pulse.sessions() as session:
        return list((await session.scalars(select(InboundRow))).all())


async def test_mail_reaches_the_inbound_table_once(
    mailbox: Dovecot, receivers: Receivers, pulse: PlanPulse
) -> None:
    """Through the real `Inbound.take_in` on SQLite, a message appended to Dovecot becomes
    one `inbound` row from source imap; sweeping again adds nothing, and a message that was
    committed but never marked \\Seen (a crash in between) is deduplicated and marked."""
    inbound = Inbound(pulse.sessions, mail_from=pulse.settings.mail_from, clock=lambda: NOW)
    receiver = receivers(functools.partial(inbound.take_in, source="imap"))
    raw = message("RE: [PP-7Q2K9] progress", message_id="<reply-1@mail.council.example>")
    mailbox.deliver(raw)
    assert await receiver.sweep() == 1
    rows = await inbound_rows(pulse)
    assert [(r.source, r.raw, r.dedupe_key) for r in rows] == [
        ("imap", raw, "mid:<reply-1@mail.council.example>")
    ]
    assert await receiver.sweep() == 0
    with mailbox.session() as imap:  # as if we crashed after the commit, before \Seen
        imap.uid("STORE", "1:*", "-FLAGS.SILENT", "(\\Seen)")
    assert await receiver.sweep() == 0
    async with pulse.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboundRow)) == 1
    assert all(m.seen for m in mailbox.messages())


async def test_an_oversized_message_is_kept_as_a_row_saying_so(
    mailbox: Dovecot, receivers: Receivers, pulse: PlanPulse
) -> None:
    """Through the real `Inbound` on SQLite, a message over MAX_INBOUND_BYTES becomes one
    row, already "unprocessable", naming its sender and size, holding its headers only; a
    second sweep after a crash before \\Seen adds nothing."""
    inbound = Inbound(
        pulse.sessions, mail_from=pulse.settings.mail_from, clock=lambda: NOW, max_bytes=20_000
    )

    async def too_large(head: bytes, size: int) -> bool:
        return await inbound.take_in_too_large(head, size=size, source="imap")

    receiver = receivers(
        functools.partial(inbound.take_in, source="imap"), max_bytes=20_000, too_large=too_large
    )
    big = large_message("RE: [PP-7Q2K9] with a scan", 50_000)
    mailbox.deliver(big)
    assert await receiver.sweep() == 1
    with mailbox.session() as imap:  # as if we crashed after the commit, before \Seen
        imap.uid("STORE", "1:*", "-FLAGS.SILENT", "(\\Seen)")
    assert await receiver.sweep() == 0
    [row] = await inbound_rows(pulse)
    assert (row.source, row.state) == ("imap", "unprocessable")
    assert row.raw == big[: big.index(b"\r\n\r\n") + 2]
    assert row.outcome == (
        f"too large ({len(big)} bytes; the limit is 20000), not read; "
        "from dana.cole@council.example"
    )
    assert await inbound.process_all() == []


def test_from_settings_reads_the_imap_settings(tmp_path: Path) -> None:
    """`from_settings` takes host, port, user, password and folder from IMAP_*, implicit TLS
    on 993, and OAuth2 instead of the password when given a token provider."""

    async def take_in(raw: bytes) -> bool:
        return True

    settings = Settings(
        _env_file=None,
        IMAP_HOST="outlook.office365.com",
        IMAP_USERNAME="plan-pulse@council.example",
        IMAP_PASSWORD=SecretStr("hunter2-long-enough"),
        IMAP_FOLDER="Plan Pulse",
        PULSE_DATA_DIR=tmp_path,
    )
    receiver = ImapReceiver.from_settings(settings, take_in)
    assert (receiver.host, receiver.port, receiver.username, receiver.folder) == (
        "outlook.office365.com",
        993,
        "plan-pulse@council.example",
        "Plan Pulse",
    )
    assert receiver.ssl
    assert receiver.token_provider is None
    assert receiver.max_bytes == settings.max_inbound_bytes
    tokens = Tokens("t")
    assert ImapReceiver.from_settings(settings, take_in, tokens).token_provider is tokens
