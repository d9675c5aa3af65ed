"""Shared fixtures: real databases. SQLite in a temp folder, and a PostgreSQL server started
on loopback for the session (as the `postgres` user when run as root). In CI (`CI=true`) a
missing PostgreSQL is a failure, never a skip. And `fake_slack`, a fake Slack Web API on
loopback (tests/fake_slack.py), for any test that names it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.fake_slack import FakeSlack
from tests.postgres import (
    PostgresServer,
    create_database,
    find_pg_bin,
    running_postgres,
)

if TYPE_CHECKING:
    from bot.app import PlanPulse

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is not installed; CI must install it (.ci/run)")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on a free loopback port, fsync off."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        _missing("PostgreSQL (Debian package postgresql)")
        raise AssertionError  # unreachable: _missing fails or skips
    with running_postgres(bin_dir) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each kind; the schema is created by the code under test."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'pulse.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = await create_database(server)
    yield server.url(name)


PLANS = FIXTURES / "plans"


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A fresh fake Slack Web API on loopback (tests/fake_slack.py), stopped after the test."""
    fake = FakeSlack()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


class Clock:
    """A clock the test sets; never the wall's."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def running_pulse(
    db_url: str, data_dir: Path, clock: Callable[[], datetime]
) -> AsyncIterator[PlanPulse]:
    """The application on `db_url`, its schema migrated, its data in `data_dir`, telling the
    time by `clock`; closed afterwards."""
    from bot.app import PlanPulse
    from bot.settings import Settings

    app = PlanPulse(
        Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=data_dir),
        clock=clock,
    )
    try:
        await app.migrate()
        yield app
    finally:
        await app.close()


async def import_small_plan(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime, people_path: Path | None = None
) -> None:
    """The small fixture plan with its people and networks, rated as of 16 November 2026."""
    from handlers.files.importing import import_plan

    await import_plan(
        sessions,
        PLANS / "small-plan.csv",
        now=now,
        plan_key="small",
        people_path=people_path or PLANS / "small-people.csv",
        networks_path=PLANS / "small-networks.csv",
        ratings_as_of=date(2026, 11, 16),
    )
