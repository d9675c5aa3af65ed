"""What a board pack needs from the history, aggregated in SQL: who was asked and who
answered over the pack's period, the support asks made in it, and the rating mix per
priority at each of a few days. A national store holds millions of updates; these queries
return one row per person, per milestone asked about, or per (day, priority, rating)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.errors import PlanNotFound
from bot.domain.pack_history import LeadResponse, MixPoint, SupportAsk
from storage.models import (
    ActionNetworkRow,
    ActionRow,
    MilestoneRow,
    NetworkRow,
    PersonRow,
    PlanRow,
    PriorityRow,
    PromptRow,
    UpdateRow,
)
from storage.repositories import utc


class PackHistory:
    """Read-only aggregates of one plan's history for the board pack."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _plan_id(self, key: str) -> int:
        plan_id: int | None = await self.session.scalar(
            select(PlanRow.id).where(PlanRow.key == key)
        )
        if plan_id is None:
            raise PlanNotFound(key)
        return plan_id

    async def responses(self, plan: str, *, since: datetime, until: datetime) -> list[LeadResponse]:
        """Per person prompted before `until`: prompts sent in [since, until), how many of
        them were answered before `until`, and how many of their latest prompts in a row
        are still unanswered (the cycles they have been silent for)."""
        plan_id = await self._plan_id(plan)
        start, end = utc(since), utc(until)
        p = PromptRow
        answered = and_(p.answered_at.is_not(None), p.answered_at < end)
        last = (
            select(p.person_id, func.max(p.cycle).label("cycle"))
            .where(p.plan_id == plan_id, p.sent_at < end, answered)
            .group_by(p.person_id)
            .subquery()
        )
        in_period = p.sent_at >= start
        silent = and_(~answered, or_(last.c.cycle.is_(None), p.cycle > last.c.cycle))
        rows = await self.session.execute(
            select(
                PersonRow.key,
                func.sum(case((in_period, 1), else_=0)),
                func.sum(case((and_(in_period, answered), 1), else_=0)),
                func.sum(case((silent, 1), else_=0)),
            )
            .join(PersonRow, PersonRow.id == p.person_id)
            .outerjoin(last, last.c.person_id == p.person_id)
            .where(p.plan_id == plan_id, p.sent_at.is_not(None), p.sent_at < end)
            .group_by(PersonRow.key)
            .order_by(PersonRow.key)
        )
        return [
            LeadResponse(key, int(asked or 0), int(done or 0), int(streak or 0))
            for key, asked, done, streak in rows.tuples()
        ]

    async def support_asks(
        self, plan: str, *, since: datetime, until: datetime
    ) -> list[SupportAsk]:
        """Per live milestone, the answers in [since, until) that asked for support: how
        many, and the day of the first."""
        plan_id = await self._plan_id(plan)
        u = UpdateRow
        rows = await self.session.execute(
            select(MilestoneRow.ref, func.count(), func.min(u.given_at))
            .join(MilestoneRow, MilestoneRow.id == u.milestone_id)
            .where(
                MilestoneRow.plan_id == plan_id,
                MilestoneRow.retired.is_(False),
                u.needs_support.is_(True),
                u.given_at >= utc(since),
                u.given_at < utc(until),
            )
            .group_by(MilestoneRow.ref)
        )
        return [SupportAsk(ref, int(n), utc(first)) for ref, n, first in rows.tuples()]

    async def rating_mix(
        self, plan: str, *, at: Sequence[datetime], network: str | None = None
    ) -> list[MixPoint]:
        """At each moment of `at`, how many live milestones of each priority had each latest
        rating (None: never rated by then), for the whole plan or one network's actions.

        Each milestone's rating at a moment is one probe of the (milestone, given_at) index,
        counted in the database: nothing per milestone comes back."""
        plan_id = await self._plan_id(plan)
        chosen: list[ColumnElement[bool]] = [
            MilestoneRow.plan_id == plan_id,
            MilestoneRow.retired.is_(False),
            ActionRow.retired.is_(False),
        ]
        if network is not None:
            all_actions = await self.session.scalar(
                select(NetworkRow.all_actions).where(NetworkRow.key == network)
            )
            if not all_actions:
                chosen.append(
                    ActionRow.id.in_(
                        select(ActionNetworkRow.action_id)
                        .join(NetworkRow, NetworkRow.id == ActionNetworkRow.network_id)
                        .where(NetworkRow.key == network)
                    )
                )
        parts = []
        for index, moment in enumerate(at):
            rating = (
                select(UpdateRow.rating)
                .where(
                    UpdateRow.milestone_id == MilestoneRow.id,
                    UpdateRow.rating.is_not(None),
                    UpdateRow.given_at < utc(moment),
                )
                .order_by(UpdateRow.given_at.desc(), UpdateRow.id.desc())
                .limit(1)
                .correlate(MilestoneRow)
                .scalar_subquery()
            )
            parts.append(
                select(
                    literal(index).label("point"),
                    PriorityRow.number.label("priority"),
                    rating.label("rating"),
                )
                .select_from(MilestoneRow)
                .join(ActionRow, ActionRow.id == MilestoneRow.action_id)
                .join(PriorityRow, PriorityRow.id == ActionRow.priority_id)
                .where(*chosen)
            )
        if not parts:
            return []
        each = union_all(*parts).subquery()
        rows = await self.session.execute(
            select(each.c.point, each.c.priority, each.c.rating, func.count()).group_by(
                each.c.point, each.c.priority, each.c.rating
            )
        )
        return [
            MixPoint(int(point), int(priority), int(r) if r is not None else None, int(n))
            for point, priority, r, n in rows.tuples()
        ]
