"""Inbound mail by IMAP: sweep a folder for unseen messages, hand each raw message to the
one inbound path (`bot.services.inbound.Inbound.take_in`, which stores it and commits), and only
then mark it `\\Seen` (RELIABILITY.md, "answers are exactly once"; scenario 50):

    crash or error ...                          next sweep
    before take_in committed                    fetches the message again (still unseen)
    after the commit, before \\Seen              fetches it again; take_in says "duplicate"
                                                and it is marked \\Seen then

Messages are read with `BODY.PEEK[]`, which leaves them unseen; they are marked one by
one, each after its own commit, by UID (sequence numbers move when others expunge).

aioimaplib's `idle_start()` can hang when the server drops the connection, so every IMAP
call here runs under `timeout`; after a timeout or a lost connection the connection is
dropped and the next call opens a new one. IDLE is only a wake-up hint: `run` sweeps every
`every` seconds whatever IDLE says, and whatever goes wrong in IDLE just ends the wait.

Login is a password (`LOGIN`) or OAuth2 (`AUTHENTICATE XOAUTH2`, which Microsoft 365
requires, with client-credentials tokens from a provider such as
`handlers.email.xoauth2.Ms365TokenProvider`). A refused token is fetched again (after
`invalidate()`, when the provider has it) and the login retried once on a new connection
(scenario 58). Only implicit TLS (port 993) or plain text is offered: aioimaplib has no
STARTTLS, and plain text is for loopback and tests.

Errors, all `PulseError`s with a message an admin can act on:

    ImapError               base
    ├── ImapLoginRefused    the server refused our credentials, or no token could be had
    ├── ImapUnavailable     cannot connect, timed out, connection lost, unreadable answer
    └── ImapCommandRefused  the server said NO or BAD (e.g. IMAP_FOLDER does not exist)

Nothing here logs a password, a token, the XOAUTH2 string or a message body; a sweep
logs one summary line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import aioimaplib

from bot.domain.errors import ConfigError, PulseError
from handlers.email.xoauth2 import TokenProvider, forget_token, xoauth2_string

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

TakeIn = Callable[[bytes], Awaitable[bool]]
# A message too large to fetch whole: its header section and size (RFC822.SIZE), kept for
# review (`Inbound.take_in_too_large`); True when it was new.
TooLarge = Callable[[bytes, int], Awaitable[bool]]
T = TypeVar("T")

_LOGOUT_TIMEOUT: Final = 5.0
# The line before a message's literal in a FETCH answer: `* 7 FETCH (UID 12 BODY[] {2048}`.
_BODY_LITERAL = re.compile(rb"BODY\[\] \{\d+\}$")
_HEADER_LITERAL = re.compile(rb"BODY\[HEADER\](?:<\d+>)? \{\d+\}$")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
# UIDs per `UID FETCH ... (RFC822.SIZE)`: keeps the command line short.
_SIZE_CHUNK: Final = 200
# How much of an oversized message's header section is fetched.
HEAD_BYTES: Final = 64 * 1024
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
# A mailbox name that needs no quoting (RFC 3501 atom characters, plus `/` and `.`).
_ATOM = re.compile(r"[A-Za-z0-9_./+-]+")
_LIVE_STATES: Final = frozenset({aioimaplib.NONAUTH, aioimaplib.AUTH, aioimaplib.SELECTED})


class ImapError(PulseError):
    """Base of the IMAP receiver's errors."""


class ImapLoginRefused(ImapError):
    """The server refused the login (wrong password, revoked token, missing permission),
    or no OAuth2 token could be had."""


class ImapUnavailable(ImapError):
    """The server could not be reached, did not answer in time, dropped the connection or
    answered something we cannot read. Trying again later may work."""


class ImapCommandRefused(ImapError):
    """The server answered NO or BAD to a command."""


