"""Delivery reports: each failed address a report names, kept to count hard bounces
against the limit after which an address is no longer mailed. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.autoreplies import Bounce
from storage.models import EmailBounceRow
from storage.repositories import utc


class BounceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, bounces: Sequence[Bounce], *, inbound_id: int, now: datetime) -> None:
        """Keep the bounces one delivery report (stored message `inbound_id`) names."""
        for bounce in bounces:
            self.session.add(
                EmailBounceRow(
                    address=bounce.address,
                    hard=bounce.hard,
                    status=bounce.status,
                    inbound_id=inbound_id,
                    bounced_at=utc(now),
                )
            )
        await self.session.flush()

    async def hard_count(self, address: str) -> int:
        """How many hard bounces of `address` are kept."""
        found = await self.session.scalar(
            select(func.count())
            .select_from(EmailBounceRow)
            .where(EmailBounceRow.address == address, EmailBounceRow.hard.is_(True))
        )
        return int(found or 0)
