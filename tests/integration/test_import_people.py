"""People files written the way plans write their leads: keys with spaces, no email yet."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import PlanPulse
from bot.domain.errors import ImportFailed
from handlers.files.importing import import_plan
from handlers.files.plan_files import read_people
from tests.conftest import running_pulse
from tests.e2e.test_cli import PULSE, environment

NOW = datetime(2026, 4, 20, 9, 0, tzinfo=UTC)
PEOPLE = (
    "Key,Name,Email\n"
    "S Murray,Sarah Murray,sarah@example.org\n"
    "Ben Sd,Ben Sandford,ben@example.org\n"
    "SP,Sam Patel,sam@example.org\n"
    "SLI Board,Sector-Led Improvement Board,sli@example.org\n"
    "CSMs,Children's service managers,\n"
    "NW Chief Executives\u2019 Network,,ce@example.org\n"
)
PLAN = (
    "Priority,Key actions,Who should be involved?,Timescales\n"
    '1 Offer,Formalise the offer,"SLI Board, working with the NW Chief Executives\' Network.",'
    "30/06/2026\n"
    "1 Offer,Share the offer,SP Ben Sd,31/07/2026\n"
    "1 Offer,Brief managers,csms / s murray,31/08/2026\n"
)


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    async with running_pulse(db_url, tmp_path, lambda: NOW) as app:
        yield app


def test_keys_may_be_short_text_and_match_whatever_their_spacing(tmp_path: Path) -> None:
    """`S Murray` and `SLI Board` are keys; `s  murray` again is a duplicate; `/` is refused."""
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE + "s  murray,Again,a@example.org\nAW/MC,Two,b@example.org\n")
    people, problems = read_people(path)
    assert [p.key for p in people.items][:4] == ["S Murray", "Ben Sd", "SP", "SLI Board"]
    errors = [str(p) for p in problems if p.severity == "error"]
    assert len(errors) == 2
    assert "duplicate person key (first on row 2)" in errors[0]
    assert "without '/', ',' or ';'" in errors[1]
    (warning,) = [p for p in problems if p.severity == "warning"]
    assert "CSMs has no email" in warning.reason


async def test_a_plan_naming_people_as_it_writes_them_imports(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """Leads such as `SP Ben Sd` and `SLI Board, working with …` resolve on both databases."""
    (tmp_path / "people.csv").write_text(PEOPLE, encoding="utf-8")
    (tmp_path / "plan.csv").write_text(PLAN, encoding="utf-8")
    report = await import_plan(
        pulse.sessions,
        tmp_path / "plan.csv",
        now=NOW,
        plan_key="nw",
        people_path=tmp_path / "people.csv",
    )
    assert any("CSMs has no email" in str(w) for w in report.warnings)
    tracked = await pulse.tracked("nw")
    assert [a.leads for a in tracked.actions] == [
        ("SLI Board", "NW Chief Executives\u2019 Network"),
        ("SP", "Ben Sd"),
        ("CSMs", "S Murray"),
    ]


async def test_a_lead_missing_from_the_people_file_is_still_an_error(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """A lead nobody in the people file is called stops the import and names the cell."""
    (tmp_path / "people.csv").write_text(PEOPLE, encoding="utf-8")
    (tmp_path / "plan.csv").write_text(PLAN.replace("SP Ben Sd", "SP Zed"), encoding="utf-8")
    with pytest.raises(ImportFailed) as failed:
        await import_plan(
            pulse.sessions,
            tmp_path / "plan.csv",
            now=NOW,
            plan_key="nw",
            people_path=tmp_path / "people.csv",
        )
    assert any("unknown lead 'SP Zed'" in p.reason for p in failed.value.problems)


async def test_people_draft_writes_the_plans_leads_ready_for_emails(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """`pulse people draft` lists every lead; with emails filled in, the plan imports."""
    (tmp_path / "plan.csv").write_text(PLAN, encoding="utf-8")
    with pytest.raises(ImportFailed) as failed:
        await import_plan(pulse.sessions, tmp_path / "plan.csv", now=NOW, plan_key="nw")
    assert any("pulse people draft" in p.reason for p in failed.value.problems)
    done = await asyncio.to_thread(
        subprocess.run,
        [str(PULSE), "people", "draft", "plan.csv"],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["key", "name", "email"]
    keys = [r[0] for r in rows[1:]]
    assert keys == ["SLI Board", "NW Chief Executives' Network", "SP Ben Sd", "csms", "s murray"]
    filled = [rows[0], *([k, n, f"p{i}@example.org"] for i, (k, n, _) in enumerate(rows[1:]))]
    with (tmp_path / "people.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(filled)
    report = await import_plan(
        pulse.sessions,
        tmp_path / "plan.csv",
        now=NOW,
        plan_key="nw",
        people_path=tmp_path / "people.csv",
    )
    assert report.actions_added == 3


def _pulse(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PULSE), *args],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_person_without_an_email_is_listed_as_unreachable_by_prompt(tmp_path: Path) -> None:
    """A lead imported without an email is named as unreachable when the cycle starts."""
    (tmp_path / "people.csv").write_text(PEOPLE, encoding="utf-8")
    (tmp_path / "plan.csv").write_text(PLAN, encoding="utf-8")
    imported = _pulse(tmp_path, "import", "plan.csv", "--plan", "nw", "--people", "people.csv")
    assert imported.returncode == 0, imported.stderr
    assert "CSMs has no email" in imported.stdout
    prompted = _pulse(tmp_path, "prompt", "--plan", "nw", "--now", "2026-06-15T09:00")
    assert prompted.returncode == 0, prompted.stderr
    assert "unreachable (no email address, or it bounces): CSMs" in prompted.stdout
