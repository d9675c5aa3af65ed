"""Inbound mail as stored: each raw message kept (deduplicated) before the source is told it
was taken, then decided once and its outcome written back. Never commits."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import IN_CHUNK, dialect_insert
from storage.models import (
    InboundRow,
)
from storage.repositories import utc


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """An inbound message waiting to be decided, detached from its session."""

    id: int
    dedupe_key: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class InboundDecision:
    """What became of one inbound message: written back by `InboundRepository.finish`."""

    id: int
    state: str
    outcome: str
    prompt_id: int | None
    sender: str | None = None  # the From address, counted for the hourly limit per sender


@dataclass(frozen=True, slots=True)
class InboundSummary:
    """A stored message as `pulse status --inbox` lists it: its outcome and the start of
    its raw bytes (`head`), never the whole message."""

    id: int
    received_at: datetime
    state: str
    outcome: str | None
    head: bytes


def _storable(text: str) -> str:
    """Text for a column: PostgreSQL cannot store NUL, and an outcome may quote a message."""
    return text.replace("\x00", "")


class InboundRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def store(self, *, dedupe_key: str, source: str, raw: bytes, now: datetime) -> bool:
        """Keep a raw message; False when the same message was already taken in."""
        statement = (
            dialect_insert(self.session, InboundRow)
            .values(
                dedupe_key=dedupe_key, source=source, raw=raw, received_at=utc(now), state="new"
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(InboundRow.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none() is not None

    async def store_many(
        self, messages: Sequence[tuple[str, bytes]], *, source: str, now: datetime
    ) -> int:
        """Keep many raw messages, (dedupe key, raw) each, in one statement; how many were
        new. A message taken in before, or twice in `messages`, is kept once."""
        if not messages:
            return 0
        statement = (
            dialect_insert(self.session, InboundRow)
            .values(
                [
                    {
                        "dedupe_key": key,
                        "source": source,
                        "raw": raw,
                        "received_at": utc(now),
                        "state": "new",
                    }
                    for key, raw in messages
                ]
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(InboundRow.id)
        )
        return len((await self.session.execute(statement)).all())

    async def store_unread(
        self, *, dedupe_key: str, source: str, head: bytes, outcome: str, now: datetime
    ) -> bool:
        """Keep a message that was not read whole (too large) as already decided:
        "unprocessable", with `outcome` saying why and only its header section (`head`);
        False when it was kept before. Deciding never sees it."""
        statement = (
            dialect_insert(self.session, InboundRow)
            .values(
                dedupe_key=dedupe_key,
                source=source,
                raw=head,
                received_at=utc(now),
                state="unprocessable",
                outcome=_storable(outcome),
                processed_at=utc(now),
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(InboundRow.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none() is not None

    async def count_new(self) -> int:
        """How many stored messages wait to be decided."""
        count = await self.session.scalar(
            select(func.count()).select_from(InboundRow).where(InboundRow.state == "new")
        )
        return int(count or 0)

    async def listing(self, states: Sequence[str], *, head_bytes: int) -> list[InboundSummary]:
        """The messages in `states`, oldest first, each with only the first `head_bytes` of
        its raw bytes (where its header section is): never every message whole."""
        head = func.substr(InboundRow.raw, 1, head_bytes)
        rows = await self.session.execute(
            select(
                InboundRow.id,
                InboundRow.received_at,
                InboundRow.state,
                InboundRow.outcome,
                head,
            )
            .where(InboundRow.state.in_(list(states)))
            .order_by(InboundRow.id)
        )
        return [
            InboundSummary(i, received, state, outcome, bytes(raw or b""))
            for i, received, state, outcome, raw in rows.tuples()
        ]

    async def pending(self, limit: int, *, now: datetime | None = None) -> list[StoredMessage]:
        """The oldest undecided messages (but those held back until after `now`); on
        PostgreSQL locked for this transaction, skipping any another worker holds."""
        query = (
            select(InboundRow.id, InboundRow.dedupe_key, InboundRow.raw)
            .where(InboundRow.state == "new")
            .order_by(InboundRow.id)
            .limit(limit)
        )
        if now is not None:
            query = query.where(
                or_(InboundRow.not_before.is_(None), InboundRow.not_before <= utc(now))
            )
        if self.session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = await self.session.execute(query)
        return [StoredMessage(i, key, bytes(raw)) for i, key, raw in rows.tuples()]

    async def finish(self, decisions: Sequence[InboundDecision], *, now: datetime) -> None:
        """Write each message's outcome (one statement, executed for many)."""
        if not decisions:
            return
        table = cast(Table, InboundRow.__table__)
        statement = (
            table.update()
            .where(table.c.id == bindparam("row_id"), table.c.state == "new")
            .values(
                state=bindparam("new_state"),
                outcome=bindparam("new_outcome"),
                prompt_id=bindparam("new_prompt_id"),
                sender=bindparam("new_sender"),
                processed_at=utc(now),
            )
        )
        await self.session.execute(
            statement,
            [
                {
                    "row_id": d.id,
                    "new_state": d.state,
                    "new_outcome": _storable(d.outcome),
                    "new_prompt_id": d.prompt_id,
                    "new_sender": d.sender,
                }
                for d in decisions
            ],
        )

    async def decided_since(self, senders: Collection[str], since: datetime) -> dict[str, int]:
        """How many messages from each of `senders` were decided since `since`."""
        counts: dict[str, int] = {}
        wanted = list(senders)
        for start in range(0, len(wanted), IN_CHUNK):
            rows = await self.session.execute(
                select(InboundRow.sender, func.count())
                .where(
                    InboundRow.sender.in_(wanted[start : start + IN_CHUNK]),
                    InboundRow.processed_at >= utc(since),
                )
                .group_by(InboundRow.sender)
            )
            counts.update((sender, int(n)) for sender, n in rows.tuples() if sender)
        return counts

    async def held_senders(self, senders: Sequence[str], until: datetime) -> set[str]:
        """Those of `senders` with messages already held back until `until`."""
        rows = await self.session.scalars(
            select(InboundRow.sender)
            .where(
                InboundRow.sender.in_(list(senders)),
                InboundRow.state == "new",
                InboundRow.not_before == utc(until),
            )
            .distinct()
        )
        return {sender for sender in rows.all() if sender}

    async def hold_back(self, ids: Sequence[int], *, sender: str, until: datetime) -> None:
        """Leave these messages undecided until `until` (their sender's limit is reached)."""
        if ids:
            await self.session.execute(
                update(InboundRow)
                .where(InboundRow.id.in_(list(ids)), InboundRow.state == "new")
                .values(sender=sender, not_before=utc(until))
            )
