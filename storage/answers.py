"""What recording answers reads and writes (`bot/services/answers.py` decides them).

`AnswerRepository.load` reads, for any number of answers at once, the prompts they answer,
the prompts that went out in those prompts' messages (a shared mailbox's combined prompt),
the people concerned (owners, writers by key, anyone by Slack user id) and each plan with
the prompts' milestones: a few queries and one set of plan reads per plan, however many
answers. `record` appends updates in a few statements, skipping any already recorded
(deduplicated by source and external id), and marks the prompts they answer answered.
Both return domain objects and small read models, never ORM rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from bot.domain.model import Person
from storage.models import (
    STATE_SLOTS,
    UPDATE_FIELDS,
    MilestoneRow,
    PersonRow,
    PlanRow,
    PriorityRow,
    PromptRow,
    UpdateRow,
    milestone_state,
)
from storage.repositories import PlanRepository, TrackedPlan, counted, person_from_row, utc


@dataclass(frozen=True, slots=True)
class AskedPrompt:
    """A prompt as answering it needs it: whom it asked, about what, and when."""

    id: int
    plan_id: int
    person_id: int
    milestone_refs: tuple[str, ...]
    created_at: datetime
    sent_with: int | None = None  # the prompt whose message carried this one, if another's


def asked_prompt(row: PromptRow) -> AskedPrompt:
    return AskedPrompt(
        row.id,
        row.plan_id,
        row.person_id,
        tuple(row.milestone_refs),
        utc(row.created_at),
        row.sent_with,
    )


@dataclass(frozen=True, slots=True)
class AnsweringData:
    """What `load` read: prompts by id, the prompts carried in each one's message, people by
    id, plans by id."""

    prompts: dict[int, AskedPrompt]
    carried: dict[int, list[AskedPrompt]]
    people: dict[int, Person]
    person_ids: dict[str, int]  # by key
    slack_users: dict[str, Person]  # by Slack user id (the first person, should two share it)
    plans: dict[int, TrackedPlan]


@dataclass(frozen=True, slots=True)
class NewUpdate:
    """One update to record, and the prompts it answers."""

    plan_key: str
    ref: str
    person_key: str
    rating: int | None
    note: str | None
    revised_due: date | None
    needs_support: bool
    source: str
    external_id: str
    given_at: datetime
    recorded_at: datetime
    answers: tuple[int, ...]  # prompt ids
    supersedes: int | None = None  # the update it replaces (a change within one prompt)
    recorded_by: str | None = None  # who recorded it, when not `person_key` (a coordinator)
    evidence: str | None = None  # with rating 1: what changed for children and families


_Delegate = aliased(PersonRow, name="delegate")  # built once: an alias per call defeats caching
_prompts = cast(Table, PromptRow.__table__)
_updates = cast(Table, UpdateRow.__table__)
_MARK_ANSWERED = (
    update(_prompts)
    .where(_prompts.c.id == bindparam("prompt"), _prompts.c.answered_at.is_(None))
    .values(answered_at=bindparam("at"))
)

# Built once, like the rest of an answer's statements: built per answer, their construction
# and cache key cost more than the database does for these few rows.
_PLANS = (
    select(PlanRow, PriorityRow)
    .outerjoin(PriorityRow, PriorityRow.plan_id == PlanRow.id)
    .where(PlanRow.id.in_(bindparam("plans", expanding=True)))
    .order_by(PlanRow.id, PriorityRow.number)
)
_MILESTONE_IDS = (
    select(PlanRow.key, MilestoneRow.ref, MilestoneRow.id)
    .join(PlanRow, PlanRow.id == MilestoneRow.plan_id)
    .where(
        PlanRow.key.in_(bindparam("plans", expanding=True)),
        MilestoneRow.ref.in_(bindparam("refs", expanding=True)),
    )
)
_WRITER_IDS = select(PersonRow.key, PersonRow.id).where(
    PersonRow.key.in_(bindparam("keys", expanding=True))
)
_KNOWN = select(UpdateRow.external_id).where(
    UpdateRow.source == bindparam("source"),
    UpdateRow.external_id.in_(bindparam("ids", expanding=True)),
)


class AnswerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def load(
        self,
        *,
        prompt_ids: Collection[int] = (),
        prompts: Collection[AskedPrompt] = (),
        person_keys: Collection[str] = (),
        slack_user_ids: Collection[str] = (),
        people_read: Mapping[int, Person] | None = None,
        carrying_none: Collection[int] = (),
    ) -> AnsweringData:
        """Read `prompts` and those with `prompt_ids`, the prompts carried in their
        messages, their owners and plans, and the people with `person_keys` or
        `slack_user_ids`. What the caller read with its prompts is not read again:
        `people_read` (by id, when they are everyone needed) and `carrying_none` (prompts
        it knows carry no other's)."""
        session = self.session
        found = {p.id: p for p in prompts}
        wanted = [i for i in set(prompt_ids) if i not in found]
        if wanted:
            rows = await session.scalars(select(PromptRow).where(PromptRow.id.in_(wanted)))
            found.update((p.id, asked_prompt(p)) for p in rows.all())
        carried: dict[int, list[AskedPrompt]] = defaultdict(list)
        carrying = [i for i in found if i not in set(carrying_none)]
        if carrying:
            rows = await session.scalars(select(PromptRow).where(PromptRow.sent_with.in_(carrying)))
            for carried_row in rows.all():
                carried[carried_row.sent_with or 0].append(asked_prompt(carried_row))
        asked = [*found.values(), *(p for listed in carried.values() for p in listed)]
        who = [
            *([PersonRow.id.in_({p.person_id for p in asked})] if asked else []),
            *([PersonRow.key.in_(set(person_keys))] if person_keys else []),
            *([PersonRow.slack_user_id.in_(set(slack_user_ids))] if slack_user_ids else []),
        ]
        people: dict[int, Person] = {}
        known = people_read or {}
        if (
            known
            and not slack_user_ids
            and {p.person_id for p in asked} <= known.keys()
            and set(person_keys) <= {person.key for person in known.values()}
        ):
            people = dict(sorted(known.items()))
        elif who:
            for person_row, delegate in (
                await session.execute(
                    select(PersonRow, _Delegate.key)
                    .outerjoin(_Delegate, _Delegate.id == PersonRow.delegate_id)
                    .where(or_(*who))
                    .order_by(PersonRow.id)
                )
            ).tuples():
                people[person_row.id] = person_from_row(person_row, delegate)
        slack_users: dict[str, Person] = {}
        for person in people.values():  # in id order: the first of two sharing an id wins
            if person.slack_user_id:
                slack_users.setdefault(person.slack_user_id, person)
        refs: dict[int, set[str]] = defaultdict(set)
        for prompt in asked:
            refs[prompt.plan_id].update(prompt.milestone_refs)
        plans: dict[int, TrackedPlan] = {}
        if refs:
            # Each plan with its priorities, in one query.
            plan_rows: dict[int, tuple[PlanRow, list[PriorityRow]]] = {}
            for plan_row, priority in (
                await session.execute(_PLANS, {"plans": list(refs)})
            ).tuples():
                listed = plan_rows.setdefault(plan_row.id, (plan_row, []))[1]
                if priority is not None:
                    listed.append(priority)
            for plan_id, (plan_row, priorities) in plan_rows.items():
                plans[plan_id] = await PlanRepository(session).tracked(
                    plan_row.key, refs=sorted(refs[plan_id]), row=plan_row, priorities=priorities
                )
        return AnsweringData(
            found,
            dict(carried),
            people,
            {person.key: person_id for person_id, person in people.items()},
            slack_users,
            plans,
        )

    async def record(self, updates: Sequence[NewUpdate]) -> list[bool]:
        """Insert `updates` in a few statements, in order; whether each was new. An external
        id already recorded for its source, or given earlier in `updates`, is skipped; a
        concurrent transaction committing the same one raises IntegrityError."""
        session = self.session
        new = [False] * len(updates)
        if not updates:
            return new
        ids = {
            (plan, ref): milestone_id
            for plan, ref, milestone_id in (
                await session.execute(
                    _MILESTONE_IDS,
                    {
                        "plans": list({u.plan_key for u in updates}),
                        "refs": list({u.ref for u in updates}),
                    },
                )
            ).tuples()
        }
        writers = {
            key: writer_id
            for key, writer_id in (
                await session.execute(_WRITER_IDS, {"keys": list({u.person_key for u in updates})})
            ).tuples()
        }
        by_source: dict[str, list[str]] = defaultdict(list)
        for u in updates:
            by_source[u.source].append(u.external_id)
        known = {
            (source, external_id)
            for source, external_ids in by_source.items()
            for external_id in (
                await session.scalars(_KNOWN, {"source": source, "ids": external_ids})
            ).all()
        }
        rows = []
        restate: set[int] = set()
        answered: dict[int, datetime] = {}
        for n, u in enumerate(updates):
            if (u.source, u.external_id) in known:
                continue
            known.add((u.source, u.external_id))
            rows.append(
                {
                    "milestone_id": ids[(u.plan_key, u.ref)],
                    "person_id": writers.get(u.person_key),
                    "rating": u.rating,
                    "note": u.note,
                    "revised_due": u.revised_due,
                    "needs_support": u.needs_support,
                    "source": u.source,
                    "external_id": u.external_id,
                    "given_at": utc(u.given_at),
                    "recorded_at": utc(u.recorded_at),
                    "supersedes_id": u.supersedes,
                    "recorded_by": u.recorded_by,
                    "evidence": u.evidence,
                }
            )
            if u.supersedes is not None:
                restate.add(ids[(u.plan_key, u.ref)])
            new[n] = True
            for prompt_id in u.answers:
                answered.setdefault(prompt_id, u.recorded_at)
        if rows:
            # The table's plain INSERT, not the ORM's bulk one: the same rows, a fraction of
            # the CPU on every answer.
            await session.execute(insert(_updates), rows)
            if answered:
                await self._mark_answered(answered)
            if restate:
                await restate_milestones(session, sorted(restate))
        return new

    async def waiting_prompts(self, plan_key: str, person_key: str, ref: str) -> tuple[int, ...]:
        """The person's unanswered prompts of the plan that asked about `ref`: what an answer
        recorded on their behalf answers."""
        rows = await self.session.execute(
            select(PromptRow.id, PromptRow.milestone_refs)
            .join(PlanRow, PlanRow.id == PromptRow.plan_id)
            .join(PersonRow, PersonRow.id == PromptRow.person_id)
            .where(
                PlanRow.key == plan_key,
                PersonRow.key == person_key,
                PromptRow.answered_at.is_(None),
            )
        )
        return tuple(prompt_id for prompt_id, refs in rows.tuples() if ref in (refs or ()))

    async def _mark_answered(self, answered: Mapping[int, datetime]) -> None:
        session = self.session
        await session.execute(
            _MARK_ANSWERED,
            [{"prompt": prompt_id, "at": utc(at)} for prompt_id, at in answered.items()],
        )
        for prompt_id, at in answered.items():
            # As an ORM update would: a prompt already loaded in the session shows it too.
            loaded = session.identity_map.get(identity_key(PromptRow, prompt_id))
            if isinstance(loaded, PromptRow) and loaded.answered_at is None:
                set_committed_value(loaded, "answered_at", utc(at))


async def restate_milestones(session: AsyncSession, milestone_ids: Sequence[int]) -> None:
    """Choose `milestone_state`'s updates again from the history, leaving out replaced ones
    and withdrawals (`counted`): after a change or a withdrawal, the trigger (which never
    reads the history) kept the replaced answer as the prior rating, maybe as the revised
    date, or the withdrawal as the latest. One query finds each slot's update of every
    milestone by index probes, one reads them; only changes and withdrawals come here."""
    if not milestone_ids:
        return
    counts = counted()
    latest_first = (UpdateRow.given_at.desc(), UpdateRow.id.desc())
    rated = UpdateRow.rating.is_not(None)
    wanted = {
        "latest": ((), 0),
        "rated": ((rated,), 0),
        "prior_rated": ((rated,), 1),
        "revised": ((UpdateRow.revised_due.is_not(None),), 0),
    }
    probes = [
        select(UpdateRow.id)
        .where(UpdateRow.milestone_id == MilestoneRow.id, counts, *conditions)
        .order_by(*latest_first)
        .limit(1)
        .offset(offset)
        .correlate(MilestoneRow)
        .scalar_subquery()
        .label(slot)
        for slot, (conditions, offset) in wanted.items()
    ]
    chosen = (
        await session.execute(
            select(MilestoneRow.id, *probes).where(MilestoneRow.id.in_(list(milestone_ids)))
        )
    ).all()
    ids = {update_id for row in chosen for update_id in row[1:] if update_id is not None}
    rows = {
        row.id: row
        for row in (
            await session.execute(
                select(*(getattr(UpdateRow, name) for name, _ in UPDATE_FIELDS)).where(
                    UpdateRow.id.in_(list(ids))
                )
            )
        ).all()
    }
    restated: list[dict[str, object]] = []
    for milestone_id, *slots in chosen:
        values: dict[str, object] = {"milestone": milestone_id}
        for slot, update_id in zip(wanted, slots, strict=True):
            found = rows.get(update_id) if update_id is not None else None
            for name, _ in UPDATE_FIELDS:
                values[f"v_{slot}_{name}"] = getattr(found, name) if found is not None else None
        restated.append(values)
    if restated:
        await session.execute(_RESTATE, restated)  # one statement, every milestone's row


# Every slot of a milestone's `milestone_state` row at once, one parameter set a milestone.
_RESTATE = (
    update(milestone_state)
    .where(milestone_state.c.milestone_id == bindparam("milestone"))
    .values(
        {
            f"{slot}_{name}": bindparam(
                f"v_{slot}_{name}", type_=milestone_state.c[f"{slot}_{name}"].type
            )
            for slot in STATE_SLOTS
            for name, _ in UPDATE_FIELDS
        }
    )
)
