"""Personal data, on SQLite and PostgreSQL: a week of the small plan in local mode (prompts,
email replies, a digest), then retention, a subject-access export, an erasure searched for
in every column of every table, its re-application after a restored backup, and the audit
log of all of it."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from bot.app import PlanPulse, Runner, digest_poster
from bot.domain.errors import PersonalDataError
from bot.services.records import Records
from bot.settings import Settings
from storage.evidence import EvidenceRepository
from storage.models import InboundRow, OutboxRow, PersonRow, UpdateRow
from storage.personal_data import AuditLog, truncate_sqlite_wal
from tests.conftest import Clock, import_small_plan
from tests.integration.test_delivery import prompt_for, reply_to

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
ALEX = ("Alex Walker", "alex.walker@council.example")


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY)


class Week:
    """The small plan after a week: Alex and Morgan answered by email, a digest went out."""

    def __init__(self, pulse: PlanPulse, clock: Clock) -> None:
        self.pulse = pulse
        self.clock = clock
        self.records = Records(pulse)

    async def reply(self, address: str, body: str, n: int) -> None:
        prompt = prompt_for(self.pulse, address)
        sender = f"{address.split('.')[0].title()} <{address}>"
        raw = reply_to(prompt, sender=sender, body=body, message_id=f"<reply-{n}@example.org>")
        (self.pulse.settings.mail_dir / "inbox" / f"reply-{n}.eml").write_bytes(raw)
        await Runner(self.pulse).run_once()

    async def notes(self) -> dict[str, list[tuple[str | None, str | None]]]:
        tracked = await self.pulse.tracked("small")
        return {
            ref: [(u.person_key, u.note) for u in updates]
            for ref, updates in tracked.updates.items()
        }


@pytest.fixture
async def week(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Week]:
    settings = Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=tmp_path / "var")
    pulse = PlanPulse(settings, clock=clock)
    await pulse.migrate()
    await import_small_plan(pulse.sessions, now=MONDAY)
    await Runner(pulse).run_once()  # Monday's prompts
    done = Week(pulse, clock)
    clock.now = MONDAY + timedelta(hours=2)
    await done.reply(ALEX[1], "2.3 2 Exit interviews coded; Alex Walker presents them", 1)
    await done.reply(
        "morgan.clarke@council.example",
        "1.1 3 Waiting on AW (Alex Walker, alex.walker@council.example) to sign off",
        2,
    )
    clock.now = MONDAY + timedelta(days=4, hours=3)
    await digest_poster(pulse).post("small", now=clock.now, as_of=clock.now.date())
    await Runner(pulse).run_once()
    yield done
    await pulse.close()


async def everything_stored(pulse: PlanPulse) -> list[tuple[str, str, str]]:
    """Every value of every column of every table, as (table, column, lower-case text)."""
    async with pulse.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        found = []
        for name in names:
            rows = await connection.execute(text(f'SELECT * FROM "{name}"'))
            for row in rows.mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    if isinstance(value, bytes | memoryview):
                        shown = bytes(value).decode("utf-8", "replace")
                    elif isinstance(value, dict | list):
                        shown = json.dumps(value, ensure_ascii=False)
                    else:
                        shown = str(value)
                    found.append((name, str(column), shown.lower()))
    return found


async def test_after_forget_no_column_of_any_table_holds_their_name_or_address(
    week: Week,
) -> None:
    """After Alex is forgotten, neither his name nor his address is in any column of any
    table — notes, milestone_state, outbox bodies, raw inbound mail included — while his
    answers stay as "former lead N" with their notes, and others' notes name him so too."""
    before = await everything_stored(week.pulse)
    assert any(ALEX[0].lower() in v for _, _, v in before)
    assert any(t == "inbound" and ALEX[1] in v for t, _, v in before)
    assert any(t == "milestone_state" and ALEX[0].lower() in v for t, _, v in before)

    erasure = await week.records.forget_person("AW", reassign_to="GR", actor="os:test")

    after = await everything_stored(week.pulse)
    leaks = [(t, c) for t, c, v in after if ALEX[0].lower() in v or ALEX[1] in v]
    assert leaks == []
    former = erasure.replacement
    assert former == f"former lead {erasure.person_id}"
    notes = await week.notes()
    assert (former, f"Exit interviews coded; {former} presents them") in notes["2.3"]
    assert (
        "MC",
        f"Waiting on {former} ({former}, {former}) to sign off",
    ) in notes["1.1"]
    tracked = await week.pulse.tracked("small")
    leads = {m.ref: m.leads for a in tracked.actions for m in a.milestones}
    assert leads["2.3"] == ("GR",)
    assert set(leads["1.1"]) == {"MC", "GR"}
    if week.pulse.engine.dialect.name == "sqlite":
        database = make_url(week.pulse.settings.database_url).database
        assert database is not None
        assert ALEX[1].encode() not in _file_bytes(database)


