"""The status read from a milestone's decisive updates equals the status read from its
whole history, on both databases, for random histories and any day."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.app import PlanPulse
from bot.domain.model import Source, Update
from bot.domain.status import milestone_status
from bot.services.answers import withdraw
from handlers.files.importing import import_plan
from storage.models import MilestoneRow, UpdateRow
from storage.repositories import PlanRepository, UpdateRepository, utc
from tests.conftest import running_pulse

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    async with running_pulse(db_url, tmp_path, lambda: NOW) as app:
        yield app


async def test_decisive_updates_give_the_same_status_as_the_whole_history(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """For 60 milestones with random histories (ratings, notes, revised dates, support, same
    instants), every status on every sampled day matches the whole-history reading."""
    rows = ["Priority,Ref,Key actions,Timescales"]
    timescales = ["31/12/26", "Quarterly", "30/11/26", "Ongoing", "31/01/27", "Monthly"]
    for i in range(60):
        rows.append(f"1,1.{i + 1},Action {i},{timescales[i % len(timescales)]}")
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    await import_plan(pulse.sessions, tmp_path / "p.csv", now=NOW, plan_key="r")
    rng = random.Random(20261123)
    start = datetime(2026, 8, 1, tzinfo=UTC)
    async with pulse.sessions() as session, session.begin():
        ids = dict(
            (await session.execute(select(MilestoneRow.ref, MilestoneRow.id))).tuples().all()
        )
        updates = UpdateRepository(session)
        for milestone_id in ids.values():
            for _ in range(rng.randrange(0, 12)):
                given = start + timedelta(hours=rng.randrange(0, 24 * 120))
                await updates.add(
                    milestone_id=milestone_id,
                    rating=rng.choice([None, 1, 2, 3, 4, 3, 4]),
                    note=rng.choice([None, "note", "other"]),
                    revised_due=rng.choice([None, None, date(2027, 2, rng.randrange(1, 28))]),
                    needs_support=rng.random() < 0.2,
                    source=Source.CLI,
                    given_at=given,
                    recorded_at=given,
                )
            if rng.random() < 0.3:  # two answers at the very same instant
                for early in (1, 3):
                    await updates.add(
                        milestone_id=milestone_id,
                        rating=early,
                        note=None,
                        source=Source.CLI,
                        given_at=start + timedelta(days=50),
                        recorded_at=start,
                    )
    async with pulse.sessions() as session:
        every = (
            (
                await session.execute(
                    select(
                        MilestoneRow.ref,
                        UpdateRow.given_at,
                        UpdateRow.rating,
                        UpdateRow.note,
                        UpdateRow.revised_due,
                        UpdateRow.needs_support,
                        UpdateRow.id,
                    )
                    .join(MilestoneRow, MilestoneRow.id == UpdateRow.milestone_id)
                    .order_by(UpdateRow.given_at, UpdateRow.id)
                )
            )
            .tuples()
            .all()
        )
    history: dict[str, list[Update]] = defaultdict(list)
    for ref, given, rating, note, revised, support, update_id in every:
        history[ref].append(Update(ref, utc(given), rating, note, revised, support, id=update_id))
    london = ZoneInfo("Europe/London")
    for day in (date(2026, 9, 15), date(2026, 10, 31), date(2026, 11, 23), date(2026, 12, 20)):
        until = datetime.combine(day + timedelta(days=1), time(0), london)
        async with pulse.sessions() as session:
            tracked = await PlanRepository(session).tracked("r", until=until)
        for action in tracked.actions:
            for milestone in action.milestones:
                full = milestone_status(
                    milestone.timescale,
                    history[milestone.ref],
                    today=day,
                    policy=tracked.plan.policy,
                )
                decisive = milestone_status(
                    milestone.timescale,
                    tracked.updates.get(milestone.ref, ()),
                    today=day,
                    policy=tracked.plan.policy,
                )
                assert decisive == full, (milestone.ref, day)


async def test_a_look_back_counts_an_answer_withdrawn_only_after_that_day(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """Looking back to a day before a rating was withdrawn, that rating still decides the
    milestone; to a day after, the earlier rating does, and the withdrawal says nothing."""
    rows = ["Priority,Ref,Key actions,Timescales", "1,1.1,Action,31/12/26"]
    (tmp_path / "w.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    await import_plan(pulse.sessions, tmp_path / "w.csv", now=NOW, plan_key="w")
    day = datetime(2026, 10, 1, 12, tzinfo=UTC)
    async with pulse.sessions() as session, session.begin():
        (ref, milestone_id), *_ = (
            await session.execute(select(MilestoneRow.ref, MilestoneRow.id))
        ).tuples()
        updates = UpdateRepository(session)
        for days, rating in ((0, 2), (2, 4)):
            await updates.add(
                milestone_id=milestone_id,
                rating=rating,
                note=None,
                source=Source.CLI,
                given_at=day + timedelta(days=days),
                recorded_at=day + timedelta(days=days),
            )
        withdrawn = await session.scalar(select(func.max(UpdateRow.id)))
        assert withdrawn is not None
        assert (
            await withdraw(
                session,
                plan_key="w",
                update_id=withdrawn,
                recorded_by="chair@council.example",
                now=day + timedelta(days=5),
            )
            is None
        )
        await updates.add(  # answered since: each look back reads the history
            milestone_id=milestone_id,
            rating=None,
            note="Under way",
            source=Source.CLI,
            given_at=day + timedelta(days=7),
            recorded_at=day + timedelta(days=7),
        )
    async with pulse.sessions() as session:
        plans = PlanRepository(session)
        before = await plans.decisive("w", until=day + timedelta(days=3))
        after = await plans.decisive("w", until=day + timedelta(days=6))
    assert [u.rating for u in before[ref]] == [2, 4]
    assert [u.rating for u in after[ref]] == [2]
