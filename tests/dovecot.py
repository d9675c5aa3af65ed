"""A real IMAP server for tests: Dovecot started for the session on a free loopback port,
everything in a temp folder (TESTING.md, "IMAP"), with one user, alice / secret, who may
also log in by OAuth2 XOAUTH2 with a bearer token the test hands out (`tokens`): a small
introspection endpoint on loopback answers Dovecot's oauth2 passdb.

Register the fixtures by importing them into a conftest.py. In CI (`CI=true`) a missing
Dovecot is a failure, never a skip. `mailbox` empties alice's INBOX before each test.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

NOBODY = 65534  # dovecot will not run mail processes as root
# A second user whose password needs quoting in LOGIN (a quote, a backslash, a space).
CAROL = ("carol", 'p"w\\d x')
_FETCH_HEAD = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)")


@dataclass(frozen=True, slots=True)
class StoredMessage:
    uid: int
    flags: frozenset[str]
    raw: bytes

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags


@dataclass
class Dovecot:
    """The running server, and helpers that act on alice's mailbox as another client
    would (stdlib imaplib, blocking: call them through `asyncio.to_thread` while the code
    under test is waiting on the same loop)."""

    host: str
    port: int
    user: str
    password: str
    root: Path
    conf: Path
    # bearer token -> user name, for XOAUTH2 logins; tests add and remove their own
    tokens: dict[str, str] = field(default_factory=dict)
    introspections: list[str] = field(default_factory=list)  # tokens Dovecot asked about

    @contextlib.contextmanager
    def session(self, folder: str = "INBOX") -> Iterator[imaplib.IMAP4]:
        with imaplib.IMAP4(self.host, self.port, timeout=10) as imap:
            imap.login(self.user, self.password)
            imap.select(folder)
            yield imap

    def deliver(self, raw: bytes, *, seen: bool = False, folder: str = "INBOX") -> None:
        """Put a message into the folder (APPEND), unseen unless `seen`."""
        with imaplib.IMAP4(self.host, self.port, timeout=10) as imap:
            imap.login(self.user, self.password)
            status, data = imap.append(folder, "(\\Seen)" if seen else None, None, raw)
            assert status == "OK", data

    async def adeliver(self, raw: bytes, *, seen: bool = False) -> None:
        await asyncio.to_thread(self.deliver, raw, seen=seen)

    def kick(self, user: str = "alice") -> None:
        """Drop every connection of `user`, as a restarting server or a network would."""
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        subprocess.run(
            [doveadm, "-c", str(self.conf), "kick", user], check=True, capture_output=True
        )

    def messages(self, folder: str = "INBOX") -> list[StoredMessage]:
        """Every message in the folder with its flags, read without marking it seen."""
        with self.session(folder) as imap:
            status, data = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            assert status == "OK", data
        found = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, raw = item
            match = _FETCH_HEAD.search(head)
            assert match, head
            flags = frozenset(match.group(2).decode().split())
            found.append(StoredMessage(int(match.group(1)), flags, raw))
        return sorted(found, key=lambda m: m.uid)

    def empty(self, folder: str = "INBOX") -> None:
        """Delete every message of the folder."""
        with self.session(folder) as imap:
            status, data = imap.uid("SEARCH", "ALL")
            if status == "OK" and data and data[0]:
                imap.uid("STORE", "1:*", "+FLAGS.SILENT", "(\\Deleted)")
                imap.expunge()


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is not installed; CI must install it (scripts/setup)")
    pytest.skip(f"{what} is not installed")


def _find_dovecot() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if Path(p).exists()), None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _introspection_server(server: Dovecot) -> ThreadingHTTPServer:
    """OAuth2 token introspection (RFC 7662) as Dovecot's oauth2 passdb asks for it:
    POST `token=...`, answer whether it is active and whose it is."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            token = form.get("token", [""])[0]
            server.introspections.append(token)
            user = server.tokens.get(token)
            answer = {"active": True, "username": user} if user else {"active": False}
            body = json.dumps(answer).encode()
            self.send_response(200 if user else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def _config(root: Path, port: int) -> str:
    return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
auth_failure_delay = 0
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
  mechanisms = plain login
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2
  args = {root}/oauth2.conf
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# No growing delay after failed logins from 127.0.0.1: tests fail logins on purpose.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def _wait_ready(proc: subprocess.Popen[bytes], port: int, root: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            logs = [root / "stderr.log", root / "dovecot.log"]
            text = "".join(p.read_text(errors="replace") for p in logs if p.exists())
            raise RuntimeError(f"Dovecot did not start:\n{text}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """Dovecot on a free loopback port for the session: alice / secret, or XOAUTH2."""
    binary = _find_dovecot()
    if binary is None:
        _missing("Dovecot (Debian package dovecot-imapd)")
        raise AssertionError  # unreachable: _missing fails or skips
    if os.geteuid() != 0:
        pytest.skip("this Dovecot setup runs as root (mail processes as nobody)")
    # pytest's tmp_path is 0700; Dovecot's processes run as other users and must get in.
    root = Path(tempfile.mkdtemp(prefix="pulse-dovecot-"))
    root.chmod(0o755)
    lines = []
    for user, password in (("alice", "secret"), CAROL):
        home = root / user
        home.mkdir()
        os.chown(home, NOBODY, NOBODY)
        lines.append(f"{user}:{{PLAIN}}{password}:{NOBODY}:{NOBODY}::{home}\n")
    users = root / "users"
    users.write_text("".join(lines))
    users.chmod(0o644)
    port = _free_port()
    conf = root / "dovecot.conf"
    server = Dovecot(
        host="127.0.0.1", port=port, user="alice", password="secret", root=root, conf=conf
    )
    introspection = _introspection_server(server)
    http_thread = threading.Thread(target=introspection.serve_forever, daemon=True)
    http_thread.start()
    oauth2 = root / "oauth2.conf"
    oauth2.write_text(
        "introspection_mode = post\n"
        f"introspection_url = http://127.0.0.1:{introspection.server_address[1]}/introspect\n"
        "username_attribute = username\n"
        "active_attribute = active\n"
        "active_value = true\n"
    )
    oauth2.chmod(0o644)
    conf.write_text(_config(root, port))
    conf.chmod(0o644)
    with open(root / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen(
            [binary, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        _wait_ready(proc, port, root)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        introspection.shutdown()
        introspection.server_close()
        http_thread.join(timeout=5)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Iterator[Dovecot]:
    """The session's Dovecot with alice's INBOX emptied and no OAuth2 tokens issued."""
    dovecot.empty()
    dovecot.tokens.clear()
    dovecot.introspections.clear()
    yield dovecot
    dovecot.tokens.clear()
