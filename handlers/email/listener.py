"""The inbound SMTP listener, for sites that route the bot's mail to it (DESIGN.md §9): an
aiosmtpd server on the running loop that hands every message to the one inbound path
(`bot.services.inbound.Inbound.take_in`, which stores the raw bytes and commits).

The sender is told `250` only after `take_in` returned, so a message the sender believes
delivered is always in the database (RELIABILITY.md, "answers are exactly once"):

    take_in committed                 250 OK; a resend is a duplicate and stored once
    take_in raised (database down)    451, temporary: the sending MTA keeps it and retries
    connection lost during take_in    the store still finishes (shielded); no 250 was sent,
                                      so the sender resends and dedupe makes it a no-op
    over SMTP_LISTEN_MAX_BYTES        552 (aiosmtpd's own check, also on MAIL FROM SIZE=,
                                      the size advertised in EHLO's SIZE): never held whole,
                                      and kept for review as a row naming sender and size
    recipient outside our domain      550 at RCPT: this is not an open relay

There is no TLS or AUTH here: run it on loopback or a private network behind the site's
own MTA, which does the internet-facing work.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from bot.messages.emails import mail_domain
from bot.messages.inbound_mail import without_text

if TYPE_CHECKING:
    from bot.services.inbound import Inbound
    from bot.settings import Settings

log = logging.getLogger(__name__)

TakeIn = Callable[[bytes], Awaitable[bool]]
# A message refused as too large: the envelope sender, and its size (None when only "over
# the limit" is known), kept for review (`Inbound.take_in_too_large`).
Refused = Callable[[str, int | None], Awaitable[object]]
_SIZE_PARAMETER = re.compile(r"\bSIZE=(\d+)", re.IGNORECASE)
_ADDRESS = re.compile(r"<([^<>]*)>")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


@dataclass(slots=True)
class ListenerStats:
    """What the listener answered since it started."""

    stored: int = 0
    duplicates: int = 0
    failed: int = 0  # take_in raised; the sender was told to retry
    too_large: int = 0  # refused with 552, over the size limit
    relay_refused: int = 0


class InboundHandler:
    """The aiosmtpd handler: recipients in our own domains only, and `250` only once the
    message is committed."""

    def __init__(
        self, take_in: TakeIn, *, domains: Iterable[str], too_large: Refused | None = None
    ) -> None:
        self.take_in = take_in
        self.too_large = too_large
        self.domains = frozenset(d.lower().strip() for d in domains if d.strip())
        self.stats = ListenerStats()
        self._in_flight: set[asyncio.Task[bool]] = set()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        domain = address.rpartition("@")[2].strip().lower()
        if "@" not in address or domain not in self.domains:
            self.stats.relay_refused += 1
            log.info("smtp listener: refused relay to domain %r from %s", domain, session.peer)
            return "550 5.7.1 Relaying denied: not a local recipient"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if raw is None:
            content = envelope.content
            raw = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else b""
        started = time.perf_counter()
        # Shielded: a client that hangs up mid-commit must not cancel the commit halfway;
        # it got no 250, so it resends, and the stored copy makes the resend a duplicate.
        task = asyncio.ensure_future(self.take_in(raw))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        try:
            new = await asyncio.shield(task)
        except Exception as exc:  # a storage failure: nothing half-told, the sender retries
            self.stats.failed += 1
            # Where it failed, not the error's text: that could quote the message.
            log.error(
                "smtp listener: could not store a %d-byte message from %s; answered 451: %s",
                len(raw),
                session.peer,
                without_text(exc),
            )
            return "451 4.3.0 Temporary failure storing the message; please retry"
        if new:
            self.stats.stored += 1
        else:
            self.stats.duplicates += 1
        log.info(
            "smtp listener: %d bytes from %s %s in %.0f ms",
            len(raw),
            session.peer,
            "stored" if new else "already stored (duplicate)",
            (time.perf_counter() - started) * 1000,
        )
        return "250 2.0.0 OK: message stored"

    async def refused(self, sender: str, size: int | None, peer: object) -> None:
        """A message refused as too large (552) is kept for review: sender and size only."""
        self.stats.too_large += 1
        log.info(
            "smtp listener: refused a message from %s of %s bytes (too large), from %s",
            sender or "<>",
            size if size is not None else "too many",
            peer,
        )
        if self.too_large is None:
            return
        try:
            await self.too_large(sender, size)
        except Exception as exc:  # the 552 stands; only the note for the admin is lost
            log.error("smtp listener: could not keep a note of it: %s", without_text(exc))

    async def settle(self) -> None:
        """Wait for every store already under way (also those whose client hung up)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)


