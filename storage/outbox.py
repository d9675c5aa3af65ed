"""The outbox: every message we send is a row first, written in the transaction of what
decided it (RELIABILITY.md, "Decisions").

Workers claim outbox rows with a lease: `FOR UPDATE SKIP LOCKED` on PostgreSQL, a single
conditional `UPDATE ... RETURNING` on SQLite (one process there; see `bot.locks`). Never
commits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import IN_CHUNK, dialect_insert
from storage.models import (
    OutboxRow,
)
from storage.repositories import utc


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A claimed outbox row, detached from its session."""

    id: int
    kind: str
    channel: str
    recipient: str
    message_id: str | None
    payload: dict[str, Any]
    prompt_id: int | None
    attempts: int
    state: str


def _message(row: OutboxRow) -> OutboxMessage:
    return OutboxMessage(
        row.id,
        row.kind,
        row.channel,
        row.recipient,
        row.message_id,
        dict(row.payload),
        row.prompt_id,
        row.attempts,
        row.state,
    )


@dataclass(frozen=True, slots=True)
class NewMessage:
    dedupe_key: str
    kind: str
    channel: str
    recipient: str
    payload: dict[str, Any]
    message_id: str | None = None
    prompt_id: int | None = None


# Leased states: "claimed" (not handed over: safe to send again) and "sending" (handed
# over, or about to be: its outcome is unknown until the transport reconciles it).
LEASED = ("claimed", "sending")
# Settled for good unless an admin says otherwise (`pulse outbox`).
NEEDS_ADMIN = ("failed", "needs_review")


@dataclass(frozen=True, slots=True)
class OutboxProblem:
    """A failed or needs-review message, as `pulse outbox` lists it."""

    id: int
    state: str
    kind: str
    channel: str
    recipient: str
    when: datetime
    why: str


