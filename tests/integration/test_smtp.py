"""The SMTP transport against a real aiosmtpd server on loopback, on the test's own loop:
exact bytes, one reused connection, every failure stage mapped to retry / failed / unknown
(at most once, RFC 1047), password and XOAUTH2 logins, pacing, Microsoft 365 tokens."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default
from email.utils import make_msgid
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr

from bot.services.transports import Reconciled, Result
from bot.settings import Settings
from handlers.email.smtp import SmtpTransport
from handlers.email.xoauth2 import (
    Ms365TokenProvider,
    TokenProvider,
    TokenUnavailable,
    xoauth2_string,
)
from storage.outbox import OutboxMessage

BOT = "bot@council.example"
LEAD = "lead@council.example"
PASSWORD = "correct horse battery staple"


# --- the server side ---------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Mailbox:
    """An aiosmtpd handler that records what it accepted and fails when told to; each
    `fail_*` and `*_after_data` order applies to the next message only."""

    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    logins: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    good_tokens: set[str] = field(default_factory=set)
    challenge_bad_tokens: bool = False  # answer a bad token with a 334 first, as Gmail does
    fail_mail: str | None = None
    fail_rcpt: str | None = None
    fail_data: str | None = None
    drop_at_rcpt: bool = False
    drop_after_data: bool = False
    hang_after_data: bool = False

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.fail_mail:
            reply, self.fail_mail = self.fail_mail, None
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.drop_at_rcpt:
            self.drop_at_rcpt = False
            return await _hang_up(server)
        if self.fail_rcpt:
            reply, self.fail_rcpt = self.fail_rcpt, None
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fail_data:
            reply, self.fail_data = self.fail_data, None
            return reply
        assert isinstance(envelope.mail_from, str)
        assert isinstance(envelope.original_content, bytes)
        self.messages.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        if self.drop_after_data:  # the server has the message, the client never hears
            self.drop_after_data = False
            return await _hang_up(server)
        if self.hang_after_data:
            self.hang_after_data = False
            await asyncio.Event().wait()  # cancelled when the client goes away
        return f"250 2.0.0 OK queued as {len(self.messages)}"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        if data.login == BOT.encode() and data.password == PASSWORD.encode():
            self.logins.append(data.login.decode())
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)


async def _hang_up(server: SMTP) -> str:
    """Close the connection without a reply; aiosmtpd cancels the handler on the loss."""
    assert server.transport is not None
    server.transport.close()
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


class RecordingSMTP(SMTP):
    """aiosmtpd's server, counting connections and speaking XOAUTH2 as Exchange does."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.event_handler.connections += 1

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        mailbox: Mailbox = self.event_handler
        fields = base64.b64decode(args[1]).decode().split("\x01")
        assert fields[0] == f"user={BOT}"
        assert fields[1].startswith("auth=Bearer ")
        assert fields[2:] == ["", ""]
        token = fields[1].removeprefix("auth=Bearer ")
        mailbox.tokens.append(token)
        if token in mailbox.good_tokens:
            return AuthResult(success=True, auth_data=BOT)
        if mailbox.challenge_bad_tokens:
            await server.challenge_auth('{"status":"401","schemes":"bearer"}')
        return AuthResult(
            success=False, handled=False, message="535 5.7.3 Authentication unsuccessful"
        )


@dataclass
class Server:
    mailbox: Mailbox
    port: int


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    mailbox = Mailbox()
    protocols: list[RecordingSMTP] = []

    def factory() -> RecordingSMTP:
        protocol = RecordingSMTP(
            mailbox, hostname="test", authenticator=mailbox.authenticate, auth_require_tls=False
        )
        protocols.append(protocol)
        return protocol

    listener = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    yield Server(mailbox, listener.sockets[0].getsockname()[1])
    listener.close()
    await listener.wait_closed()
    for protocol in protocols:
        if protocol.transport is not None:
            protocol.transport.close()
    # Let each session's task see its connection go, so nothing outlives the test.
    tasks = [p._handler_coroutine for p in protocols if p._handler_coroutine is not None]
    await asyncio.gather(*tasks, return_exceptions=True)


