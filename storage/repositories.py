"""Repositories: read and write the store in the plan's own terms. They take a session and
never commit (the caller's unit of work does), and they return domain dataclasses, so no
lazy load escapes a session."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    distinct,
    exists,
    func,
    insert,
    select,
    true,
    union,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.domain.errors import NetworkNotFound, PlanNotFound
from bot.domain.model import (
    Action,
    Channel,
    Contact,
    Milestone,
    Network,
    Person,
    Plan,
    Priority,
    Quarters,
    Recurrence,
    RiskPolicy,
    Source,
    Timescale,
    Update,
)
from bot.domain.reimport import Progress
from bot.domain.status import Status, status_in_plan
from storage.db import IN_CHUNK
from storage.models import (
    STAGED_PLAN_PREFIX,
    STATE_SLOTS,
    UPDATE_FIELDS,
    ActionLeadRow,
    ActionNetworkRow,
    ActionRow,
    Base,
    MilestoneRow,
    NetworkRow,
    PersonRow,
    PlanNetworkRow,
    PlanRow,
    PriorityRow,
    UpdateRow,
    milestone_state,
)


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def read_rows(session: AsyncSession, statement: Select[Any]) -> Sequence[Row[Any]]:
    """Run a read of columns on the session's own connection, inside its transaction: plain
    rows, without the ORM's work per row (an import reads tens of thousands at once).
    Pending changes are flushed first, as the session would before a query."""
    await session.flush()
    connection = await session.connection()
    return (await connection.execute(statement)).all()


async def insert_rows(
    session: AsyncSession, model: type[Base], rows: Sequence[Mapping[str, object]]
) -> None:
    """Insert `rows` (column values by name) into `model`'s table as one statement run for
    them all, on the session's own connection inside its transaction: a plain insert, without
    the ORM's bulk bookkeeping per row (an import writes tens of thousands at once). Pending
    changes are flushed first, so that rows the new ones refer to exist."""
    if not rows:
        return
    await session.flush()
    connection = await session.connection()
    await connection.execute(insert(cast(Table, model.__table__)), list(rows))


def apply_changes(row: object, values: dict[str, object]) -> bool:
    """Set `values` on `row`; True when anything was different."""
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    for name in changed:
        setattr(row, name, values[name])
    return bool(changed)


def plan_from_row(row: PlanRow) -> Plan:
    settings: dict[str, Any] = dict(row.settings or {})
    thresholds = settings.get("thresholds") or {}
    return Plan(
        key=row.key,
        title=row.title,
        organisation=row.organisation,
        timezone=row.timezone,
        start=row.start,
        policy=RiskPolicy(**thresholds),
        quarters=Quarters(settings.get("quarters") or Quarters.CALENDAR),
        contact=tuple(Contact(c["name"], c["email"]) for c in settings.get("contact") or ()),
        case_numbers=settings.get("case_numbers") or None,
    )


def person_from_row(row: PersonRow, delegate_key: str | None = None) -> Person:
    return Person(
        key=row.key,
        name=row.name,
        email=row.email,
        slack_user_id=row.slack_user_id,
        prefers=Channel(row.prefers),
        timezone=row.timezone,
        delegate_key=delegate_key,
        away_until=row.away_until,
        other_emails=tuple(a for a in (row.other_emails or "").split(";") if a),
        aliases=tuple(a for a in (row.aliases or "").split(";") if a),
    )


def network_from_row(row: NetworkRow) -> Network:
    return Network(
        key=row.key,
        name=row.name,
        slack_channel=row.slack_channel,
        coordinators=tuple(a for a in row.coordinators.split(";") if a),
        all_actions=row.all_actions,
        teams_webhook=row.teams_webhook,
    )


@dataclass(frozen=True, slots=True)
class TrackedPlan:
    """A plan with its live actions, milestones and every update, ready for the rules."""

    plan: Plan
    priorities: tuple[Priority, ...]
    actions: tuple[Action, ...]
    networks: tuple[Network, ...]
    people: tuple[Person, ...]
    updates: dict[str, tuple[Update, ...]]  # by milestone ref, oldest first

    def network(self, key: str) -> Network:
        for network in self.networks:
            if network.key == key:
                return network
        raise NetworkNotFound(key, self.plan.key, [n.key for n in self.networks])

    def status(
        self, milestone: Milestone, *, today: date, pending: Sequence[Update] = ()
    ) -> Status:
        """The milestone's status on `today` from its stored updates, and `pending` ones
        not stored yet (answers decided earlier in the same batch)."""
        updates = self.updates.get(milestone.ref, ())
        return status_in_plan(
            self.plan, milestone, (*updates, *pending) if pending else updates, today=today
        )


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """A person as mail and prompts need them: their id for the other tables, how to write
    to them, and whether their address bounces (they are no longer emailed)."""

    id: int
    key: str
    name: str
    email: str | None
    timezone: str | None
    bounced: bool
    away_until: date | None = None
    delegate_id: int | None = None
    erased: bool = False


def person_record(row: PersonRow) -> PersonRecord:
    return PersonRecord(
        id=row.id,
        key=row.key,
        name=row.name,
        email=row.email,
        timezone=row.timezone,
        bounced=row.email_bounced_at is not None,
        away_until=row.away_until,
        delegate_id=row.delegate_id,
        erased=row.erased_at is not None,
    )


_NAMES = select(PersonRow.key, PersonRow.name).where(PersonRow.erased_at.is_(None))


class PeopleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def records(self) -> list[PersonRecord]:
        """Everyone, as `PersonRecord`s."""
        rows = (await self.session.scalars(select(PersonRow))).all()
        return [person_record(row) for row in rows]

    async def record(self, person_id: int) -> PersonRecord | None:
        row = await self.session.get(PersonRow, person_id)
        return person_record(row) if row is not None else None

    async def id_of(self, key: str) -> int | None:
        found: int | None = await self.session.scalar(
            select(PersonRow.id).where(PersonRow.key == key)
        )
        return found

    async def key_of(self, person_id: int) -> str | None:
        found: str | None = await self.session.scalar(
            select(PersonRow.key).where(PersonRow.id == person_id)
        )
        return found

    async def names(self) -> dict[str, str]:
        """The name of everyone not erased, by key. On the session's connection, not through
        the ORM (no flush first): every update page reads all of them."""
        rows = await (await self.session.connection()).execute(_NAMES)
        return dict(rows.tuples().all())

    async def by_address(self, address: str, *, mailable: bool = False) -> list[PersonRecord]:
        """The people whose address is `address` (lower case), whatever its case in the
        store, oldest first; `mailable`: only those whose address does not bounce."""
        query = select(PersonRow).where(func.lower(PersonRow.email) == address)
        if mailable:
            query = query.where(PersonRow.email_bounced_at.is_(None))
        rows = (await self.session.scalars(query.order_by(PersonRow.id))).all()
        return [person_record(row) for row in rows]

    async def writers(self, addresses: Sequence[str]) -> dict[str, str]:
        """Who writes from each of `addresses` (lower case): the key of the first person with
        it as their address, else of the first with it among their further addresses. An
        address nobody has is left out."""
        writers: dict[str, str] = {}
        for start in range(0, len(addresses), IN_CHUNK):
            email = func.lower(PersonRow.email)
            rows = await self.session.execute(
                select(email, PersonRow.key)
                .where(email.in_(addresses[start : start + IN_CHUNK]))
                .order_by(PersonRow.id)
            )
            for address, key in rows.tuples():
                writers.setdefault(address, key)
        if any(a not in writers for a in addresses):
            # A secondary address someone writes from (few people have one).
            others = await self.session.execute(
                select(PersonRow.key, PersonRow.other_emails)
                .where(PersonRow.other_emails != "")
                .order_by(PersonRow.id)
            )
            for key, listed in others.tuples():
                for address in listed.split(";"):
                    if address in addresses:
                        writers.setdefault(address, key)
        return writers

    async def away_until(self, person_id: int, until: date) -> bool:
        """Mark the person away until `until`, unless already away longer; whether it did."""
        row = await self.session.get(PersonRow, person_id)
        if row is not None and (row.away_until is None or row.away_until < until):
            row.away_until = until
            return True
        return False

    async def stop_mailing(self, address: str, *, now: datetime) -> list[PersonRecord]:
        """Mark everyone at `address` (lower case) whose address did not bounce yet as
        bouncing, so they are no longer emailed; returns who they were."""
        rows = (
            await self.session.scalars(
                select(PersonRow).where(
                    func.lower(PersonRow.email) == address, PersonRow.email_bounced_at.is_(None)
                )
            )
        ).all()
        for row in rows:
            row.email_bounced_at = utc(now)
        return [person_record(row) for row in rows]

    async def wanting_slack_ids(self) -> list[tuple[str, str]]:
        """(key, email) of everyone who prefers Slack, has an address and no Slack id yet."""
        rows = await self.session.execute(
            select(PersonRow.key, PersonRow.email).where(
                PersonRow.prefers == Channel.SLACK.value,
                PersonRow.slack_user_id.is_(None),
                PersonRow.email.is_not(None),
            )
        )
        return [(key, email) for key, email in rows.tuples() if email is not None]

    async def set_slack_ids(self, found: Mapping[str, str]) -> None:
        """Store the Slack ids found, by person key, for those who still have none."""
        if not found:
            return
        rows = await self.session.scalars(select(PersonRow).where(PersonRow.key.in_(found)))
        for row in rows.all():
            if row.slack_user_id is None:
                row.slack_user_id = found[row.key]

    async def all(self) -> list[Person]:
        # Read as column tuples: an import reads a national directory of thousands.
        rows = await read_rows(
            self.session,
            select(PersonRow.id, PersonRow.key, PersonRow.delegate_id, *_PERSON_COLUMNS).order_by(
                PersonRow.key
            ),
        )
        keys = {row_id: key for row_id, key, *_ in rows}
        return [
            Person(
                key=key,
                name=name,
                email=email,
                slack_user_id=slack_user_id,
                prefers=Channel(prefers),
                timezone=timezone,
                delegate_key=keys.get(delegate_id) if delegate_id else None,
                away_until=away_until,
                other_emails=tuple(a for a in (other_emails or "").split(";") if a),
                aliases=tuple(a for a in (aliases or "").split(";") if a),
            )
            for (
                _,
                key,
                delegate_id,
                name,
                email,
                slack_user_id,
                prefers,
                timezone,
                away_until,
                other_emails,
                aliases,
            ) in rows
        ]

    async def rows_by_key(self) -> dict[str, PersonRow]:
        rows = (await self.session.scalars(select(PersonRow))).all()
        return {row.key: row for row in rows}

    async def ids_by_key(self) -> dict[str, int]:
        rows = await read_rows(self.session, select(PersonRow.key, PersonRow.id))
        return {key: row_id for key, row_id in rows}

    async def upsert(self, people: Iterable[Person]) -> tuple[int, int]:
        """Add or update people by key; returns (added, changed). The stored people are read
        as column tuples and only the rows that differ are written (a national directory
        re-imported unchanged writes nothing)."""
        people = list(people)
        rows = await read_rows(
            self.session,
            select(PersonRow.id, PersonRow.key, PersonRow.delegate_id, *_PERSON_COLUMNS),
        )
        names = [column.key for column in _PERSON_COLUMNS]
        stored = {
            key: (row_id, delegate_id, dict(zip(names, values, strict=True)))
            for row_id, key, delegate_id, *values in rows
        }
        new: list[dict[str, object]] = []
        changed: list[dict[str, object]] = []
        for person in people:
            row = stored.get(person.key)
            values: dict[str, object] = {
                "name": person.name,
                "email": person.email,
                "slack_user_id": person.slack_user_id,
                "prefers": person.prefers.value,
                "timezone": person.timezone,
                "away_until": person.away_until,
                "other_emails": ";".join(person.other_emails),
                "aliases": ";".join(person.aliases),
            }
            if row is None:
                new.append({"key": person.key, **values, "delegate_id": None})
            elif not values.items() <= row[2].items():
                changed.append({"id": row[0], **values})
        if changed:
            await self.session.execute(update(PersonRow), changed)
        ids = {key: row[0] for key, row in stored.items()}
        if new:  # one bulk insert: a national directory adds thousands at once
            await insert_rows(self.session, PersonRow, new)
            ids = await self.ids_by_key()
        delegating = [
            {"id": ids[person.key], "delegate_id": ids[person.delegate_key]}
            for person in people
            if person.delegate_key
            and person.delegate_key in ids
            and (person.key not in stored or stored[person.key][1] != ids[person.delegate_key])
        ]
        if delegating:
            await self.session.execute(update(PersonRow), delegating)
        return len(new), len(changed)


# The columns of a person that a people file gives.
_PERSON_COLUMNS = (
    PersonRow.name,
    PersonRow.email,
    PersonRow.slack_user_id,
    PersonRow.prefers,
    PersonRow.timezone,
    PersonRow.away_until,
    PersonRow.other_emails,
    PersonRow.aliases,
)


class NetworkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> list[Network]:
        rows = (await self.session.scalars(select(NetworkRow).order_by(NetworkRow.key))).all()
        return [network_from_row(r) for r in rows]

    async def rows_by_key(self) -> dict[str, NetworkRow]:
        rows = (await self.session.scalars(select(NetworkRow))).all()
        return {row.key: row for row in rows}

    async def upsert(self, networks: Iterable[Network]) -> tuple[int, int]:
        existing = await self.rows_by_key()
        added = changed = 0
        for network in networks:
            values: dict[str, object] = {
                "name": network.name,
                "slack_channel": network.slack_channel,
                "teams_webhook": network.teams_webhook,
                "coordinators": ";".join(network.coordinators),
                "all_actions": network.all_actions,
            }
            row = existing.get(network.key)
            if row is None:
                self.session.add(NetworkRow(key=network.key, **values))
                added += 1
            elif apply_changes(row, values):
                changed += 1
        await self.session.flush()
        return added, changed


class PlanSummary(NamedTuple):
    """One line of `pulse plans`."""

    key: str
    title: str
    actions: int
    milestones: int
    people: int
    last_import: datetime
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """A plan's own row as the services need it: its id for the other tables, its
    timezone, its settings (schedules, layout) and whether it is retired."""

    id: int
    key: str
    title: str
    timezone: str
    settings: dict[str, object]
    retired: bool


def stored_plan(row: PlanRow) -> StoredPlan:
    return StoredPlan(
        id=row.id,
        key=row.key,
        title=row.title,
        timezone=row.timezone,
        settings=dict(row.settings or {}),
        retired=row.retired_at is not None,
    )


def not_staged() -> ColumnElement[bool]:
    """Plans that are not still being imported (see `STAGED_PLAN_PREFIX`)."""
    return PlanRow.key.not_like(f"{STAGED_PLAN_PREFIX}%")


class PlanRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def row(self, key: str) -> PlanRow | None:
        row: PlanRow | None = await self.session.scalar(select(PlanRow).where(PlanRow.key == key))
        return row

    async def stored(self, key: str) -> StoredPlan | None:
        """The plan's own row, detached; None when there is no such plan."""
        row = await self.row(key)
        return stored_plan(row) if row is not None else None

    async def keys(self, *, retired_too: bool = False) -> list[str]:
        """The keys of the plans still in use (a retired plan gets no prompts or digests),
        or, `retired_too`, of every plan."""
        query = select(PlanRow.key).order_by(PlanRow.key)
        if not retired_too:
            query = query.where(PlanRow.retired_at.is_(None))
        else:  # a plan still being imported is retired until it is switched over
            query = query.where(not_staged())
        return list((await self.session.scalars(query)).all())

    async def summaries(self) -> list[PlanSummary]:
        """Every plan, retired ones too, with the size of what is live in it; never one still
        being imported."""
        live_actions = select(ActionRow.id).where(
            ActionRow.plan_id == PlanRow.id, ActionRow.retired.is_(False)
        )
        actions = (
            select(func.count())
            .where(ActionRow.plan_id == PlanRow.id, ActionRow.retired.is_(False))
            .scalar_subquery()
        )
        milestones = (
            select(func.count())
            .where(MilestoneRow.plan_id == PlanRow.id, MilestoneRow.retired.is_(False))
            .scalar_subquery()
        )
        people = (
            select(func.count(distinct(ActionLeadRow.person_id)))
            .where(ActionLeadRow.action_id.in_(live_actions))
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(
                PlanRow.key,
                PlanRow.title,
                actions,
                milestones,
                people,
                PlanRow.updated_at,
                PlanRow.retired_at,
            )
            .where(not_staged())
            .order_by(PlanRow.key)
        )
        return [
            PlanSummary(key, title, a, m, p, utc(imported), utc(retired) if retired else None)
            for key, title, a, m, p, imported, retired in rows
        ]

    async def retire(self, key: str, now: datetime) -> bool:
        """Retire the plan (False when it already was); raises PlanNotFound."""
        row = await self.row(key)
        if row is None:
            raise PlanNotFound(key)
        if row.retired_at is not None:
            return False
        row.retired_at = now
        return True

    async def get(self, key: str) -> Plan:
        row = await self.row(key)
        if row is None:
            raise PlanNotFound(key)
        return plan_from_row(row)

    async def tracked(
        self,
        key: str,
        *,
        until: datetime | None = None,
        refs: Sequence[str] | None = None,
        row: PlanRow | None = None,
        priorities: Sequence[PriorityRow] | None = None,
    ) -> TrackedPlan:
        """The plan's live actions and milestones, each with the updates that decide its
        status given before `until` (its latest update, its last two ratings and its latest
        revised date: see `_decisive`), oldest first. With `refs`, only those
        milestones and their actions: what an answer to one prompt needs, and no more, in
        three queries (`_chosen`). `row` and `priorities`: the plan's row and its priorities
        in order, when the caller has read them."""
        plan_row = row if row is not None else await self.row(key)
        if plan_row is None:
            raise PlanNotFound(key)
        s = self.session
        # Plain Core results for the big reads: no ORM bookkeeping per row.
        core = await s.connection()
        pid = plan_row.id
        if priorities is None:
            priorities = (
                await s.scalars(
                    select(PriorityRow)
                    .where(PriorityRow.plan_id == pid)
                    .order_by(PriorityRow.number)
                )
            ).all()
        if refs is not None and until is None:
            chosen = await _chosen(s, pid, refs)
            return _tracked_plan(plan_row, priorities, *chosen)
        ref_filter = [] if refs is None else [MilestoneRow.ref.in_(list(refs))]
        action_filter = (
            []
            if refs is None
            else [
                ActionRow.id.in_(
                    select(MilestoneRow.action_id).where(
                        MilestoneRow.plan_id == pid, MilestoneRow.ref.in_(list(refs))
                    )
                )
            ]
        )
        # Plain column rows, not ORM objects: a national plan has tens of thousands of them.
        actions = (
            await core.execute(
                select(
                    ActionRow.id,
                    ActionRow.ref,
                    ActionRow.title,
                    ActionRow.aim,
                    ActionRow.priority_id,
                )
                .where(ActionRow.plan_id == pid, ActionRow.retired.is_(False), *action_filter)
                .order_by(ActionRow.position, ActionRow.id)
            )
        ).all()
        milestones = (
            await core.execute(
                select(
                    MilestoneRow.action_id,
                    MilestoneRow.ref,
                    MilestoneRow.title,
                    MilestoneRow.timescale_text,
                    MilestoneRow.due,
                    MilestoneRow.start,
                    MilestoneRow.recurrence,
                    MilestoneRow.ongoing,
                )
                .where(MilestoneRow.plan_id == pid, MilestoneRow.retired.is_(False), *ref_filter)
                .order_by(MilestoneRow.position, MilestoneRow.id)
            )
        ).all()
        chosen_actions = [] if refs is None else [ActionRow.id.in_([a.id for a in actions])]
        people_query = select(PersonRow)
        if refs is not None:
            # Only the leads of these milestones: a prompt's answer needs no more.
            people_query = people_query.where(
                PersonRow.id.in_(
                    select(ActionLeadRow.person_id).where(
                        ActionLeadRow.action_id.in_([a.id for a in actions])
                    )
                )
            )
        people_rows = (await s.scalars(people_query)).all()
        person_key = {p.id: p.key for p in people_rows}
        lead_rows = (
            await core.execute(
                select(ActionLeadRow.action_id, ActionLeadRow.person_id)
                .join(ActionRow, ActionRow.id == ActionLeadRow.action_id)
                .where(ActionRow.plan_id == pid, *chosen_actions)
                .order_by(ActionLeadRow.position)
            )
        ).all()
        leads: dict[int, list[str]] = defaultdict(list)
        for action_id, person_id in lead_rows:
            if person_id in person_key:  # with `refs`, only the chosen actions' leads
                leads[action_id].append(person_key[person_id])
        network_rows = (
            await s.scalars(
                select(NetworkRow)
                .join(PlanNetworkRow, PlanNetworkRow.network_id == NetworkRow.id)
                .where(PlanNetworkRow.plan_id == pid)
                .order_by(NetworkRow.key)
            )
        ).all()
        network_key = {n.id: n.key for n in network_rows}
        net_links = (
            await core.execute(
                select(ActionNetworkRow.action_id, ActionNetworkRow.network_id)
                .join(ActionRow, ActionRow.id == ActionNetworkRow.action_id)
                .where(ActionRow.plan_id == pid, *chosen_actions)
            )
        ).all()
        nets: dict[int, list[str]] = defaultdict(list)
        for action_id, network_id in net_links:
            if network_id in network_key:
                nets[action_id].append(network_key[network_id])
        updates = await _decisive(s, pid, until, refs, person_key)
        return _tracked_plan(
            plan_row, priorities, actions, milestones, people_rows, leads, network_rows, nets,
            updates,
        )  # fmt: skip

    async def decisive(
        self, key: str, *, until: datetime, refs: Sequence[str] | None = None
    ) -> dict[str, tuple[Update, ...]]:
        """The updates of `tracked(key, until=until, refs=refs)`, without reading the plan
        again: for a look back at an earlier day beside a plan already read."""
        plan_row = await self.row(key)
        if plan_row is None:
            raise PlanNotFound(key)
        people = await self.session.execute(select(PersonRow.id, PersonRow.key))
        return await _decisive(self.session, plan_row.id, until, refs, dict(people.tuples().all()))


