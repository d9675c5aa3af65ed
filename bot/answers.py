"""Recording answers to a prompt, whichever channel they came by (email now, Slack too).

`answer_context` decides who may answer what: the prompt's person and their delegate may
answer everything it asked; a joint lead may answer the milestones they lead. It also gives
what each asked milestone looks like today, which the note rule needs. `record_answers`
appends the updates (deduplicated by external id) and marks the prompt answered, in the
caller's transaction.

Both come in a form for many answers at once, for a writer that commits concurrent answers
together (`bot/writer.py`): `Answering.load` reads what any number of answers need in a few
queries (one set of plan reads per plan, not per answer), and `record_many` writes them in
a few statements. An answer recorded earlier in the same batch is seen by later ones
(`Answering.seen`), as it would be had each been committed on its own.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from bot.domain.cycles import listed_under
from bot.domain.model import Milestone, Person, Plan, Source, Update
from bot.domain.people import mailbox
from bot.domain.replies import AskedMilestone, ReplyLine
from bot.domain.status import MilestoneStatus, local_date, milestone_status
from bot.metrics import count_answers
from storage.delivery import PromptRepository
from storage.models import MilestoneRow, PersonRow, PlanRow, PromptRow, UpdateRow
from storage.repositories import PlanRepository, TrackedPlan, person_from_row, utc

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
    # For a reply from a shared mailbox: whose milestone each reference is (the update is
    # recorded for them), and the prompts of that mailbox that asked about it.
    recorded_for: Mapping[str, str] = field(default_factory=dict)
    prompts_of: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def asked_by_ref(self) -> dict[str, AskedMilestone]:
        return {a.ref: a for a in self.asked}

    def person_for(self, ref: str) -> str:
        """The key an answer about `ref` is recorded for."""
        return self.recorded_for.get(ref, self.writer.key)

    def answered_prompts(self, ref: str) -> tuple[int, ...]:
        """The prompts an answer about `ref` answers."""
        return self.prompts_of.get(ref, (self.prompt_id,))


class NotAllowed(Exception):
    """The writer may not answer this prompt at all; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_Delegate = aliased(PersonRow, name="delegate")  # built once: an alias per call defeats caching