# --- the client side ---------------------------------------------------------------------


@pytest.fixture
async def transports() -> AsyncIterator[Callable[..., SmtpTransport]]:
    """Build transports to the test server; every one is closed at the end."""
    made: list[SmtpTransport] = []

    def make(port: int, **overrides: Any) -> SmtpTransport:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "tls": "none",
            "username": None,
            "password": None,
            "token_provider": None,
            "mail_from": f"Plan Pulse <{BOT}>",
            "local_hostname": "pulse.test",
            "per_minute": 0,
            "timeout": 5,
        }
        options.update(overrides)
        transport = SmtpTransport(**options)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()


_ids = iter(range(1, 1_000_000))


def outbox_message(subject: str = "Plan update due [PP-7Q2K9]") -> OutboxMessage:
    """An outbox row as the tick freezes it: the raw message, CRLF line ends."""
    mail = EmailMessage()
    mail["From"] = f"Plan Pulse <{BOT}>"
    mail["To"] = LEAD
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="pulse.test")
    mail["Auto-Submitted"] = "auto-generated"
    # A line starting with a dot must survive SMTP's dot-stuffing unchanged.
    mail.set_content("1.1a 2 Strategy review done\n.hidden dot line\n\nThanks\n")
    raw = mail.as_bytes(policy=SMTP_POLICY).decode("ascii")
    n = next(_ids)
    return OutboxMessage(
        id=n,
        kind="prompt",
        channel="email",
        recipient=LEAD,
        message_id=str(mail["Message-ID"]),
        payload={"raw": raw},
        prompt_id=None,
        attempts=1,
        state="sending",
    )


class FakeTokens:
    """A token provider that hands out its tokens in order and records invalidations."""

    def __init__(self, *tokens: str) -> None:
        self._tokens = list(tokens)
        self.calls = 0
        self.invalidations = 0

    async def __call__(self) -> str:
        self.calls += 1
        return self._tokens[min(self.calls, len(self._tokens)) - 1]

    def invalidate(self) -> None:
        self.invalidations += 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- delivery ----------------------------------------------------------------------------