# Built once: a confirmation looks its prompt's message up on every submit.
_MESSAGE_IDS = select(OutboxRow.dedupe_key, OutboxRow.message_id).where(
    OutboxRow.dedupe_key.in_(bindparam("keys", expanding=True)),
    OutboxRow.message_id.is_not(None),
)


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enqueue(
        self,
        *,
        dedupe_key: str,
        kind: str,
        channel: str,
        recipient: str,
        payload: dict[str, Any],
        now: datetime,
        message_id: str | None = None,
        prompt_id: int | None = None,
    ) -> int | None:
        """Add a message unless one with the same dedupe key exists; its id, or None."""
        statement = (
            dialect_insert(self.session, OutboxRow)
            .values(
                dedupe_key=dedupe_key,
                kind=kind,
                channel=channel,
                recipient=recipient,
                payload=payload,
                message_id=message_id,
                prompt_id=prompt_id,
                state="pending",
                attempts=0,
                next_attempt_at=utc(now),
                created_at=utc(now),
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(OutboxRow.id)
        )
        new_id: int | None = (await self.session.execute(statement)).scalar_one_or_none()
        return new_id

    async def enqueue_many(self, messages: Sequence[NewMessage], *, now: datetime) -> None:
        """Add messages in bulk; one whose dedupe key exists is skipped."""
        rows = [
            {
                "dedupe_key": m.dedupe_key,
                "kind": m.kind,
                "channel": m.channel,
                "recipient": m.recipient,
                "payload": m.payload,
                "message_id": m.message_id,
                "prompt_id": m.prompt_id,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": utc(now),
                "created_at": utc(now),
            }
            for m in messages
        ]
        if rows:
            statement = dialect_insert(self.session, OutboxRow).on_conflict_do_nothing(
                index_elements=["dedupe_key"]
            )
            await self.session.execute(statement, rows)

    async def claim(
        self, *, owner: str, now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxMessage]:
        """Lease up to `limit` due rows to `owner`; no row is ever leased to two owners."""
        due = and_(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= utc(now))
        values = {
            "state": "claimed",
            "lease_owner": owner,
            "lease_until": utc(now + lease),
            "attempts": OutboxRow.attempts + 1,
            "attempted_at": utc(now),
        }
        if self.session.bind.dialect.name == "postgresql":
            ids = (
                (
                    await self.session.execute(
                        select(OutboxRow.id)
                        .where(due)
                        .order_by(OutboxRow.id)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            chosen = OutboxRow.id.in_(ids)
        else:
            chosen = OutboxRow.id.in_(
                select(OutboxRow.id).where(due).order_by(OutboxRow.id).limit(limit)
            )
        rows = (
            await self.session.scalars(
                update(OutboxRow)
                .where(chosen, due)
                .values(**values)
                .returning(OutboxRow)
                .execution_options(synchronize_session=False)
            )
        ).all()
        return sorted((_message(r) for r in rows), key=lambda m: m.id)

    async def mark_sending(
        self, message_ids: Sequence[int], *, owner: str, now: datetime, lease: timedelta
    ) -> set[int]:
        """These rows are about to be handed over: from now on their outcome must be
        reconciled if the worker vanishes, where a merely claimed row is simply resent.
        Only rows `owner` still holds (claimed by it, lease not run out) are marked, their
        lease renewed; the ids marked. A row not among them is someone else's: never send it."""
        if not message_ids:
            return set()
        marked = await self.session.scalars(
            update(OutboxRow)
            .where(
                OutboxRow.id.in_(list(message_ids)),
                OutboxRow.lease_owner == owner,
                OutboxRow.state == "claimed",
                OutboxRow.lease_until > utc(now),
            )
            .values(state="sending", lease_until=utc(now + lease))
            .returning(OutboxRow.id)
            .execution_options(synchronize_session=False)
        )
        return set(marked.all())

    async def renew(
        self, message_ids: Sequence[int], *, owner: str, now: datetime, lease: timedelta
    ) -> int:
        """Extend the leases `owner` still holds on these rows (a slow batch keeps them);
        how many it still holds. A row another worker took over is left to it."""
        if not message_ids:
            return 0
        result = await self.session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id.in_(list(message_ids)),
                OutboxRow.lease_owner == owner,
                OutboxRow.state.in_(LEASED),
            )
            .values(lease_until=utc(now + lease))
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))

    async def expired_leases(self, *, now: datetime, limit: int) -> list[OutboxMessage]:
        """Rows whose sender vanished mid-send: their outcome is unknown until reconciled."""
        rows = await self.session.scalars(
            select(OutboxRow)
            .where(OutboxRow.state.in_(LEASED), OutboxRow.lease_until < utc(now))
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        return [_message(r) for r in rows.all()]

    async def take_over(
        self, message_id: int, *, owner: str, now: datetime, lease: timedelta
    ) -> bool:
        """Lease an expired row to `owner` for reconciliation; False if someone else did."""
        result = await self.session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id == message_id,
                OutboxRow.state.in_(LEASED),
                OutboxRow.lease_until < utc(now),
            )
            .values(lease_owner=owner, lease_until=utc(now + lease))
        )
        return bool(getattr(result, "rowcount", 0))

    async def finish(
        self,
        message_id: int,
        *,
        owner: str,
        state: str,
        now: datetime,
        error: str | None = None,
        retry_at: datetime | None = None,
        external_id: str | None = None,
    ) -> bool:
        """Record the outcome of a send by the lease holder; False if the lease was lost."""
        values: dict[str, Any] = {
            "state": state,
            "lease_owner": None,
            "lease_until": None,
            "last_error": error,
        }
        if state == "sent":
            values["sent_at"] = utc(now)
            values["external_id"] = external_id
        if retry_at is not None:
            values["next_attempt_at"] = utc(retry_at)
        result = await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == message_id, OutboxRow.lease_owner == owner)
            .values(**values)
        )
        return bool(getattr(result, "rowcount", 0))

    async def finish_sent(
        self, sent: Sequence[tuple[int, str | None]], *, owner: str, now: datetime
    ) -> None:
        """Record many deliveries at once: (outbox id, external id) pairs."""
        if not sent:
            return
        table = cast(Table, OutboxRow.__table__)
        statement = (
            table.update()
            .where(table.c.id == bindparam("row_id"), table.c.lease_owner == owner)
            .values(
                state="sent",
                sent_at=utc(now),
                lease_owner=None,
                lease_until=None,
                last_error=None,
                external_id=bindparam("ext_id"),
            )
        )
        await self.session.execute(
            statement, [{"row_id": row_id, "ext_id": ext_id} for row_id, ext_id in sent]
        )

    async def release(self, *, owner: str, ids: Sequence[int] | None = None) -> int:
        """Give back rows leased to `owner` that it will not send: every merely claimed
        row, or exactly `ids` (claimed or marked sending but not started)."""
        where = [OutboxRow.lease_owner == owner]
        if ids is None:
            where.append(OutboxRow.state == "claimed")
        else:
            where += [OutboxRow.id.in_(list(ids)), OutboxRow.state.in_(LEASED)]
        result = await self.session.execute(
            update(OutboxRow)
            .where(*where)
            .values(
                state="pending",
                lease_owner=None,
                lease_until=None,
                attempts=func.max(OutboxRow.attempts - 1, 0)
                if self.session.bind.dialect.name == "sqlite"
                else func.greatest(OutboxRow.attempts - 1, 0),
            )
        )
        return int(getattr(result, "rowcount", 0))

    async def problems(self) -> list[OutboxProblem]:
        """Failed and needs-review messages, oldest first."""
        rows = await self.session.scalars(
            select(OutboxRow).where(OutboxRow.state.in_(NEEDS_ADMIN)).order_by(OutboxRow.id)
        )
        return [
            OutboxProblem(
                r.id,
                r.state,
                r.kind,
                r.channel,
                r.recipient,
                utc(r.attempted_at or r.created_at),
                r.last_error or "",
            )
            for r in rows.all()
        ]

    async def problem_counts(self) -> dict[str, int]:
        """How many messages are failed and how many need review (absent: none)."""
        rows = await self.session.execute(
            select(OutboxRow.state, func.count())
            .where(OutboxRow.state.in_(NEEDS_ADMIN))
            .group_by(OutboxRow.state)
        )
        return {state: int(n) for state, n in rows.tuples()}

    async def state_of(self, message_id: int) -> str | None:
        state: str | None = await self.session.scalar(
            select(OutboxRow.state).where(OutboxRow.id == message_id)
        )
        return state

    async def retry(self, message_id: int, *, now: datetime) -> bool:
        """Send a failed or needs-review message again, as if new; False if it is neither."""
        result = await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == message_id, OutboxRow.state.in_(NEEDS_ADMIN))
            .values(state="pending", attempts=0, next_attempt_at=utc(now))
        )
        return bool(getattr(result, "rowcount", 0))

    async def resolve(self, message_id: int, *, sent: bool, now: datetime) -> OutboxMessage | None:
        """Settle a failed or needs-review message as sent or not sent, as a person found;
        the message, or None if it is neither."""
        values: dict[str, Any] = {"state": "sent" if sent else "not_sent"}
        if sent:
            values["sent_at"] = utc(now)
        row = await self.session.scalar(
            update(OutboxRow)
            .where(OutboxRow.id == message_id, OutboxRow.state.in_(NEEDS_ADMIN))
            .values(**values)
            .returning(OutboxRow)
            .execution_options(synchronize_session=False)
        )
        return None if row is None else _message(row)

    async def sent_since(
        self, recipients: Collection[str], *, kinds: Collection[str], since: datetime
    ) -> dict[str, int]:
        """How many messages of `kinds` were queued to each of `recipients` since `since`."""
        counts: dict[str, int] = {}
        wanted = list(recipients)
        for start in range(0, len(wanted), IN_CHUNK):
            rows = await self.session.execute(
                select(OutboxRow.recipient, func.count())
                .where(
                    OutboxRow.recipient.in_(wanted[start : start + IN_CHUNK]),
                    OutboxRow.created_at >= utc(since),
                    OutboxRow.kind.in_(list(kinds)),
                )
                .group_by(OutboxRow.recipient)
            )
            counts.update((recipient, int(n)) for recipient, n in rows.tuples())
        return counts

    async def message_ids_for(self, dedupe_keys: Sequence[str]) -> dict[str, str]:
        """The message ids of the messages with these dedupe keys (those that have one)."""
        found: dict[str, str] = {}
        keys = list(dict.fromkeys(dedupe_keys))
        for start in range(0, len(keys), IN_CHUNK):
            rows = await self.session.execute(
                _MESSAGE_IDS, {"keys": keys[start : start + IN_CHUNK]}
            )
            found.update((key, message_id) for key, message_id in rows.tuples() if message_id)
        return found

    async def message_id_for(self, dedupe_key: str) -> str | None:
        value: str | None = await self.session.scalar(
            select(OutboxRow.message_id).where(OutboxRow.dedupe_key == dedupe_key)
        )
        return value
