"""Prompts, the outbox, watermarks and inbound messages: the tables that make delivery
durable (RELIABILITY.md, "Decisions").

A prompt and its outbox row are inserted in the caller's one transaction, the prompt with
`ON CONFLICT DO NOTHING` on (plan, person, cycle), so concurrent tickers plan a cycle once.
Workers claim outbox rows with a lease: `FOR UPDATE SKIP LOCKED` on PostgreSQL, a single
conditional `UPDATE ... RETURNING` on SQLite (one process there; see `bot.locks`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.answers import AskedPrompt, asked_prompt
from storage.models import (
    DigestRow,
    InboundRow,
    OutboxRow,
    PromptRow,
    PromptTokenRow,
    WatermarkRow,
)
from storage.repositories import utc

# Values per IN (...) list: well under SQLite's and PostgreSQL's limits on parameters.
IN_CHUNK = 500


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


def _insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that can say ON CONFLICT DO NOTHING on either database."""
    if session.bind.dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)


@dataclass(frozen=True, slots=True)
class NewPrompt:
    plan_id: int
    person_id: int
    cycle: str
    channel: str
    milestone_refs: tuple[str, ...]
    on_behalf_of: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewMessage:
    dedupe_key: str
    kind: str
    channel: str
    recipient: str
    payload: dict[str, Any]
    message_id: str | None = None
    prompt_id: int | None = None


class PromptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_many(self, prompts: Sequence[NewPrompt], *, now: datetime) -> dict[int, int]:
        """Insert prompts, skipping anyone already prompted this cycle (the unique key
        decides, so concurrent tickers agree); {person_id: prompt_id} of those inserted."""
        inserted: dict[int, int] = {}
        rows = [
            {
                "plan_id": p.plan_id,
                "person_id": p.person_id,
                "cycle": p.cycle,
                "channel": p.channel,
                "milestone_refs": list(p.milestone_refs),
                "on_behalf_of": list(p.on_behalf_of),
                "created_at": utc(now),
            }
            for p in prompts
        ]
        if not rows:
            return inserted
        # One statement compiled once and sent as batches of VALUES ("insertmanyvalues").
        statement = (
            _insert(self.session, PromptRow)
            .on_conflict_do_nothing(index_elements=["plan_id", "person_id", "cycle"])
            .returning(PromptRow.person_id, PromptRow.id)
        )
        for person_id, prompt_id in (await self.session.execute(statement, rows)).tuples():
            inserted[person_id] = prompt_id
        return inserted

    async def prompted(self, plan_id: int, cycle: str) -> set[int]:
        """The people already prompted in this cycle."""
        rows = await self.session.scalars(
            select(PromptRow.person_id).where(
                PromptRow.plan_id == plan_id, PromptRow.cycle == cycle
            )
        )
        return set(rows.all())

    async def add_tokens(self, tokens: Sequence[tuple[int, str]], *, expires_at: datetime) -> None:
        """Store (prompt id, token hash) pairs."""
        if tokens:
            await self.session.execute(
                insert(PromptTokenRow),
                [
                    {"prompt_id": pid, "token_hash": digest, "expires_at": utc(expires_at)}
                    for pid, digest in tokens
                ],
            )

    async def by_token_hashes(
        self, token_hashes: Sequence[str]
    ) -> dict[str, tuple[AskedPrompt, datetime]]:
        """The prompts the tokens with these hashes answer, and when each token expires: the
        ones found, by token hash."""
        found: dict[str, tuple[AskedPrompt, datetime]] = {}
        hashes = list(dict.fromkeys(token_hashes))
        for start in range(0, len(hashes), IN_CHUNK):
            rows = await self.session.execute(
                select(PromptRow, PromptTokenRow.token_hash, PromptTokenRow.expires_at)
                .join(PromptTokenRow, PromptTokenRow.prompt_id == PromptRow.id)
                .where(PromptTokenRow.token_hash.in_(hashes[start : start + IN_CHUNK]))
            )
            for prompt, digest, expires in rows.tuples():
                found.setdefault(digest, (asked_prompt(prompt), utc(expires)))
        return found

    async def get(self, prompt_id: int) -> PromptRow | None:
        return await self.session.get(PromptRow, prompt_id)

    async def awaiting_reminder(self, plan_id: int) -> list[PromptRow]:
        """Sent, unanswered, not yet reminded prompts that are their person's latest."""
        later = aliased(PromptRow)
        newer = (
            select(later.id)
            .where(
                later.plan_id == PromptRow.plan_id,
                later.person_id == PromptRow.person_id,
                later.id > PromptRow.id,
            )
            .exists()
        )
        rows = await self.session.scalars(
            select(PromptRow).where(
                PromptRow.plan_id == plan_id,
                PromptRow.sent_at.is_not(None),
                PromptRow.answered_at.is_(None),
                PromptRow.reminded_at.is_(None),
                ~newer,
            )
        )
        return list(rows.all())

    async def mark_reminded(self, prompt_id: int, now: datetime) -> bool:
        """Claim the one reminder of a prompt; False when someone else already did."""
        result = await self.session.execute(
            update(PromptRow)
            .where(PromptRow.id == prompt_id, PromptRow.reminded_at.is_(None))
            .values(reminded_at=utc(now))
        )
        return bool(getattr(result, "rowcount", 0))

    async def send_with(self, carrier_id: int, prompt_ids: Sequence[int]) -> None:
        """Mark `prompt_ids` as going out in the message of prompt `carrier_id`."""
        if prompt_ids:
            await self.session.execute(
                update(PromptRow)
                .where(PromptRow.id.in_(list(prompt_ids)))
                .values(sent_with=carrier_id)
            )

    async def mark_sent(self, prompt_id: int, now: datetime) -> None:
        await self.mark_sent_many([prompt_id], now)

    async def mark_sent_many(self, prompt_ids: Sequence[int], now: datetime) -> None:
        """Mark prompts sent, with the prompts that went out in their messages."""
        if prompt_ids:
            ids = list(prompt_ids)
            await self.session.execute(
                update(PromptRow)
                .where(
                    or_(PromptRow.id.in_(ids), PromptRow.sent_with.in_(ids)),
                    PromptRow.sent_at.is_(None),
                )
                .values(sent_at=utc(now))
            )

    async def current_cycle(self, plan_id: int, *, until: datetime) -> list[PromptRow]:
        """The prompts of the plan's latest cycle started by `until`."""
        latest = await self.session.scalar(
            select(PromptRow.cycle)
            .where(PromptRow.plan_id == plan_id, PromptRow.created_at <= utc(until))
            .order_by(PromptRow.created_at.desc(), PromptRow.id.desc())
            .limit(1)
        )
        if latest is None:
            return []
        return await self.for_cycle(plan_id, latest)

    async def for_cycle(self, plan_id: int, cycle: str) -> list[PromptRow]:
        rows = await self.session.scalars(
            select(PromptRow).where(PromptRow.plan_id == plan_id, PromptRow.cycle == cycle)
        )
        return list(rows.all())


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
        statement = _insert(self.session, WatermarkRow).values(
            plan_id=plan_id, job=job, last_at=utc(to)
        )
        table = WatermarkRow.__table__
        statement = statement.on_conflict_do_update(
            index_elements=["plan_id", "job"],
            set_={"last_at": statement.excluded.last_at},
            where=table.c.last_at < statement.excluded.last_at,
        )
        await self.session.execute(statement)


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
            _insert(self.session, OutboxRow)
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
            statement = _insert(self.session, OutboxRow).on_conflict_do_nothing(
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

    async def message_id_for(self, dedupe_key: str) -> str | None:
        value: str | None = await self.session.scalar(
            select(OutboxRow.message_id).where(OutboxRow.dedupe_key == dedupe_key)
        )
        return value


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
            _insert(self.session, InboundRow)
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
            _insert(self.session, InboundRow)
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
            _insert(self.session, InboundRow)
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

    async def by_state(self, state: str) -> list[InboundRow]:
        rows = await self.session.scalars(
            select(InboundRow).where(InboundRow.state == state).order_by(InboundRow.id)
        )
        return list(rows.all())


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
            _insert(self.session, DigestRow)
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