def _tracked_plan(
    plan_row: PlanRow,
    priorities: Sequence[PriorityRow],
    actions: Sequence[Any],
    milestones: Sequence[Any],
    people_rows: Sequence[PersonRow],
    leads: Mapping[int, list[str]],
    network_rows: Sequence[NetworkRow],
    nets: Mapping[int, list[str]],
    updates: dict[str, tuple[Update, ...]],
) -> TrackedPlan:
    """The plan as read: actions (id, ref, title, aim, priority id) in order, milestones
    (action id, ref, title, timescale's text, due, start, recurrence, ongoing) in order,
    the leads' people, each action's lead keys and network keys, and the decisive updates."""
    number_of = {p.id: p.number for p in priorities}
    person_key = {p.id: p.key for p in people_rows}
    by_action: dict[int, list[Any]] = defaultdict(list)
    # Milestones often share a timescale ("March 2027", "Quarterly"): one object each.
    timescales: dict[tuple[Any, ...], Timescale] = {}
    for action_id, ref, title, text, due, start, recurrence, ongoing in milestones:
        shared = (text, due, start, recurrence, ongoing)
        timescale = timescales.get(shared)
        if timescale is None:
            timescale = timescales[shared] = Timescale(
                text, due, start, Recurrence(recurrence) if recurrence else None, ongoing
            )
        by_action[action_id].append((ref, title, timescale))
    domain_actions = []
    for a in actions:
        action_leads = tuple(leads[a.id])
        domain_actions.append(
            Action(
                ref=a.ref,
                title=a.title,
                priority=number_of[a.priority_id],
                leads=action_leads,
                networks=tuple(sorted(nets[a.id])),
                aim=a.aim,
                milestones=tuple(
                    Milestone(ref, title, timescale, a.ref, action_leads)
                    for ref, title, timescale in by_action[a.id]
                ),
            )
        )
    return TrackedPlan(
        plan=plan_from_row(plan_row),
        priorities=tuple(Priority(p.number, p.title, p.description, p.leads) for p in priorities),
        actions=tuple(domain_actions),
        networks=tuple(network_from_row(n) for n in network_rows),
        people=tuple(
            person_from_row(p, person_key.get(p.delegate_id) if p.delegate_id else None)
            for p in people_rows
        ),
        updates=updates,
    )


