"""Shared fixtures: real databases. SQLite in a temp folder, and a PostgreSQL server started
on loopback for the session (as the `postgres` user when run as root). In CI (`CI=true`) a
missing PostgreSQL is a failure, never a skip."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _find_pg_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if candidates:
        return candidates[0].parent
    found = shutil.which("initdb")
    if found and (Path(found).parent / "pg_isready").exists():
        return Path(found).parent
    return None


def _free_port() -> int:
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


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is not installed; CI must install it (.ci/run)")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on a free loopback port, fsync off."""
    bin_dir = _find_pg_bin()
    if bin_dir is None:
        _missing("PostgreSQL (Debian package postgresql)")
        raise AssertionError  # unreachable: _missing fails or skips
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
    port = _free_port()
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
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"PostgreSQL did not start: {err}") from None
            time.sleep(0.05)
    # Accepting TCP is not quite ready: wait until a real connection succeeds.
    ready = subprocess.run(
        [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-t", "20"],
        capture_output=True,
        check=False,
    )
    if ready.returncode != 0:
        raise RuntimeError("PostgreSQL never became ready")


async def _create_database(server: PostgresServer) -> str:
    import asyncpg

    name = f"pulse_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(
        host="127.0.0.1", port=server.port, user=server.user, database="postgres"
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each kind; the schema is created by the code under test."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'pulse.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = await _create_database(server)
    yield server.url(name)


PLANS = FIXTURES / "plans"


class Clock:
    """A clock the test sets; never the wall's."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def import_small_plan(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime, people_path: Path | None = None
) -> None:
    """The small fixture plan with its people and networks, rated as of 16 November 2026."""
    from storage.importer import import_plan

    await import_plan(
        sessions,
        PLANS / "small-plan.csv",
        now=now,
        plan_key="small",
        people_path=people_path or PLANS / "small-people.csv",
        networks_path=PLANS / "small-networks.csv",
        ratings_as_of=date(2026, 11, 16),
    )
