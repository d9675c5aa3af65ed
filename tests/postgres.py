"""A throwaway PostgreSQL cluster on a free loopback port (fsync off), for the tests'
`postgres_server` fixture and for `bench/` runs with `--postgres`. Found in
/usr/lib/postgresql/*/bin (Debian's package) or on PATH; run as `postgres` when we are root."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url


def find_pg_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if candidates:
        return candidates[0].parent
    found = shutil.which("initdb")
    if found and (Path(found).parent / "pg_isready").exists():
        return Path(found).parent
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"


@contextmanager
def running_postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    """A fresh cluster from `bin_dir`'s initdb, stopped and deleted on leaving."""
    root = Path(tempfile.mkdtemp(prefix="pulse-pg-"))
    data = root / "data"
    as_root = os.geteuid() == 0
    user = "postgres" if as_root else None
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        user=user,
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(root),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        user=user,
    )
    try:
        _wait_ready(proc, bin_dir, port)
        yield PostgresServer(port=port, user="postgres")
    finally:
        proc.send_signal(2)  # SIGINT: fast shutdown
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], bin_dir: Path, port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"PostgreSQL did not start: {err}") from None
            time.sleep(0.05)
    # Accepting TCP is not quite ready: wait until a real connection succeeds. pg_isready
    # answers 1 at once while the server is still starting up (it rejects connections), so
    # ask again until it says 0, within the same deadline.
    while True:
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-t", "10"],
            capture_output=True,
            check=False,
        )
        if ready.returncode == 0:
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("PostgreSQL never became ready")
        time.sleep(0.1)


async def create_database(server: PostgresServer) -> str:
    """A new empty database on `server`; its name."""
    return await _new_database(server.url("postgres"))


async def create_database_beside(url: str) -> str:
    """A new empty database on the server of `url` (a PostgreSQL URL whose user may create
    databases); the URL of the new one, `url` with its database name replaced."""
    name = await _new_database(url)
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _new_database(url: str) -> str:
    name = f"pulse_{uuid.uuid4().hex[:12]}"
    conn = await _connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(url: str) -> None:
    """Drop the database `url` names, from its server's `postgres` database."""
    name = make_url(url).database
    conn = await _connect(url, database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _connect(url: str, database: str | None = None) -> asyncpg.Connection:
    parts = make_url(url)
    return await asyncpg.connect(
        host=parts.host,
        port=parts.port,
        user=parts.username,
        password=parts.password,
        database=database or parts.database,
    )
