"""What the hourly notice of new support asks reads (issue 14): the answers that asked for
support, recorded in a window, of a network's milestones, that still count (not replaced by
a later change or withdrawn). Never commits; returns small read models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    ActionNetworkRow,
    ActionRow,
    MilestoneRow,
    NetworkRow,
    PersonRow,
    PlanNetworkRow,
    PlanRow,
    UpdateRow,
)
from storage.repositories import counted, utc


@dataclass(frozen=True, slots=True)
class SupportAsk:
    ref: str
    title: str
    person: str | None  # whose answer asked for it, by name
    note: str | None
    revised_due: date | None
    given_at: datetime


@dataclass(frozen=True, slots=True)
class NoticeTarget:
    """A network of a live plan that has coordinators to tell."""

    plan_id: int
    plan_title: str
    network_id: int
    network_name: str
    all_actions: bool
    coordinators: tuple[str, ...]


async def notice_targets(session: AsyncSession) -> list[NoticeTarget]:
    rows = await session.execute(
        select(
            PlanRow.id,
            PlanRow.title,
            NetworkRow.id,
            NetworkRow.name,
            NetworkRow.all_actions,
            NetworkRow.coordinators,
        )
        .join(PlanNetworkRow, PlanNetworkRow.plan_id == PlanRow.id)
        .join(NetworkRow, NetworkRow.id == PlanNetworkRow.network_id)
        .where(PlanRow.retired_at.is_(None))
        .order_by(PlanRow.id, NetworkRow.id)
    )
    found = []
    for plan_id, title, network_id, name, all_actions, coordinators in rows.tuples():
        addresses = tuple(a.strip() for a in (coordinators or "").split(";") if a.strip())
        if addresses:
            found.append(
                NoticeTarget(plan_id, title, network_id, name, bool(all_actions), addresses)
            )
    return found


async def support_asks(
    session: AsyncSession, target: NoticeTarget, *, after: datetime, until: datetime
) -> list[SupportAsk]:
    """The answers recorded after `after` and by `until` that ask for support, of the
    target network's live milestones, oldest first."""
    linked = exists().where(
        ActionNetworkRow.action_id == ActionRow.id,
        ActionNetworkRow.network_id == target.network_id,
    )
    rows = await session.execute(
        select(
            MilestoneRow.ref,
            MilestoneRow.title,
            PersonRow.name,
            UpdateRow.note,
            UpdateRow.revised_due,
            UpdateRow.given_at,
        )
        .join(MilestoneRow, MilestoneRow.id == UpdateRow.milestone_id)
        .join(ActionRow, ActionRow.id == MilestoneRow.action_id)
        .outerjoin(PersonRow, PersonRow.id == UpdateRow.person_id)
        .where(
            MilestoneRow.plan_id == target.plan_id,
            MilestoneRow.retired.is_(False),
            ActionRow.retired.is_(False),
            UpdateRow.needs_support.is_(True),
            UpdateRow.recorded_at > utc(after),
            UpdateRow.recorded_at <= utc(until),
            counted(),
            or_(linked, *([ActionRow.id.is_not(None)] if target.all_actions else [])),
        )
        .order_by(UpdateRow.given_at, UpdateRow.id)
    )
    return [
        SupportAsk(ref, title, name, note, revised, utc(given))
        for ref, title, name, note, revised, given in rows.tuples()
    ]