class Answering:
    """What answers to some prompts need, read at once: the prompts, the people (owners,
    writers, and anyone looked up by Slack id) and each plan with the prompts' milestones.
    Build it with `load`, inside the transaction that records the answers."""

    def __init__(
        self,
        prompts: dict[int, PromptRow],
        people: dict[int, tuple[PersonRow, Person]],
        plans: dict[int, TrackedPlan],
        carried: Mapping[int, Sequence[PromptRow]] | None = None,
    ) -> None:
        self._prompts = prompts
        # The prompts that went out in another's message (a shared mailbox), by that one's id.
        self._carried = carried or {}
        self._people = people
        self._by_key = {person.key: (row, person) for row, person in people.values()}
        self._by_slack: dict[str, Person] = {}
        for row, person in sorted(people.values(), key=lambda found: found[0].id):
            if row.slack_user_id:
                self._by_slack.setdefault(row.slack_user_id, person)
        self._plans = plans
        self._milestones: dict[int, dict[str, Milestone]] = {}
        self._pending: dict[tuple[int, str], list[Update]] = defaultdict(list)

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        *,
        prompt_ids: Collection[int] = (),
        prompts: Collection[PromptRow] = (),
        writer_keys: Collection[str] = (),
        slack_user_ids: Collection[str] = (),
    ) -> Answering:
        """Read `prompts` and those with `prompt_ids`, their owners and plans, the people
        with `writer_keys` or `slack_user_ids`: five queries and one set of plan reads per
        plan, however many answers."""
        found = {p.id: p for p in prompts}
        wanted = [i for i in set(prompt_ids) if i not in found]
        if wanted:
            rows = await session.scalars(select(PromptRow).where(PromptRow.id.in_(wanted)))
            found.update((p.id, p) for p in rows.all())
        carried: dict[int, list[PromptRow]] = defaultdict(list)
        for carried_row in await PromptRepository(session).carried(list(found)):
            carried[carried_row.sent_with or 0].append(carried_row)
        asked = [*found.values(), *(p for listed in carried.values() for p in listed)]
        who = [
            *([PersonRow.id.in_({p.person_id for p in asked})] if asked else []),
            *([PersonRow.key.in_(set(writer_keys))] if writer_keys else []),
            *([PersonRow.slack_user_id.in_(set(slack_user_ids))] if slack_user_ids else []),
        ]
        people: dict[int, tuple[PersonRow, Person]] = {}
        if who:
            for row, delegate in (
                await session.execute(
                    select(PersonRow, _Delegate.key)
                    .outerjoin(_Delegate, _Delegate.id == PersonRow.delegate_id)
                    .where(or_(*who))
                )
            ).tuples():
                people[row.id] = (row, person_from_row(row, delegate))
        refs: dict[int, set[str]] = defaultdict(set)
        for prompt in asked:
            refs[prompt.plan_id].update(prompt.milestone_refs)
        plans: dict[int, TrackedPlan] = {}
        if refs:
            keys = (
                await session.execute(
                    select(PlanRow.id, PlanRow.key).where(PlanRow.id.in_(list(refs)))
                )
            ).tuples()
            for plan_id, key in keys.all():
                plans[plan_id] = await PlanRepository(session).tracked(
                    key, refs=sorted(refs[plan_id])
                )
        return cls(found, people, plans, carried)

    def prompt(self, prompt_id: int) -> PromptRow | None:
        return self._prompts.get(prompt_id)

    def person_by_slack_id(self, slack_user_id: str) -> Person | None:
        """The person with this Slack user id (the first, should two share it)."""
        return self._by_slack.get(slack_user_id)

    def person_id(self, key: str) -> int | None:
        found = self._by_key.get(key)
        return found[0].id if found is not None else None

    def context(self, prompt: PromptRow, writer_key: str, *, now: datetime) -> AnswerContext:
        """The context of an answer by `writer_key` to `prompt`; raises `NotAllowed`."""
        tracked = self._plans.get(prompt.plan_id)
        owner_found = self._people.get(prompt.person_id)
        if tracked is None or owner_found is None:
            raise NotAllowed("the prompt no longer exists")
        writer_found = self._by_key.get(writer_key)
        if writer_found is None:
            raise NotAllowed(f"{writer_key} is not a known person")
        writer, owner = writer_found[1], owner_found[1]
        milestones = self._milestones.get(prompt.plan_id)
        if milestones is None:  # once per plan, not per answer: a batch has hundreds
            milestones = self._milestones[prompt.plan_id] = {
                m.ref: m for a in tracked.actions for m in a.milestones
            }
        shared = self._shared(prompt, owner, writer, milestones, now=now)
        if shared is not None:
            return shared
        refs = [r for r in prompt.milestone_refs if r in milestones]
        if _same_mailbox(writer, owner):
            writer = owner  # a mailbox they share: the answer is the owner's
        if writer.key in (owner.key, owner.delegate_key):
            allowed = frozenset(refs)
        else:
            allowed = frozenset(r for r in refs if writer.key in milestones[r].leads)
        if not allowed:
            raise NotAllowed(f"{writer.key} may not answer {owner.key}'s prompt")
        return self._context(prompt, owner, writer, refs, allowed, milestones, now=now)

    def _shared(
        self,
        prompt: PromptRow,
        owner: Person,
        writer: Person,
        milestones: Mapping[str, Milestone],
        *,
        now: datetime,
    ) -> AnswerContext | None:
        """The context of a reply to a shared mailbox's combined prompt, when it is one; else
        None. From the mailbox, every milestone of it may be answered, each recorded for the
        person whose milestone it is; anyone else answers as they would each person's own."""
        carried = self._carried.get(prompt.id)
        if not carried:
            return None
        asked = sorted(
            [(owner, prompt)]
            + [(self._people[p.person_id][1], p) for p in carried if p.person_id in self._people],
            key=lambda found: found[0].key,
        )
        whose = listed_under([(p.key, row.milestone_refs) for p, row in asked])
        refs = [r for r in whose if r in milestones]
        prompts_of: dict[str, tuple[int, ...]] = {
            ref: tuple(row.id for _, row in asked if ref in row.milestone_refs) for ref in refs
        }
        address = mailbox(owner.email)
        if address is not None and mailbox(writer.email) == address:  # from the mailbox
            names = [person.name for person, _ in asked]
            everyone = replace(owner, name=", ".join(names[:-1]) + " and " + names[-1])
            return self._context(
                prompt,
                owner,
                everyone,
                refs,
                frozenset(refs),
                milestones,
                now=now,
                recorded_for={ref: whose[ref] for ref in refs},
                prompts_of=prompts_of,
            )
        by_key = {person.key: person for person, _ in asked}
        allowed = frozenset(
            r
            for r in refs
            if writer.key in (whose[r], by_key[whose[r]].delegate_key)
            or writer.key in milestones[r].leads
        )
        if not allowed:
            raise NotAllowed(f"{writer.key} may not answer the prompt to {owner.email}")
        return self._context(
            prompt, owner, writer, refs, allowed, milestones, now=now, prompts_of=prompts_of
        )

    def _context(
        self,
        prompt: PromptRow,
        owner: Person,
        writer: Person,
        refs: Sequence[str],
        allowed: frozenset[str],
        milestones: Mapping[str, Milestone],
        *,
        now: datetime,
        recorded_for: Mapping[str, str] | None = None,
        prompts_of: Mapping[str, tuple[int, ...]] | None = None,
    ) -> AnswerContext:
        tracked = self._plans[prompt.plan_id]
        today = local_date(now, tracked.plan.timezone)
        asked = []
        for ref in refs:
            pending = self._pending.get((prompt.plan_id, ref))
            updates = tracked.updates.get(ref, ())
            status = milestone_status(
                milestones[ref].timescale,
                (*updates, *pending) if pending else updates,
                today=today,
                policy=tracked.plan.policy,
                timezone=tracked.plan.timezone,
            )
            latest = _latest_rated((*updates, *pending) if pending else updates, now=now)
            asked.append(
                AskedMilestone(
                    ref,
                    status.rating,
                    status.status is MilestoneStatus.OVERDUE,
                    latest.rating if latest is not None else None,
                    latest.note if latest is not None else None,
                    latest is not None and latest.needs_support,
                )
            )
        return AnswerContext(
            tracked.plan,
            prompt.id,
            owner,
            writer,
            tuple(asked),
            allowed,
            today,
            recorded_for or {},
            prompts_of or {},
        )

    def seen(self, answer: NewAnswer) -> None:
        """Count `answer` as recorded for the contexts given after this: a later answer in
        the same batch is judged (note rule) as if this one were committed."""
        plan_id = self._prompts[answer.context.prompt_id].plan_id
        for line in answer.lines:
            if line.ref in answer.context.allowed:
                self._pending[(plan_id, line.ref)].append(
                    Update(
                        milestone_ref=line.ref,
                        given_at=utc(answer.given_at),
                        rating=line.rating,
                        note=line.note,
                        revised_due=line.revised_due,
                        needs_support=line.needs_support,
                        source=answer.source,
                        person_key=answer.context.person_for(line.ref),
                        external_id=f"{answer.external_key}#{line.ref}"[:255],
                    )
                )


