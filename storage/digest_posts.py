"""Digests: what building one reads (`DigestReads`), and the postings, one row per
(plan, network, period), inserted with `ON CONFLICT DO NOTHING` so a period's digest is
posted once (`DigestRepository`). Never commits; returns read models, never ORM rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.evidence import EvidenceRepository
from storage.models import DigestRow, NetworkRow, PersonRow
from storage.prompts import PromptRepository
from storage.repositories import PlanRepository, TrackedPlan, utc

Trend = list[tuple[str, dict[str, int]]]  # (period, rating mix) of past digests, oldest first


@dataclass(frozen=True, slots=True)
class DigestPrompt:
    """A prompt of the cycle a digest reports on, as the digest counts it."""

    person_key: str
    milestone_refs: tuple[str, ...]
    sent_at: datetime | None
    answered_at: datetime | None


@dataclass(frozen=True, slots=True)
class DigestInputs:
    """Everything a plan's digests are built from, read in one session."""

    tracked: TrackedPlan  # its updates given before `until`
    prompts: tuple[DigestPrompt, ...]  # the latest cycle started by `until`
    trends: dict[str, Trend]  # by network key, for the networks asked about
    # The evidence of impact given before `until` of each milestone achieved in the achieved
    # window, by reference (none: absent).
    evidence: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DigestNetwork:
    """A network as posting its digest needs it: where it goes."""

    id: int
    key: str
    name: str
    slack_channel: str | None
    coordinators: tuple[str, ...]  # addresses, as stored
    teams_webhook: str | None = None


@dataclass(frozen=True, slots=True)
class DigestAudience:
    """Where a plan's digests go and how people are named in them."""

    plan_id: int
    plan_title: str
    retired: bool
    networks: dict[str, DigestNetwork]  # by key
    names: dict[str, str]  # person name by key
    slack_ids: dict[str, str]  # Slack user id by person key, for those who have one


class DigestReads:
    """What building and posting a plan's digests reads."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def inputs(
        self, plan_key: str, *, until: datetime, networks: Sequence[str] | None, before: str
    ) -> DigestInputs:
        """The plan as of `until`, its latest cycle's prompts, and the trend of each of
        `networks` (every network of the plan when None) from digests before period
        `before`, and the evidence of impact given by `until`. Raises PlanNotFound, and
        NetworkNotFound for a network not the plan's."""
        plans = PlanRepository(self.session)
        tracked = await plans.tracked(plan_key, until=until)
        plan = await plans.stored(plan_key)
        assert plan is not None
        wanted = (
            [tracked.network(key).key for key in networks]
            if networks is not None
            else [n.key for n in tracked.networks]
        )
        prompts = await PromptRepository(self.session).current_cycle(plan.id, until=until)
        person_keys = dict(
            (await self.session.execute(select(PersonRow.id, PersonRow.key))).tuples().all()
        )
        network_ids = dict(
            (await self.session.execute(select(NetworkRow.key, NetworkRow.id))).tuples().all()
        )
        by_id = await DigestRepository(self.session).trends(
            plan_id=plan.id, network_ids=[network_ids[key] for key in wanted], before=before
        )
        # One query: a probe of the evidence index per milestone that may have been achieved
        # in the digest's window (a day more, for the plan's timezone).
        window = timedelta(days=tracked.plan.policy.achieved_window + 1)
        evidence = await EvidenceRepository(self.session).of_achieved(
            plan_key, until=until, rated_since=until - window
        )
        return DigestInputs(
            tracked=tracked,
            prompts=tuple(
                DigestPrompt(person_keys[p.person_id], p.milestone_refs, p.sent_at, p.answered_at)
                for p in prompts
            ),
            trends={key: by_id[network_ids[key]] for key in wanted},
            evidence={ref: found.text for ref, found in evidence.items()},
        )

    async def audience(self, plan_key: str) -> DigestAudience | None:
        """Where the plan's digests go; None when there is no such plan."""
        plan = await PlanRepository(self.session).stored(plan_key)
        if plan is None:
            return None
        networks = {
            n.key: DigestNetwork(
                n.id,
                n.key,
                n.name,
                n.slack_channel,
                tuple(a for a in n.coordinators.split(";") if a.strip()),
                n.teams_webhook,
            )
            for n in (await self.session.scalars(select(NetworkRow))).all()
        }
        people = (
            await self.session.execute(
                select(PersonRow.key, PersonRow.name, PersonRow.slack_user_id)
            )
        ).tuples()
        names: dict[str, str] = {}
        slack_ids: dict[str, str] = {}
        for key, name, slack_id in people:
            names[key] = name
            if slack_id:
                slack_ids[key] = slack_id
        return DigestAudience(plan.id, plan.title, plan.retired, networks, names, slack_ids)


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
            dialect_insert(self.session, DigestRow)
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
    ) -> dict[int, Trend]:
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
        found: dict[int, Trend] = {n: [] for n in network_ids}
        for network_id, period, mix in rows.tuples():
            found[network_id].append((period, {str(k): int(str(v)) for k, v in dict(mix).items()}))
        return found
