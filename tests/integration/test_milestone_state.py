"""`milestone_state`, kept by a trigger on `updates`, always names the updates the history
says decide each milestone: after inserts in any order, after the migration fills it for an
existing store, and when two transactions answer the same milestone at once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select

from bot.app import PlanPulse
from bot.domain.model import Source
from handlers.files.importing import import_plan
from storage.db import alembic_config
from storage.models import MilestoneRow, UpdateRow, milestone_state
from storage.repositories import UpdateRepository
from tests.conftest import running_pulse

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
START = datetime(2026, 8, 1, tzinfo=UTC)

State = dict[int, tuple[int | None, int | None, int | None, int | None]]


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    async with running_pulse(db_url, tmp_path, lambda: NOW) as app:
        rows = ["Priority,Ref,Key actions,Timescales"]
        rows += [f"1,1.{i + 1},Action {i},31/12/26" for i in range(20)]
        (tmp_path / "p.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        await import_plan(app.sessions, tmp_path / "p.csv", now=NOW, plan_key="s")
        yield app


async def milestone_ids(pulse: PlanPulse) -> list[int]:
    async with pulse.sessions() as session:
        return list((await session.scalars(select(MilestoneRow.id))).all())


async def stored_state(pulse: PlanPulse) -> State:
    async with pulse.sessions() as session:
        rows = (
            await session.execute(
                select(
                    milestone_state.c.milestone_id,
                    milestone_state.c.latest_id,
                    milestone_state.c.rated_id,
                    milestone_state.c.prior_rated_id,
                    milestone_state.c.revised_id,
                )
            )
        ).tuples()
        return {m: (latest, rated, prior, revised) for m, latest, rated, prior, revised in rows}


async def state_from_history(pulse: PlanPulse) -> State:
    """What the whole history says, worked out in Python: latest by (given_at, id)."""
    async with pulse.sessions() as session:
        rows = (
            await session.execute(
                select(
                    UpdateRow.milestone_id,
                    UpdateRow.id,
                    UpdateRow.rating,
                    UpdateRow.revised_due,
                ).order_by(UpdateRow.given_at, UpdateRow.id)
            )
        ).tuples()
        history: dict[int, list[tuple[int, int | None, date | None]]] = {}
        for milestone_id, update_id, rating, revised in rows:
            history.setdefault(milestone_id, []).append((update_id, rating, revised))
    state: State = {}
    for milestone_id, updates in history.items():
        rated = [u for u, rating, _ in updates if rating is not None]
        revisions = [u for u, _, due in updates if due is not None]
        state[milestone_id] = (
            updates[-1][0],
            rated[-1] if rated else None,
            rated[-2] if len(rated) >= 2 else None,
            revisions[-1] if revisions else None,
        )
    return state


async def add_random_history(pulse: PlanPulse, seed: int) -> None:
    rng = random.Random(seed)
    ids = await milestone_ids(pulse)
    async with pulse.sessions() as session, session.begin():
        updates = UpdateRepository(session)
        for _ in range(300):
            given = START + timedelta(hours=rng.randrange(0, 24 * 60))
            for _ in range(rng.choice((1, 1, 1, 2))):  # sometimes two at the same instant
                await updates.add(
                    milestone_id=rng.choice(ids),
                    rating=rng.choice((None, 1, 2, 3, 4)),
                    note="note",
                    revised_due=rng.choice((None, None, None, date(2027, 1, 31))),
                    source=Source.CLI,
                    given_at=given,
                    recorded_at=NOW,
                )
            if rng.random() < 0.2:
                await session.flush()


async def test_inserts_in_any_order_leave_the_state_the_history_gives(pulse: PlanPulse) -> None:
    await add_random_history(pulse, seed=1)
    await add_random_history(pulse, seed=2)
    expected = await state_from_history(pulse)
    assert len(expected) > 10
    assert await stored_state(pulse) == expected


async def test_the_migration_fills_the_state_of_an_existing_store(
    pulse: PlanPulse, db_url: str
) -> None:
    await add_random_history(pulse, seed=3)
    config = alembic_config(db_url)
    await asyncio.to_thread(command.downgrade, config, "0004")
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await stored_state(pulse) == await state_from_history(pulse)
    await add_random_history(pulse, seed=4)  # and the trigger is back
    assert await stored_state(pulse) == await state_from_history(pulse)


@pytest.mark.parametrize("later_first", [True, False])
async def test_two_transactions_answering_one_milestone_at_once_lose_neither(
    pulse: PlanPulse, later_first: bool
) -> None:
    """The first transaction holds its insert open while the second inserts for the same
    milestone (on PostgreSQL the second waits on the state row); whichever commits first,
    the state names the later answer and keeps the other as the prior rating."""
    milestone_id = (await milestone_ids(pulse))[0]
    first_flushed = asyncio.Event()
    second_started = asyncio.Event()
    early, late = START, START + timedelta(days=3)

    async def answer(given: datetime, rating: int, *, first: bool) -> None:
        if not first:
            await first_flushed.wait()
            second_started.set()
        async with pulse.sessions() as session, session.begin():
            await UpdateRepository(session).add(
                milestone_id=milestone_id,
                rating=rating,
                note=None,
                source=Source.SLACK,
                given_at=given,
                recorded_at=NOW,
            )
            await session.flush()
            if first:
                first_flushed.set()
                await second_started.wait()
                await asyncio.sleep(0.3)  # let the second reach its insert and wait

    first_given, second_given = (late, early) if later_first else (early, late)
    await asyncio.gather(answer(first_given, 2, first=True), answer(second_given, 3, first=False))
    state = await stored_state(pulse)
    assert state == await state_from_history(pulse)
    latest, rated, prior, _ = state[milestone_id]
    assert latest == rated
    assert prior is not None
    assert prior != rated
