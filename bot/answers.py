"""Recording answers to a prompt, whichever channel they came by (email now, Slack too).

`answer_context` decides who may answer what: the prompt's person and their delegate may
answer everything it asked; a joint lead may answer the milestones they lead. It also gives
what each asked milestone looks like today, which the note rule needs. `record_answers`
appends the updates (deduplicated by external id) and marks the prompt answered, in the
caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import Person, Plan, Source
from bot.domain.replies import AskedMilestone, ReplyLine
from bot.domain.status import MilestoneStatus, local_date, milestone_status
from storage.delivery import PromptRepository
from storage.models import MilestoneRow, PersonRow, PlanRow, PromptRow, UpdateRow
from storage.repositories import PlanRepository, person_from_row, utc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnswerContext:
    """What `writer` may answer on `prompt`, as things stand `today`."""

    plan: Plan
    prompt_id: int
    owner: Person
    writer: Person
    asked: tuple[AskedMilestone, ...]  # every milestone the prompt asked about
    allowed: frozenset[str]  # the references this writer may answer
    today: date

    def asked_by_ref(self) -> dict[str, AskedMilestone]:
        return {a.ref: a for a in self.asked}


class NotAllowed(Exception):
    """The writer may not answer this prompt at all; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def answer_context(
    session: AsyncSession, prompt: PromptRow, writer_key: str, *, now: datetime
) -> AnswerContext:
    """The context of an answer by `writer_key` to `prompt`; raises `NotAllowed`."""
    plan_row = await session.get(PlanRow, prompt.plan_id)
    owner_row = await session.get(PersonRow, prompt.person_id)
    if plan_row is None or owner_row is None:
        raise NotAllowed("the prompt no longer exists")
    tracked = await PlanRepository(session).tracked(plan_row.key, refs=prompt.milestone_refs)
    writer_row = await session.scalar(select(PersonRow).where(PersonRow.key == writer_key))
    if writer_row is None:
        raise NotAllowed(f"{writer_key} is not a known person")
    writer = await _person(session, writer_row)
    owner = await _person(session, owner_row)
    milestones = {m.ref: m for a in tracked.actions for m in a.milestones}
    refs = [r for r in prompt.milestone_refs if r in milestones]
    if writer.key in (owner.key, owner.delegate_key):
        allowed = frozenset(refs)
    else:
        allowed = frozenset(r for r in refs if writer.key in milestones[r].leads)
    if not allowed:
        raise NotAllowed(f"{writer.key} may not answer {owner.key}'s prompt")
    today = local_date(now, tracked.plan.timezone)
    asked = []
    for ref in refs:
        status = milestone_status(
            milestones[ref].timescale,
            tracked.updates.get(ref, ()),
            today=today,
            policy=tracked.plan.policy,
            timezone=tracked.plan.timezone,
        )
        asked.append(AskedMilestone(ref, status.rating, status.status is MilestoneStatus.OVERDUE))
    return AnswerContext(tracked.plan, prompt.id, owner, writer, tuple(asked), allowed, today)


async def _person(session: AsyncSession, row: PersonRow) -> Person:
    delegate = (
        await session.scalar(select(PersonRow.key).where(PersonRow.id == row.delegate_id))
        if row.delegate_id
        else None
    )
    return person_from_row(row, delegate)


async def record_answers(
    session: AsyncSession,
    context: AnswerContext,
    lines: Sequence[ReplyLine],
    *,
    source: Source,
    external_key: str,
    given_at: datetime,
    now: datetime,
) -> int:
    """Append one update per line the writer may give; returns how many were new.

    Each update's external id is `external_key#ref`, unique per source: the same click or
    message recorded twice is recorded once.
    """
    lines = [line for line in lines if line.ref in context.allowed]
    if not lines:
        return 0
    ids = dict(
        (
            await session.execute(
                select(MilestoneRow.ref, MilestoneRow.id)
                .join(PlanRow, PlanRow.id == MilestoneRow.plan_id)
                .where(
                    PlanRow.key == context.plan.key,
                    MilestoneRow.ref.in_([line.ref for line in lines]),
                )
            )
        )
        .tuples()
        .all()
    )
    writer_id = await session.scalar(
        select(PersonRow.id).where(PersonRow.key == context.writer.key)
    )
    external = {f"{external_key}#{line.ref}"[:255]: line for line in lines}
    known = set(
        (
            await session.scalars(
                select(UpdateRow.external_id).where(
                    UpdateRow.source == source.value, UpdateRow.external_id.in_(list(external))
                )
            )
        ).all()
    )
    recorded = 0
    for external_id, line in external.items():
        if external_id in known:
            continue
        session.add(
            UpdateRow(
                milestone_id=ids[line.ref],
                person_id=writer_id,
                rating=line.rating,
                note=line.note,
                revised_due=line.revised_due,
                needs_support=line.needs_support,
                source=source.value,
                external_id=external_id,
                given_at=utc(given_at),
                recorded_at=utc(now),
            )
        )
        recorded += 1
        log.info(
            "recorded %s answer for %s of %s from %s: rating %s%s",
            source.value,
            line.ref,
            context.plan.key,
            context.writer.key,
            line.rating if line.rating is not None else "-",
            ", needs support" if line.needs_support else "",
        )
    if recorded:
        await session.flush()
        await PromptRepository(session).mark_answered(context.prompt_id, now)
    return recorded
