"""What `/healthz` and `/metrics` read from the database: a few counts, in one short
read-only transaction, so a scrape costs the database next to nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.mail_states import OutboxState
from storage.models import InboundRow, OutboxRow
from storage.repositories import utc


@dataclass(frozen=True, slots=True)
class DatabaseSnapshot:
    """The outbox by state, inbound mail by outcome, and the oldest message waiting."""

    outbox: dict[str, int] = field(default_factory=dict)
    inbound: dict[str, int] = field(default_factory=dict)
    # When the pending message that has been due longest became due; None when none is.
    oldest_due: datetime | None = None


class MonitoringRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def snapshot(self, *, now: datetime) -> DatabaseSnapshot:
        """Counts by state of the outbox and the inbound table, and the oldest due message."""
        outbox = (
            await self.session.execute(
                select(OutboxRow.state, func.count()).group_by(OutboxRow.state)
            )
        ).tuples()
        inbound = (
            await self.session.execute(
                select(InboundRow.state, func.count()).group_by(InboundRow.state)
            )
        ).tuples()
        oldest = await self.session.scalar(
            select(func.min(OutboxRow.next_attempt_at)).where(
                OutboxRow.state == OutboxState.PENDING, OutboxRow.next_attempt_at <= utc(now)
            )
        )
        return DatabaseSnapshot(
            outbox=dict(outbox.all()),
            inbound=dict(inbound.all()),
            oldest_due=utc(oldest) if oldest is not None else None,
        )