class _Client(aioimaplib.IMAP4):  # type: ignore[misc]
    """aioimaplib's client, but connecting is ours: its own `create_client` starts the
    connection in a task of its own (in 1.x one whose failure is never retrieved), which
    leaves a transport behind when a timeout gives up on it. Here the connection is made
    under our timeout, and nothing is left when it is cancelled.

    `lost` is set when the connection closes. aioimaplib leaves a command in flight
    waiting for ever then (the `idle_start()` hang): every call here also waits on `lost`."""

    lost: asyncio.Event

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Callable[[Exception | None], None] | None = None,
        ssl_context: ssl_module.SSLContext | None = None,
    ) -> None:
        self.lost = asyncio.Event()
        self.protocol = aioimaplib.IMAP4ClientProtocol(
            loop or asyncio.get_running_loop(), self._connection_lost
        )

    def _connection_lost(self, _exc: Exception | None) -> None:
        self.lost.set()


class _AuthCommand(aioimaplib.Command):  # type: ignore[misc]
    """`LOGIN` or `AUTHENTICATE` with an initial response (SASL-IR). A server refusing an
    XOAUTH2 token first sends a continuation carrying its error and waits for an empty
    line before its tagged NO (RFC 7628 §3.2.3); aioimaplib's own `xoauth2` never sends
    that line and so waits out its timeout, where this answers at once."""

    def __init__(self, name: str, tag: str, *args: str, send: Callable[[bytes], None]) -> None:
        super().__init__(name, tag, *args)
        self._send = send
        self._challenged = False

    def append_to_resp(self, line: bytes, result: str = "Pending") -> None:
        super().append_to_resp(line, result)
        if result == "Pending" and bytes(line).startswith(b"+"):
            self._challenged = True

    def flush(self) -> None:
        if self._challenged:
            self._challenged = False
            self._send(b"\r\n")


def _mailbox(name: str) -> str:
    return name if _ATOM.fullmatch(name) else aioimaplib.quoted(name)


def _text(response: Any) -> str:
    """The server's words on a tagged answer, short and printable (never a message body:
    only ever called on answers to commands that carry none)."""
    lines = [line for line in response.lines if isinstance(line, bytes)]
    last = lines[-1] if lines else b""
    return last.decode("utf-8", errors="replace")[:200]


def _uids(response: Any) -> list[int]:
    """UIDs from a `UID SEARCH` answer. aioimaplib gives the untagged line with or without
    its `SEARCH` keyword depending on version; the last line is the tagged answer's text."""
    found: set[int] = set()
    for line in response.lines[:-1]:
        for word in bytes(line).split():
            if word.isdigit():
                found.add(int(word))
    return sorted(found)


def _uidnext(response: Any) -> int | None:
    """The UID the next message will get, from a SELECT answer (`* OK [UIDNEXT 8]`)."""
    for line in response.lines:
        match = _UIDNEXT.search(bytes(line))
        if match:
            return int(match.group(1))
    return None


def _sizes(response: Any) -> dict[int, int]:
    """Each message's size by UID, from a `UID FETCH set (RFC822.SIZE)` answer
    (`* 3 FETCH (UID 7 RFC822.SIZE 2048)`, the items in either order)."""
    found: dict[int, int] = {}
    for line in response.lines[:-1]:
        if not isinstance(line, bytes | bytearray):
            continue
        uid, size = _FETCH_UID.search(line), _FETCH_SIZE.search(line)
        if uid and size:
            found[int(uid.group(1))] = int(size.group(1))
    return found


def _uid_set(uids: list[int]) -> str:
    """A UID set, runs written as ranges: `3:7,9`."""
    runs: list[list[int]] = []
    for uid in sorted(uids):
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in runs)


def _body(response: Any, literal: re.Pattern[bytes] = _BODY_LITERAL) -> bytes | None:
    """The message's bytes from a `UID FETCH n BODY.PEEK[]` answer (or its header's, with
    `_HEADER_LITERAL`), or None when the message is gone (expunged by someone else since
    the search)."""
    lines = response.lines
    for index, line in enumerate(lines[:-1]):
        if isinstance(line, bytes) and literal.search(line):
            literal = lines[index + 1]
            if isinstance(literal, bytes | bytearray):
                return bytes(literal)
    return None


