"""The one place an answer is decided and recorded, whichever channel it came by.

Every channel translates its input into `AnswerRequest`s (who, which prompt, which lines,
when, from which message) and the `AnswerResult`s back into its medium: email into a
confirmation, Slack into an updated DM or a modal's field errors. What is decided here,
once for all of them:

- who may answer: the prompt's person and their delegate may answer everything it asked;
  a joint lead the milestones they lead; from a shared mailbox, every milestone of its
  combined prompt, each recorded for the person whose milestone it is (`AnswerContext`);
- each line: asked by this prompt, led by the writer, and the note rule (`judge`), each
  refusal with a `Refusal` and a reason in words;
- how a channel records (`Recording`): email keeps the valid lines of a reply and sends the
  rest back (DESIGN.md §9); an interactive channel (the Slack modal, a click) records nothing
  until every line is valid, because the person can put it right on the spot;
- recording: updates appended, deduplicated by source and message id, their prompts
  marked answered.

It works a batch at a time, for the email sweep and Slack's group commit (`group_commit`):
`AnswerBatch.load` reads what any number of answers need in a few queries, `decide` judges
each in turn as if the ones before it were committed (the note rule sees their ratings),
and `record` writes them in a few statements inside a savepoint; should that fail on a
duplicate (another process recorded the same message meanwhile), each answer is written
again in a savepoint of its own, so one duplicate does not spoil the others.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from bot.domain.child_details import stored_pattern
from bot.domain.cycles import listed_under
from bot.domain.model import Milestone, Person, Plan, Source, Update
from bot.domain.people import mailbox
from bot.domain.replies import AskedMilestone, LineRefusal, Refusal, ReplyLine, judge
from bot.domain.status import MilestoneStatus, local_date, status_in_plan
from bot.metrics import count_answers
from storage.answers import AnsweringData, AnswerRepository, AskedPrompt, NewUpdate
from storage.db import Session, is_duplicate, savepoint
from storage.live_view import LiveViewRepository
from storage.repositories import PlanRepository, TrackedPlan, utc

log = logging.getLogger(__name__)


class Recording(StrEnum):
    """How a channel records a request with some lines refused."""

    VALID_LINES = "valid_lines"  # email: the valid lines are recorded, the rest sent back
    ALL_OR_NOTHING = "all_or_nothing"  # Slack: nothing until every line is valid


@dataclass(frozen=True, slots=True)
class Who:
    """Who answers: a person by key (email finds them by address), or a Slack user."""

    person_key: str | None = None
    slack_user_id: str | None = None


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    """One answer to one prompt, as any channel gives it."""

    who: Who
    prompt_id: int
    lines: Sequence[ReplyLine]
    given_at: datetime
    message_id: str  # the channel's id of the message or action: recorded once
    channel: Source
    recording: Recording
    now: datetime
    # Lines the channel could not read (its own words say why): never recorded, and with
    # `ALL_OR_NOTHING` they keep the rest from being recorded too.
    unreadable: Sequence[LineRefusal] = ()


@dataclass(frozen=True, slots=True)
class AnswerContext:
    """What `writer` may answer on `prompt_id`, as things stand `today`."""

    plan: Plan
    prompt_id: int
    owner: Person
    writer: Person
    asked: tuple[AskedMilestone, ...]  # every milestone the prompt asked about
    allowed: frozenset[str]  # the references this writer may answer
    today: date
    refs: tuple[str, ...] = ()  # the prompt's own references, as it listed them
    # For a reply from a shared mailbox: whose milestone each reference is (the update is
    # recorded for them), and the prompts of that mailbox that asked about it.
    recorded_for: Mapping[str, str] = field(default_factory=dict)
    prompts_of: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # For each reference answered since the prompt went out: that answer (what a change on
    # the update page replaces) and the rating before the prompt (what the change is judged
    # against: "worse" means worse than before this prompt).
    replaces: Mapping[str, Replaced] = field(default_factory=dict)

    def asked_by_ref(self, channel: Source | None = None) -> dict[str, AskedMilestone]:
        """What each milestone is judged against; by `channel`, when it is one whose answers
        replace those given since the prompt went out (`SUPERSEDING`)."""
        if channel not in SUPERSEDING:
            return {a.ref: a for a in self.asked}
        return {
            a.ref: (
                replace(a, current_rating=self.replaces[a.ref].rating_before)
                if a.ref in self.replaces
                else a
            )
            for a in self.asked
        }

    def case_numbers(self) -> re.Pattern[str] | None:
        """The plan's own case-number pattern, which a note must not carry."""
        return stored_pattern(self.plan.case_numbers)

    def answerable(self) -> list[str]:
        """The prompt's references this writer may answer, in the prompt's order."""
        return [ref for ref in self.refs if ref in self.allowed]

    def person_for(self, ref: str) -> str:
        """The key an answer about `ref` is recorded for."""
        return self.recorded_for.get(ref, self.writer.key)

    def answered_prompts(self, ref: str) -> tuple[int, ...]:
        """The prompts an answer about `ref` answers."""
        return self.prompts_of.get(ref, (self.prompt_id,))


