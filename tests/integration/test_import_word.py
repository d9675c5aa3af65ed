"""Word plans as networks keep them: one table per priority, merged cells, legends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, select

from bot.app import PlanPulse
from bot.domain.errors import ImportFailed
from bot.domain.model import Source
from handlers.files.importing import import_plan
from handlers.files.plan_files import read_plan
from storage.models import MilestoneRow
from storage.repositories import PeopleRepository, UpdateRepository
from tests.conftest import running_pulse
from tests.word_docs import word_plan

NOW = datetime(2026, 4, 20, 9, 0, tzinfo=UTC)
HEADER = ["Aims", "Key actions", "Lead(s)", "Timescales", "Progress 1 - 4"]
LEGEND = [["Rating", "Meaning"], ["1", "Achieved"], ["4", "Not started"]]


def _priority_table(number: int, title: str, *rows: list[str]) -> list[list[str]]:
    return [
        [f"Priority {number}", title, "<", "<", "<"],
        ["Key areas", f"Areas of priority {number}", "<", "<", "<"],
        ["Overall lead", "Sam Murray", "<", "<", "<"],
        HEADER,
        *rows,
    ]


def _people(path: Path) -> Path:
    path.write_text(
        "Key,Name,Email\n"
        "SM,Sam Murray,sam@example.org\n"
        "AW,Ann Walsh,ann@example.org\n"
        "MC,Mo Chan,mo@example.org\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    async with running_pulse(db_url, tmp_path, lambda: NOW) as app:
        yield app


def _two_priorities(tmp_path: Path) -> Path:
    return word_plan(
        tmp_path / "plan.docx",
        "Improvement plan 2026",
        "How progress is rated",
        LEGEND,
        _priority_table(
            1,
            "Keep children safe at home",
            ["1.1 Better assessments", "Audit assessments", "SM", "31/05/2026", "2"],
            ["^", "Train staff", "AW", "30/06/2026", ""],
            ["^", "Review audits", "SM", "30/09/2026", ""],
            ["^", "Report to board", "MC", "31/12/2026", ""],
        ),
        "What measurable impact is expected",
        "Fewer repeat referrals",
        _priority_table(
            2,
            "A stable workforce",
            ["Recruit", "Run a recruitment campaign", "AW", "31/07/2026", ""],
        ),
        [["Signed", "Director"], ["Date", "1 April 2026"]],
    )


def test_an_aim_merged_down_belongs_to_each_action(tmp_path: Path) -> None:
    """An aim merged over four actions is the aim of each, numbered 1.1a to 1.1d."""
    draft = read_plan(_two_priorities(tmp_path), plan_key="p")
    first = [a for a in draft.actions if a.priority == 1]
    assert [(a.ref, a.title, a.aim) for a in first] == [
        ("1.1a", "Audit assessments", "1.1 Better assessments"),
        ("1.1b", "Train staff", "1.1 Better assessments"),
        ("1.1c", "Review audits", "1.1 Better assessments"),
        ("1.1d", "Report to board", "1.1 Better assessments"),
    ]
    assert any("1.1a, 1.1b" in str(p) for p in draft.problems)


def test_priority_rows_set_priorities_and_key_areas_and_lead_are_not_actions(
    tmp_path: Path,
) -> None:
    """`Priority N` rows title the priorities; Key areas and Overall lead rows are kept apart."""
    draft = read_plan(_two_priorities(tmp_path), plan_key="p")
    assert draft.priorities == {1: "Keep children safe at home", 2: "A stable workforce"}
    assert [a.ref for a in draft.actions if a.priority == 2] == ["2.1"]
    assert draft.descriptions == {1: "Areas of priority 1", 2: "Areas of priority 2"}
    assert draft.priority_leads == {1: "Sam Murray", 2: "Sam Murray"}
    assert all("Key areas" not in a.title for a in draft.actions)


def test_legend_and_sign_off_tables_are_skipped_and_reported(tmp_path: Path) -> None:
    """Tables without a header we know are skipped; the report names them by position."""
    draft = read_plan(_two_priorities(tmp_path), plan_key="p")
    notes = [str(p) for p in draft.problems]
    assert any("read table 2, table 3" in n for n in notes)
    assert any(
        "table 1 (first cell 'Rating')" in n and "table 4 (first cell 'Signed')" in n for n in notes
    )
    assert not [p for p in draft.problems if p.severity == "error"]


def test_several_paragraphs_in_a_milestones_cell_are_milestones(tmp_path: Path) -> None:
    """Each paragraph of a Milestones cell is a milestone with its own date."""
    path = word_plan(
        tmp_path / "plan.docx",
        "Priority 3: Continue to raise standards",
        [
            ["Key actions", "Lead(s)", "Milestones"],
            ["Set up a panel", "SM", "Terms agreed 31/05/2026\nFirst meeting 30/06/2026"],
        ],
    )
    draft = read_plan(path, plan_key="p")
    (action,) = draft.actions
    assert (action.priority, action.ref) == (3, "3.1")
    assert [(m.title, m.timescale.due) for m in action.milestones] == [
        ("Terms agreed", date(2026, 5, 31)),
        ("First meeting", date(2026, 6, 30)),
    ]


def test_a_table_split_at_a_page_break_continues(tmp_path: Path) -> None:
    """A headerless table right after a read one with as many columns carries on its rows."""
    path = word_plan(
        tmp_path / "plan.docx",
        [HEADER, ["2.1 Aim", "First action", "SM", "31/05/2026", ""]],
        [["^", "Second action", "AW", "30/06/2026", ""]],
    )
    draft = read_plan(path, plan_key="p")
    assert [a.title for a in draft.actions] == ["First action", "Second action"]
    assert any("table 2 (continues the table before)" in str(p) for p in draft.problems)


def test_errors_name_the_table_and_row(tmp_path: Path) -> None:
    """A bad date is reported at its place in the document, not at a made-up row number."""
    path = word_plan(
        tmp_path / "plan.docx",
        LEGEND,
        [HEADER, ["Aim", "Act", "SM", "31/09/2026", ""]],
    )
    draft = read_plan(path, plan_key="p")
    (error,) = [p for p in draft.problems if p.severity == "error"]
    assert "table 2, row 2" in str(error)


def test_a_document_without_a_plan_table_says_what_it_looks_for(tmp_path: Path) -> None:
    """A document with no recognisable table is one error naming the expected headings."""
    draft = read_plan(word_plan(tmp_path / "plan.docx", "Notes", LEGEND), plan_key="p")
    errors = [str(p) for p in draft.problems if p.severity == "error"]
    assert len(errors) == 1
    assert "'Key actions'" in errors[0]


@pytest.mark.parametrize("suffix", [".doc", ".pdf", ".odt"])
def test_formats_we_cannot_read_get_one_line(tmp_path: Path, suffix: str) -> None:
    """A .doc, .pdf or .odt is refused with one line naming the formats we read."""
    path = tmp_path / f"plan{suffix}"
    path.write_bytes(b"\xd0\xcf\x11\xe0 not text")
    (problem,) = read_plan(path, plan_key="p").problems
    assert ".docx" in problem.reason
    assert ".xlsx" in problem.reason


async def test_a_word_plan_imports_with_merged_leads(pulse: PlanPulse, tmp_path: Path) -> None:
    """The Word plan imports on SQLite and PostgreSQL, each action with its merged-in aim."""
    report = await import_plan(
        pulse.sessions,
        _two_priorities(tmp_path),
        now=NOW,
        plan_key="word",
        people_path=_people(tmp_path / "people.csv"),
    )
    assert report.actions_added == 5
    tracked = await pulse.tracked("word")
    by_ref = {a.ref: a for a in tracked.actions}
    assert by_ref["1.1b"].leads == ("AW",)
    assert by_ref["2.1"].milestones[0].timescale.due == date(2026, 7, 31)


async def test_a_damaged_word_file_is_one_error(pulse: PlanPulse, tmp_path: Path) -> None:
    """A file named .docx that is not one fails the import with one readable line."""
    path = tmp_path / "plan.docx"
    path.write_bytes(b"not a zip")
    with pytest.raises(ImportFailed) as failed:
        await import_plan(pulse.sessions, path, now=NOW, plan_key="x")
    (problem,) = failed.value.problems
    assert "not a Word document" in problem.reason


async def test_networks_follow_priorities_from_a_networks_file(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """A networks file's `priorities` column gives a network every action of those priorities."""
    networks = tmp_path / "networks.csv"
    networks.write_text(
        "key,name,priorities\nsafe,Safe at home,1\nstaff,Workforce,2;3\n", encoding="utf-8"
    )
    report = await import_plan(
        pulse.sessions,
        _two_priorities(tmp_path),
        now=NOW,
        plan_key="word",
        people_path=_people(tmp_path / "people.csv"),
        networks_path=networks,
    )
    assert any("follows priority 3" in str(w) for w in report.warnings)
    tracked = await pulse.tracked("word")
    by_network = {
        key: [a.ref for a in tracked.actions if key in a.networks] for key in ("safe", "staff")
    }
    assert by_network == {"safe": ["1.1a", "1.1b", "1.1c", "1.1d"], "staff": ["2.1"]}


