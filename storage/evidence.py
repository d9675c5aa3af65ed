"""Evidence of impact: what changed for children and families, given with a rating of 1
(issue 17). Each milestone's evidence is the latest given with an answer that still counts
(not changed within its prompt, not withdrawn). Found through a partial index on the updates
that carry some, so a plan with millions of answers reads only those."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.ratings import ACHIEVED
from storage.models import MilestoneRow, PlanRow, UpdateRow, milestone_state
from storage.repositories import counted, utc


@dataclass(frozen=True, slots=True)
class Evidence:
    """A milestone's evidence of impact and when it was given."""

    ref: str
    text: str
    given_at: datetime


class EvidenceRepository:
    """Reads evidence of impact; never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def of_plan(
        self,
        plan_key: str,
        *,
        refs: Collection[str] | None = None,
        until: datetime | None = None,
    ) -> dict[str, Evidence]:
        """Each milestone's latest evidence given before `until` (default: ever), by
        milestone reference; milestones with none are absent."""
        query = (
            select(MilestoneRow.ref, UpdateRow.evidence, UpdateRow.given_at)
            .join(MilestoneRow, MilestoneRow.id == UpdateRow.milestone_id)
            .join(PlanRow, PlanRow.id == MilestoneRow.plan_id)
            .where(
                PlanRow.key == plan_key,
                UpdateRow.evidence.is_not(None),
                counted(until),
                *([] if until is None else [UpdateRow.given_at < utc(until)]),
                *([] if refs is None else [MilestoneRow.ref.in_(list(refs))]),
            )
            .order_by(UpdateRow.given_at, UpdateRow.id)
        )
        found: dict[str, Evidence] = {}
        for ref, text, given_at in (await self.session.execute(query)).tuples():
            if text:
                found[ref] = Evidence(ref, text, utc(given_at))
        return found

    async def of_achieved(
        self, plan_key: str, *, until: datetime, rated_since: datetime | None = None
    ) -> dict[str, Evidence]:
        """The latest evidence given before `until` of each live milestone that may be
        achieved then, by reference: those whose latest rating is 1 in `milestone_state`,
        given at or after `rated_since` when set (a digest's or a pack's period), and any
        answered on or after `until` (their state is newer than that day). One query; each
        milestone's evidence is one probe of the partial index from its newest, so the cost
        follows the milestones achieved in the period, not the length of the history."""
        state = milestone_state.c
        achieved = [state.rated_rating == ACHIEVED]
        if rated_since is not None:
            achieved.append(state.rated_given_at >= utc(rated_since))
        latest = (
            select(UpdateRow.id)
            .where(
                UpdateRow.milestone_id == MilestoneRow.id,
                UpdateRow.evidence.is_not(None),
                UpdateRow.given_at < utc(until),
                counted(until),
            )
            .order_by(UpdateRow.given_at.desc(), UpdateRow.id.desc())
            .limit(1)
            .correlate(MilestoneRow)
            .scalar_subquery()
        )
        plan_id = select(PlanRow.id).where(PlanRow.key == plan_key).scalar_subquery()
        # The chosen update ids first, then the updates by primary key: joined on the probe
        # itself, PostgreSQL hashes the whole `updates` table to match them. OFFSET 0 keeps
        # it from folding the subquery back into the join.
        chosen = (
            select(MilestoneRow.ref.label("ref"), latest.label("update_id"))
            .join(milestone_state, state.milestone_id == MilestoneRow.id)
            .where(
                MilestoneRow.plan_id == plan_id,
                MilestoneRow.retired.is_(False),
                or_(and_(*achieved), state.latest_given_at >= utc(until)),
            )
            .offset(0)
            .subquery()
        )
        query = select(chosen.c.ref, UpdateRow.evidence, UpdateRow.given_at).join(
            UpdateRow, UpdateRow.id == chosen.c.update_id
        )
        return {
            ref: Evidence(ref, text, utc(given_at))
            for ref, text, given_at in (await self.session.execute(query)).tuples()
            if text
        }