class ImapReceiver:
    """Takes in a mailbox folder's unseen messages through `take_in`, exactly once.

    One connection is kept and reused; `sweep` and `wait_for_mail` never run at once on
    it (a lock), so call `sweep` freely from a `pulse run --once` while nothing idles."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        password: str | None = None,
        token_provider: TokenProvider | None = None,
        folder: str = "INBOX",
        ssl: bool | None = None,
        timeout: float = 30.0,
        take_in: TakeIn,
        max_bytes: int | None = None,
        too_large: TooLarge | None = None,
    ) -> None:
        if password is None and token_provider is None:
            raise ConfigError(
                "IMAP needs a password (IMAP_PASSWORD) or OAuth2 (MS365_TENANT_ID, "
                "MS365_CLIENT_ID, MS365_CLIENT_SECRET)"
            )
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.token_provider = token_provider
        self.folder = folder
        self.ssl = port == 993 if ssl is None else ssl
        self.timeout = timeout
        self.take_in = take_in
        # Messages over max_bytes (by RFC822.SIZE, asked before fetching) are never fetched
        # whole: their header section goes to `too_large`, or they stay unseen without it.
        self.max_bytes = max_bytes
        self.too_large = too_large
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._idling = False
        self._swept_uidnext: int | None = None  # UIDNEXT when the last sweep looked

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        take_in: TakeIn,
        token_provider: TokenProvider | None = None,
        too_large: TooLarge | None = None,
    ) -> ImapReceiver:
        """The receiver `IMAP_*` describes, fetching nothing over MAX_INBOUND_BYTES whole;
        OAuth2 when a token provider is given."""
        if not settings.imap_host or not settings.imap_username:
            raise ConfigError("IMAP_HOST and IMAP_USERNAME must both be set to read mail by IMAP")
        password = settings.imap_password.get_secret_value() if settings.imap_password else None
        return cls(
            host=settings.imap_host,
            port=settings.imap_port,
            username=settings.imap_username,
            password=None if token_provider is not None else password,
            token_provider=token_provider,
            folder=settings.imap_folder,
            take_in=take_in,
            max_bytes=settings.max_inbound_bytes,
            too_large=too_large,
        )

    @property
    def idling(self) -> bool:
        """True while the server has accepted our IDLE and we wait for its news."""
        return self._idling

    @property
    def _where(self) -> str:
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"

    async def check(self) -> str:
        """Log in and open the folder, for `pulse check`; raises an `ImapError` if not."""
        async with self._lock:
            await self._selected()
        await self.close()
        return f"IMAP: logged in and opened {self._where}"

    # -- sweeping ------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Take in every unseen message of the folder; the number that were new.

        A message whose `take_in` raised stays unseen, to be fetched again next sweep.
        Raises an `ImapError` when the server cannot be used; the connection is then
        dropped, and the next sweep starts a new one."""
        started = time.monotonic()
        new = duplicates = failed = 0
        outcome = "ok"
        async with self._lock:
            try:
                client, self._swept_uidnext = await self._selected()
                uids = _uids(
                    self._ok(
                        await self._call(
                            client.protocol.search("UNSEEN", by_uid=True, charset=None),
                            "UID SEARCH",
                            client,
                        ),
                        "UID SEARCH",
                    )
                )
                sizes = await self._sizes(client, uids) if self.max_bytes is not None else {}
                for uid in uids:
                    size = sizes.get(uid, 0)
                    oversized = self.max_bytes is not None and size > self.max_bytes
                    if oversized and self.too_large is None:
                        failed += 1
                        log.warning(
                            "imap %s: UID %d is %d bytes, over the limit; left unseen",
                            self._where,
                            uid,
                            size,
                        )
                        continue
                    raw = await self._fetch(client, uid, header_only=oversized)
                    if raw is None:
                        continue
                    try:
                        if oversized:
                            assert self.too_large is not None
                            fresh = await self.too_large(raw, size)
                        else:
                            fresh = await self.take_in(raw)
                    except Exception as exc:
                        # Its traceback could quote the message (SQL parameters): the type
                        # only at INFO and above.
                        failed += 1
                        log.warning(
                            "imap %s: UID %d not taken in (%s); it stays unseen",
                            self._where,
                            uid,
                            type(exc).__name__,
                        )
                        log.debug("imap take_in failure", exc_info=True)
                        continue
                    if fresh:
                        new += 1
                    else:
                        duplicates += 1
                    await self._mark_seen(client, uid)
            except ImapError as exc:
                outcome = f"failed: {exc}"
                await self._drop()
                raise
            except BaseException as exc:  # cancelled, or a bug: the connection is in doubt
                outcome = f"failed: {type(exc).__name__}"
                self._abandon()
                raise
            finally:
                log.info(
                    "imap sweep %s: %d new, %d already stored, %d left unseen, %.2fs, %s",
                    self._where,
                    new,
                    duplicates,
                    failed,
                    time.monotonic() - started,
                    outcome,
                )
        return new

    async def _selected(self) -> tuple[Any, int | None]:
        """A logged-in connection with the folder SELECTed (again: that also shows the
        mail that came since), and the folder's UIDNEXT. A kept connection the server has
        dropped meanwhile is replaced once."""
        client, kept = await self._connection()
        try:
            response = await self._call(client.select(_mailbox(self.folder)), "SELECT", client)
        except ImapUnavailable as exc:
            if not kept:
                raise
            log.info("imap %s: kept connection is gone (%s); reconnecting", self._where, exc)
            await self._drop()
            client, _ = await self._connection()
            response = await self._call(client.select(_mailbox(self.folder)), "SELECT", client)
        return client, _uidnext(self._ok(response, "SELECT"))

    async def _sizes(self, client: Any, uids: list[int]) -> dict[int, int]:
        """Each message's size (RFC822.SIZE) by UID, asked before any is fetched."""
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), _SIZE_CHUNK):
            chunk = _uid_set(uids[start : start + _SIZE_CHUNK])
            response = self._ok(
                await self._call(client.uid("fetch", chunk, "(RFC822.SIZE)"), "UID FETCH", client),
                "UID FETCH",
            )
            sizes.update(_sizes(response))
        return sizes

    async def _fetch(self, client: Any, uid: int, *, header_only: bool = False) -> bytes | None:
        """The message's bytes, left unseen; with `header_only`, only the start of its
        header section (a message too large to fetch whole)."""
        item = f"BODY.PEEK[HEADER]<0.{HEAD_BYTES}>" if header_only else "BODY.PEEK[]"
        response = self._ok(
            await self._call(client.uid("fetch", str(uid), item), "UID FETCH", client),
            "UID FETCH",
        )
        raw = _body(response, _HEADER_LITERAL if header_only else _BODY_LITERAL)
        if raw is None:
            log.info("imap %s: UID %d vanished before it was fetched", self._where, uid)
        return raw

    async def _mark_seen(self, client: Any, uid: int) -> None:
        response = await self._call(
            client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Seen)"), "UID STORE", client
        )
        if response.result != "OK":
            # Stored and committed already: the next sweep fetches it again, take_in says
            # "duplicate", and it is marked then.
            log.warning(
                "imap %s: UID %d stored but not marked \\Seen: %s %s",
                self._where,
                uid,
                response.result,
                _text(response),
            )

    # -- waiting -------------------------------------------------------------------------

    async def wait_for_mail(self, max_wait: float) -> None:
        """Wait in IDLE until the server tells of new mail, or `max_wait` seconds. Only a
        hint: returns early, and quietly, on any trouble, and at once when the server has
        no IDLE."""
        await self._idle(max_wait, None)

    async def _idle(self, max_wait: float, stop: asyncio.Event | None) -> bool:
        """True when the server told of new mail in time; False on timeout, on `stop`, or
        on any trouble (logged; the connection is dropped when it is in doubt)."""
        if max_wait <= 0:
            return False
        async with self._lock:
            try:
                client, uidnext = await self._selected()
                if not client.has_capability("IDLE"):
                    return False
                if self._swept_uidnext is not None and (uidnext or 0) > self._swept_uidnext:
                    return True  # mail came between the last sweep and now: IDLE won't tell
                queue = client.protocol.idle_queue
                while not queue.empty():  # pushes left from an earlier IDLE
                    queue.get_nowait()
                idle = await self._call(client.idle_start(timeout=max_wait), "IDLE", client)
                self._idling = True
                try:
                    woke = await self._news(client, max_wait, stop)
                finally:
                    self._idling = False
                    if client.has_pending_idle():
                        client.idle_done()  # sends DONE; nothing to await
                self._ok(await self._call(idle, "IDLE", client), "IDLE")
                return woke
            except ImapError as exc:
                log.info("imap %s: IDLE ended early: %s", self._where, exc)
                await self._drop()
                return False
            except Exception as exc:
                log.warning("imap %s: IDLE failed: %s", self._where, type(exc).__name__)
                self._abandon()
                return False
            except BaseException:
                self._abandon()
                raise

    async def _news(self, client: Any, max_wait: float, stop: asyncio.Event | None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while (remaining := deadline - loop.time()) > 0:
            push = asyncio.ensure_future(client.wait_server_push(timeout=remaining))
            lost = asyncio.ensure_future(client.lost.wait())
            waits: set[asyncio.Future[Any]] = {push, lost}
            if stop is not None:
                waits.add(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
            if stop is not None and stop.is_set():
                return False
            if client.lost.is_set():
                raise ImapUnavailable(f"connection to {self.host}:{self.port} lost in IDLE")
            if not push.done() or push.cancelled() or push.exception() is not None:
                return False  # max_wait went by
            lines = push.result()
            if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                return False
            # `* 4 EXISTS` is new mail; `* OK Still here` and flag changes are not.
            if any(b"EXISTS" in bytes(line) or b"RECENT" in bytes(line) for line in lines):
                return True
        return False

    # -- running -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, every: float = 60) -> None:
        """Sweep, then wait for mail (IDLE) or `every` seconds, until `stop` is set.
        Never dies of an error: it is logged and the next round tries again."""
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                swept = False
                try:
                    await self.sweep()
                    swept = True
                except ImapError:
                    pass  # the sweep logged it
                except Exception:
                    log.exception("imap %s: sweep failed; retrying next round", self._where)
                if stop.is_set():
                    break
                until = loop.time() + every
                # After a failed sweep, only wait: a refused login is not retried at once.
                if swept and await self._idle(every, stop):
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, until - loop.time()))
        finally:
            await self.close()

    async def close(self) -> None:
        """Log out (best effort) and close the connection."""
        await self._drop()

    # -- the connection ------------------------------------------------------------------

    async def _call(self, step: Awaitable[T], what: str, client: Any = None) -> T:
        """One IMAP step under the timeout, given up at once when `client`'s connection
        is lost; its failures become `ImapUnavailable`."""
        task = asyncio.ensure_future(step)
        waits: set[asyncio.Future[Any]] = {task}
        if client is not None:
            waits.add(asyncio.ensure_future(client.lost.wait()))
        try:
            await asyncio.wait(waits, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            if not task.done():
                # Let it unwind before going on (as wait_for does): a connection being
                # made then closes its socket instead of leaving it to nobody.
                await asyncio.wait({task}, timeout=self.timeout)
        if not task.done() or task.cancelled():
            if client is not None and client.lost.is_set():
                raise ImapUnavailable(f"{what}: connection to {self.host}:{self.port} lost")
            raise ImapUnavailable(
                f"{what} to {self.host}:{self.port} got no answer in {self.timeout:g}s"
            )
        try:
            return task.result()
        except (TimeoutError, OSError, aioimaplib.AioImapException) as exc:
            raise ImapUnavailable(
                f"{what} to {self.host}:{self.port} failed: {type(exc).__name__}: {exc}"[:300]
            ) from None

    def _ok(self, response: Any, what: str) -> Any:
        if response.result != "OK":
            raise ImapCommandRefused(
                f"{what} refused by {self.host}:{self.port} for {self._where}: "
                f"{response.result} {_text(response)}"
            )
        return response

    def _usable(self, client: Any) -> bool:
        transport = client.protocol.transport
        return (
            not client.lost.is_set()
            and transport is not None
            and not transport.is_closing()
            and client.protocol.state in (aioimaplib.AUTH, aioimaplib.SELECTED)
        )

    async def _connection(self) -> tuple[Any, bool]:
        """A logged-in connection, and whether it is one kept from before."""
        if self._client is not None and self._usable(self._client):
            return self._client, True
        await self._drop()
        refused = None
        for attempt in (1, 2):
            client = await self._connect()
            try:
                response = await self._login(client, fresh_token=attempt == 2)
                if response.result == "OK":
                    # The answer to a login may list more capabilities (IDLE) than the
                    # greeting did.
                    await self._call(client.protocol.capability(), "CAPABILITY", client)
                    self._client = client
                    log.debug("imap %s: logged in", self._where)
                    return client, False
            except BaseException:
                self._discard(client)
                raise
            refused = _text(response)
            await self._logout(client)
            if self.token_provider is None:
                break
            log.info("imap %s: XOAUTH2 token refused; fetching a new one", self._where)
        how = (
            "the Microsoft 365 app registration and the mailbox's permissions"
            if self.token_provider
            else "IMAP_USERNAME and IMAP_PASSWORD"
        )
        raise ImapLoginRefused(
            f"IMAP login to {self.host}:{self.port} as {self.username} refused "
            f"({refused}); check {how}"
        )

    async def _connect(self) -> Any:
        context = ssl_module.create_default_context() if self.ssl else None
        client = _Client(self.host, self.port, timeout=self.timeout)
        loop = asyncio.get_running_loop()
        try:
            await self._call(
                loop.create_connection(lambda: client.protocol, self.host, self.port, ssl=context),
                "connecting",
            )
            await self._call(client.protocol.wait("AUTH|NONAUTH"), "greeting", client)
        except BaseException:
            self._discard(client)
            raise
        return client

    async def _login(self, client: Any, *, fresh_token: bool) -> Any:
        protocol = client.protocol
        if self.token_provider is not None:
            token = await self._token(fresh=fresh_token)
            secret = xoauth2_string(self.username, token)
            command = _AuthCommand(
                "AUTHENTICATE",
                protocol.new_tag(),
                "XOAUTH2",
                secret,
                send=protocol.transport.write,
            )
            what = "AUTHENTICATE XOAUTH2"
        else:
            assert self._password is not None
            secret = aioimaplib.quoted(self._password)
            command = _AuthCommand(
                "LOGIN",
                protocol.new_tag(),
                aioimaplib.quoted(self.username),
                secret,
                send=protocol.transport.write,
            )
            what = "LOGIN"

        async def authenticate() -> Any:
            # What aioimaplib's own login does, with the secret as sent scrubbed from its
            # debug log (its `login` scrubs the unquoted password, its `xoauth2` the token
            # but not the base64 string that carries it).
            async with protocol.state_condition:
                response = await protocol.execute(command, scrub=secret)
                if response.result == "OK":
                    protocol.state = aioimaplib.AUTH
                protocol.state_condition.notify_all()
                return response

        return await self._call(authenticate(), what, client)

    async def _token(self, *, fresh: bool) -> str:
        provider = self.token_provider
        assert provider is not None
        if fresh:
            forget_token(provider)
        try:
            return await asyncio.wait_for(provider(), self.timeout)
        except TimeoutError:
            raise ImapLoginRefused(f"no OAuth2 token for IMAP within {self.timeout:g}s") from None
        except PulseError as exc:
            raise ImapLoginRefused(f"no OAuth2 token for IMAP: {exc}") from exc
        except Exception as exc:
            raise ImapLoginRefused(f"no OAuth2 token for IMAP: {type(exc).__name__}") from None

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._logout(client)

    async def _logout(self, client: Any) -> None:
        """LOGOUT when the connection looks alive, then close it whatever happened."""
        try:
            transport = client.protocol.transport
            if (
                not client.lost.is_set()
                and transport is not None
                and not transport.is_closing()
                and client.protocol.state in _LIVE_STATES
            ):
                if client.has_pending_idle():
                    client.idle_done()
                await asyncio.wait_for(client.logout(), min(self.timeout, _LOGOUT_TIMEOUT))
        except (TimeoutError, OSError, aioimaplib.AioImapException) as exc:
            log.debug("imap %s: logout failed: %s", self._where, type(exc).__name__)
        finally:
            self._discard(client)

    def _abandon(self) -> None:
        """Close the connection now, without a word to the server (cancelled, or a bug)."""
        client, self._client = self._client, None
        if client is not None:
            self._discard(client)

    @staticmethod
    def _discard(client: Any) -> None:
        transport = client.protocol.transport
        if transport is not None:
            transport.close()
        for task in [*client.tasks, *client.protocol.tasks]:
            if task.done():
                if not task.cancelled():
                    task.exception()  # retrieved, so asyncio does not complain of it
            else:
                task.cancel()