async def test_someone_still_leading_actions_must_be_reassigned_first(week: Week) -> None:
    """Forgetting a lead of live actions without --reassign-to names those actions and
    changes nothing."""
    refused = r"still leads 2 action\(s\) \(small 1.1, small 2.3"
    with pytest.raises(PersonalDataError, match=refused):
        await week.records.forget_person("AW", reassign_to=None, actor="os:test")
    async with week.pulse.sessions() as session:
        alex = await session.scalar(select(PersonRow).where(PersonRow.key == "AW"))
        assert alex is not None
        assert alex.email == ALEX[1]
        assert alex.erased_at is None


async def test_an_erasure_is_audited_by_id_and_reapplied_after_a_restore(
    week: Week, tmp_path: Path
) -> None:
    """The audit log records an erasure by the person's id; after a backup from before it
    is restored, --reapply forgets them again, with the same name "former lead N"."""
    backup = await _snapshot(week.pulse, tmp_path)
    erasure = await week.records.forget_person("AW", reassign_to="GR", actor="os:test")
    async with week.pulse.sessions() as session:
        entries = await AuditLog(session).entries(person_id=erasure.person_id)
    assert [e.action for e in entries][-1] == "erasure"
    assert entries[-1].actor == "os:test"

    await _restore(week.pulse, backup)
    async with week.pulse.sessions() as session:
        back = await session.get(PersonRow, erasure.person_id)
        assert back is not None
        assert back.name == ALEX[0]
    redone = await week.records.reapply(actor="os:test")
    assert [e.person_id for e in redone] == [erasure.person_id]
    assert [(t, c) for t, c, v in await everything_stored(week.pulse) if ALEX[1] in v] == []
    assert await week.records.reapply(actor="os:test") == []


