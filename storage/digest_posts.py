"""Digest postings: one row per (plan, network, period), inserted with
`ON CONFLICT DO NOTHING` so a period's digest is posted once. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import (
    DigestRow,
)
from storage.repositories import utc


class DigestRepository:
    """Digest postings: one per (plan, network, period)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        *,
        plan_id: int,
        network_id: int,
        period: str,
        as_of: date,
        mix: dict[str, object],
        now: datetime,
    ) -> int | None:
        """Record this period's posting; None when it was already posted."""
        statement = (
            dialect_insert(self.session, DigestRow)
            .values(
                plan_id=plan_id,
                network_id=network_id,
                period=period,
                as_of=as_of,
                mix=mix,
                created_at=utc(now),
            )
            .on_conflict_do_nothing(index_elements=["plan_id", "network_id", "period"])
            .returning(DigestRow.id)
        )
        new_id: int | None = (await self.session.execute(statement)).scalar_one_or_none()
        return new_id

    async def trends(
        self, *, plan_id: int, network_ids: Sequence[int], before: str, limit: int = 6
    ) -> dict[int, list[tuple[str, dict[str, int]]]]:
        """Per network, the rating mix of its last `limit` posted digests before `before`,
        oldest first (an empty list for a network with none), read in one query."""
        recent = (
            select(
                DigestRow.network_id,
                DigestRow.period,
                DigestRow.mix,
                func.row_number()
                .over(partition_by=DigestRow.network_id, order_by=DigestRow.period.desc())
                .label("age"),
            )
            .where(
                DigestRow.plan_id == plan_id,
                DigestRow.network_id.in_(list(network_ids)),
                DigestRow.period < before,
            )
            .subquery()
        )
        rows = await self.session.execute(
            select(recent.c.network_id, recent.c.period, recent.c.mix)
            .where(recent.c.age <= limit)
            .order_by(recent.c.network_id, recent.c.period)
        )
        found: dict[int, list[tuple[str, dict[str, int]]]] = {n: [] for n in network_ids}
        for network_id, period, mix in rows.tuples():
            found[network_id].append((period, {str(k): int(str(v)) for k, v in dict(mix).items()}))
        return found