# Channels whose answer replaces one given since the same prompt went out: the update page,
# where a lead comes back to change what they said. An email reply or a click adds to the
# history as before.
SUPERSEDING = frozenset({Source.WEB})


@dataclass(frozen=True, slots=True)
class Replaced:
    """An answer given since a prompt went out, which a change on the page replaces."""

    update_id: int
    rating_before: int | None  # the milestone's rating before the prompt


class AnswerRefused(Exception):
    """The whole answer is refused (nobody we know, no prompt, not theirs to answer)."""

    def __init__(self, refusal: Refusal, reason: str) -> None:
        super().__init__(reason)
        self.refusal = refusal
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AnswerResult:
    """What became of one request: the valid lines and the refused ones, or the refusal of
    the whole; `recorded` counts the updates that were new once `AnswerBatch.record` ran."""

    request: AnswerRequest
    context: AnswerContext | None = None
    accepted: tuple[ReplyLine, ...] = ()
    refused: tuple[LineRefusal, ...] = ()
    refusal: Refusal | None = None
    reason: str = ""
    recorded: int = 0

    @property
    def kept(self) -> tuple[ReplyLine, ...]:
        """The lines that are recorded (none of an all-or-nothing request with a refusal)."""
        if self.refusal is not None:
            return ()
        if self.refused and self.request.recording is Recording.ALL_OR_NOTHING:
            return ()
        return self.accepted