# The statements of an answer's reads (`_chosen`), built once: built per call, their
# construction and cache key cost more than the database does for these few rows.
_state = milestone_state.c
_CHOSEN = (
    select(
        ActionRow.id,
        ActionRow.ref,
        ActionRow.title,
        ActionRow.aim,
        ActionRow.priority_id,
        MilestoneRow.retired,
        MilestoneRow.ref,
        MilestoneRow.title,
        MilestoneRow.timescale_text,
        MilestoneRow.due,
        MilestoneRow.start,
        MilestoneRow.recurrence,
        MilestoneRow.ongoing,
        MilestoneRow.id,
        PersonRow,
        _state.milestone_id,
        *(_state[f"{slot}_{name}"] for slot in STATE_SLOTS for name, _ in UPDATE_FIELDS),
    )
    .join(ActionRow, ActionRow.id == MilestoneRow.action_id)
    .outerjoin(ActionLeadRow, ActionLeadRow.action_id == ActionRow.id)
    .outerjoin(PersonRow, PersonRow.id == ActionLeadRow.person_id)
    .outerjoin(milestone_state, _state.milestone_id == MilestoneRow.id)
    .where(
        MilestoneRow.plan_id == bindparam("plan"),
        MilestoneRow.ref.in_(bindparam("refs", expanding=True)),
        ActionRow.plan_id == bindparam("plan"),
        ActionRow.retired.is_(False),
    )
    .order_by(
        ActionRow.position,
        ActionRow.id,
        MilestoneRow.position,
        MilestoneRow.id,
        ActionLeadRow.position,
    )
)
_CHOSEN_NETWORKS = (
    select(NetworkRow, ActionNetworkRow.action_id)
    .join(PlanNetworkRow, PlanNetworkRow.network_id == NetworkRow.id)
    .outerjoin(
        ActionNetworkRow,
        and_(
            ActionNetworkRow.network_id == NetworkRow.id,
            ActionNetworkRow.action_id.in_(bindparam("actions", expanding=True)),
        ),
    )
    .where(PlanNetworkRow.plan_id == bindparam("plan"))
    .order_by(NetworkRow.key)
)


