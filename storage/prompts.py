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
