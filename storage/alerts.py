"""Admin alerts in the outbox: whether one of a kind went out lately, and adding one, in
the caller's transaction (so an alert is queued with what raised it, or not at all)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.mail_states import OutboxKind
from storage.models import OutboxRow
from storage.outbox import OutboxRepository
from storage.repositories import utc

ALERT = OutboxKind.ALERT


async def alert_since(session: AsyncSession, kind: str, *, since: datetime) -> bool:
    """Whether an alert of `kind` was queued at or after `since`."""
    found = await session.scalar(
        select(
            exists().where(
                OutboxRow.kind == ALERT,
                OutboxRow.dedupe_key.like(f"alert:{kind}:%"),
                OutboxRow.created_at >= utc(since),
            )
        )
    )
    return bool(found)


async def queue_alert(
    session: AsyncSession,
    *,
    kind: str,
    recipient: str,
    payload: dict[str, Any],
    message_id: str,
    now: datetime,
) -> bool:
    """Queue one alert email; False when one of its kind is already queued this minute."""
    new = await OutboxRepository(session).enqueue(
        dedupe_key=f"alert:{kind}:{utc(now).strftime('%Y-%m-%dT%H:%M')}",
        kind=ALERT,
        channel="email",
        recipient=recipient,
        payload=payload,
        message_id=message_id,
        now=now,
    )
    return new is not None