async def _chosen(session: AsyncSession, plan_id: int, refs: Sequence[str]) -> tuple[Any, ...]:
    """What `tracked` reads for the milestones `refs` (an answer's), in two queries: the
    actions with any of them, each live one with its decisive updates (`milestone_state`,
    the updates today's status needs), with the actions' leads and their people (a row per
    milestone and lead); the plan's networks with those of these actions. As
    `_tracked_plan` takes them after the priorities."""
    rows = (await session.execute(_CHOSEN, {"plan": plan_id, "refs": list(refs)})).tuples()
    actions: dict[int, _ActionRead] = {}
    milestones: list[tuple[Any, ...]] = []
    leads: dict[int, list[str]] = defaultdict(list)
    people: dict[int, PersonRow] = {}
    led: set[tuple[int, int]] = set()
    seen_milestones: set[int] = set()
    width = len(UPDATE_FIELDS)
    found: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        action_id, person = row[0], row[14]
        if action_id not in actions:
            actions[action_id] = _ActionRead(*row[:5])
        if person is not None and (action_id, person.id) not in led:
            led.add((action_id, person.id))
            people.setdefault(person.id, person)
            leads[action_id].append(person.key)
        # A retired milestone: its action is still read, as when listed alone.
        if row[5] or row[13] in seen_milestones:
            continue
        seen_milestones.add(row[13])
        ref = row[6]
        milestones.append((action_id, *row[6:13]))
        if row[15] is None:  # no state yet: nothing answered
            continue
        read: list[tuple[Any, ...]] = []
        seen: set[int] = set()
        for i in range(16, 16 + len(STATE_SLOTS) * width, width):
            update_id = row[i]
            if update_id is not None and update_id not in seen:  # one update, two slots
                seen.add(update_id)
                read.append(row[i : i + width])
        found[ref] = read
    ids = list(actions)
    networks: dict[int, NetworkRow] = {}
    nets: dict[int, list[str]] = defaultdict(list)
    for network, action_id in (
        await session.execute(_CHOSEN_NETWORKS, {"plan": plan_id, "actions": ids})
    ).tuples():
        networks.setdefault(network.id, network)
        if action_id is not None:
            nets[action_id].append(network.key)
    person_key = {person_id: person.key for person_id, person in people.items()}
    return (
        list(actions.values()),
        milestones,
        list(people.values()),
        leads,
        list(networks.values()),
        nets,
        _updates_of(found, person_key),
    )


