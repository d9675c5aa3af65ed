"""Exporting a plan for the board and reading the export back: nothing changes."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot.app import PlanPulse
from bot.domain.model import Source
from storage.importer import import_plan
from storage.models import MilestoneRow
from storage.repositories import UpdateRepository
from tests.conftest import EXAMPLES, running_pulse

NOW = datetime(2018, 5, 30, 9, 0, tzinfo=UTC)
WIRRAL = EXAMPLES / "wirral"


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    async with running_pulse(db_url, tmp_path, lambda: NOW) as app:
        await import_plan(
            app.sessions,
            WIRRAL / "plan.csv",
            now=NOW,
            plan_key="wirral",
            people_path=WIRRAL / "people.csv",
            networks_path=WIRRAL / "networks.csv",
            ratings_as_of=date(2018, 4, 16),
        )
        async with app.sessions() as session, session.begin():
            milestone_id = await session.scalar(
                select(MilestoneRow.id).where(MilestoneRow.ref == "1.1-1")
            )
            assert milestone_id is not None
            await UpdateRepository(session).add(
                milestone_id=milestone_id,
                rating=2,
                note="Agreed, with one action left; “quotes”",
                revised_due=date(2018, 7, 31),
                needs_support=True,
                source=Source.EMAIL,
                given_at=NOW,
                recorded_at=NOW,
            )
        yield app


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_export_carries_latest_progress_and_reimports_without_change(
    pulse: PlanPulse, tmp_path: Path, fmt: str
) -> None:
    """The export has one row per milestone in the plan's own headings with the latest
    rating, note, date, revised date, support ask and status, and importing it back changes
    nothing at all."""
    before = await pulse.statuses("wirral", as_of=date(2018, 6, 1))
    path = await pulse.export(
        "wirral", fmt=fmt, as_of=date(2018, 6, 1), output=tmp_path / f"board.{fmt}"
    )
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            table = [dict(r) for r in csv.DictReader(handle)]
    else:
        sheet = load_workbook(path).active
        assert sheet is not None
        values = [
            [c if c is not None else "" for c in r] for r in sheet.iter_rows(values_only=True)
        ]
        table = [dict(zip(values[0], map(str, r), strict=True)) for r in values[1:]]
    assert len(table) == 77
    assert list(table[0])[:8] == [
        "Priority",
        "Ref",
        "Key actions",
        "Lead(s)",
        "Timescales",
        "Milestones",
        "Progress 1 - 4",
        "Network(s)",
    ]
    first = table[0]
    assert first["Progress 1 - 4"] == "2"
    assert first["Notes"] == "Agreed, with one action left; “quotes”"
    assert first["Last updated"] == "30/05/2018"
    assert first["Revised date"] == "31/07/2018"
    assert first["Needs support"] == "yes"
    assert table[1]["Revised date"] == table[1]["Needs support"] == ""
    assert first["Status"] == "overdue by 1 days"
    report = await import_plan(pulse.sessions, path, now=NOW, plan_key="wirral")
    assert not [w for w in report.warnings if "not recognised" in w.reason]
    assert report.actions_added == report.actions_changed == report.actions_retired == 0
    assert report.milestones_added == report.milestones_changed == 0
    assert report.milestones_retired == 0
    assert report.ratings_recorded == 0
    after = await pulse.statuses("wirral", as_of=date(2018, 6, 1))
    assert [line.status for line in after] == [line.status for line in before]
