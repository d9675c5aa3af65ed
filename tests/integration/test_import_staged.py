"""A new plan is imported staged, in short transactions, and switched over at the end: no
one sees it half-written, and a failure or a crash leaves nothing behind (issue 11, item 9)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from bot.app import PlanPulse, cycles_for
from bot.domain.errors import ImportFailed, PlanNotFound
from bot.settings import Settings
from handlers.files.importing import import_plan
from storage.importer import ImportReport
from storage.models import (
    STAGED_PLAN_PREFIX,
    ActionLeadRow,
    ActionRow,
    MilestoneRow,
    PersonRow,
    PlanNetworkRow,
    PlanRow,
    UpdateRow,
)
from storage.repositories import PlanRepository
from storage.slack_people import SlackPeople
from tests.conftest import EXAMPLES

NOW = datetime(2018, 4, 20, 9, 0, tzinfo=UTC)
WIRRAL = EXAMPLES / "wirral"
PULSE = Path(sys.executable).with_name("pulse")


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    app = PlanPulse(
        Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=tmp_path),
        clock=lambda: NOW,
    )
    await app.migrate()
    yield app
    await app.close()


async def _import(pulse: PlanPulse, **kw: object) -> ImportReport:
    return await import_plan(
        pulse.sessions,
        WIRRAL / "plan.csv",
        now=kw.pop("now", NOW),  # type: ignore[arg-type]
        plan_key="wirral",
        people_path=WIRRAL / "people.csv",
        networks_path=WIRRAL / "networks.csv",
        ratings_as_of=date(2018, 4, 16),
        **kw,  # type: ignore[arg-type]
    )


async def _count(pulse: PlanPulse, model: type[object]) -> int:
    async with pulse.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _counts(pulse: PlanPulse) -> dict[str, int]:
    tables = (PlanRow, ActionRow, ActionLeadRow, MilestoneRow, UpdateRow, PlanNetworkRow)
    return {t.__tablename__: await _count(pulse, t) for t in tables}


def _pulse_plans(pulse: PlanPulse) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": pulse.settings.database_url,
        "PULSE_DATA_DIR": str(pulse.settings.data_dir),
    }
    done = subprocess.run(
        [str(PULSE), "plans"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


async def test_a_new_plan_is_seen_whole_or_not_at_all(pulse: PlanPulse) -> None:
    """Between the chunks of a new plan's import, `pulse plans`, status, cycle planning and
    Slack's views see no plan; afterwards the plan is there whole, as a one-go import
    leaves it."""
    seen: list[str] = []

    async def look(written: int) -> None:
        if seen:
            return
        async with pulse.sessions() as session:
            staged = await session.scalar(select(PlanRow.key))
            assert staged is not None
            assert staged.startswith(STAGED_PLAN_PREFIX)
            assert await session.scalar(select(func.count()).select_from(ActionRow)) == written
            assert await PlanRepository(session).summaries() == []
            assert await PlanRepository(session).keys(retired_too=True) == []
            assert await SlackPeople(session).plans() == []
        assert await cycles_for(pulse).plan_keys() == []
        with pytest.raises(PlanNotFound):
            await pulse.statuses("wirral")
        seen.append(await asyncio.to_thread(_pulse_plans, pulse))

    report = await _import(pulse, chunk_size=5, chunk_hook=look)

    assert seen
    assert "No plans yet" in seen[0]
    assert report.created_plan
    assert report.actions_added > 10
    async with pulse.sessions() as session:
        (summary,) = await PlanRepository(session).summaries()
    assert (summary.key, summary.retired_at) == ("wirral", None)
    assert (summary.actions, summary.milestones) == (
        report.actions_added,
        report.milestones_added,
    )
    staged = await _counts(pulse)

    # The same import in one chunk writes the very same rows.
    async with pulse.sessions() as session, session.begin():
        await session.execute(delete(UpdateRow))
        await session.execute(delete(PlanRow))
    whole = await _import(pulse, chunk_size=10_000)
    assert await _counts(pulse) == staged
    assert (whole.actions_added, whole.milestones_added, whole.ratings_recorded) == (
        report.actions_added,
        report.milestones_added,
        report.ratings_recorded,
    )
    assert whole.warnings == report.warnings
    assert "wirral" in _pulse_plans(pulse)


async def test_a_failure_in_a_late_chunk_leaves_no_plan_behind(pulse: PlanPulse) -> None:
    """An import that fails after its last chunk is written leaves no plan, action,
    milestone or rating behind, and the same import then goes through."""
    total = 0

    async def fail_at_the_end(written: int) -> None:
        nonlocal total
        total = written
        if written > 20:
            raise RuntimeError("the disk filled up")

    with pytest.raises(RuntimeError):
        await _import(pulse, chunk_size=5, chunk_hook=fail_at_the_end)

    assert total > 20
    assert await _counts(pulse) == {
        "plans": 0,
        "actions": 0,
        "action_leads": 0,
        "milestones": 0,
        "updates": 0,
        "plan_networks": 0,
    }
    assert await _count(pulse, PersonRow) > 0  # people are added first, and harmless alone
    report = await _import(pulse, chunk_size=5)
    assert report.created_plan
    assert report.ratings_recorded > 0
    assert await _count(pulse, UpdateRow) == report.ratings_recorded


_CRASH = """
import asyncio, os, signal, sys
from datetime import datetime
from pathlib import Path
from bot.app import PlanPulse
from bot.settings import Settings
from handlers.files.importing import import_plan

