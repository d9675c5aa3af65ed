"""The index of rated updates carries each update's rating on PostgreSQL (migration 0029),
so that a pack's rating mix reads ratings from the index alone; downgrading takes it off."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import text

from bot.app import PlanPulse
from storage.db import alembic_config
from tests.conftest import running_pulse

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def rated_index(pulse: PlanPulse, db_url: str) -> str:
    if db_url.startswith("sqlite"):
        query = "SELECT sql FROM sqlite_master WHERE name = 'ix_updates_milestone_rated'"
    else:
        query = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_updates_milestone_rated'"
    async with pulse.sessions() as session:
        found = await session.scalar(text(query))
    assert isinstance(found, str)
    return found


async def test_the_rated_index_carries_the_rating_on_postgresql_only(
    db_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL the partial index of rated updates includes the rating, and a downgrade
    to 0027 restores the index as it was; SQLite's index is left unchanged either way."""
    async with running_pulse(db_url, tmp_path, lambda: NOW) as pulse:
        at_head = await rated_index(pulse, db_url)
        config = alembic_config(db_url)
        await asyncio.to_thread(command.downgrade, config, "0027")
        before = await rated_index(pulse, db_url)
        await asyncio.to_thread(command.upgrade, config, "head")
        again = await rated_index(pulse, db_url)
    assert "rating IS NOT NULL" in at_head
    assert "rating IS NOT NULL" in before
    if db_url.startswith("sqlite"):
        assert at_head == before == again
    else:
        assert "INCLUDE (rating)" in at_head
        assert again == at_head
        assert "INCLUDE" not in before
