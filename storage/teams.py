"""Where each network's Teams channel is reached: its Workflows webhook (bot.domain.webhooks).

The URL carries the flow's signature, so it is read here only when a post is about to be
sent or checked, and never copied elsewhere.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import NetworkRow


async def teams_webhook(session: AsyncSession, network_key: str) -> str | None:
    """The network's webhook URL, or None when it has none (or there is no such network)."""
    url = await session.scalar(
        select(NetworkRow.teams_webhook).where(NetworkRow.key == network_key)
    )
    return url or None


async def teams_webhooks(session: AsyncSession) -> list[tuple[str, str, str]]:
    """(key, name, webhook URL) of every network with a webhook, by key."""
    rows = await session.execute(
        select(NetworkRow.key, NetworkRow.name, NetworkRow.teams_webhook)
        .where(NetworkRow.teams_webhook.is_not(None), NetworkRow.teams_webhook != "")
        .order_by(NetworkRow.key)
    )
    return [(key, name, url or "") for key, name, url in rows.tuples()]