class _ActionRead(NamedTuple):
    id: int
    ref: str
    title: str
    aim: str | None
    priority_id: int


SOURCES = {source.value: source for source in Source}


def _given_then_id(values: tuple[Any, ...]) -> tuple[Any, Any]:
    return values[1], values[0]


async def _decisive(
    session: AsyncSession,
    plan_id: int,
    until: datetime | None,
    refs: Sequence[str] | None,
    person_key: dict[int, str],
) -> dict[str, tuple[Update, ...]]:
    """Each live milestone's decisive updates given before `until`, oldest first.

    `milestone_state` names them for every milestone whose latest update was given before
    `until` (always so for today's digest): one row per milestone, whatever the history's
    length. A milestone answered on or after `until` (a look back at an earlier day) is
    read from its history by index probes instead.
    """
    state = milestone_state.c
    chosen = [
        MilestoneRow.plan_id == plan_id,
        MilestoneRow.retired.is_(False),
        *([] if refs is None else [MilestoneRow.ref.in_(list(refs))]),
    ]
    current = [] if until is None else [state.latest_given_at < utc(until)]
    query = (
        select(
            MilestoneRow.ref,
            *(state[f"{slot}_{name}"] for slot in STATE_SLOTS for name, _ in UPDATE_FIELDS),
        )
        .join(milestone_state, state.milestone_id == MilestoneRow.id)
        .where(*chosen, *current)
    )
    width = len(UPDATE_FIELDS)
    starts = range(1, 1 + len(STATE_SLOTS) * width, width)
    found: dict[str, list[tuple[Any, ...]]] = {}
    for row in (await (await session.connection()).execute(query)).tuples():
        read: list[tuple[Any, ...]] = []
        seen: set[int] = set()
        for i in starts:
            update_id = row[i]
            if update_id is not None and update_id not in seen:  # one update, two slots
                seen.add(update_id)
                read.append(row[i : i + width])
        found[row[0]] = read
    if until is not None:
        # Named by a condition, not a list of references: on a look back a month, every
        # milestone of a national plan may have been answered since.
        later = MilestoneRow.id.in_(
            select(state.milestone_id).where(state.latest_given_at >= utc(until))
        )
        connection = await session.connection()
        lateral = connection.dialect.name == "postgresql"
        probed = await connection.execute(
            _decisive_updates(plan_id, until, refs, later, lateral=lateral)
        )
        named: set[int] = set()
        for values in probed.tuples().all():
            if values[1] not in named:  # one update found by two probes
                named.add(values[1])
                found.setdefault(values[0], []).append(values[1:])
    return _updates_of(found, person_key)