class _Connection(SMTP):
    """One client connection; the listener tracks them to close them on `stop`."""

    def __init__(self, handler: InboundHandler, *, open_: set[_Connection], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._open = open_
        open_.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._open.discard(self)
        super().connection_lost(error)

    async def smtp_MAIL(self, arg: str | None) -> None:
        self._mail_arg = arg
        try:
            await super().smtp_MAIL(arg)
        finally:
            self._mail_arg = None

    async def push(self, status: Any) -> None:
        # aiosmtpd refuses an oversized message itself (552, at MAIL FROM for a declared
        # SIZE, after DATA otherwise, having kept none of it): note each refusal first.
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else str(status)
        if text.startswith("552") and isinstance(self.event_handler, InboundHandler):
            sender, size = self._refused()
            await self.event_handler.refused(sender, size, self.session and self.session.peer)
        await super().push(status)

    def _refused(self) -> tuple[str, int | None]:
        """The sender and size of the message being refused: from the MAIL command when its
        SIZE was too large, else from the envelope (the size then only "too large")."""
        arg = getattr(self, "_mail_arg", None)
        if arg:
            address = _ADDRESS.search(arg)
            sizes = _SIZE_PARAMETER.findall(arg)  # the last one counts, as aiosmtpd reads it
            return address.group(1) if address else "", int(sizes[-1]) if sizes else None
        envelope = self.envelope
        return (envelope.mail_from or "") if envelope is not None else "", None


class SmtpListener:
    """An SMTP server on the current event loop that takes mail in through `take_in`."""

    def __init__(
        self,
        take_in: TakeIn,
        *,
        domains: Iterable[str],
        hostname: str,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = 300.0,
        too_large: Refused | None = None,
    ) -> None:
        self.handler = InboundHandler(take_in, domains=domains, too_large=too_large)
        self.hostname = hostname
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    @classmethod
    def from_settings(cls, settings: Settings, inbound: Inbound) -> SmtpListener:
        """Mail for MAIL_FROM's domain, capped at SMTP_LISTEN_MAX_BYTES, into `inbound`."""
        domain = mail_domain(settings.mail_from)

        async def take_in(raw: bytes) -> bool:
            return await inbound.take_in(raw, source="smtp")

        async def too_large(sender: str, size: int | None) -> bool:
            return await inbound.take_in_too_large(
                b"",
                size=size,
                source="smtp",
                sender=sender,
                refused=True,
                limit=settings.smtp_listen_max_bytes,
            )

        return cls(
            take_in,
            domains=[domain],
            hostname=domain,
            max_bytes=settings.smtp_listen_max_bytes,
            too_large=too_large,
        )

    @property
    def stats(self) -> ListenerStats:
        return self.handler.stats

    @property
    def port(self) -> int:
        """The bound port (useful after starting on port 0)."""
        if self.server is None or not self.server.sockets:
            raise RuntimeError("the SMTP listener is not running")
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    def _connection(self) -> _Connection:
        return _Connection(
            self.handler,
            open_=self._connections,
            hostname=self.hostname,
            data_size_limit=self.max_bytes,
            timeout=self.timeout,
            loop=asyncio.get_running_loop(),
        )

    async def start(self, host: str, port: int) -> asyncio.Server:
        """Listen on `host`:`port` (0 picks a free port) on the running loop."""
        if self.server is not None:
            raise RuntimeError("the SMTP listener is already running")
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._connection, host, port)
        log.info("smtp listener: on %s:%d for %s", host, self.port, ", ".join(self.handler.domains))
        return self.server

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop accepting, let stores under way finish (up to `grace` seconds), then close
        every connection; a client cut off before its 250 resends later."""
        server, self.server = self.server, None
        if server is None:
            return
        server.close()
        try:
            await asyncio.wait_for(self.handler.settle(), grace)
        except TimeoutError:
            log.warning("smtp listener: stores still under way after %.0f s; closing", grace)
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.close()
        await server.wait_closed()
        log.info(
            "smtp listener: stopped (%d stored, %d duplicates, %d failed, %d too large, "
            "%d relays refused)",
            self.stats.stored,
            self.stats.duplicates,
            self.stats.failed,
            self.stats.too_large,
            self.stats.relay_refused,
        )