class AnswerBatch:
    """Answers to some prompts, decided in turn and recorded together; see the module.
    Build it with `load`, inside the transaction that records the answers."""

    def __init__(self, data: AnsweringData) -> None:
        self._data = data
        self._milestones: dict[int, dict[str, Milestone]] = {}
        self._pending: dict[tuple[int, str], list[Update]] = defaultdict(list)
        self._decided: list[AnswerResult] = []

    @classmethod
    async def load(
        cls,
        session: Session,
        *,
        prompt_ids: Collection[int] = (),
        prompts: Collection[AskedPrompt] = (),
        person_keys: Collection[str] = (),
        slack_user_ids: Collection[str] = (),
        people_read: Mapping[int, Person] | None = None,
        carrying_none: Collection[int] = (),
    ) -> AnswerBatch:
        """Read what answers to these prompts by these people need, at once; not what the
        caller read with its prompts (`AnswerRepository.load`)."""
        return cls(
            await AnswerRepository(session).load(
                prompt_ids=prompt_ids,
                prompts=prompts,
                person_keys=person_keys,
                slack_user_ids=slack_user_ids,
                people_read=people_read,
                carrying_none=carrying_none,
            )
        )

    def plan_of(self, prompt_id: int) -> TrackedPlan | None:
        """The prompt's plan as this batch read it: its milestones asked by the prompts
        loaded (with what decides their status), so a channel showing them reads no more."""
        prompt = self._data.prompts.get(prompt_id)
        return self._data.plans.get(prompt.plan_id) if prompt is not None else None

    def person(self, who: Who) -> Person | None:
        if who.slack_user_id is not None:
            return self._data.slack_users.get(who.slack_user_id)
        person_id = self._data.person_ids.get(who.person_key or "")
        return self._data.people.get(person_id) if person_id is not None else None

    def context(self, who: Who, prompt_id: int, *, now: datetime) -> AnswerContext:
        """What `who` may answer on the prompt; raises `AnswerRefused`."""
        writer = self.person(who)
        if writer is None:
            if who.slack_user_id is not None:
                raise AnswerRefused(Refusal.NOT_LINKED, "this Slack account is not linked")
            raise AnswerRefused(Refusal.NOT_LINKED, f"{who.person_key} is not a known person")
        prompt = self._data.prompts.get(prompt_id)
        tracked = self._data.plans.get(prompt.plan_id) if prompt is not None else None
        owner = self._data.people.get(prompt.person_id) if prompt is not None else None
        if prompt is None or tracked is None or owner is None:
            raise AnswerRefused(Refusal.NO_PROMPT, "the prompt no longer exists")
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
            raise AnswerRefused(
                Refusal.NOT_YOURS, f"{writer.key} may not answer {owner.key}'s prompt"
            )
        return self._context(prompt, owner, writer, refs, allowed, milestones, now=now)

    def _shared(
        self,
        prompt: AskedPrompt,
        owner: Person,
        writer: Person,
        milestones: Mapping[str, Milestone],
        *,
        now: datetime,
    ) -> AnswerContext | None:
        """The context of a reply to a shared mailbox's combined prompt, when it is one; else
        None. From the mailbox, every milestone of it may be answered, each recorded for the
        person whose milestone it is; anyone else answers as they would each person's own."""
        carried = self._data.carried.get(prompt.id)
        if not carried:
            return None
        people = self._data.people
        asked = sorted(
            [(owner, prompt)]
            + [(people[p.person_id], p) for p in carried if p.person_id in people],
            key=lambda found: found[0].key,
        )
        whose = listed_under([(p.key, list(row.milestone_refs)) for p, row in asked])
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
            raise AnswerRefused(
                Refusal.NOT_YOURS, f"{writer.key} may not answer the prompt to {owner.email}"
            )
        return self._context(
            prompt, owner, writer, refs, allowed, milestones, now=now, prompts_of=prompts_of
        )

    def _context(
        self,
        prompt: AskedPrompt,
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
        tracked = self._data.plans[prompt.plan_id]
        today = local_date(now, tracked.plan.timezone)
        asked = []
        replaces: dict[str, Replaced] = {}
        for ref in refs:
            pending = self._pending.get((prompt.plan_id, ref))
            updates = tracked.updates.get(ref, ())
            status = tracked.status(milestones[ref], today=today, pending=pending or ())
            latest = _latest_rated((*updates, *pending) if pending else updates, now=now)
            since = _answered_since(updates, prompt.created_at, now=now)
            if since is not None and since.id is not None:
                before = status_in_plan(
                    tracked.plan,
                    milestones[ref],
                    [u for u in updates if u.given_at < prompt.created_at],
                    today=today,
                )
                replaces[ref] = Replaced(since.id, before.rating)
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
            tuple(refs),
            recorded_for or {},
            prompts_of or {},
            replaces,
        )

    def decide(self, request: AnswerRequest, context: AnswerContext | None = None) -> AnswerResult:
        """Judge `request` line by line, as if every answer decided before it in this batch
        were committed; `record` writes what it keeps. `context`: the one `context` gave
        for it, when the channel needed it already (to read the lines), and nothing was
        decided since."""
        try:
            if context is None:
                context = self.context(request.who, request.prompt_id, now=request.now)
        except AnswerRefused as whole:
            refused_whole = AnswerResult(request, refusal=whole.refusal, reason=whole.reason)
            self._decided.append(refused_whole)
            return refused_whole
        asked = context.asked_by_ref(request.channel)
        accepted: list[ReplyLine] = []
        refused: list[LineRefusal] = list(request.unreadable)
        for line in request.lines:
            if line.ref not in asked:
                refused.append(
                    LineRefusal(
                        line.ref,
                        Refusal.NOT_ASKED,
                        f"{line.ref} is not one of this prompt's milestones",
                        line.line_no,
                    )
                )
            elif line.ref not in context.allowed:
                refused.append(
                    LineRefusal(
                        line.ref,
                        Refusal.NOT_A_LEAD,
                        f"you are not a lead of {line.ref}; it was not recorded",
                        line.line_no,
                    )
                )
            else:
                judged = judge(asked[line.ref], line, case_numbers=context.case_numbers())
                if isinstance(judged, LineRefusal):
                    refused.append(judged)
                else:
                    accepted.append(judged)
        result = AnswerResult(request, context, tuple(accepted), tuple(refused))
        self._seen(result)
        self._decided.append(result)
        return result

    def _seen(self, result: AnswerResult) -> None:
        """Count what `result` keeps as recorded for the contexts given after it."""
        context = result.context
        if context is None:
            return
        plan_id = self._data.prompts[context.prompt_id].plan_id
        for line in result.kept:
            self._pending[(plan_id, line.ref)].append(
                Update(
                    milestone_ref=line.ref,
                    given_at=utc(result.request.given_at),
                    rating=line.rating,
                    note=line.note,
                    revised_due=line.revised_due,
                    needs_support=line.needs_support,
                    source=result.request.channel,
                    person_key=context.person_for(line.ref),
                    external_id=_external_id(result.request, line),
                    evidence=line.evidence,
                )
            )

    def discard(self) -> None:
        """Forget what was decided since the last `record` (its message was given up)."""
        self._decided = []

    async def record(self, session: Session) -> list[AnswerResult]:
        """Write what the requests decided since the last `record` keep; their results, in
        order, each with how many updates were new. In a savepoint; on a duplicate (another
        process committed the same message meanwhile) each request is written again in a
        savepoint of its own, and the duplicate counts nothing new."""
        decided, self._decided = self._decided, []
        writing = [r for r in decided if r.kept]
        if not writing:
            return decided
        try:
            async with savepoint(session):
                counts = await _write(session, writing)
        except Exception as failed:
            if not is_duplicate(failed) or len(writing) == 1:
                raise
            log.info("recording %d answers met a duplicate: each alone", len(writing))
            counts = []
            for one in writing:
                try:
                    async with savepoint(session):
                        counts += await _write(session, [one])
                except Exception as alone:
                    if not is_duplicate(alone):
                        raise
                    counts.append(0)
        recorded = {id(result): count for result, count in zip(writing, counts, strict=True)}
        return [replace(r, recorded=recorded.get(id(r), 0)) for r in decided]