def _same_mailbox(writer: Person, owner: Person) -> bool:
    """Whether two people share an address (a shared mailbox): a reply from it may be
    either's, so it may answer for the person it was sent to."""
    address = mailbox(owner.email)
    return writer.key != owner.key and address is not None and mailbox(writer.email) == address


def _latest_rated(updates: Sequence[Update], *, now: datetime) -> Update | None:
    """The latest rated update given by `now`, whatever its period: what `no change`
    re-confirms."""
    latest: Update | None = None
    for given in updates:
        if given.rating is None or given.given_at > now:
            continue
        if latest is None or given.given_at >= latest.given_at:
            latest = given
    return latest


async def answer_context(
    session: AsyncSession, prompt: PromptRow, writer_key: str, *, now: datetime
) -> AnswerContext:
    """The context of an answer by `writer_key` to `prompt`; raises `NotAllowed`."""
    answering = await Answering.load(session, prompts=[prompt], writer_keys=[writer_key])
    return answering.context(prompt, writer_key, now=now)


@dataclass(frozen=True, slots=True)
class NewAnswer:
    """One answer to record (`record_many`): `lines` given in `context`."""

    context: AnswerContext
    lines: Sequence[ReplyLine]
    source: Source
    external_key: str
    given_at: datetime
    now: datetime


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
    answer = NewAnswer(context, lines, source, external_key, given_at, now)
    return (await record_many(session, [answer]))[0]