async def test_networks_follow_priorities_in_a_yaml_plan(pulse: PlanPulse, tmp_path: Path) -> None:
    """The same `priorities` list in a YAML plan's networks links each priority's actions."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        """
plan: {key: y, title: Y}
people: [{key: S Murray, name: Sarah Murray, email: s@example.org}]
networks: [{key: second, name: Second, priorities: [2]}]
priorities:
  - number: 1
    title: One
    actions: [{title: First, leads: [S Murray], timescale: 31/05/2026}]
  - number: 2
    title: Two
    actions: [{title: Second, leads: [s murray], timescale: 30/06/2026}]
""",
        encoding="utf-8",
    )
    await import_plan(pulse.sessions, plan, now=NOW)
    tracked = await pulse.tracked("y")
    assert [(a.ref, a.networks) for a in tracked.actions] == [("1.1", ()), ("2.1", ("second",))]


def test_headings_before_tables_set_priorities_and_parts_stay_together(tmp_path: Path) -> None:
    """`Title (1)` and `Title (2)` are one priority in two tables; a new heading the next."""
    table = [["Theme", "Activity", "Lead(s)", "Deliverables"]]
    path = word_plan(
        tmp_path / "plan.docx",
        "# Strategic priorities",
        "# Stable homes for children (1)",
        "Objective: safely at home",
        [*table, ["Edge of care", "Scale up the model", "SM", "Plans in place 31/03/2027"]],
        "# Stable homes for children (2)",
        [*table, ["Care leavers", "Lifelong Links", "AW", "Launched 30/06/2027"]],
        "# An inclusive education system",
        [*table, ["Attendance", "Share attendance data", "MC", "Dashboards shared 30/09/2027"]],
    )
    draft = read_plan(path, plan_key="p")
    assert draft.priorities == {1: "Stable homes for children", 2: "An inclusive education system"}
    assert [(a.ref, a.aim) for a in draft.actions] == [
        ("1.1", "Edge of care"),
        ("1.2", "Care leavers"),
        ("2.1", "Attendance"),
    ]


def test_the_report_names_the_files_own_headings(tmp_path: Path) -> None:
    """A problem names the column as the document heads it, at its table and row."""
    path = word_plan(
        tmp_path / "plan.docx",
        [
            ["Activity", "Who should be involved?", "Deliverables"],
            ["Act", "", "Plan agreed 31/09/2026"],
            ["Another", "", "Sometime"],
        ],
    )
    shown = [str(p) for p in read_plan(path, plan_key="p").problems]
    assert any("table 1, row 2, column 'Deliverables'" in s and "31/09/2026" in s for s in shown)
    assert any("table 1, row 3, column 'Who should be involved?'" in s for s in shown)


async def _answer(pulse: PlanPulse, ref: str, key: str, rating: int, note: str) -> None:
    """Record `key`'s email answer about milestone `ref`, as an inbound reply does."""
    async with pulse.sessions() as session, session.begin():
        person = (await PeopleRepository(session).rows_by_key())[key]
        milestone_id = await session.scalar(select(MilestoneRow.id).where(MilestoneRow.ref == ref))
        assert milestone_id is not None
        await UpdateRepository(session).add(
            milestone_id=milestone_id,
            rating=rating,
            note=note,
            source=Source.EMAIL,
            given_at=NOW,
            recorded_at=NOW,
            person_id=person.id,
        )


