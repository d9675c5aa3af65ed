"""People changed without a re-import, on SQLite and PostgreSQL: `pulse people set` and
`pulse actions reassign` change the store in one transaction each and are audited by id,
never by name; bad input changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import PlanPulse
from bot.domain.errors import PersonChangeError, PersonNotFound, PlanNotFound
from bot.services.records import Records
from storage.models import PersonRow
from storage.people_admin import PersonChanges
from tests.conftest import Clock, import_small_plan, running_pulse

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    async with running_pulse(db_url, tmp_path / "var", Clock(MONDAY)) as app:
        await import_small_plan(app.sessions, now=MONDAY)
        yield app


async def _person(pulse: PlanPulse, key: str) -> PersonRow:
    async with pulse.sessions() as session:
        found = await session.scalar(select(PersonRow).where(PersonRow.key == key))
        assert found is not None
        return found


async def _leads(pulse: PlanPulse) -> dict[str, tuple[str, ...]]:
    return {a.ref: a.leads for a in (await pulse.tracked("small")).actions}


async def test_people_set_changes_the_details_and_audits_the_fields_only(
    pulse: PlanPulse,
) -> None:
    """A new address, Slack id and channel take effect at once; the audit entry names the
    fields changed and the person's id, never the old or new address."""
    records = Records(pulse)
    key, fields = await records.set_person(
        "AW",
        PersonChanges(email="alex.w@council.example", slack_user_id="U0AW1", prefers="slack"),
        actor="os:admin",
    )
    assert (key, fields) == ("AW", ["email", "prefers", "slack_user_id"])
    alex = await _person(pulse, "AW")
    assert (alex.email, alex.slack_user_id, alex.prefers) == (
        "alex.w@council.example",
        "U0AW1",
        "slack",
    )
    entries, _ = await records.audit_entries(person_key="AW")
    changed = [e for e in entries if e.action == "person_changed"]
    assert [(e.person_id, e.details) for e in changed] == [
        (alex.id, {"fields": ["email", "prefers", "slack_user_id"]})
    ]
    assert "council.example" not in repr(changed)


async def test_people_set_with_bad_input_changes_nothing(pulse: PlanPulse) -> None:
    """An unknown key lists the valid ones; a malformed address, an unknown timezone or
    Slack without a Slack id is refused; the person is as before and nothing is audited."""
    records = Records(pulse)
    with pytest.raises(PersonNotFound, match=r"no person 'ZZ'; known: AW, DC, GR, MC, PB, SMu"):
        await records.set_person("ZZ", PersonChanges(name="Zed"), actor="os:admin")
    for changes, message in [
        (PersonChanges(email="not-an-address"), "not an email address"),
        (PersonChanges(timezone="Mars/Olympus"), "unknown timezone"),
        (PersonChanges(prefers="slack"), "no Slack id"),
        (PersonChanges(), "nothing to change"),
    ]:
        with pytest.raises(PersonChangeError, match=message):
            await records.set_person("MC", changes, actor="os:admin")
    morgan = await _person(pulse, "MC")
    assert (morgan.email, morgan.timezone, morgan.prefers) == (
        "morgan.clarke@council.example",
        "Europe/London",
        "email",
    )
    entries, _ = await records.audit_entries()
    assert [e for e in entries if e.action == "person_changed"] == []


async def test_actions_reassign_moves_live_actions_and_audits_per_plan(pulse: PlanPulse) -> None:
    """Alex's actions go to Priya: a joint action with her is left with her alone; the
    audit entry names the actions and Priya's id."""
    records = Records(pulse)
    before = await _leads(pulse)
    assert before["1.1"] == ("AW", "MC")
    assert before["2.3"] == ("AW",)
    done = await records.reassign(from_key="AW", to_key="MC", plan_key="small", actor="os:a")
    assert done.actions == ("small 1.1", "small 2.3")
    after = await _leads(pulse)
    assert after["1.1"] == ("MC",)
    assert after["2.3"] == ("MC",)
    assert all("AW" not in leads for leads in after.values())
    entries, _ = await records.audit_entries(person_key="AW")
    moved = [e for e in entries if e.action == "actions_reassigned"]
    morgan = await _person(pulse, "MC")
    assert [(e.plan_key, e.details) for e in moved] == [
        ("small", {"to_person_id": morgan.id, "actions": ["1.1", "2.3"]})
    ]


async def test_actions_reassign_with_bad_input_moves_nothing(pulse: PlanPulse) -> None:
    """An unknown lead or plan, the same person twice, or someone leading nothing is a
    one-line error, and every action keeps its leads."""
    records = Records(pulse)
    before = await _leads(pulse)
    with pytest.raises(PersonNotFound, match="known: AW, DC"):
        await records.reassign(from_key="AW", to_key="XX", plan_key=None, actor="os:a")
    with pytest.raises(PlanNotFound):
        await records.reassign(from_key="AW", to_key="MC", plan_key="nope", actor="os:a")
    with pytest.raises(PersonChangeError, match="same person"):
        await records.reassign(from_key="AW", to_key="AW", plan_key=None, actor="os:a")
    await records.reassign(from_key="AW", to_key="MC", plan_key=None, actor="os:a")
    with pytest.raises(PersonChangeError, match="leads no live actions"):
        await records.reassign(from_key="AW", to_key="MC", plan_key=None, actor="os:a")
    after = await _leads(pulse)
    untouched = {ref: leads for ref, leads in before.items() if "AW" not in leads}
    assert {ref: after[ref] for ref in untouched} == untouched
