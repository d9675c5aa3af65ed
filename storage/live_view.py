"""What the coordinators' live view reads and writes (issue 14): its links, stored as a keyed
hash like the update page's, and each milestone's whole history with who gave each answer
and who recorded it. Never commits; returns small read models, never ORM rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    MilestoneRow,
    NetworkRow,
    PersonRow,
    PlanNetworkRow,
    PlanRow,
    UpdateRow,
    ViewLinkRow,
)
from storage.repositories import utc


@dataclass(frozen=True, slots=True)
class ViewAccess:
    """A stored live-view link: whose it is, the plan and network it shows, and until when."""

    plan_key: str
    network_key: str
    email: str
    expires_at: datetime
    revoked: bool

    def open_at(self, now: datetime) -> bool:
        return not self.revoked and now < self.expires_at


@dataclass(frozen=True, slots=True)
class Given:
    """One answer in a milestone's history, as the live view shows it."""

    id: int
    given_at: datetime
    rating: int | None
    note: str | None
    revised_due: date | None
    needs_support: bool
    source: str
    person: str | None  # the name of whom it is for
    recorded_by: str | None  # who recorded it, when someone else did
    supersedes: int | None
    superseded_by: int | None = None  # a later change or withdrawal replaced it
    evidence: str | None = None  # with a rating of 1: what changed for children and families

    @property
    def withdrawal(self) -> bool:
        """A correcting update that takes an answer back and says nothing itself."""
        return (
            self.supersedes is not None
            and self.rating is None
            and self.note is None
            and self.revised_due is None
            and not self.needs_support
        )


class LiveViewRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_links(
        self,
        links: list[tuple[str, str]],
        *,
        plan_id: int,
        network_id: int,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        """Store (address, token hash) pairs for one plan's network."""
        if links:
            await self.session.execute(
                insert(ViewLinkRow),
                [
                    {
                        "token_hash": digest,
                        "plan_id": plan_id,
                        "network_id": network_id,
                        "email": email.strip().lower(),
                        "created_at": utc(now),
                        "expires_at": utc(expires_at),
                        "revoked_at": None,
                    }
                    for email, digest in links
                ],
            )

    async def find(self, token_hash: str) -> ViewAccess | None:
        found = (
            await self.session.execute(
                select(ViewLinkRow, PlanRow.key, NetworkRow.key)
                .join(PlanRow, PlanRow.id == ViewLinkRow.plan_id)
                .join(NetworkRow, NetworkRow.id == ViewLinkRow.network_id)
                .where(ViewLinkRow.token_hash == token_hash)
            )
        ).first()
        if found is None:
            return None
        link, plan_key, network_key = found[0], found[1], found[2]
        return ViewAccess(
            plan_key, network_key, link.email, utc(link.expires_at), link.revoked_at is not None
        )

    async def revoke(self, email: str, *, network_key: str | None, now: datetime) -> int:
        """Revoke every open link of `email` (to one network's view, or all); how many."""
        chosen = [ViewLinkRow.email == email.strip().lower(), ViewLinkRow.revoked_at.is_(None)]
        if network_key is not None:
            network_id = await self.session.scalar(
                select(NetworkRow.id).where(NetworkRow.key == network_key)
            )
            chosen.append(ViewLinkRow.network_id == (network_id or -1))
        result = await self.session.execute(
            update(ViewLinkRow).where(*chosen).values(revoked_at=utc(now))
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def networks_of(self, plan_id: int) -> list[tuple[int, str, str]]:
        """The (id, key, coordinators) of the networks a plan's digests go to."""
        rows = await self.session.execute(
            select(NetworkRow.id, NetworkRow.key, NetworkRow.coordinators)
            .join(PlanNetworkRow, PlanNetworkRow.network_id == NetworkRow.id)
            .where(PlanNetworkRow.plan_id == plan_id)
        )
        return [(i, k, c or "") for i, k, c in rows.tuples()]

    async def history(self, plan_key: str, ref: str) -> list[Given]:
        """Every answer about a milestone, oldest first, each with whom it is for, who
        recorded it and what replaced it."""
        rows = (
            (
                await self.session.execute(
                    select(UpdateRow, PersonRow.name)
                    .join(MilestoneRow, MilestoneRow.id == UpdateRow.milestone_id)
                    .join(PlanRow, PlanRow.id == MilestoneRow.plan_id)
                    .outerjoin(PersonRow, PersonRow.id == UpdateRow.person_id)
                    .where(PlanRow.key == plan_key, MilestoneRow.ref == ref)
                    .order_by(UpdateRow.given_at, UpdateRow.id)
                )
            )
            .tuples()
            .all()
        )
        replaced = {u.supersedes_id: u.id for u, _ in rows if u.supersedes_id}
        return [
            Given(
                u.id,
                utc(u.given_at),
                u.rating,
                u.note,
                u.revised_due,
                bool(u.needs_support),
                u.source,
                name,
                u.recorded_by,
                u.supersedes_id,
                replaced.get(u.id),
                u.evidence,
            )
            for u, name in rows
        ]

    async def update_of(self, plan_key: str, update_id: int) -> tuple[str, int | None] | None:
        """The milestone reference and person id of one of the plan's updates, or None."""
        found = (
            await self.session.execute(
                select(MilestoneRow.ref, UpdateRow.person_id)
                .join(MilestoneRow, MilestoneRow.id == UpdateRow.milestone_id)
                .join(PlanRow, PlanRow.id == MilestoneRow.plan_id)
                .where(PlanRow.key == plan_key, UpdateRow.id == update_id)
            )
        ).first()
        return (found[0], found[1]) if found is not None else None

    async def person_of(self, update_id: int) -> str | None:
        """The key of whom an update is for."""
        key: str | None = await self.session.scalar(
            select(PersonRow.key)
            .join(UpdateRow, UpdateRow.person_id == PersonRow.id)
            .where(UpdateRow.id == update_id)
        )
        return key

    async def replaced(self, update_id: int) -> bool:
        """Whether a later update already replaces this one."""
        n = await self.session.scalar(
            select(func.count()).select_from(UpdateRow).where(UpdateRow.supersedes_id == update_id)
        )
        return bool(n)

    async def person_named(self, email: str) -> tuple[int, str, str] | None:
        """The (id, key, name) of the person with this address, if one has it."""
        found = (
            await self.session.execute(
                select(PersonRow.id, PersonRow.key, PersonRow.name)
                .where(func.lower(PersonRow.email) == email.strip().lower())
                .where(PersonRow.erased_at.is_(None))
                .order_by(PersonRow.id)
                .limit(1)
            )
        ).first()
        return (found[0], found[1], found[2]) if found is not None else None

    async def coordinated_by(self, email: str) -> list[tuple[int, str, str, int, str, str]]:
        """The (plan id, key, title, network id, key, name) of each live plan's network whose
        coordinators include `email` (compared without case)."""
        wanted = email.strip().lower()
        rows = await self.session.execute(
            select(
                PlanRow.id,
                PlanRow.key,
                PlanRow.title,
                NetworkRow.id,
                NetworkRow.key,
                NetworkRow.name,
                NetworkRow.coordinators,
            )
            .join(PlanNetworkRow, PlanNetworkRow.plan_id == PlanRow.id)
            .join(NetworkRow, NetworkRow.id == PlanNetworkRow.network_id)
            .where(PlanRow.retired_at.is_(None))
            .order_by(PlanRow.title, NetworkRow.name)
        )
        return [
            (plan_id, plan_key, title, network_id, network_key, name)
            for plan_id, plan_key, title, network_id, network_key, name, coordinators in rows
            if wanted and wanted in {a.strip().lower() for a in (coordinators or "").split(";")}
        ]

    async def names(self) -> dict[str, str]:
        """Every person's name by key."""
        rows = await self.session.execute(select(PersonRow.key, PersonRow.name))
        return dict(rows.tuples().all())
