"""Importing timescales read whole or not at all, and a CSV plan's `--settings` (issue 10.5),
on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import PlanPulse
from bot.domain.errors import ImportFailed
from bot.domain.model import Quarters, RiskPolicy
from handlers.files.importing import import_plan
from storage.importer import ImportReport
from storage.models import MilestoneRow, PlanRow
from tests.conftest import EXAMPLES, running_pulse

NOW = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
PEOPLE = EXAMPLES / "wirral" / "people.csv"
HEADER = ["Priority", "Ref", "Key actions", "Lead(s)", "Timescales", "Milestones"]
ROWS = [
    ["1 Practice", "1.1", "Quality assurance", "JB", "Q3 2027", ""],
    ["1 Practice", "1.2", "Placements", "JB", "Spring 2027", ""],
    ["1 Practice", "1.3", "Commissioning", "JB", "Q1 2027/28", ""],
    ["1 Practice", "1.4", "Budget", "JB", "Q1 2027", ""],
    ["1 Practice", "1.5", "Sufficiency", "JB", "mid 2027", ""],
    [
        "1 Practice",
        "1.6",
        "SEND",
        "JB",
        "",
        "- pre-placement and annual checklists developed 31/03/27\n"
        "- EHCP Annual Review Quality Assurance framework Q3 2027\n"
        "- Annual Review audit agreed",
    ],
]


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    async with running_pulse(db_url, tmp_path, lambda: NOW) as app:
        yield app


def _plan_csv(path: Path, rows: list[list[str]] = ROWS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


async def _import(pulse: PlanPulse, plan: Path, **kw: object) -> ImportReport:
    return await import_plan(
        pulse.sessions,
        plan,
        now=NOW,
        plan_key="send",
        people_path=PEOPLE,
        **kw,  # type: ignore[arg-type]
    )


async def _milestones(pulse: PlanPulse) -> dict[str, tuple[str, date | None, str | None]]:
    async with pulse.sessions() as session:
        rows = (await session.scalars(select(MilestoneRow))).all()
        return {m.ref: (m.title, m.due, m.recurrence) for m in rows}


async def test_quarters_and_seasons_are_read_whole_or_not_at_all(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """Quarters and seasons get their own due dates, a vague date none, and the report says
    how each was read: never 31 December of the year they name."""
    report = await _import(pulse, _plan_csv(tmp_path / "send.csv"))
    got = await _milestones(pulse)
    assert got["1.1"][1] == date(2027, 9, 30)
    assert got["1.2"][1] == date(2027, 5, 31)
    assert got["1.3"][1] == date(2027, 6, 30)
    assert got["1.4"][1] == date(2027, 3, 31)
    assert got["1.5"][1] is None
    warnings = [str(w) for w in report.warnings]
    assert any(
        "row 3, column 'Timescales': value 'Spring 2027'" in w and "31 May 2027" in w
        for w in warnings
    )
    assert any(
        "row 6, column 'Timescales': value 'mid 2027'" in w and "could not read 'mid 2027'" in w
        for w in warnings
    )
    quarters = [w for w in warnings if "quarters of a plain year" in w]
    assert len(quarters) == 1
    assert "calendar quarters" in quarters[0]


async def test_a_period_word_in_a_milestone_title_is_not_recurring(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """'annual' and 'Annual Review' in milestone titles leave the milestones one-off."""
    await _import(pulse, _plan_csv(tmp_path / "send.csv"))
    got = await _milestones(pulse)
    assert got["1.6-1"] == (
        "pre-placement and annual checklists developed",
        date(2027, 3, 31),
        None,
    )
    assert got["1.6-2"] == (
        "EHCP Annual Review Quality Assurance framework",
        date(2027, 9, 30),
        None,
    )
    assert got["1.6-3"] == ("Annual Review audit agreed", None, None)


async def test_settings_give_a_csv_plan_financial_quarters_kept_on_reimport(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """With `quarters: financial` from --settings, Q1 2027 ends 30 June 2027; the settings are
    stored and a re-import without --settings keeps them and their reading."""
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "plan:\n"
        "  quarters: financial\n"
        "  thresholds: {stale_after: 10}\n"
        "  labels: {1: Done, 4: Not begun}\n"
        "  cycles:\n"
        "    prompt: {weekday: tue, at: '10:00'}\n",
        encoding="utf-8",
    )
    plan = _plan_csv(tmp_path / "send.csv")
    report = await _import(pulse, plan, settings_path=settings)
    assert (await _milestones(pulse))["1.4"][1] == date(2027, 6, 30)
    assert any("financial-year quarters" in str(w) for w in report.warnings)

    again = await _import(pulse, plan)
    assert again.milestones_changed == 0
    assert (await _milestones(pulse))["1.4"][1] == date(2027, 6, 30)
    assert any("financial-year quarters" in str(w) for w in again.warnings)
    tracked = await pulse.tracked("send")
    assert tracked.plan.quarters is Quarters.FINANCIAL
    assert tracked.plan.policy == RiskPolicy(stale_after=10)
    async with pulse.sessions() as session:
        stored = await session.scalar(select(PlanRow.settings).where(PlanRow.key == "send"))
    assert stored is not None
    assert stored["labels"] == {"1": "Done", "4": "Not begun"}
    assert stored["cycles"] == {"prompt": {"weekday": "tue", "at": "10:00"}}


async def test_bad_settings_are_reported_by_file_and_change_nothing(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """A settings file with a bad value and an unknown setting fails naming both and its own
    file name, and writes nothing."""
    settings = tmp_path / "settings.yaml"
    settings.write_text("quarters: fiscal\nquater: financial\n", encoding="utf-8")
    with pytest.raises(ImportFailed) as failed:
        await _import(pulse, _plan_csv(tmp_path / "send.csv"), settings_path=settings)
    problems = [str(p) for p in failed.value.problems if p.severity == "error"]
    assert any(
        "settings.yaml: plan.quarters" in p and "calendar or financial" in p for p in problems
    )
    assert any("settings.yaml: plan.quater" in p and "unknown plan setting" in p for p in problems)
    async with pulse.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(PlanRow)) == 0