def _updates_of(
    found: Mapping[str, list[tuple[Any, ...]]], person_key: Mapping[int, str]
) -> dict[str, tuple[Update, ...]]:
    """The decisive updates read (`UPDATE_FIELDS` values) of each milestone, oldest first."""
    decisive: dict[str, tuple[Update, ...]] = {}
    for ref, read in found.items():
        if len(read) > 1:
            # One database gives one kind of datetime (naive UTC or aware): comparable as read.
            read.sort(key=_given_then_id)
        decisive[ref] = tuple(
            Update(
                ref,
                given if given.tzinfo else given.replace(tzinfo=UTC),
                rating,
                note,
                revised,
                support,
                SOURCES[source],
                person_key.get(person_id) if person_id else None,
                external,
                update_id,
            )
            for update_id, given, rating, note, revised, support, source, person_id, external in (
                read
            )
        )
    return decisive


_Replacing = aliased(UpdateRow, name="replacing")


def counted(until: datetime | None = None) -> ColumnElement[bool]:
    """Whether an update counts for its milestone's status (as of `until`): not replaced by
    a change within the same prompt or a coordinator's withdrawal given by then, and not a
    withdrawal itself (which names what it takes back and says nothing)."""
    replaced = exists().where(
        _Replacing.supersedes_id == UpdateRow.id,
        *([_Replacing.given_at < utc(until)] if until is not None else []),
    )
    withdrawal = and_(
        UpdateRow.supersedes_id.is_not(None),
        UpdateRow.rating.is_(None),
        UpdateRow.note.is_(None),
        UpdateRow.revised_due.is_(None),
        UpdateRow.needs_support.is_(False),
    )
    return and_(~replaced, ~withdrawal)


