"""The benchmarks' store and plans of any size: N people, each leading one action with three dated
milestones, rated so that every milestone is open (nobody's work is already achieved)."""

from __future__ import annotations

import csv
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path

from bot.app import PlanPulse
from bot.settings import Settings
from storage.bulk import tune_collector

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.postgres import (  # the tests' throwaway server
    PostgresServer,
    create_database_beside,
    drop_database,
    find_pg_bin,
    running_postgres,
)


async def bench_pulse(url: str, data_dir: Path, now: datetime) -> PlanPulse:
    """The application on `url`, migrated, its clock stopped at `now`, the collector tuned as
    `pulse` tunes it at start-up; the caller closes it."""
    tune_collector()
    pulse = PlanPulse(
        Settings(_env_file=None, DATABASE_URL=url, PULSE_DATA_DIR=data_dir),
        clock=lambda: now,
    )
    await pulse.migrate()
    return pulse


@contextmanager
def throwaway_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own for a bench's `--postgres` run, stopped and deleted on
    leaving (tests/postgres.py)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed (Debian package postgresql)")
    with running_postgres(bin_dir) as server:
        yield server


@asynccontextmanager
async def fresh_database(server_url: str | None, sqlite_file: Path) -> AsyncIterator[str]:
    """An empty database for one run; yields its URL. Given a PostgreSQL URL, a new database
    on that server (the URL may name any of its databases), dropped on leaving; given none, a
    new SQLite file at `sqlite_file`."""
    if server_url is None:
        yield f"sqlite+aiosqlite:///{sqlite_file}"
        return
    if not server_url.startswith("postgresql"):
        raise SystemExit("--database-url must be a PostgreSQL URL (SQLite runs make their own)")
    url = await create_database_beside(server_url)
    try:
        yield url
    finally:
        await drop_database(url)


def write_plan(
    folder: Path, people: int, *, rating: str | None = None, slack_ids: bool = False
) -> tuple[Path, Path]:
    """A plan CSV and its people CSV in `folder`; returns their paths. Every row is rated
    `rating` (by default 2, 3 or 4 in turn); `slack_ids` gives each person a Slack id."""
    plan, directory = folder / "plan.csv", folder / "people.csv"
    with plan.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["Priority", "Ref", "Key actions", "Lead(s)", "Milestones", "Progress 1 - 4"])
        for i in range(people):
            milestones = "\n".join(
                f"- Milestone {n} of action {i} {day}/0{n + 1}/27"
                for n, day in ((1, 10 + i % 18), (2, 11 + i % 17), (3, 12 + i % 16))
            )
            out.writerow(
                [
                    f"{1 + i % 5} - Priority",
                    f"{1 + i % 5}.{i + 1}",
                    f"Action {i}",
                    f"P{i}",
                    milestones,
                    rating or str(2 + i % 3),
                ]
            )
    with directory.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["key", "name", "email", "slack"])
        for i in range(people):
            slack = f"UP{i:06d}" if slack_ids else ""
            out.writerow([f"P{i}", f"Person {i}", f"person{i}@council.example", slack])
    return plan, directory
