"""The absences service (bot/services/absences.py) on SQLite and PostgreSQL: what it
refuses changes nothing and audits nothing, whichever way the delegate is named; what it
sets is audited as the lead's own, through the channel that asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.absences import AbsenceRefusal
from bot.services.absences import AbsenceRequest, Absences, ByKey, ByName, BySlackId
from storage.db import create_engine, migrate, session_factory
from storage.models import AuditRow, PersonRow
from storage.repositories import PeopleRepository, PersonRecord
from tests.conftest import import_small_plan

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await migrate(db_url)
    engine = create_engine(db_url)
    factory = session_factory(engine)
    await import_small_plan(factory, now=NOW)
    try:
        yield factory
    finally:
        await engine.dispose()


async def _lead(session: AsyncSession, key: str) -> PersonRecord:
    repo = PeopleRepository(session)
    person_id = await repo.id_of(key)
    assert person_id is not None
    record = await repo.record(person_id)
    assert record is not None
    return record


async def _ask(
    sessions: async_sessionmaker[AsyncSession], key: str, request: AbsenceRequest
) -> dict[str, AbsenceRefusal]:
    async with sessions() as session, session.begin():
        lead = await _lead(session, key)
        outcome = await Absences(session, channel="teams", now=NOW).ask(lead, request)
        return outcome.refusals


async def test_refusals_change_nothing(sessions: async_sessionmaker[AsyncSession]) -> None:
    """No day, a timescale, a past day, oneself, nobody by that name, key or Slack id, and a
    delegate with a past day are each refused with their reason, and Alex's absence, delegate
    and the audit log are as they were."""
    refused = {
        "no day": (AbsenceRequest(away=""), {"away": AbsenceRefusal.NO_DAY}),
        "timescale": (AbsenceRequest(away="quarterly"), {"away": AbsenceRefusal.UNREADABLE_DAY}),
        "past": (AbsenceRequest(away="22/11/26"), {"away": AbsenceRefusal.PAST_DAY}),
        "self": (AbsenceRequest(delegate=ByKey("AW")), {"delegate": AbsenceRefusal.OWN_DELEGATE}),
        "own name": (
            AbsenceRequest(delegate=ByName("alex walker")),
            {"delegate": AbsenceRefusal.OWN_DELEGATE},
        ),
        "no name": (AbsenceRequest(delegate=ByName(" ")), {"delegate": AbsenceRefusal.NO_NAME}),
        "unknown name": (
            AbsenceRequest(delegate=ByName("Nobody Atall")),
            {"delegate": AbsenceRefusal.UNKNOWN_PERSON},
        ),
        "unknown key": (
            AbsenceRequest(delegate=ByKey("ZZ")),
            {"delegate": AbsenceRefusal.UNKNOWN_PERSON},
        ),
        "unknown slack": (
            AbsenceRequest(delegate=BySlackId("UNOBODY01")),
            {"delegate": AbsenceRefusal.UNKNOWN_PERSON},
        ),
        "delegate until past": (
            AbsenceRequest(delegate=ByName("Sam Murray"), delegate_until="01/01/20"),
            {"away": AbsenceRefusal.PAST_DAY},
        ),
    }
    for what, (request, refusals) in refused.items():
        assert await _ask(sessions, "AW", request) == refusals, what
    async with sessions() as session:
        alex = await session.scalar(select(PersonRow).where(PersonRow.key == "AW"))
        assert alex is not None
        assert (alex.away_until, alex.delegate_id) == (None, None)
        assert (await session.scalars(select(AuditRow.action))).all() == []


async def test_a_delegate_set_then_cleared_is_audited_by_channel(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Sam named until a day sets both, then nobody clears the delegate alone, the day kept;
    each change is audited as Alex's own through Teams."""
    request = AbsenceRequest(delegate=ByName("sam murray"), delegate_until="28/02/27")
    assert await _ask(sessions, "AW", request) == {}
    assert await _ask(sessions, "AW", AbsenceRequest(no_delegate=True)) == {}
    async with sessions() as session:
        alex = await session.scalar(select(PersonRow).where(PersonRow.key == "AW"))
        assert alex is not None
        assert (alex.away_until, alex.delegate_id) == (date(2027, 2, 28), None)
        audited = (
            await session.execute(
                select(AuditRow.action, AuditRow.actor, AuditRow.channel).order_by(AuditRow.id)
            )
        ).all()
    actor = f"person:{alex.id}"
    assert [tuple(a) for a in audited] == [
        ("delegate_set", actor, "teams"),
        ("away_set", actor, "teams"),
        ("delegate_cleared", actor, "teams"),
    ]