async def test_a_row_inserted_in_the_word_table_leaves_answers_with_their_actions(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """After a row is inserted above them, each lead's answer stays with the action it was
    about (now one letter on), the new action starts unanswered and the report says what
    was renumbered."""
    people = _people(tmp_path / "people.csv")
    await import_plan(
        pulse.sessions, _two_priorities(tmp_path), now=NOW, plan_key="word", people_path=people
    )
    await _answer(pulse, "1.1b", "AW", 2, "Half the staff trained")
    await _answer(pulse, "1.1d", "MC", 3, "Board paper drafted")
    revised = word_plan(
        tmp_path / "revised.docx",
        _priority_table(
            1,
            "Keep children safe at home",
            ["1.1 Better assessments", "Audit assessments", "SM", "31/05/2026", "2"],
            ["^", "Check caseloads", "MC", "31/05/2026", ""],
            ["^", "Train staff", "AW", "30/06/2026", ""],
            ["^", "Review audits", "SM", "30/09/2026", ""],
            ["^", "Report to board", "MC", "31/12/2026", ""],
        ),
        _priority_table(
            2,
            "A stable workforce",
            ["Recruit", "Run a recruitment campaign", "AW", "31/07/2026", ""],
        ),
    )
    report = await import_plan(pulse.sessions, revised, now=NOW, plan_key="word")
    assert report.renumbered == [
        "1.1b is now 1.1c: Train staff",
        "1.1c is now 1.1d: Review audits",
        "1.1d is now 1.1e: Report to board",
    ]
    assert (report.actions_added, report.actions_retired) == (1, 0)
    tracked = await pulse.tracked("word")
    titles = {a.ref: a.title for a in tracked.actions}
    assert titles["1.1b"] == "Check caseloads"
    assert tracked.updates.get("1.1b", []) == []
    assert [(u.rating, u.note) for u in tracked.updates["1.1c"]] == [(2, "Half the staff trained")]
    assert [(u.rating, u.note) for u in tracked.updates["1.1e"]] == [(3, "Board paper drafted")]
    assert [u.rating for u in tracked.updates["1.1a"]] == [2]  # the sheet's own rating
    # The same file again changes nothing and renumbers nothing.
    again = await import_plan(pulse.sessions, revised, now=NOW, plan_key="word")
    assert (again.renumbered, again.actions_changed, again.milestones_changed) == ([], 0, 0)


async def test_an_edited_title_is_a_new_action_and_the_old_one_keeps_its_answer(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """A title reworded in the Word table is a new, unanswered action; the old one is
    retired with its answer, never handed to the new one by its place."""
    people = _people(tmp_path / "people.csv")
    await import_plan(
        pulse.sessions, _two_priorities(tmp_path), now=NOW, plan_key="word", people_path=people
    )
    await _answer(pulse, "2.1", "AW", 3, "Adverts out")
    edited = word_plan(
        tmp_path / "edited.docx",
        _priority_table(
            1,
            "Keep children safe at home",
            ["1.1 Better assessments", "Audit assessments", "SM", "31/05/2026", "2"],
            ["^", "Train staff", "AW", "30/06/2026", ""],
            ["^", "Review audits", "SM", "30/09/2026", ""],
            ["^", "Report to board", "MC", "31/12/2026", ""],
        ),
        _priority_table(
            2,
            "A stable workforce",
            ["Recruit", "Run a social work recruitment campaign", "AW", "31/07/2026", ""],
        ),
    )
    report = await import_plan(pulse.sessions, edited, now=NOW, plan_key="word")
    assert (report.actions_added, report.actions_retired, report.renumbered) == (1, 1, [])
    tracked = await pulse.tracked("word")
    assert {a.ref: a.title for a in tracked.actions}["2.1"] == (
        "Run a social work recruitment campaign"
    )
    assert tracked.updates.get("2.1", []) == []


async def test_rewording_most_titles_is_refused_like_dropping_most_actions(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """A Word plan whose titles were nearly all reworded would retire most actions (and
    their answers) even though its made-up references are the same: it is refused."""
    await import_plan(
        pulse.sessions,
        _two_priorities(tmp_path),
        now=NOW,
        plan_key="word",
        people_path=_people(tmp_path / "people.csv"),
    )
    reworded = word_plan(
        tmp_path / "reworded.docx",
        _priority_table(
            1,
            "Keep children safe at home",
            ["1.1 Better assessments", "Audit all assessments", "SM", "31/05/2026", "2"],
            ["^", "Train all staff", "AW", "30/06/2026", ""],
            ["^", "Review the audits", "SM", "30/09/2026", ""],
            ["^", "Report to board", "MC", "31/12/2026", ""],
        ),
        _priority_table(
            2,
            "A stable workforce",
            ["Recruit", "Run a recruitment campaign", "AW", "31/07/2026", ""],
        ),
    )
    with pytest.raises(ImportFailed) as caught:
        await import_plan(pulse.sessions, reworded, now=NOW, plan_key="word")
    text = "\n".join(str(p) for p in caught.value.problems)
    assert "would retire 3 of the plan's 5 actions and 3 of its 5 milestones" in text


async def test_key_areas_and_overall_lead_are_kept_with_their_priority(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """Each priority keeps its "Key areas" row as its description and its "Overall lead"
    row as written, and a re-import without them clears them."""
    people = _people(tmp_path / "people.csv")
    await import_plan(
        pulse.sessions, _two_priorities(tmp_path), now=NOW, plan_key="word", people_path=people
    )
    priorities = {p.number: p for p in (await pulse.tracked("word")).priorities}
    assert (priorities[1].description, priorities[1].leads) == (
        "Areas of priority 1",
        "Sam Murray",
    )
    assert priorities[2].description == "Areas of priority 2"
    bare = word_plan(
        tmp_path / "bare.docx",
        [
            ["Priority 1", "Keep children safe at home", "<", "<", "<"],
            HEADER,
            ["1.1 Better assessments", "Audit assessments", "SM", "31/05/2026", "2"],
            ["^", "Train staff", "AW", "30/06/2026", ""],
            ["^", "Review audits", "SM", "30/09/2026", ""],
            ["^", "Report to board", "MC", "31/12/2026", ""],
        ],
        _priority_table(
            2,
            "A stable workforce",
            ["Recruit", "Run a recruitment campaign", "AW", "31/07/2026", ""],
        ),
    )
    await import_plan(pulse.sessions, bare, now=NOW, plan_key="word")
    priorities = {p.number: p for p in (await pulse.tracked("word")).priorities}
    assert (priorities[1].description, priorities[1].leads) == (None, None)
    assert priorities[2].leads == "Sam Murray"


async def test_an_unchanged_reimport_writes_nothing_to_the_plan(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """Importing the same Word plan again rewrites none of its actions, milestones, leads
    or networks (only the plan's time of last import changes), so it is quick and holds
    the write lock for as little as it can."""
    plan = _two_priorities(tmp_path)
    people = _people(tmp_path / "people.csv")
    await import_plan(pulse.sessions, plan, now=NOW, plan_key="word", people_path=people)
    written: list[str] = []

    def watch(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            written.append(" ".join(statement.split()[:3]))

    event.listen(pulse.engine.sync_engine, "before_cursor_execute", watch)
    try:
        report = await import_plan(
            pulse.sessions, plan, now=NOW, plan_key="word", people_path=people
        )
    finally:
        event.remove(pulse.engine.sync_engine, "before_cursor_execute", watch)
    assert (report.actions_changed, report.milestones_changed, report.ratings_recorded) == (
        0,
        0,
        0,
    )
    assert [w for w in written if not w.startswith("UPDATE plans")] == []
