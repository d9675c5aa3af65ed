"""Pasted tables (tab-separated text from Word or Excel) and XLSX workbooks with cover sheets."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

from bot.app import PlanPulse
from handlers.files.importing import import_plan
from handlers.files.plan_files import read_plan
from tests.conftest import running_pulse
from tests.e2e.test_cli import PULSE, environment

NOW = datetime(2026, 4, 20, 9, 0, tzinfo=UTC)
PASTED = (
    "North West sector-led improvement action plan\n"
    "Priority\tWhat action is needed?\tLead(s)\tTimescales\tAction  update\n"
    "Priority 1\n"
    '\tFormalise the offer of support\tSM\t30/06/2026\t"Menu drafted\nshared at June meeting"\n'
    "\tShare the offer widely\tAW\t31/07/2026\t\n"
    "Priority 2 Effective use of data\n"
    "\tTailor the annual peer challenge\tSM\t30/09/2026\t\n"
)


def _people(path: Path) -> Path:
    path.write_text(
        "Key,Name,Email\nSM,Sam Murray,sam@example.org\nAW,Ann Walsh,ann@example.org\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    async with running_pulse(db_url, tmp_path, lambda: NOW) as app:
        yield app


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_a_pasted_table_reads_with_its_priority_rows(tmp_path: Path, encoding: str) -> None:
    """Tab-separated text in UTF-8 or Excel's UTF-16 reads its title, priority rows and cells."""
    path = tmp_path / "plan.txt"
    path.write_bytes(PASTED.replace("\n", "\r\n").encode(encoding))
    draft = read_plan(path, plan_key="p")
    assert not [p for p in draft.problems if p.severity == "error"]
    assert draft.priorities == {1: "", 2: "Effective use of data"}
    assert [(a.ref, a.title, a.priority) for a in draft.actions] == [
        ("1.1", "Formalise the offer of support", 1),
        ("1.2", "Share the offer widely", 1),
        ("2.1", "Tailor the annual peer challenge", 2),
    ]
    assert draft.actions[0].milestones[0].note == "Menu drafted\nshared at June meeting"
    assert draft.actions[2].milestones[0].timescale.due == date(2026, 9, 30)


async def test_a_pasted_table_imports(pulse: PlanPulse, tmp_path: Path) -> None:
    """A pasted plan imports on SQLite and PostgreSQL like any other."""
    path = tmp_path / "plan.txt"
    path.write_text(PASTED, encoding="utf-8")
    report = await import_plan(
        pulse.sessions, path, now=NOW, plan_key="nw", people_path=_people(tmp_path / "p.csv")
    )
    assert report.actions_added == 3


def test_a_table_pasted_on_standard_input_imports(tmp_path: Path) -> None:
    """`pulse import - --plan KEY` reads the pasted table from standard input."""
    people = _people(tmp_path / "people.csv")
    done = subprocess.run(
        [str(PULSE), "import", "-", "--plan", "nw", "--people", str(people)],
        input=PASTED.encode("utf-16"),
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert b"imported new plan nw: actions +3" in done.stdout


def _workbook(path: Path) -> Path:
    book = Workbook()
    cover = book.active
    assert cover is not None
    cover.title = "Cover"
    cover.append(["Improvement plan 2026"])
    cover.append(["Contents", "Plan on the next sheet"])
    plan = book.create_sheet("Action plan")
    plan.append(["Improvement plan 2026: actions"])
    plan.append([])
    plan.append(["Priority", "Key actions", "Lead(s)", "Timescales"])
    plan.append(["1 Safe at home", "Audit assessments", "SM", "31/05/2026"])
    plan.append(["1 Safe at home", "Train staff", "AW", "31/09/2026"])
    other = book.create_sheet("Old plan")
    other.append(["Priority", "Key actions", "Lead(s)", "Timescales"])
    other.append(["1 Old", "An old action", "SM", "31/05/2020"])
    book.save(path)
    return path


def test_xlsx_reads_the_first_sheet_with_a_plan_and_names_it(tmp_path: Path) -> None:
    """A cover sheet and title rows are passed over; rows are numbered as the sheet shows them."""
    draft = read_plan(_workbook(tmp_path / "plan.xlsx"), plan_key="p")
    assert [a.title for a in draft.actions] == ["Audit assessments", "Train staff"]
    assert any("read sheet 'Action plan'" in str(p) for p in draft.problems)
    (error,) = [p for p in draft.problems if p.severity == "error"]
    assert error.row == 5


def test_xlsx_sheet_option_picks_the_sheet(tmp_path: Path) -> None:
    """--sheet NAME reads that sheet; a name the workbook lacks is one error listing its sheets."""
    path = _workbook(tmp_path / "plan.xlsx")
    draft = read_plan(path, plan_key="p", sheet="old plan")
    assert [a.title for a in draft.actions] == ["An old action"]
    missing = read_plan(path, plan_key="p", sheet="Plan 2027")
    (error,) = [p for p in missing.problems if p.severity == "error"]
    assert "'Cover', 'Action plan', 'Old plan'" in error.reason