async def record_many(session: AsyncSession, answers: Sequence[NewAnswer]) -> list[int]:
    """`record_answers` for many answers in a few statements, in order; how many updates
    each recorded. An external id already recorded, or given earlier in `answers`, is
    skipped; a concurrent transaction committing the same one raises IntegrityError."""
    wanted = [
        (n, answer, external_id, line)
        for n, answer in enumerate(answers)
        for external_id, line in {
            f"{answer.external_key}#{line.ref}"[:255]: line
            for line in answer.lines
            if line.ref in answer.context.allowed
        }.items()
    ]
    counts = [0] * len(answers)
    if not wanted:
        return counts
    plan_keys = {answer.context.plan.key for _, answer, _, _ in wanted}
    ids = {
        (plan, ref): milestone_id
        for plan, ref, milestone_id in (
            await session.execute(
                select(PlanRow.key, MilestoneRow.ref, MilestoneRow.id)
                .join(PlanRow, PlanRow.id == MilestoneRow.plan_id)
                .where(
                    PlanRow.key.in_(plan_keys),
                    MilestoneRow.ref.in_({line.ref for _, _, _, line in wanted}),
                )
            )
        ).tuples()
    }
    writers = {
        key: writer_id
        for key, writer_id in (
            await session.execute(
                select(PersonRow.key, PersonRow.id).where(
                    PersonRow.key.in_(
                        {answer.context.person_for(line.ref) for _, answer, _, line in wanted}
                    )
                )
            )
        ).tuples()
    }
    by_source: dict[str, list[str]] = defaultdict(list)
    for _, answer, external_id, _ in wanted:
        by_source[answer.source.value].append(external_id)
    known = {
        (source, external_id)
        for source, external_ids in by_source.items()
        for external_id in (
            await session.scalars(
                select(UpdateRow.external_id).where(
                    UpdateRow.source == source, UpdateRow.external_id.in_(external_ids)
                )
            )
        ).all()
    }
    rows = []
    answered: dict[int, datetime] = {}
    for n, answer, external_id, line in wanted:
        if (answer.source.value, external_id) in known:
            continue
        known.add((answer.source.value, external_id))
        context = answer.context
        rows.append(
            {
                "milestone_id": ids[(context.plan.key, line.ref)],
                "person_id": writers.get(context.person_for(line.ref)),
                "rating": line.rating,
                "note": line.note,
                "revised_due": line.revised_due,
                "needs_support": line.needs_support,
                "source": answer.source.value,
                "external_id": external_id,
                "given_at": utc(answer.given_at),
                "recorded_at": utc(answer.now),
            }
        )
        counts[n] += 1
        for prompt_id in context.answered_prompts(line.ref):
            answered.setdefault(prompt_id, answer.now)
        log.info(
            "recorded %s answer for %s of %s from %s: rating %s%s",
            answer.source.value,
            line.ref,
            context.plan.key,
            context.person_for(line.ref),
            line.rating if line.rating is not None else "-",
            ", needs support" if line.needs_support else "",
        )
    if rows:
        await session.execute(insert(UpdateRow), rows)
        count_answers(session, [str(row["source"]) for row in rows])
        await session.execute(
            _MARK_ANSWERED,
            [{"prompt": prompt_id, "at": utc(at)} for prompt_id, at in answered.items()],
        )
        for prompt_id, at in answered.items():
            # As an ORM update would: a prompt already loaded in the session shows it too.
            loaded = session.identity_map.get(identity_key(PromptRow, prompt_id))
            if isinstance(loaded, PromptRow) and loaded.answered_at is None:
                set_committed_value(loaded, "answered_at", utc(at))
    return counts


_prompts = cast(Table, PromptRow.__table__)
_MARK_ANSWERED = (
    update(_prompts)
    .where(_prompts.c.id == bindparam("prompt"), _prompts.c.answered_at.is_(None))
    .values(answered_at=bindparam("at"))
)
