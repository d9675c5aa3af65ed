"""Outbound mail over SMTP: the email `Transport` of the outbox worker, logging in with a
password or with the OAuth2 tokens Microsoft 365 wants instead (`handlers.email.xoauth2`;
RELIABILITY.md, "Decisions").

Prompts are sent at most once. The transaction is driven stage by stage (MAIL FROM,
RCPT TO, DATA, then the message and its final dot) so that every failure is known to have
happened before or after the end of DATA went out:

    reply / event                                   outcome
    250 to the end of DATA                          SENT (external id: the reply text)
    4xx at any stage                                RETRY
    5xx to MAIL FROM, RCPT TO, DATA or the message  FAILED (never retried)
    login refused (535, or any 5xx to AUTH)         FAILED: a configuration to fix
    connection lost / timeout before the end        RETRY: nothing was handed over
    connection lost / timeout after the end         UNKNOWN: the server may have the
                                                    message (RFC 1047); never resent,
                                                    the worker flags it for review
    the worker no longer holds the row, just        LOST: the final dot is never sent;
    before the end                                  the row's new holder sends it

The worker is asked (`hand_over`) after the server's 354 and before the message goes: only
then is the row recorded as handed over. A crash while pacing, connecting or anywhere
before leaves a row that is simply sent again; one after is a row for a person to check.

One connection is kept open and reused for every delivery (much faster than one per
message); it is opened lazily, reopened when the server has dropped it, and dropped after
any error so that the next delivery starts clean. Deliveries are paced to `per_minute`
(Exchange Online accepts about 30 a minute from one mailbox). Passwords, tokens and the
XOAUTH2 string are never logged nor put into an outcome's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from email.utils import parseaddr
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from aiosmtplib import (
    SMTP,
    SMTPAuthenticationError,
    SMTPException,
    SMTPResponse,
    SMTPResponseException,
)

from bot.domain.errors import ConfigError, PulseError
from bot.services.transports import DeliveryOutcome, HandOver, Reconciled, Result
from handlers.email.xoauth2 import (
    Ms365TokenProvider,
    TokenProvider,
    TokenUnavailable,
    forget_token,
    xoauth2_string,
)
from storage.outbox import OutboxMessage

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

TlsMode = Literal["starttls", "tls", "none"]

_EXTERNAL_ID_LENGTH = 255  # outbox.external_id is VARCHAR(255)
_LINE_ENDS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")


class SmtpLoginRefused(PulseError):
    """The SMTP server refused our login: usually wrong credentials or permissions."""

    def __init__(self, message: str, *, code: int | None, temporary: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.temporary = temporary


# ---------------------------------------------------------------------------------------
# The transport


class Stage(StrEnum):
    """Where in the SMTP conversation a delivery stopped."""

    CONNECT = "connect"
    MAIL = "MAIL FROM"
    RCPT = "RCPT TO"
    DATA = "DATA"
    END = "end of DATA"  # the message and its final dot were written


class _Unsendable(Exception):
    """The frozen message itself cannot go by SMTP: no retry will change that."""


def envelope_address(mail_from: str) -> str:
    """The bare address of a From value (`Plan Pulse <pp@example.org>`)."""
    address = parseaddr(mail_from)[1]
    if not address or "@" not in address:
        raise ConfigError(f"MAIL_FROM has no usable address: {mail_from!r}")
    return address


class SmtpTransport:
    """Delivers outbox rows of the email channel through one SMTP server."""

    # An unknown outcome after DATA needs a person: record each delivery at once.
    settle_every = 1

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: TlsMode,
        username: str | None,
        password: str | None,
        token_provider: TokenProvider | None,
        mail_from: str,
        local_hostname: str | None = None,
        per_minute: int = 30,
        timeout: float = 30,
        data_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if tls not in ("starttls", "tls", "none"):
            raise ConfigError(f"SMTP_TLS must be starttls, tls or none, not {tls!r}")
        if password is not None and token_provider is not None:
            raise ConfigError("give SMTP a password or an OAuth2 token provider, not both")
        if password is not None and not username:
            raise ConfigError("SMTP_PASSWORD is set but SMTP_USERNAME is not")
        if per_minute < 0:
            raise ConfigError("per_minute must be 0 (unpaced) or more")
        self.host = host
        self.port = port
        self.tls: TlsMode = tls
        self.username = username
        self._password = password
        self.token_provider = token_provider
        self.mail_from = mail_from
        self.sender = envelope_address(mail_from)
        self.local_hostname = local_hostname
        self.per_minute = per_minute
        self.timeout = timeout
        # The reply to the final dot may take a while (RFC 5321 §4.5.3.2.6 allows ten
        # minutes); giving up early turns a sent message into one a person must check.
        # Kept well under the worker's five-minute lease.
        self.data_timeout = data_timeout if data_timeout is not None else max(timeout, 120.0)
        self._clock = clock
        self._sleep = sleep
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._last_data_at: float | None = None
        self._client: SMTP | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SmtpTransport({self.host}:{self.port}, tls={self.tls}, user={self.username!r})"

    @classmethod
    def from_settings(
        cls, settings: Settings, *, token_provider: TokenProvider | None = None
    ) -> SmtpTransport:
        """The transport DESIGN.md §12's SMTP_* settings describe. With no password and
        MS365_* set, it logs in with Microsoft 365 client-credentials tokens."""
        if not settings.smtp_host:
            raise ConfigError("SMTP_HOST is not set")
        password = (
            settings.smtp_password.get_secret_value() if settings.smtp_password else None
        ) or None
        if token_provider is None and password is None:
            token_provider = Ms365TokenProvider.from_settings(settings)
        if token_provider is not None:
            password = None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=password,
            token_provider=token_provider,
            mail_from=settings.mail_from,
        )

    # -- the Transport protocol ----------------------------------------------------------

    async def deliver(self, message: OutboxMessage) -> DeliveryOutcome:
        return await self.deliver_handing_over(message, _always_ours)

    async def deliver_handing_over(
        self, message: OutboxMessage, hand_over: HandOver
    ) -> DeliveryOutcome:
        try:
            recipient, body = self._prepare(message)
        except _Unsendable as exc:
            return DeliveryOutcome(Result.FAILED, str(exc))
        async with self._lock:
            await self._pace()
            try:
                outcome = await self._transaction(recipient, body, hand_over)
            except BaseException:
                self._drop()  # cancelled mid-conversation: the connection state is unknown
                raise
            if outcome.result is not Result.SENT:
                self._drop()
            return outcome

    async def check(self) -> str:
        """Connect and log in, for `pulse check`; raises if that fails."""
        await self._connection()
        await self.close()
        return f"SMTP: connected to {self.host}:{self.port} and logged in"

    async def reconcile(self, message: OutboxMessage) -> Reconciled:
        # SMTP has no way to ask whether a message went: a person must look.
        return Reconciled.UNKNOWN

    async def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        async with self._lock:
            client, self._client = self._client, None
            if client is None:
                return
            if client.is_connected:
                with contextlib.suppress(SMTPException, OSError):  # closing anyway
                    await client.quit(timeout=min(self.timeout, 5.0))
            client.close()

    # -- one delivery --------------------------------------------------------------------

    def _prepare(self, message: OutboxMessage) -> tuple[bytes, bytes]:
        """The recipient and the dot-stuffed DATA of a row, ending with the final dot
        (the command writer adds the last CRLF)."""
        try:
            raw = str(message.payload["raw"]).encode("ascii", errors="surrogateescape")
        except KeyError:
            raise _Unsendable("the outbox row has no raw message") from None
        except UnicodeEncodeError:
            raise _Unsendable("the raw message is not ASCII text") from None
        try:
            recipient = message.recipient.strip().encode("ascii")
        except UnicodeEncodeError:
            raise _Unsendable(
                f"the recipient {message.recipient!r} is not an ASCII address"
            ) from None
        if not recipient or b"@" not in recipient or any(c in recipient for c in b"<> \r\n"):
            raise _Unsendable(f"the recipient {message.recipient!r} is not an address")
        body = _LEADING_DOT.sub(b"..", _LINE_ENDS.sub(b"\r\n", raw))
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        return recipient, body + b"."

    async def _pace(self) -> None:
        """Keep DATA starts at least 60/per_minute seconds apart."""
        if not self._interval or self._last_data_at is None:
            return
        wait = self._last_data_at + self._interval - self._clock()
        if wait > 0:
            await self._sleep(wait)

    async def _transaction(
        self, recipient: bytes, body: bytes, hand_over: HandOver
    ) -> DeliveryOutcome:
        # A reused connection may have been closed by the server while idle (Exchange
        # drops idle sessions) without us noticing: if it fails before anything of this
        # message was accepted, open a fresh one once and start again.
        for last_try in (False, True):
            reused = self._client is not None and self._client.is_connected
            stage = Stage.CONNECT
            try:
                client = await self._connection()
                stage = Stage.MAIL
                options = self._mail_options(client, body)
                reply = await client.execute_command(
                    b"MAIL", b"FROM:<" + self.sender.encode("ascii") + b">", *options
                )
                if reply.code != 250:
                    if reused and not last_try and reply.code == 421:
                        self._drop()
                        continue
                    return self._refused(stage, reply)
                stage = Stage.RCPT
                reply = await client.execute_command(b"RCPT", b"TO:<" + recipient + b">")
                if reply.code not in (250, 251):
                    return self._refused(stage, reply)
                stage = Stage.DATA
                self._last_data_at = self._clock()
                reply = await client.execute_command(b"DATA")
                if reply.code != 354:
                    return self._refused(stage, reply)
                if not client.is_connected:
                    raise SMTPException("connection lost before the message was sent")
                # The last moment nothing of this message can have been accepted. The
                # connection is dropped on any outcome but SENT, so the server discards the
                # unfinished message.
                try:
                    ours = await hand_over()
                except Exception as exc:  # the database's errors are not ours to enumerate
                    log.warning("could not record the hand-over: %s", type(exc).__name__)
                    return DeliveryOutcome(
                        Result.RETRY,
                        f"could not record the hand-over ({type(exc).__name__}); not sent",
                    )
                if not ours:
                    return DeliveryOutcome(
                        Result.LOST, "another worker holds the message; not sent"
                    )
                # From here the server may have the whole message. execute_command writes
                # before its first await, so nothing was sent if it raised before this.
                stage = Stage.END
                reply = await client.execute_command(body, timeout=self.data_timeout)
                if reply.code == 250:
                    return DeliveryOutcome(
                        Result.SENT, external_id=reply.message[:_EXTERNAL_ID_LENGTH] or "250"
                    )
                if 400 <= reply.code < 600:
                    return self._refused(stage, reply)
                return DeliveryOutcome(
                    Result.UNKNOWN,
                    f"unexpected reply to the end of DATA: {reply}; the message may have "
                    "been delivered, so it is not resent",
                )
            except SmtpLoginRefused as exc:
                log.error("SMTP login to %s:%s refused: %s", self.host, self.port, exc)
                return DeliveryOutcome(Result.RETRY if exc.temporary else Result.FAILED, str(exc))
            except TokenUnavailable as exc:
                log.error("SMTP token unavailable: %s", exc)
                return DeliveryOutcome(Result.RETRY if exc.temporary else Result.FAILED, str(exc))
            except (SMTPException, OSError) as exc:
                # SMTPServerDisconnected and SMTPTimeoutError are both; a malformed reply
                # is an SMTPResponseException.
                if stage is Stage.END:
                    return DeliveryOutcome(
                        Result.UNKNOWN,
                        f"no reply after the end of DATA ({_describe(exc)}); the message "
                        "may have been delivered (RFC 1047), so it is not resent",
                    )
                if reused and not last_try and stage is Stage.MAIL:
                    self._drop()
                    continue
                where = (
                    f"connecting to {self.host}:{self.port}"
                    if stage is Stage.CONNECT
                    else f"at {stage.value}"
                )
                return DeliveryOutcome(Result.RETRY, f"{where}: {_describe(exc)}")
        raise AssertionError("unreachable: the second try always returns")

    def _mail_options(self, client: SMTP, body: bytes) -> list[bytes]:
        options = []
        if client.supports_extension("size"):
            options.append(b"SIZE=%d" % len(body))  # lets the server refuse it before DATA
        if client.supports_extension("8bitmime") and not body.isascii():
            options.append(b"BODY=8BITMIME")
        return options

    def _refused(self, stage: Stage, reply: SMTPResponse) -> DeliveryOutcome:
        text = f"{stage.value} refused: {reply.code} {reply.message}".strip()
        if 400 <= reply.code < 500:
            return DeliveryOutcome(Result.RETRY, text)
        if 500 <= reply.code < 600:
            return DeliveryOutcome(Result.FAILED, text)
        return DeliveryOutcome(Result.RETRY, f"unexpected reply to {stage.value}: {reply}")

    # -- the connection ------------------------------------------------------------------

    async def _connection(self) -> SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        self._drop()
        client = SMTP(
            hostname=self.host,
            port=self.port,
            local_hostname=self.local_hostname,
            timeout=self.timeout,
            use_tls=self.tls == "tls",
            start_tls=self.tls == "starttls",
        )
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()
            await self._login(client)
        except BaseException:
            client.close()
            raise
        log.info("SMTP connected to %s:%s (tls=%s)", self.host, self.port, self.tls)
        self._client = client
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _login(self, client: SMTP) -> None:
        if self.token_provider is not None:
            await self._login_xoauth2(client, self.username or self.sender)
            return
        if self._password is None or not self.username:
            return  # a relay that trusts our address
        if not client.supported_auth_methods:
            offered = client.server_auth_methods
            raise SmtpLoginRefused(
                f"{self.host}:{self.port} offers no password login we can use "
                f"(AUTH {' '.join(offered) or 'not offered'}"
                + (", perhaps only after STARTTLS" if self.tls == "none" else "")
                + "); check SMTP_TLS and SMTP_PORT",
                code=None,
            )
        try:
            await client.login(self.username, self._password)
        except SMTPAuthenticationError as exc:
            raise self._login_refused(
                exc.code, exc.message, "SMTP_USERNAME and SMTP_PASSWORD"
            ) from None

    async def _login_xoauth2(self, client: SMTP, user: str) -> None:
        reply = await self._auth_xoauth2(client, user, await self._token())
        if reply.code == 535:
            # The token may have been revoked or rotated before its expiry: ask for a new
            # one, once.
            forget_token(self.token_provider)
            log.info("SMTP XOAUTH2 token refused; fetching a new one")
            reply = await self._auth_xoauth2(client, user, await self._token())
        if reply.code != 235:
            raise self._login_refused(
                reply.code, reply.message, "the Microsoft 365 app registration and mailbox"
            )

    async def _token(self) -> str:
        """A token from the provider; its failures become a `TokenUnavailable`."""
        if self.token_provider is None:
            raise ConfigError("no OAuth2 token provider configured")
        try:
            return await self.token_provider()
        except TokenUnavailable:
            raise
        except Exception as exc:  # the provider's HTTP stack is not ours to enumerate
            raise TokenUnavailable(
                f"could not get an SMTP token: {type(exc).__name__}: {exc}", temporary=True
            ) from exc

    async def _auth_xoauth2(self, client: SMTP, user: str, token: str) -> SMTPResponse:
        # aiosmtplib has no XOAUTH2 of its own. A server that refuses the token may first
        # send a 334 challenge carrying a JSON error; an empty line gets the final reply.
        reply = await client.execute_command(
            b"AUTH", b"XOAUTH2", xoauth2_string(user, token).encode("ascii")
        )
        if reply.code == 334:
            reply = await client.execute_command(b"")
        return reply

    def _login_refused(self, code: int, text: str, check: str) -> SmtpLoginRefused:
        temporary = 400 <= code < 500
        return SmtpLoginRefused(
            f"SMTP login as {self.username or self.sender!r} to {self.host}:{self.port} "
            f"refused: {code} {text}" + ("" if temporary else f"; check {check}"),
            code=code,
            temporary=temporary,
        )


async def _always_ours() -> bool:
    return True


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, SMTPResponseException):
        text = f"{exc.code} {exc.message}"
    return text