async def test_a_subject_access_export_holds_everything_about_them(
    week: Week, tmp_path: Path
) -> None:
    """The export of Alex lists his profile, his answer and note, answers given for his
    milestones, his prompts, the mail he sent and audit entries, as JSON and an HTML page
    in which what people wrote is escaped."""
    paths = await week.records.export_person("AW", output=tmp_path / "sar", actor="os:test")
    data = json.loads(paths[0].read_text("utf-8"))
    assert data["person"]["name"] == ALEX[0]
    assert data["person"]["email"] == ALEX[1]
    assert [a["ref"] for a in data["leads"]] == ["1.1", "2.3"]
    assert any(
        a["milestone"] == "2.3" and "Exit interviews coded" in (a["note"] or "")
        for a in data["answers_given"]
    )
    assert any("<script>" in (a["note"] or "") for a in data["answers_given_for_them"])
    assert [p["plan"] for p in data["prompts"]] == ["small"]
    assert {m["kind"] for m in data["messages_sent"]} >= {"prompt", "confirmation"}
    assert [m["id"] for m in data["mail_received"]] != []
    assert all(ALEX[1] in (m["raw"] or "").lower() for m in data["mail_received"])
    html = paths[1].read_text("utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    async with week.pulse.sessions() as session:
        entries = await AuditLog(session).entries(action="subject_access_export")
    assert [e.person_id for e in entries] == [data["person"]["id"]]


async def test_evidence_is_exported_and_erased_like_a_note(week: Week, tmp_path: Path) -> None:
    """Evidence of impact Alex gave in an email reply is in his subject access export (JSON,
    and escaped on the page); once he is forgotten, it names him as "former lead N" and no
    column holds his name."""
    await week.reply(
        ALEX[1],
        "1.1 1 Blueprint signed off\nevidence: <b>two hubs</b> open, ask Alex Walker",
        3,
    )
    paths = await week.records.export_person("AW", output=tmp_path / "sar", actor="os:test")
    data = json.loads(paths[0].read_text("utf-8"))
    given = [(a["milestone"], a["evidence"]) for a in data["answers_given"]]
    assert ("1.1", "<b>two hubs</b> open, ask Alex Walker") in given
    assert ("2.3", None) in given
    html = paths[1].read_text("utf-8")
    assert '<th scope="col">Evidence of impact</th>' in html
    assert "&lt;b&gt;two hubs&lt;/b&gt; open, ask Alex Walker" in html

    erasure = await week.records.forget_person("AW", reassign_to="GR", actor="os:test")

    async with week.pulse.sessions() as session:
        found = await EvidenceRepository(session).of_plan("small")
    assert found["1.1"].text == f"<b>two hubs</b> open, ask {erasure.replacement}"
    after = await everything_stored(week.pulse)
    assert [(t, c) for t, c, v in after if ALEX[0].lower() in v or ALEX[1] in v] == []


async def test_retention_drops_old_raw_mail_and_sent_bodies_but_keeps_the_answers(
    week: Week,
) -> None:
    """91 days on, a pass of the bot drops the raw bytes of decided mail (its hash and
    outcome stay, and the answers it gave) and the bodies of delivered messages; the audit
    log says how many; nothing newer or undecided goes."""
    async with week.pulse.sessions() as session:
        answers = await session.scalar(select(UpdateRow.id).where(UpdateRow.source == "email"))
        outcomes = dict(
            (await session.execute(select(InboundRow.id, InboundRow.outcome))).tuples().all()
        )
    assert answers is not None
    assert len(outcomes) == 2
    week.clock.now = MONDAY + timedelta(days=60)
    assert (await week.records.retention_due(week.clock.now)).raw_mail == 0
    week.clock.now = MONDAY + timedelta(days=95)
    due = await week.records.retention_due(week.clock.now)
    assert due.raw_mail == 2
    assert due.sent_bodies > 0
    fresh = week.pulse.settings.mail_dir / "inbox" / "late.eml"
    fresh.write_bytes(b"From: someone@example.org\r\nSubject: hello\r\n\r\nlate\r\n")
    await Runner(week.pulse).run_once()

    async with week.pulse.sessions() as session:
        rows = (await session.scalars(select(InboundRow).order_by(InboundRow.id))).all()
        kept_bodies = await session.scalar(
            select(OutboxRow.id).where(
                OutboxRow.state == "sent",
                OutboxRow.body_dropped_at.is_(None),
                OutboxRow.sent_at < week.clock.now - timedelta(days=90),
            )
        )
        still = await session.scalar(select(UpdateRow.id).where(UpdateRow.id == answers))
    old, new = rows[:2], rows[2:]
    assert [bytes(r.raw) for r in old] == [b"", b""]
    assert all(r.raw_sha256 and len(r.raw_sha256) == 64 for r in old)
    assert [r.outcome for r in old] == [outcomes[r.id] for r in old]
    assert [bytes(r.raw) != b"" for r in new] == [True]
    assert kept_bodies is None
    assert still == answers
    async with week.pulse.sessions() as session:
        sweeps = await AuditLog(session).entries(action="retention")
    assert sweeps[-1].details["raw_mail_dropped"] == 2
    assert (await week.records.retention_due(week.clock.now)).raw_mail == 0


async def test_the_audit_log_refuses_changes_and_deletions(week: Week) -> None:
    """Audit entries can be added, never changed or deleted."""
    await week.records.audit("export", actor="os:test", channel="cli", plan_key="small")
    for statement in ("UPDATE audit_log SET actor = 'someone'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            async with week.pulse.sessions() as session, session.begin():
                await session.execute(text(statement))
    async with week.pulse.sessions() as session:
        assert [e.actor for e in await AuditLog(session).entries()] == ["os:test"]


# ------------------------------------------------------------------------ backups


async def _snapshot(pulse: PlanPulse, folder: Path) -> Any:
    """A copy of the whole database, as a backup would be."""
    url = make_url(pulse.settings.database_url)
    await pulse.engine.dispose()
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        await truncate_sqlite_wal(pulse.engine)
        await pulse.engine.dispose()
        copy = folder / "backup.db"
        shutil.copyfile(url.database, copy)
        return copy
    name = f"{url.database}_backup"
    await _admin(url, f'CREATE DATABASE "{name}" TEMPLATE "{url.database}"')
    return name


async def _restore(pulse: PlanPulse, backup: Any) -> None:
    url = make_url(pulse.settings.database_url)
    await pulse.engine.dispose()
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        _replace_file(url.database, backup)
        return
    await _admin(url, f'DROP DATABASE "{url.database}"')
    await _admin(url, f'ALTER DATABASE "{backup}" RENAME TO "{url.database}"')


async def _admin(url: Any, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database="postgres"
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _file_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def _replace_file(database: str, backup: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(database + suffix).unlink(missing_ok=True)
    shutil.copyfile(backup, database)


async def test_a_persons_answers_are_found_by_an_index_not_a_scan(week: Week) -> None:
    """The answers a person gave are indexed by person, oldest first, so an export reads
    theirs alone rather than every answer in the store (bench/personal_data_bench.py)."""
    async with week.pulse.engine.connect() as connection:
        indexes = await connection.run_sync(lambda sync: inspect(sync).get_indexes("updates"))
    assert ["person_id", "given_at", "id"] in [i["column_names"] for i in indexes]
