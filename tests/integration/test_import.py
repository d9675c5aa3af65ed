"""Importing real plans into SQLite and PostgreSQL: all or nothing, re-import keeps history."""

from __future__ import annotations

import csv
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import PlanPulse
from bot.domain.errors import ImportFailed
from bot.settings import Settings
from storage.importer import import_plan
from storage.models import ActionRow, MilestoneRow, PersonRow, PlanRow, UpdateRow
from storage.repositories import PeopleRepository
from tests.conftest import EXAMPLES

NOW = datetime(2018, 4, 20, 9, 0, tzinfo=UTC)
WIRRAL = EXAMPLES / "wirral"
WEST_MIDLANDS = EXAMPLES / "west-midlands"


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    app = PlanPulse(
        Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=tmp_path), clock=lambda: NOW
    )
    await app.migrate()
    yield app
    await app.close()


async def _count(pulse: PlanPulse, model: type[object]) -> int:
    async with pulse.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _import_wirral(pulse: PlanPulse, plan: Path | None = None, **kw: object) -> object:
    return await import_plan(
        pulse.sessions,
        plan or WIRRAL / "plan.csv",
        now=NOW,
        plan_key="wirral",
        people_path=WIRRAL / "people.csv",
        networks_path=WIRRAL / "networks.csv",
        ratings_as_of=date(2018, 4, 16),
        **kw,  # type: ignore[arg-type]
    )


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _wirral_rows() -> list[dict[str, str]]:
    with (WIRRAL / "plan.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


async def test_wirral_sample_imports_with_every_milestone(pulse: PlanPulse) -> None:
    """The Wirral sample plan imports whole: 28 actions, 77 milestones, ratings as updates."""
    report = await _import_wirral(pulse)
    assert report.actions_added == 28  # type: ignore[attr-defined]
    assert await _count(pulse, MilestoneRow) == 77
    assert await _count(pulse, PersonRow) == 10
    tracked = await pulse.tracked("wirral")
    first = tracked.actions[0]
    assert first.ref == "1.1"
    assert first.leads == ("JB",)
    assert [m.ref for m in first.milestones] == ["1.1-1", "1.1-2", "1.1-3", "1.1-4"]
    assert first.milestones[0].timescale.due == date(2018, 5, 31)
    assert first.milestones[1].timescale.start == date(2018, 5, 31)
    assert first.milestones[1].timescale.due == date(2018, 9, 30)
    ratings = tracked.updates["1.1-1"]
    assert [(u.rating, u.source.value) for u in ratings] == [(3, "import")]
    # Dated --ratings-as-of, at noon London time.
    assert ratings[0].given_at == datetime(2018, 4, 16, 11, 0, tzinfo=UTC)


async def test_yaml_and_csv_forms_of_a_plan_agree(pulse: PlanPulse, tmp_path: Path) -> None:
    """The YAML and CSV forms of the Wirral plan give the same references and due dates."""
    await import_plan(
        pulse.sessions, WIRRAL / "plan.yaml", now=NOW, ratings_as_of=date(2018, 4, 16)
    )
    from_yaml = await pulse.tracked("wirral")
    assert from_yaml.plan.title.startswith("Wirral Children")
    assert {n.key for n in from_yaml.networks} == {"board", "ws1", "ws2", "ws3", "ws4", "ws5"}
    shutil.copy(WIRRAL / "plan.csv", tmp_path / "wirral.csv")
    await import_plan(
        pulse.sessions,
        tmp_path / "wirral.csv",
        now=NOW,
        plan_key="csvform",
        ratings_as_of=date(2018, 4, 16),
    )
    from_csv = await pulse.tracked("csvform")

    def shape(tracked: object) -> list[tuple[str, date | None, tuple[str, ...]]]:
        return [(m.ref, m.timescale.due, m.leads) for a in tracked.actions for m in a.milestones]  # type: ignore[attr-defined]

    assert shape(from_yaml) == shape(from_csv)


async def test_west_midlands_joint_leads_resolve(pulse: PlanPulse) -> None:
    """Joint lead cells like 'AW/MC', 'DC / PB' and 'GR / S Murray' become person keys."""
    await import_plan(
        pulse.sessions,
        WEST_MIDLANDS / "plan.csv",
        now=NOW,
        plan_key="wm",
        people_path=WEST_MIDLANDS / "people.csv",
        networks_path=WEST_MIDLANDS / "networks.csv",
    )
    tracked = await pulse.tracked("wm")
    leads = {a.leads for a in tracked.actions}
    assert ("AW", "MC") in leads
    assert ("DC", "PB") in leads
    assert ("GR", "SMu") in leads
    reppog = tracked.network("reppog")
    assert reppog.all_actions


async def test_bad_plan_reports_every_problem_and_writes_nothing(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """An impossible date, an unknown lead and a duplicate reference are all reported, by row,
    column and value, and the store is left exactly as it was."""
    await _import_wirral(pulse)
    before = [await _count(pulse, m) for m in (ActionRow, MilestoneRow, UpdateRow, PersonRow)]
    rows = _wirral_rows()
    rows[4]["Milestones"] = "- Scoping paper agreed 30/04/18\n- Changes implemented 31/09/18"
    rows[5]["Lead(s)"] = "Zed Unknown - Head of Nothing"
    rows[6]["Ref"] = rows[0]["Ref"]
    rows[7]["Progress 1 - 4"] = "Green"
    bad = _write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(ImportFailed) as caught:
        await _import_wirral(pulse, bad)
    problems = [p for p in caught.value.problems if p.severity == "error"]
    text = "\n".join(str(p) for p in problems)
    assert len(problems) == 4, text
    assert "row 6" in text
    assert "31/09/18" in text
    assert "September has 30 days" in text
    assert "row 7" in text
    assert "Zed Unknown" in text
    assert "row 8" in text
    assert "duplicate reference" in text
    assert "row 9" in text
    assert "'Green'" in text
    after = [await _count(pulse, m) for m in (ActionRow, MilestoneRow, UpdateRow, PersonRow)]
    assert after == before


async def test_failed_first_import_creates_no_plan(pulse: PlanPulse, tmp_path: Path) -> None:
    """A first import that fails leaves no plan, people or networks behind."""
    rows = _wirral_rows()
    rows[0]["Lead(s)"] = "Nobody We Know"
    with pytest.raises(ImportFailed):
        await _import_wirral(pulse, _write_csv(tmp_path / "bad.csv", rows))
    assert await _count(pulse, PlanRow) == 0
    assert await _count(pulse, PersonRow) == 0


async def test_reimport_updates_by_reference_and_keeps_history(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """Re-importing a revised plan changes dates and titles by reference, retires what was
    dropped, and keeps every earlier update, including those of retired milestones."""
    await _import_wirral(pulse)
    updates_before = await _count(pulse, UpdateRow)
    rows = _wirral_rows()
    dropped = rows.pop(1)  # action 1.2 and its rated milestones disappear from the file
    rows[0]["Milestones"] = rows[0]["Milestones"].replace(
        "Agree improvement programme next phase 31/05/18",
        "Agree improvement programme next phase 30/06/18",
    )
    rows[0]["Progress 1 - 4"] = "2"
    revised = _write_csv(tmp_path / "revised.csv", rows)
    report = await import_plan(
        pulse.sessions,
        revised,
        now=NOW,
        plan_key="wirral",
        people_path=WIRRAL / "people.csv",
        networks_path=WIRRAL / "networks.csv",
        ratings_as_of=date(2018, 5, 14),
    )
    assert report.actions_retired == 1
    assert report.milestones_changed >= 1
    tracked = await pulse.tracked("wirral")
    assert dropped["Ref"] not in {a.ref for a in tracked.actions}
    assert tracked.actions[0].milestones[0].timescale.due == date(2018, 6, 30)
    # Every old update is still there, and the new ratings were added after them.
    assert await _count(pulse, UpdateRow) == updates_before + report.ratings_recorded
    assert [u.rating for u in tracked.updates["1.1-1"]] == [3, 2]
    # Re-importing the very same file records nothing new.
    again = await import_plan(
        pulse.sessions,
        revised,
        now=NOW,
        plan_key="wirral",
        people_path=WIRRAL / "people.csv",
        networks_path=WIRRAL / "networks.csv",
        ratings_as_of=date(2018, 5, 21),
    )
    assert again.ratings_recorded == 0
    assert again.actions_changed == 0


async def test_dry_run_reports_and_writes_nothing(pulse: PlanPulse) -> None:
    """--dry-run counts what an import would do and leaves the store empty."""
    report = await _import_wirral(pulse, dry_run=True)
    assert report.dry_run
    assert report.actions_added == 28
    assert await _count(pulse, PlanRow) == 0
    assert await _count(pulse, MilestoneRow) == 0


async def test_xlsx_plan_imports_like_its_csv(pulse: PlanPulse, tmp_path: Path) -> None:
    """An XLSX sheet with the same table imports to the same milestones as the CSV."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    rows = _wirral_rows()
    sheet.append(list(rows[0]))
    for row in rows:
        sheet.append([int(v) if v.isdigit() else v for v in row.values()])
    book.save(tmp_path / "wirral.xlsx")
    await import_plan(
        pulse.sessions,
        tmp_path / "wirral.xlsx",
        now=NOW,
        plan_key="x",
        people_path=WIRRAL / "people.csv",
        networks_path=WIRRAL / "networks.csv",
    )
    await _import_wirral(pulse)
    xlsx = await pulse.tracked("x")
    csv_form = await pulse.tracked("wirral")
    assert [(m.ref, m.title, m.timescale.due) for a in xlsx.actions for m in a.milestones] == [
        (m.ref, m.title, m.timescale.due) for a in csv_form.actions for m in a.milestones
    ]


async def test_one_row_per_milestone_form_groups_rows_into_actions(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """Rows that repeat a reference, or leave the action blank, add milestones to one action."""
    path = _write_csv(
        tmp_path / "rows.csv",
        [
            {
                "Priority": "1 Early help",
                "Ref": "1.1",
                "Key actions": "Family hubs",
                "Lead(s)": "JB",
                "Timescales": "July 2019",
                "Milestones": "Blueprint agreed",
                "Progress 1 - 4": "3",
            },
            {
                "Priority": "",
                "Ref": "1.1",
                "Key actions": "Family hubs",
                "Lead(s)": "",
                "Timescales": "",
                "Milestones": "Hubs open 31/03/20",
                "Progress 1 - 4": "",
            },
            {
                "Priority": "",
                "Ref": "",
                "Key actions": "",
                "Lead(s)": "",
                "Timescales": "Quarterly",
                "Milestones": "",
                "Progress 1 - 4": "",
            },
            {
                "Priority": "2 Workforce",
                "Ref": "",
                "Key actions": "Recruitment",
                "Lead(s)": "KM",
                "Timescales": "Ongoing",
                "Milestones": "",
                "Progress 1 - 4": "",
            },
        ],
    )
    await import_plan(
        pulse.sessions, path, now=NOW, plan_key="rows", people_path=WIRRAL / "people.csv"
    )
    tracked = await pulse.tracked("rows")
    assert [(a.ref, a.priority, len(a.milestones)) for a in tracked.actions] == [
        ("1.1", 1, 3),
        ("2.1", 2, 1),
    ]
    hubs = tracked.actions[0].milestones
    assert [(m.ref, m.title) for m in hubs] == [
        ("1.1-1", "Blueprint agreed"),
        ("1.1-2", "Hubs open"),
        ("1.1-3", "Family hubs"),
    ]
    assert hubs[0].timescale.due == date(2019, 7, 31)
    assert hubs[2].timescale.recurrence is not None
    assert tracked.actions[1].milestones[0].ref == "2.1"


async def test_people_may_list_further_addresses_they_write_from(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """An "Other emails" column gives the addresses a person also writes from (lower case,
    any separator); one that is not an address is reported, and nothing is written."""
    people = (WIRRAL / "people.csv").read_text(encoding="utf-8").splitlines()
    people[0] += ",Other emails"
    people[1] += ',"Joe.Home@Example.net; joe@mobile.example"'

    async def load(name: str) -> None:
        path = tmp_path / name
        path.write_text("\n".join(people) + "\n", encoding="utf-8")
        await import_plan(
            pulse.sessions,
            WIRRAL / "plan.csv",
            now=NOW,
            plan_key="wirral",
            people_path=path,
            networks_path=WIRRAL / "networks.csv",
        )

    await load("people.csv")
    async with pulse.sessions() as session:
        joe = next(p for p in await PeopleRepository(session).all() if p.key == "JB")
    assert joe.other_emails == ("joe.home@example.net", "joe@mobile.example")

    people[2] += ",not an address"
    with pytest.raises(ImportFailed) as caught:
        await load("bad-people.csv")
    assert any("not an email address" in str(p) for p in caught.value.problems)
