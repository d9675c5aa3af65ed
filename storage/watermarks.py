"""Watermarks: when each plan's scheduled job (prompts, digests) last ran, so a missed
schedule runs once on start, never once per missed tick. Never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import (
    WatermarkRow,
)
from storage.repositories import utc


class WatermarkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, plan_id: int, job: str) -> datetime | None:
        value: datetime | None = await self.session.scalar(
            select(WatermarkRow.last_at).where(
                WatermarkRow.plan_id == plan_id, WatermarkRow.job == job
            )
        )
        return utc(value) if value is not None else None

    async def advance(self, plan_id: int, job: str, to: datetime) -> None:
        """Move the watermark forward to `to`, never back (concurrent tickers agree)."""
        statement = dialect_insert(self.session, WatermarkRow).values(
            plan_id=plan_id, job=job, last_at=utc(to)
        )
        table = WatermarkRow.__table__
        statement = statement.on_conflict_do_update(
            index_elements=["plan_id", "job"],
            set_={"last_at": statement.excluded.last_at},
            where=table.c.last_at < statement.excluded.last_at,
        )
        await self.session.execute(statement)