def _decisive_updates(
    plan_id: int,
    until: datetime | None,
    refs: Sequence[str] | None = None,
    *also: ColumnElement[bool],
    lateral: bool = False,
) -> Select[Any]:
    """The updates that decide each live milestone's status, found by index probes.

    A status needs a milestone's latest update (note, support), its last two ratings
    (achieved, worsening) and its latest revised date; everything older changes nothing.
    Reading just these keeps a digest's cost flat however long the history grows. `also`:
    further conditions on the milestones probed. `lateral` (PostgreSQL): each probe reads
    its updates whole, the last two ratings in one, and the same update may come twice;
    otherwise each probe names one update, read by its key after.
    """
    latest_first = (UpdateRow.given_at.desc(), UpdateRow.id.desc())
    counts = counted(until)
    milestones = [
        MilestoneRow.plan_id == plan_id,
        MilestoneRow.retired.is_(False),
        *([] if refs is None else [MilestoneRow.ref.in_(list(refs))]),
        *also,
    ]
    fields = (
        UpdateRow.id,
        UpdateRow.given_at,
        UpdateRow.rating,
        UpdateRow.note,
        UpdateRow.revised_due,
        UpdateRow.needs_support,
        UpdateRow.source,
        UpdateRow.person_id,
        UpdateRow.external_id,
    )
    before = [UpdateRow.given_at < utc(until)] if until is not None else []
    rated = UpdateRow.rating.is_not(None)
    revised = UpdateRow.revised_due.is_not(None)

    if lateral:
        # Each milestone chosen once, its updates read whole in one lateral subquery: no
        # join back over the updates' key, which on a national look back walks the primary
        # key of millions of rows for 150,000 updates.
        def newest(*conditions: ColumnElement[bool], n: int = 1) -> Select[Any]:
            return (
                select(*fields)
                .where(UpdateRow.milestone_id == MilestoneRow.id, counts, *conditions)
                .order_by(*latest_first)
                .limit(n)
            )

        found = union_all(
            newest(*before), newest(*before, rated, n=2), newest(*before, revised)
        ).lateral()
        return select(MilestoneRow.ref, *found.c).join(found, true()).where(*milestones)

    def probe(*conditions: ColumnElement[bool], offset: int = 0) -> Select[Any]:
        found = (
            select(UpdateRow.id)
            .where(UpdateRow.milestone_id == MilestoneRow.id, counts, *conditions)
            .order_by(*latest_first)
            .limit(1)
            .offset(offset)
            .correlate(MilestoneRow)
            .scalar_subquery()
        )
        return select(found.label("update_id")).where(*milestones)

    chosen = union(
        probe(*before),
        probe(*before, rated),
        probe(*before, rated, offset=1),
        probe(*before, revised),
    ).subquery()
    return (
        select(MilestoneRow.ref, *fields)
        .join(chosen, chosen.c.update_id == UpdateRow.id)
        .join(MilestoneRow, MilestoneRow.id == UpdateRow.milestone_id)
        # In no order: `_decisive` puts each milestone's few in order, not the database.
    )


