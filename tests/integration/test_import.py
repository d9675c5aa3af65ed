"""Importing real plans into SQLite and PostgreSQL: all or nothing, re-import keeps history."""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zipfile import ZipFile

import pytest
from sqlalchemy import func, select

from bot.app import PlanPulse, cycles_for, digest_poster
from bot.domain.drafts import PlanDraft
from bot.domain.errors import ImportFailed, PlanKeyNeeded, PlanRetired
from bot.domain.model import Person, Source
from bot.settings import Settings
from handlers.files.importing import import_plan
from handlers.files.plan_files import MAX_FILE_BYTES, MAX_ROWS, read_plan
from storage.importer import ImportReport
from storage.models import ActionRow, MilestoneRow, PersonRow, PlanRow, PromptRow, UpdateRow
from storage.repositories import (
    PeopleRepository,
    PlanRepository,
    TrackedPlan,
    UpdateRepository,
)
from tests.conftest import EXAMPLES, running_pulse

NOW = datetime(2018, 4, 20, 9, 0, tzinfo=UTC)
WIRRAL = EXAMPLES / "wirral"
WEST_MIDLANDS = EXAMPLES / "west-midlands"


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    async with running_pulse(db_url, tmp_path, lambda: NOW) as app:
        yield app


async def _count(pulse: PlanPulse, model: type[object]) -> int:
    async with pulse.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _import_wirral(pulse: PlanPulse, plan: Path | None = None, **kw: Any) -> ImportReport:
    return await import_plan(
        pulse.sessions,
        plan or WIRRAL / "plan.csv",
        now=NOW,
        plan_key="wirral",
        people_path=WIRRAL / "people.csv",
        networks_path=WIRRAL / "networks.csv",
        ratings_as_of=date(2018, 4, 16),
        **kw,
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
    assert report.actions_added == 28
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

    def shape(tracked: TrackedPlan) -> list[tuple[str, date | None, tuple[str, ...]]]:
        return [(m.ref, m.timescale.due, m.leads) for a in tracked.actions for m in a.milestones]

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


def _people_columns(*columns: str, slack: bool = False) -> list[dict[str, str]]:
    """The Wirral people file with only `columns`, each Slack id filled in when `slack`."""
    with (WIRRAL / "people.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if slack:
        for row in rows:
            row["slack"] = f"U{row['key']}"
    return [{c: row[c] for c in columns} for row in rows]


async def _people(pulse: PlanPulse) -> dict[str, Person]:
    async with pulse.sessions() as session:
        return {p.key: p for p in await PeopleRepository(session).all()}


async def test_people_file_without_an_email_column_is_refused_naming_it(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """A people file with no `email` column is an error naming that file, not the plan, and
    every stored address stays as it was."""
    await _import_wirral(pulse)
    before = await _people(pulse)
    people = _write_csv(tmp_path / "no-email.csv", _people_columns("key", "name", "prefers"))
    with pytest.raises(ImportFailed) as caught:
        await import_plan(
            pulse.sessions, WIRRAL / "plan.csv", now=NOW, plan_key="wirral", people_path=people
        )
    assert str(caught.value).startswith(f"{people}: 1 problem(s)")
    assert "plan.csv" not in str(caught.value)
    [problem] = [p for p in caught.value.problems if p.severity == "error"]
    assert "no 'email' column" in str(problem)
    assert "no-email.csv" in str(problem)
    assert await _people(pulse) == before


async def test_people_file_without_optional_columns_keeps_what_is_stored(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """A people file with only `key` and `email` changes the addresses it gives and leaves
    names, Slack ids, channels and timezones as they were stored."""
    full = _people_columns("key", "name", "email", "slack", "prefers", "timezone", slack=True)
    await _import_wirral(pulse)
    await import_plan(
        pulse.sessions,
        WIRRAL / "plan.csv",
        now=NOW,
        plan_key="wirral",
        people_path=_write_csv(tmp_path / "full.csv", full),
    )
    before = await _people(pulse)
    short = _people_columns("key", "email")
    short[0]["email"] = "joe.b@wirral.example"
    report = await import_plan(
        pulse.sessions,
        WIRRAL / "plan.csv",
        now=NOW,
        plan_key="wirral",
        people_path=_write_csv(tmp_path / "short.csv", short),
    )
    assert (report.people_added, report.people_changed) == (0, 1)
    after = await _people(pulse)
    joe = after.pop("JB")
    assert joe == replace(before.pop("JB"), email="joe.b@wirral.example")
    assert after == before
    assert after["KM"].slack_user_id == "UKM"
    assert after["KM"].prefers.value == "slack"


async def test_networks_file_without_optional_columns_keeps_what_is_stored(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """A networks file with no coordinators or channel column leaves both as stored, and one
    with no `key` column is an error naming that file."""
    await _import_wirral(pulse)
    with (WIRRAL / "networks.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    renamed = [{"key": r["key"], "name": r["name"] + " (new)"} for r in rows]
    await import_plan(
        pulse.sessions,
        WIRRAL / "plan.csv",
        now=NOW,
        plan_key="wirral",
        networks_path=_write_csv(tmp_path / "names.csv", renamed),
    )
    board = (await pulse.tracked("wirral")).network("board")
    assert board.name == "Wirral Improvement Board (new)"
    assert board.coordinators == (
        "improvement.board@wirral.example",
        "board.secretary@wirral.example",
    )
    assert board.slack_channel == "#improvement-board"
    assert board.all_actions
    keyless = _write_csv(tmp_path / "keyless.csv", [{"name": r["name"]} for r in rows])
    with pytest.raises(ImportFailed) as caught:
        await import_plan(
            pulse.sessions, WIRRAL / "plan.csv", now=NOW, plan_key="wirral", networks_path=keyless
        )
    assert str(caught.value).startswith(f"{keyless}: 1 problem(s)")
    assert "no 'key' column" in "\n".join(map(str, caught.value.problems))


def _errors(draft: PlanDraft) -> list[str]:
    return [str(p) for p in draft.problems if p.severity == "error"]


def _shape(draft: PlanDraft) -> list[tuple[str, str, str]]:
    return [(a.ref, a.title, m.title) for a in draft.actions for m in a.milestones]


def _wirral_xlsx(path: Path, formula: str, cached: str | None) -> Path:
    """The Wirral plan as a workbook whose first Progress cell (G2) is `formula`, saved with
    `cached` as its value the way Excel saves one, or with none as other tools do."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    rows = _wirral_rows()
    sheet.append(list(rows[0]))
    for row in rows:
        sheet.append(list(row.values()))
    sheet["G2"] = formula
    book.save(path)
    if cached is not None:
        with ZipFile(path) as archive:
            parts = {name: archive.read(name) for name in archive.namelist()}
        xml = parts["xl/worksheets/sheet1.xml"].decode()
        # openpyxl writes the empty value as <v /> or, when lxml is installed, <v></v>.
        saved = re.sub(
            rf"<f>{re.escape(formula[1:])}</f><v ?/>|<f>{re.escape(formula[1:])}</f><v></v>",
            f"<f>{formula[1:]}</f><v>{cached}</v>",
            xml,
        )
        assert saved != xml
        parts["xl/worksheets/sheet1.xml"] = saved.encode()
        with ZipFile(path, "w") as archive:
            for name, data in parts.items():
                archive.writestr(name, data)
    return path


def test_xlsx_formula_without_a_saved_value_is_an_error_naming_the_cell(tmp_path: Path) -> None:
    """A formula cell with no saved value is an import error naming its cell; one that Excel
    saved a value for is read as that value."""
    bare = read_plan(_wirral_xlsx(tmp_path / "bare.xlsx", "=1+1", None), plan_key="w")
    [error] = _errors(bare)
    assert error.startswith("error: row 2, column 'Progress 1 - 4': value '=1+1':")
    assert "cell G2 holds a formula with no saved value" in error
    saved = read_plan(_wirral_xlsx(tmp_path / "saved.xlsx", "=1+1", "2"), plan_key="w")
    assert _errors(saved) == []
    assert saved.actions[0].milestones[0].rating == 2


def test_xlsx_header_made_by_formulas_is_found_by_their_saved_values(tmp_path: Path) -> None:
    """A plan sheet whose header cells are formulas that Excel saved values for is still
    found behind a cover sheet and read by those headings."""
    from openpyxl import Workbook

    path = tmp_path / "plan.xlsx"
    book = Workbook()
    cover = book.active
    assert cover is not None
    cover.title = "Cover"
    cover.append(["National improvement plan"])
    sheet = book.create_sheet("Plan")
    sheet.append(["Plan as agreed"])
    sheet.append(["Ref", "=UPPER(Z1)", "Lead(s)", "=LOWER(Z2)"])
    sheet.append(["1.1", "Train staff", "AW", "31/10/26"])
    book.save(path)
    with ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    xml = parts["xl/worksheets/sheet2.xml"].decode()
    for formula, heading in (("UPPER(Z1)", "Key actions"), ("LOWER(Z2)", "Timescales")):
        xml, found = re.subn(
            rf"<f>{re.escape(formula)}</f>(?:<v ?/>|<v></v>)",
            f"<f>{formula}</f><v>{heading}</v>",
            xml,
        )
        assert found == 1
    parts["xl/worksheets/sheet2.xml"] = re.sub(r'(<c r="[BD]2")', r'\1 t="str"', xml).encode()
    with ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    draft = read_plan(path, plan_key="p")
    assert _errors(draft) == []
    assert [(a.ref, a.title, str(a.milestones[0].timescale.due)) for a in draft.actions] == [
        ("1.1", "Train staff", "2026-10-31")
    ]
    assert "read sheet 'Plan'" in [p.reason for p in draft.problems]


def test_csv_cells_escaped_by_an_export_read_back_unescaped(tmp_path: Path) -> None:
    """A quote that an export put before `= + - @` is taken off again, and only that one."""
    path = tmp_path / "plan.csv"
    path.write_text(
        "Ref,Key actions,Lead(s),Timescales,Notes\n"
        "1.1,'=HYPERLINK(\"x\"),AW,31/10/26,'-2+3\n"
        "1.2,'Quoted' title,AW,31/10/26,''@twice\n",
        encoding="utf-8",
    )
    draft = read_plan(path, plan_key="p")
    assert [(a.title, a.milestones[0].note) for a in draft.actions] == [
        ('=HYPERLINK("x")', "-2+3"),
        ("'Quoted' title", "'@twice"),
    ]


def test_utf8_file_with_one_stray_byte_reports_its_row(tmp_path: Path) -> None:
    """One Windows-1252 byte in a UTF-8 file is an error naming its row and column, instead
    of the whole file being read as Windows-1252."""
    raw = (WIRRAL / "plan.csv").read_bytes()
    path = tmp_path / "stray.csv"
    path.write_bytes(raw.replace(b"Child's journey practice", b"Child\x92s journey practice"))
    draft = read_plan(path, plan_key="w")
    [error] = _errors(draft)
    assert error.startswith("error: row 2, column 'Key actions': value 'Child\ufffds journey")
    assert "bytes that are not UTF-8" in error
    assert draft.encoding == "UTF-8"
    assert not any("â€" in m for _, _, m in _shape(draft))


@pytest.mark.parametrize(
    ("codec", "name"), [("cp1252", "Windows-1252"), ("utf-16", "UTF-16"), ("utf-8-sig", "UTF-8")]
)
def test_csv_in_windows_1252_or_utf16_reads_like_utf8(
    tmp_path: Path, codec: str, name: str
) -> None:
    """A whole file in Windows-1252, or in UTF-16 with a byte-order mark, reads as the UTF-8
    file does, and the draft says which encoding was used."""
    text = (WIRRAL / "plan.csv").read_text(encoding="utf-8").replace("'", "’")
    utf8 = tmp_path / "utf8.csv"
    utf8.write_text(text, encoding="utf-8")
    other = tmp_path / f"{codec}.csv"
    other.write_bytes(text.encode(codec))
    draft = read_plan(other, plan_key="w")
    assert _errors(draft) == []
    assert draft.encoding == name
    assert _shape(draft) == _shape(read_plan(utf8, plan_key="w"))
    assert "Child’s journey" in draft.actions[0].title
    warned = [str(p) for p in draft.problems if "not UTF-8" in p.reason]
    assert bool(warned) == (codec == "cp1252")


async def test_import_report_says_which_encoding_was_read(pulse: PlanPulse, tmp_path: Path) -> None:
    """The import report names the encoding a CSV plan was read in."""
    path = tmp_path / "plan.csv"
    path.write_bytes((WIRRAL / "plan.csv").read_text(encoding="utf-8").encode("cp1252"))
    report = await _import_wirral(pulse, path)
    assert report.summary().endswith("; read as Windows-1252")


def test_nul_characters_are_refused_naming_row_and_column(tmp_path: Path) -> None:
    """A NUL character in a CSV cell or a YAML text is one error naming where it is."""
    rows = _wirral_rows()
    rows[2]["Lead(s)"] = "Ian\x00Godfrey"
    draft = read_plan(_write_csv(tmp_path / "nul.csv", rows), plan_key="w")
    assert _errors(draft) == [
        "error: row 4, column 'Lead(s)': holds a NUL character, which cannot be stored: remove it"
    ]
    yaml_text = (WIRRAL / "plan.yaml").read_text(encoding="utf-8")
    path = tmp_path / "nul.yaml"
    path.write_text(yaml_text.replace("key: wirral", 'key: "wir\\0ral"', 1), encoding="utf-8")
    assert _errors(read_plan(path, plan_key="w")) == [
        "error: column 'plan.key': holds a NUL character, which cannot be stored: remove it"
    ]


def test_fifty_thousand_rows_and_twenty_megabytes_are_read(tmp_path: Path) -> None:
    """A CSV plan of 50,000 rows and more than 20 MB is read whole, without a limit error."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Priority", "Ref", "Key actions", "Lead(s)", "Timescales", "Notes"])
        for n in range(50_000):
            writer.writerow(
                [f"{n // 1000 + 1}", f"A{n}", f"Action {n}", "AW", "31/10/26", "x" * 400]
            )
    assert path.stat().st_size > 20 * 2**20
    draft = read_plan(path, plan_key="big")
    assert _errors(draft) == []
    assert len(draft.actions) == 50_000


def test_files_past_the_limits_are_refused_in_one_line(tmp_path: Path) -> None:
    """A plan file over the size limit, over the row limit, or with a cell too long for CSV
    is refused with one line saying why, before it is read whole."""
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    assert _errors(read_plan(huge, plan_key="h")) == [
        "error: file: the file is 50.0 MB; files are limited to 50 MB: split the plan"
    ]
    many = tmp_path / "many.csv"
    many.write_text("Key actions,Timescales\n" + "a,2027\n" * (MAX_ROWS + 1), encoding="utf-8")
    assert _errors(read_plan(many, plan_key="m")) == [
        "error: file: the file has more than 100,000 rows; files are limited to 100,000 rows: "
        "split the plan"
    ]
    long_cell = tmp_path / "long.csv"
    long_cell.write_text(f'Key actions,Notes\na,"{"x" * 200_000}"\n', encoding="utf-8")
    [error] = _errors(read_plan(long_cell, plan_key="l"))
    assert error.startswith("error: row 2: not readable as CSV: field larger than field limit")


def test_utf16_file_with_a_broken_character_reports_its_row(tmp_path: Path) -> None:
    """A UTF-16 file with a lone surrogate is an error naming that cell, not a traceback."""
    path = tmp_path / "utf16.csv"
    path.write_bytes(
        "Key actions,Timescales\nFirst,2027\n".encode("utf-16")
        + "Second".encode("utf-16-le")
        + b"\x00\xd8,\x002\x000\x002\x007\x00\n\x00"
    )
    draft = read_plan(path, plan_key="u")
    assert _errors(draft) == [
        "error: row 3, column 'Key actions': value 'Second\ufffd': bytes that are not UTF-16 "
        "(shown as \ufffd) in a file that is otherwise UTF-16: retype the text there"
    ]


async def _answer(pulse: PlanPulse, ref: str, rating: int, note: str, at: datetime) -> None:
    """Joe Bannham's emailed answer about `ref`, stored as the inbound path stores it."""
    async with pulse.sessions() as session, session.begin():
        joe = (await PeopleRepository(session).rows_by_key())["JB"]
        milestone_id = await session.scalar(select(MilestoneRow.id).where(MilestoneRow.ref == ref))
        assert milestone_id is not None
        await UpdateRepository(session).add(
            milestone_id=milestone_id,
            rating=rating,
            note=note,
            source=Source.EMAIL,
            given_at=at,
            recorded_at=at,
            person_id=joe.id,
        )


async def test_reimport_never_undoes_a_leads_answer(pulse: PlanPulse, tmp_path: Path) -> None:
    """Re-importing the unchanged sheet after Joe answered 2 keeps his answer and lists the
    sheet's 3 as a conflict (dry run alike), while a milestone only the sheet ever rated
    still takes the sheet's new value; --prefer-sheet records the sheet over the answer."""
    await _import_wirral(pulse)
    await _answer(
        pulse, "1.1-1", 2, "Agreed; sign-off next week", datetime(2018, 6, 4, 10, 0, tzinfo=UTC)
    )
    conflict = "1.1-1: the sheet says 3, Joe Bannham answered 2 on 4 Jun 2018; kept the answer"
    rows = _wirral_rows()
    assert (rows[3]["Ref"], rows[3]["Progress 1 - 4"]) == ("1.4", "2")
    rows[3]["Progress 1 - 4"] = "1"  # action 1.4 has only ever had sheet ratings
    revised = _write_csv(tmp_path / "revised.csv", rows)
    updates_before = await _count(pulse, UpdateRow)

    async def reimport(**kw: Any) -> ImportReport:
        return await import_plan(
            pulse.sessions,
            revised,
            now=NOW,
            plan_key="wirral",
            ratings_as_of=date(2018, 6, 5),
            **kw,
        )

    dry = await reimport(dry_run=True)
    assert dry.conflicts == [conflict]
    assert await _count(pulse, UpdateRow) == updates_before
    report = await reimport()
    assert report.conflicts == [conflict]
    assert "conflicts with answers 1" in report.summary()
    tracked = await pulse.tracked("wirral")
    latest = tracked.updates["1.1-1"][-1]
    assert (latest.rating, latest.note, latest.source) == (
        2,
        "Agreed; sign-off next week",
        Source.EMAIL,
    )
    assert [u.rating for u in tracked.updates["1.4-1"]] == [2, 1]
    assert report.ratings_recorded == 6  # 1.4's six milestones, nothing of 1.1-1
    # The same file again: nothing new, the same conflict.
    again = await reimport()
    assert (again.ratings_recorded, again.conflicts) == (0, [conflict])
    preferred = await reimport(prefer_sheet=True)
    assert preferred.conflicts == [
        conflict.replace("kept the answer", "took the sheet's") + " (--prefer-sheet)"
    ]
    latest = (await pulse.tracked("wirral")).updates["1.1-1"][-1]
    assert (latest.rating, latest.source) == (3, Source.IMPORT)


async def test_an_import_retiring_most_of_a_plan_is_refused(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """A header-only sheet would retire all 28 actions: it is refused with the counts and
    changes nothing, unless --retire-missing is given."""
    await _import_wirral(pulse)
    header_only = tmp_path / "empty.csv"
    header_only.write_text(
        (WIRRAL / "plan.csv").read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8"
    )
    with pytest.raises(ImportFailed) as caught:
        await import_plan(pulse.sessions, header_only, now=NOW, plan_key="wirral")
    text = "\n".join(str(p) for p in caught.value.problems)
    assert "would retire 28 of the plan's 28 actions and 77 of its 77 milestones" in text
    assert "--retire-missing" in text
    assert len((await pulse.tracked("wirral")).actions) == 28
    report = await import_plan(
        pulse.sessions, header_only, now=NOW, plan_key="wirral", retire_missing=True
    )
    assert (report.actions_retired, report.milestones_retired) == (28, 77)


async def test_a_key_from_the_file_name_beside_another_plan_is_refused(pulse: PlanPulse) -> None:
    """Without --plan, plan.csv would become a second plan 'plan' beside wirral: refused,
    naming the plan to give; the report says whether a plan is new."""
    first = await _import_wirral(pulse)
    assert first.created_plan
    assert first.summary().startswith("imported new plan wirral")
    with pytest.raises(PlanKeyNeeded) as caught:
        await import_plan(pulse.sessions, WIRRAL / "plan.csv", now=NOW)
    assert "--plan wirral" in str(caught.value)
    assert await _count(pulse, PlanRow) == 1
    again = await import_plan(pulse.sessions, WIRRAL / "plan.csv", now=NOW, plan_key="wirral")
    assert not again.created_plan
    assert again.summary().startswith("re-imported plan wirral")


async def test_a_retired_plan_gets_no_prompts_or_digests_and_keeps_its_history(
    pulse: PlanPulse,
) -> None:
    """After `plans retire`, the plan is listed as retired, the scheduler and a manual
    prompt or digest post leave it alone, and its milestones and updates are all kept."""
    await _import_wirral(pulse)
    updates = await _count(pulse, UpdateRow)
    async with pulse.sessions() as session, session.begin():
        assert await PlanRepository(session).retire("wirral", NOW)
        assert not await PlanRepository(session).retire("wirral", NOW)
    async with pulse.sessions() as session:
        (summary,) = await PlanRepository(session).summaries()
    assert summary.retired_at == NOW
    assert (summary.actions, summary.milestones, summary.people) == (28, 77, 10)
    monday = datetime(2018, 6, 4, 8, 5, tzinfo=UTC)
    cycles = cycles_for(pulse)
    assert (await cycles.tick(monday)).cycles == []
    with pytest.raises(PlanRetired):
        await cycles.start_cycle("wirral", now=monday)
    with pytest.raises(PlanRetired):
        await digest_poster(pulse).post("wirral", now=monday)
    assert await _count(pulse, PromptRow) == 0
    assert await _count(pulse, UpdateRow) == updates
    with pytest.raises(PlanRetired):
        await _import_wirral(pulse)


async def _dues(pulse: PlanPulse) -> dict[str, date | None]:
    async with pulse.sessions() as session:
        rows = (await session.execute(select(MilestoneRow.ref, MilestoneRow.due))).tuples()
        return dict(rows.all())


async def test_shift_dates_lands_the_ratings_month_on_the_current_one(
    db_url: str, tmp_path: Path
) -> None:
    """With --shift-dates every milestone moves by the same whole months, so that the month
    the ratings were given (April 2018) is the clock's month; the ratings are dated then."""
    later = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    app = PlanPulse(
        Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=tmp_path),
        clock=lambda: later,
    )
    await app.migrate()
    try:
        report = await import_plan(
            app.sessions,
            WIRRAL / "plan.yaml",
            now=app.clock(),
            ratings_as_of=date(2018, 4, 16),
            shift_dates=True,
        )
        assert report.shifted_months == 104
        assert "dates shifted by 104 months" in report.summary()
        dues = await _dues(app)
        assert dues["1.1-1"] == date(2027, 1, 31)  # 31/05/18: a month after the ratings
        assert dues["1.4-1"] == date(2026, 9, 30)  # 30/01/18: overdue then, overdue now
        async with app.sessions() as session:
            given = await session.scalar(select(func.max(UpdateRow.given_at)))
            start = await session.scalar(select(PlanRow.start))
        assert given is not None
        assert given.date() <= later.date()
        assert start == date(2026, 5, 1)  # 1 September 2017, moved likewise
    finally:
        await app.close()


async def test_without_shift_dates_nothing_moves(pulse: PlanPulse) -> None:
    """An import without the option keeps every date as the file has it."""
    report = await import_plan(
        pulse.sessions, WIRRAL / "plan.yaml", now=NOW, ratings_as_of=date(2018, 4, 16)
    )
    assert report.shifted_months is None
    dues = await _dues(pulse)
    assert dues["1.1-1"] == date(2018, 5, 31)
    assert dues["1.4-1"] == date(2018, 1, 30)