async def main() -> None:
    url, data, plan, people, networks, now = sys.argv[1:]
    app = PlanPulse(Settings(_env_file=None, DATABASE_URL=url, PULSE_DATA_DIR=data))
    async def crash(written: int) -> None:
        os.kill(os.getpid(), signal.SIGKILL)
    await import_plan(app.sessions, Path(plan), now=datetime.fromisoformat(now),
                      plan_key="wirral", people_path=Path(people),
                      networks_path=Path(networks), chunk_size=5, chunk_hook=crash)

asyncio.run(main())
"""


async def test_a_plan_left_staged_by_a_crash_is_purged_by_a_later_import(
    pulse: PlanPulse,
) -> None:
    """A staged plan left by an import killed mid-way is never listed, is kept while it may
    still be another import's work, and is deleted by the first import an hour later."""
    crashed = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            _CRASH,
            pulse.settings.database_url,
            str(pulse.settings.data_dir),
            str(WIRRAL / "plan.csv"),
            str(WIRRAL / "people.csv"),
            str(WIRRAL / "networks.csv"),
            NOW.isoformat(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == -9, crashed.stderr
    left = await _counts(pulse)
    assert left["plans"] == 1
    assert left["actions"] == 5
    async with pulse.sessions() as session:
        assert await PlanRepository(session).summaries() == []

    await _import(pulse, now=NOW + timedelta(minutes=30), dry_run=True)
    assert await _counts(pulse) == left  # a dry run writes nothing, purging included

    report = await _import(pulse, now=NOW + timedelta(hours=2))
    async with pulse.sessions() as session:
        keys = list((await session.scalars(select(PlanRow.key))).all())
    assert keys == ["wirral"]
    assert await _count(pulse, ActionRow) == report.actions_added
    assert await _count(pulse, UpdateRow) == report.ratings_recorded


async def test_the_switch_over_refuses_a_key_another_import_took_meanwhile(
    pulse: PlanPulse,
) -> None:
    """Two imports of one new plan at once: the one that finishes first makes the plan, the
    other is refused at its switch-over with a clear error and leaves nothing of its own."""
    other: list[ImportReport] = []

    async def race(written: int) -> None:
        if not other:
            other.append(await _import(pulse))

    with pytest.raises(ImportFailed) as refused:
        await _import(pulse, chunk_size=5, chunk_hook=race)

    assert "while this import ran" in refused.value.problems[0].reason
    async with pulse.sessions() as session:
        (summary,) = await PlanRepository(session).summaries()
        keys = list((await session.scalars(select(PlanRow.key))).all())
    assert keys == ["wirral"]
    assert summary.actions == other[0].actions_added
    assert await _count(pulse, ActionRow) == other[0].actions_added
    assert await _count(pulse, UpdateRow) == other[0].ratings_recorded


async def test_a_plan_key_marking_a_staged_plan_is_refused(pulse: PlanPulse) -> None:
    """A plan key that starts as a staged plan's does is an import error, and nothing is
    written."""
    with pytest.raises(ImportFailed) as refused:
        await import_plan(
            pulse.sessions, WIRRAL / "plan.csv", now=NOW, plan_key=f"{STAGED_PLAN_PREFIX}x"
        )
    assert any(STAGED_PLAN_PREFIX in p.reason for p in refused.value.problems)
    assert await _count(pulse, PlanRow) == 0