async def test_delivers_the_exact_bytes(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """The server receives the frozen message byte for byte, from the bot's bare address
    to the row's recipient, and the 250 reply becomes the external id."""
    message = outbox_message()
    outcome = await transports(server.port).deliver(message)

    assert outcome.result is Result.SENT
    assert outcome.external_id == "2.0.0 OK queued as 1"
    [got] = server.mailbox.messages
    assert got.mail_from == BOT
    assert got.rcpt_tos == [LEAD]
    assert got.content == message.payload["raw"].encode("ascii")
    parsed = message_from_bytes(got.content, policy=default)
    assert parsed["Message-ID"] == message.message_id
    assert parsed["Subject"] == "Plan update due [PP-7Q2K9]"
    assert ".hidden dot line" in parsed.get_content()


async def test_reuses_one_connection(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """Several deliveries go over one connection, and close() ends it."""
    transport = transports(server.port)
    outcomes = [await transport.deliver(outbox_message(f"Update {i}")) for i in range(5)]

    assert [o.result for o in outcomes] == [Result.SENT] * 5
    assert len(server.mailbox.messages) == 5
    assert server.mailbox.connections == 1
    await transport.close()
    assert (await transport.deliver(outbox_message())).result is Result.SENT
    assert server.mailbox.connections == 2


@pytest.mark.parametrize("stage", ["fail_mail", "fail_rcpt", "fail_data"])
async def test_temporary_refusal_is_retried_and_the_next_delivery_works(
    server: Server, transports: Callable[..., SmtpTransport], stage: str
) -> None:
    """A 4xx at MAIL, RCPT or after DATA asks for a retry; the connection is dropped and
    the next delivery reconnects and goes through."""
    transport = transports(server.port)
    setattr(server.mailbox, stage, "451 4.3.0 try later")

    first = await transport.deliver(outbox_message())
    second = await transport.deliver(outbox_message())

    assert first.result is Result.RETRY
    assert first.error is not None
    assert "451 4.3.0 try later" in first.error
    assert second.result is Result.SENT
    assert len(server.mailbox.messages) == 1
    assert server.mailbox.connections == 2


@pytest.mark.parametrize("stage", ["fail_mail", "fail_rcpt", "fail_data"])
async def test_permanent_refusal_fails(
    server: Server, transports: Callable[..., SmtpTransport], stage: str
) -> None:
    """A 5xx at MAIL, RCPT or after DATA fails the row for good."""
    setattr(server.mailbox, stage, "550 5.1.1 no such user")

    outcome = await transports(server.port).deliver(outbox_message())

    assert outcome.result is Result.FAILED
    assert outcome.error is not None
    assert "550 5.1.1 no such user" in outcome.error
    assert server.mailbox.messages == []


async def test_connection_lost_before_the_end_of_data_is_retried(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """A connection dropped before the message was handed over is safe to retry."""
    server.mailbox.drop_at_rcpt = True

    outcome = await transports(server.port).deliver(outbox_message())

    assert outcome.result is Result.RETRY
    assert outcome.error is not None
    assert "RCPT TO" in outcome.error
    assert server.mailbox.messages == []


async def test_connection_lost_after_the_end_of_data_is_unknown(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """A drop after the final dot with no reply is 'unknown', never resent (RFC 1047):
    here the server did keep the message; the next delivery reconnects."""
    transport = transports(server.port)
    server.mailbox.drop_after_data = True

    outcome = await transport.deliver(outbox_message())

    assert outcome.result is Result.UNKNOWN
    assert outcome.error is not None
    assert "not resent" in outcome.error
    assert len(server.mailbox.messages) == 1
    assert (await transport.deliver(outbox_message())).result is Result.SENT
    assert server.mailbox.connections == 2


async def test_no_reply_after_the_end_of_data_is_unknown(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """A server that takes the message and never answers times out as 'unknown'."""
    server.mailbox.hang_after_data = True

    outcome = await transports(server.port, data_timeout=0.2).deliver(outbox_message())

    assert outcome.result is Result.UNKNOWN
    assert len(server.mailbox.messages) == 1


async def test_server_down_is_retried(transports: Callable[..., SmtpTransport]) -> None:
    """Connection refused asks for a retry."""
    outcome = await transports(_closed_port()).deliver(outbox_message())

    assert outcome.result is Result.RETRY
    assert outcome.error is not None
    assert "connecting to 127.0.0.1" in outcome.error


async def test_a_connection_the_server_closed_while_idle_is_reopened(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """A reused connection the server has timed out (421 to MAIL) is reopened once and
    the message still goes, with no retry."""
    transport = transports(server.port)
    assert (await transport.deliver(outbox_message())).result is Result.SENT
    server.mailbox.fail_mail = "421 4.4.2 idle too long, closing"

    outcome = await transport.deliver(outbox_message())

    assert outcome.result is Result.SENT
    assert len(server.mailbox.messages) == 2
    assert server.mailbox.connections == 2


async def test_reconcile_cannot_tell(transports: Callable[..., SmtpTransport]) -> None:
    """SMTP cannot say whether a message went: a person must look."""
    transport = transports(_closed_port())
    assert await transport.reconcile(outbox_message()) is Reconciled.UNKNOWN


async def test_a_row_without_a_raw_message_fails(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """A row whose frozen content cannot go by SMTP fails without touching the server."""
    row = replace(outbox_message(), payload={})

    outcome = await transports(server.port).deliver(row)

    assert outcome.result is Result.FAILED
    assert server.mailbox.connections == 0


# --- logins ------------------------------------------------------------------------------


async def test_password_login(server: Server, transports: Callable[..., SmtpTransport]) -> None:
    """The right username and password log in and the message goes."""
    transport = transports(server.port, username=BOT, password=PASSWORD)

    outcome = await transport.deliver(outbox_message())

    assert outcome.result is Result.SENT
    assert server.mailbox.logins == [BOT]


async def test_wrong_password_fails(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """A refused login (535) fails the row with a message naming the settings to fix,
    and never shows the password."""
    transport = transports(server.port, username=BOT, password="wrong password")

    outcome = await transport.deliver(outbox_message())

    assert outcome.result is Result.FAILED
    assert outcome.error is not None
    assert "535" in outcome.error
    assert "SMTP_PASSWORD" in outcome.error
    assert "wrong password" not in outcome.error
    assert server.mailbox.messages == []


async def test_xoauth2_sends_the_providers_token(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """With a token provider the transport logs in by XOAUTH2 with its token."""
    server.mailbox.good_tokens = {"token-1"}
    tokens = FakeTokens("token-1")
    transport = transports(server.port, username=BOT, token_provider=tokens)

    outcome = await transport.deliver(outbox_message())

    assert outcome.result is Result.SENT
    assert server.mailbox.tokens == ["token-1"]
    assert tokens.invalidations == 0


@pytest.mark.parametrize("challenge", [False, True], ids=["535", "334-then-535"])
async def test_xoauth2_refreshes_a_refused_token_once(
    server: Server, transports: Callable[..., SmtpTransport], challenge: bool
) -> None:
    """A refused token is dropped and a fresh one tried, once, and the message goes."""
    server.mailbox.good_tokens = {"fresh"}
    server.mailbox.challenge_bad_tokens = challenge
    tokens = FakeTokens("stale", "fresh")
    transport = transports(server.port, username=BOT, token_provider=tokens)

    outcome = await transport.deliver(outbox_message())

    assert outcome.result is Result.SENT
    assert server.mailbox.tokens == ["stale", "fresh"]
    assert tokens.invalidations == 1


async def test_xoauth2_refused_twice_fails(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """A token refused even after a refresh fails the row, without the token in the error."""
    tokens = FakeTokens("bad-1", "bad-2")
    transport = transports(server.port, token_provider=tokens)  # user = the envelope sender

    outcome = await transport.deliver(outbox_message())

    assert outcome.result is Result.FAILED
    assert outcome.error is not None
    assert "535 5.7.3" in outcome.error
    assert "bad-" not in outcome.error
    assert server.mailbox.tokens == ["bad-1", "bad-2"]
    assert server.mailbox.messages == []


async def test_a_token_that_cannot_be_had_fails_the_row(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """A provider that says the configuration is wrong fails the row; a temporary outage
    of the identity service is retried."""

    async def misconfigured() -> str:
        raise TokenUnavailable("Microsoft 365 gave no SMTP token: invalid_client")

    async def unreachable() -> str:
        raise OSError("login.microsoftonline.com unreachable")

    failed = await transports(server.port, token_provider=misconfigured).deliver(outbox_message())
    retried = await transports(server.port, token_provider=unreachable).deliver(outbox_message())

    assert failed.result is Result.FAILED
    assert retried.result is Result.RETRY
    assert server.mailbox.messages == []


def test_xoauth2_string() -> None:
    """The XOAUTH2 argument is base64 of user, bearer token and the ^A separators."""
    decoded = base64.b64decode(xoauth2_string("someone@example.com", "abc.def"))
    assert decoded == b"user=someone@example.com\x01auth=Bearer abc.def\x01\x01"


# --- pacing ------------------------------------------------------------------------------


class FakeTime:
    """A monotonic clock that only moves when the transport sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_pacing_keeps_to_the_rate(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """At 30 a minute, three back-to-back deliveries ask to wait 2 s before the 2nd and 3rd."""
    fake = FakeTime()
    transport = transports(server.port, per_minute=30, clock=fake.clock, sleep=fake.sleep)

    for _ in range(3):
        assert (await transport.deliver(outbox_message())).result is Result.SENT

    assert fake.sleeps == [pytest.approx(2.0), pytest.approx(2.0)]


async def test_pacing_does_not_wait_when_time_has_passed(
    server: Server, transports: Callable[..., SmtpTransport]
) -> None:
    """A delivery after a quiet spell longer than the interval does not wait at all."""
    fake = FakeTime()
    transport = transports(server.port, per_minute=30, clock=fake.clock, sleep=fake.sleep)

    await transport.deliver(outbox_message())
    fake.now += 5
    await transport.deliver(outbox_message())

    assert fake.sleeps == []


# --- Microsoft 365 tokens and settings ---------------------------------------------------


class FakeMsalApp:
    """Stands in for msal.ConfidentialClientApplication: hands out numbered tokens."""

    def __init__(self, *, expires_in: int = 3599, error: dict[str, str] | None = None) -> None:
        self.expires_in = expires_in
        self.error = error
        self.requests: list[list[str]] = []
        self.removed = 0

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        self.requests.append(scopes)
        if self.error is not None:
            return dict(self.error)
        return {
            "access_token": f"token-{len(self.requests)}",
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }

    def remove_tokens_for_client(self) -> None:
        self.removed += 1


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def _provider(app: FakeMsalApp, fake_time: FakeTime) -> Ms365TokenProvider:
    return Ms365TokenProvider(
        tenant_id="tenant-1",
        client_id="client-1",
        client_secret="the-client-secret",
        app=app,
        clock=fake_time.clock,
    )


async def test_ms365_tokens_are_cached_until_shortly_before_expiry(fake_time: FakeTime) -> None:
    """One token serves every login for its life, and a new one is fetched five minutes
    before it expires, for Exchange Online's scope."""
    app = FakeMsalApp(expires_in=3600)
    provider = _provider(app, fake_time)

    assert await provider() == "token-1"
    fake_time.now += 3000
    assert await provider() == "token-1"
    fake_time.now += 301
    assert await provider() == "token-2"
    assert app.requests == [["https://outlook.office365.com/.default"]] * 2


async def test_ms365_invalidate_fetches_a_new_token(fake_time: FakeTime) -> None:
    """After invalidate() the next call asks msal again, with msal's own cache emptied."""
    app = FakeMsalApp()
    provider = _provider(app, fake_time)

    assert await provider() == "token-1"
    provider.invalidate()

    assert await provider() == "token-2"
    assert app.removed == 1


async def test_ms365_error_is_clear_and_keeps_the_secret(fake_time: FakeTime) -> None:
    """No token raises TokenUnavailable naming the cause, never the client secret."""
    app = FakeMsalApp(
        error={
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.\nTrace ID: x",
        }
    )

    with pytest.raises(TokenUnavailable, match="invalid_client") as caught:
        await _provider(app, fake_time)()

    assert "AADSTS7000215" in str(caught.value)
    assert "the-client-secret" not in str(caught.value)
    assert not caught.value.temporary


def _settings(**values: Any) -> Settings:
    return Settings(
        _env_file=None,
        SMTP_HOST="smtp.office365.com",
        PULSE_SECRET_KEY=SecretStr("Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E"),
        MAIL_FROM=f"Plan Pulse <{BOT}>",
        **values,
    )


def test_from_settings_uses_ms365_tokens_without_a_password() -> None:
    """MS365_* and no SMTP_PASSWORD means XOAUTH2 with client-credentials tokens."""
    transport = SmtpTransport.from_settings(
        _settings(
            SMTP_USERNAME=BOT,
            MS365_TENANT_ID="tenant-1",
            MS365_CLIENT_ID="client-1",
            MS365_CLIENT_SECRET="the-client-secret",
        )
    )

    assert isinstance(transport.token_provider, Ms365TokenProvider)
    assert transport.host == "smtp.office365.com"
    assert transport.port == 587
    assert transport.tls == "starttls"
    assert transport.sender == BOT
    assert "the-client-secret" not in repr(transport.token_provider)


def test_from_settings_prefers_a_password_or_a_given_provider() -> None:
    """A password means a password login; a provider passed in is used as it is."""
    with_password = SmtpTransport.from_settings(
        _settings(
            SMTP_USERNAME=BOT,
            SMTP_PASSWORD=PASSWORD,
            MS365_TENANT_ID="tenant-1",
            MS365_CLIENT_ID="client-1",
            MS365_CLIENT_SECRET="the-client-secret",
        )
    )
    tokens: TokenProvider = FakeTokens("t")
    given = SmtpTransport.from_settings(_settings(SMTP_USERNAME=BOT), token_provider=tokens)

    assert with_password.token_provider is None
    assert given.token_provider is tokens