async def _write(session: Session, results: Sequence[AnswerResult]) -> list[int]:
    """Record what `results` keep; how many updates each wrote that were new."""
    owners: list[int] = []
    updates: list[NewUpdate] = []
    for n, result in enumerate(results):
        context = result.context
        assert context is not None
        request = result.request
        # One update per milestone: a line repeated in one request is recorded once.
        lines = {_external_id(request, line): line for line in result.kept}
        for external_id, line in lines.items():
            owners.append(n)
            updates.append(
                NewUpdate(
                    plan_key=context.plan.key,
                    ref=line.ref,
                    person_key=context.person_for(line.ref),
                    rating=line.rating,
                    note=line.note,
                    revised_due=line.revised_due,
                    needs_support=line.needs_support,
                    source=request.channel.value,
                    external_id=external_id,
                    given_at=request.given_at,
                    recorded_at=request.now,
                    answers=context.answered_prompts(line.ref),
                    supersedes=_supersedes(context, request, line),
                    evidence=line.evidence,
                )
            )
    new = await AnswerRepository(session).record(updates)
    count_answers(session, [u.source for u, fresh in zip(updates, new, strict=True) if fresh])
    counts = [0] * len(results)
    for n, update, fresh in zip(owners, updates, new, strict=True):
        if not fresh:
            continue
        counts[n] += 1
        log.info(
            "recorded %s answer for %s of %s from %s: rating %s%s",
            update.source,
            update.ref,
            update.plan_key,
            update.person_key,
            update.rating if update.rating is not None else "-",
            ", needs support" if update.needs_support else "",
        )
    return counts


def _supersedes(context: AnswerContext, request: AnswerRequest, line: ReplyLine) -> int | None:
    """The update this line replaces: one given since the prompt went out, when the
    request comes by a channel whose changes replace (`SUPERSEDING`)."""
    if request.channel not in SUPERSEDING:
        return None
    replaced = context.replaces.get(line.ref)
    return replaced.update_id if replaced is not None else None


def _answered_since(updates: Sequence[Update], since: datetime, *, now: datetime) -> Update | None:
    """The latest answer (not an import) given between `since` and `now`, if any."""
    latest: Update | None = None
    for given in updates:
        if given.source is Source.IMPORT or given.given_at < since or given.given_at > now:
            continue
        if latest is None or given.given_at >= latest.given_at:
            latest = given
    return latest


def _external_id(request: AnswerRequest, line: ReplyLine) -> str:
    """Unique per source: the same click or message recorded twice is recorded once."""
    return f"{request.message_id}#{line.ref}"[:255]


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


# --- answers a coordinator records on a lead's behalf ------------------------------------