class UpdateRepository:
    """Append-only: updates are added, never changed or removed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        milestone_id: int,
        rating: int | None,
        note: str | None,
        source: Source,
        given_at: datetime,
        recorded_at: datetime,
        person_id: int | None = None,
        revised_due: date | None = None,
        needs_support: bool = False,
        external_id: str | None = None,
        evidence: str | None = None,
    ) -> None:
        self.session.add(
            UpdateRow(
                milestone_id=milestone_id,
                person_id=person_id,
                rating=rating,
                note=note,
                revised_due=revised_due,
                needs_support=needs_support,
                source=source.value,
                external_id=external_id,
                given_at=utc(given_at),
                recorded_at=utc(recorded_at),
                evidence=evidence,
            )
        )

    async def add_imported(self, new: Sequence[NewUpdate], *, recorded_at: datetime) -> None:
        """Add a plan file's ratings and notes (source `import`) in one bulk insert."""
        if not new:
            return
        await insert_rows(
            self.session,
            UpdateRow,
            [
                {
                    "milestone_id": u.milestone_id,
                    "person_id": None,
                    "rating": u.rating,
                    "note": u.note,
                    "revised_due": None,
                    "needs_support": False,
                    "source": Source.IMPORT.value,
                    "external_id": None,
                    "given_at": utc(u.given_at),
                    "recorded_at": utc(recorded_at),
                }
                for u in new
            ],
        )

    async def stored_progress(self, plan_id: int) -> dict[int, Progress]:
        """Each of the plan's answered milestones' latest rating and latest note, by milestone
        id (what digests and exports show): read from `milestone_state`, never the history."""
        state = milestone_state.c
        rows = await read_rows(
            self.session,
            select(state.milestone_id, state.rated_rating, state.latest_note)
            .join(MilestoneRow, MilestoneRow.id == state.milestone_id)
            .where(MilestoneRow.plan_id == plan_id),
        )
        return {milestone_id: Progress(rating, note) for milestone_id, rating, note in rows}

    async def latest_from_people(self, milestone_ids: Sequence[int]) -> dict[int, PersonAnswer]:
        """The latest update of each milestone that did not come from an import (a lead's or
        a coordinator's answer), by milestone id; milestones never answered are absent.

        Each is found by one probe of the (milestone, given_at) index, newest first."""
        found: dict[int, PersonAnswer] = {}
        for start in range(0, len(milestone_ids), 500):
            chunk = list(milestone_ids[start : start + 500])
            latest = (
                select(UpdateRow.id)
                .where(
                    UpdateRow.milestone_id == MilestoneRow.id,
                    UpdateRow.source != Source.IMPORT.value,
                )
                .order_by(UpdateRow.given_at.desc(), UpdateRow.id.desc())
                .limit(1)
                .correlate(MilestoneRow)
                .scalar_subquery()
            )
            chosen = select(latest.label("update_id")).where(MilestoneRow.id.in_(chunk)).subquery()
            rows = await self.session.execute(
                select(
                    UpdateRow.milestone_id,
                    PersonRow.name,
                    UpdateRow.rating,
                    UpdateRow.note,
                    UpdateRow.given_at,
                )
                .join(chosen, chosen.c.update_id == UpdateRow.id)
                .outerjoin(PersonRow, PersonRow.id == UpdateRow.person_id)
            )
            for milestone_id, name, rating, note, given_at in rows:
                found[milestone_id] = PersonAnswer(name, rating, note, utc(given_at))
        return found


class NewUpdate(NamedTuple):
    """A rating and note from a plan file, to record for one milestone."""

    milestone_id: int
    rating: int | None
    note: str | None
    given_at: datetime


class PersonAnswer(NamedTuple):
    """A milestone's latest answer from a person, as stored."""

    name: str | None
    rating: int | None
    note: str | None
    given_at: datetime
