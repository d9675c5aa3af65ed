"""Prompts and their tokens: whom we asked about which milestones in which cycle, when it went
out, and when it was answered.

A prompt and its outbox row are inserted in the caller's one transaction, the prompt with
`ON CONFLICT DO NOTHING` on (plan, person, cycle), so concurrent tickers plan a cycle once.
Never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.answers import AskedPrompt, asked_prompt
from storage.db import IN_CHUNK, dialect_insert
from storage.models import (
    PromptRow,
    PromptTokenRow,
)
from storage.repositories import utc


@dataclass(frozen=True, slots=True)
class StoredPrompt:
    """A prompt as stored, detached from its session: whom it asked, about what, and how
    far it got (sent, reminded, answered; carried in another's message)."""

    id: int
    plan_id: int
    person_id: int
    cycle: str
    channel: str
    milestone_refs: tuple[str, ...]
    created_at: datetime
    sent_at: datetime | None = None
    reminded_at: datetime | None = None
    answered_at: datetime | None = None
    sent_with: int | None = None

    def asked(self) -> AskedPrompt:
        """The prompt as answering it needs it."""
        return AskedPrompt(
            self.id,
            self.plan_id,
            self.person_id,
            self.milestone_refs,
            self.created_at,
            self.sent_with,
        )


def stored_prompt(row: PromptRow) -> StoredPrompt:
    return StoredPrompt(
        id=row.id,
        plan_id=row.plan_id,
        person_id=row.person_id,
        cycle=row.cycle,
        channel=row.channel,
        milestone_refs=tuple(row.milestone_refs),
        created_at=utc(row.created_at),
        sent_at=_utc_or_none(row.sent_at),
        reminded_at=_utc_or_none(row.reminded_at),
        answered_at=_utc_or_none(row.answered_at),
        sent_with=row.sent_with,
    )


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return utc(moment) if moment is not None else None


@dataclass(frozen=True, slots=True)
class NewPrompt:
    plan_id: int
    person_id: int
    cycle: str
    channel: str
    milestone_refs: tuple[str, ...]
    on_behalf_of: tuple[str, ...]


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
            dialect_insert(self.session, PromptRow)
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

    async def get(self, prompt_id: int) -> StoredPrompt | None:
        row = await self.session.get(PromptRow, prompt_id)
        return stored_prompt(row) if row is not None else None

    async def awaiting_reminder(self, plan_id: int) -> list[StoredPrompt]:
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
        return [stored_prompt(row) for row in rows.all()]

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

    async def current_cycle(self, plan_id: int, *, until: datetime) -> list[StoredPrompt]:
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

    async def for_cycle(self, plan_id: int, cycle: str) -> list[StoredPrompt]:
        rows = await self.session.scalars(
            select(PromptRow).where(PromptRow.plan_id == plan_id, PromptRow.cycle == cycle)
        )
        return [stored_prompt(row) for row in rows.all()]