@dataclass(frozen=True, slots=True)
class OnBehalf:
    """An answer a coordinator records for a lead (after a phone call or a meeting): from the
    live view or `pulse answer --for`. `recorded_by` is who recorded it (their address, or
    `os:<user>`), kept with the update."""

    plan_key: str
    line: ReplyLine
    for_person: str  # the lead's key
    recorded_by: str
    now: datetime
    message_id: str  # recorded once: a form posted twice records one update


@dataclass(frozen=True, slots=True)
class OnBehalfResult:
    """What became of it: recorded (the line as kept), or refused with a reason in words."""

    line: ReplyLine | None = None
    reason: str = ""
    recorded: bool = False
    about_evidence: bool = False  # the evidence of impact is what was at fault


async def record_on_behalf(session: Session, request: OnBehalf) -> OnBehalfResult:
    """Judge and record one answer for a lead, in the caller's transaction, with source
    `coordinator`: the lead must lead the milestone, and the note rule and the child-details
    check apply as in every channel. It answers the lead's waiting prompts that asked it."""
    ref = request.line.ref
    tracked = await PlanRepository(session).tracked(request.plan_key, refs=[ref])
    found = [(a, m) for a in tracked.actions for m in a.milestones if m.ref == ref]
    if not found:
        return OnBehalfResult(reason=f"{ref} is not a milestone of {request.plan_key}")
    action, milestone = found[0]
    person = next((p for p in tracked.people if p.key == request.for_person), None)
    if person is None or person.key not in (milestone.leads or action.leads):
        return OnBehalfResult(reason=f"{request.for_person} is not a lead of {ref}")
    plan = tracked.plan
    today = local_date(request.now, plan.timezone)
    updates = tracked.updates.get(ref, ())
    status = tracked.status(milestone, today=today)
    latest = _latest_rated(updates, now=request.now)
    asked = AskedMilestone(
        ref,
        status.rating,
        status.status is MilestoneStatus.OVERDUE,
        latest.rating if latest is not None else None,
        latest.note if latest is not None else None,
        latest is not None and latest.needs_support,
    )
    judged = judge(asked, request.line, case_numbers=stored_pattern(plan.case_numbers))
    if isinstance(judged, LineRefusal):
        return OnBehalfResult(reason=judged.reason, about_evidence=judged.about_evidence)
    repository = AnswerRepository(session)
    (new,) = await repository.record(
        [
            NewUpdate(
                plan_key=plan.key,
                ref=ref,
                person_key=person.key,
                rating=judged.rating,
                note=judged.note,
                revised_due=judged.revised_due,
                needs_support=judged.needs_support,
                source=Source.COORDINATOR.value,
                external_id=f"{request.message_id}#{ref}"[:255],
                given_at=request.now,
                recorded_at=request.now,
                answers=await repository.waiting_prompts(plan.key, person.key, ref),
                recorded_by=request.recorded_by,
                evidence=judged.evidence,
            )
        ]
    )
    if new:
        count_answers(session, [Source.COORDINATOR.value])
        log.info("recorded coordinator answer for %s of %s for %s", ref, plan.key, person.key)
    return OnBehalfResult(judged, recorded=new)


async def withdraw(
    session: Session, *, plan_key: str, update_id: int, recorded_by: str, now: datetime
) -> str | None:
    """Take back a mis-recorded answer with a correcting update (source `coordinator`) that
    names it: it no longer counts for the status, and the history keeps both. None when
    done, else why not."""
    repository = AnswerRepository(session)
    found = await LiveViewRepository(session).update_of(plan_key, update_id)
    if found is None:
        return f"no answer {update_id} in {plan_key}"
    ref, _ = found
    if await LiveViewRepository(session).replaced(update_id):
        return f"answer {update_id} was already changed or withdrawn"
    person = await LiveViewRepository(session).person_of(update_id)
    await repository.record(
        [
            NewUpdate(
                plan_key=plan_key,
                ref=ref,
                person_key=person or "",
                rating=None,
                note=None,
                revised_due=None,
                needs_support=False,
                source=Source.COORDINATOR.value,
                external_id=f"withdraw:{update_id}",
                given_at=now,
                recorded_at=now,
                answers=(),
                supersedes=update_id,
                recorded_by=recorded_by,
            )
        ]
    )
    log.info("withdrew answer %d for %s of %s", update_id, ref, plan_key)
    return None
