"""The update page's use-cases (issue 14): what a link opens, answers submitted on it, and
the lead's absence set from it. The page itself is handlers/web; this decides.

A link (bot/messages/web_links.py) opens its person's current prompt: the milestones they may
answer on it, as in email (the person, their delegate, a joint lead for what they lead).
Submitting records every milestone given in ONE transaction through the answers path every
channel uses (`bot/services/answers.py`, all or nothing), with source `web`, and enqueues
the usual confirmation email in the same transaction; with any error nothing is recorded.
Reading a page changes nothing: mail scanners open every link before the lead does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from bot.clock import Clock
from bot.domain.cycles import PromptItem
from bot.domain.mail_states import OutboxKind
from bot.domain.model import Source, Update
from bot.domain.ratings import DEFAULT_LABELS
from bot.domain.replies import LineRefusal, Refusal, ReplyLine, judge
from bot.messages.emails import confirmation_email, new_token, token_hash
from bot.messages.web_forms import (
    ABSENCE_ERRORS,
    Absence,
    Draft,
    field_id,
    rating_id,
    read_absence,
    read_update,
)
from bot.services.absences import AbsenceRequest, Absences, ByKey
from bot.services.answers import (
    AnswerBatch,
    AnswerContext,
    AnswerRefused,
    AnswerRequest,
    AnswerResult,
    Recording,
    Who,
)
from bot.services.group_commit import GroupCommit
from bot.signing import Signer
from storage.db import DATABASE_ERRORS, Session, Sessions, is_duplicate, reads_only
from storage.evidence import EvidenceRepository
from storage.outbox import NewMessage, OutboxRepository
from storage.prompts import PromptRepository
from storage.repositories import PeopleRepository, TrackedPlan
from storage.web_links import FoundLink, WebLinks

log = logging.getLogger(__name__)

_REPLY_TOKEN_DAYS = 42


@dataclass(frozen=True, slots=True)
class Answered:
    """An answer already given on this prompt: what the form starts from."""

    rating: int | None
    note: str | None
    revised_due: date | None
    needs_support: bool
    evidence: str | None = None


@dataclass(frozen=True, slots=True)
class UpdatePage:
    """Everything the page shows."""

    plan_title: str
    writer_name: str
    writer_key: str
    items: tuple[PromptItem, ...]
    answered: Mapping[str, Answered]  # by ref: given since this prompt went out
    labels: Mapping[int, str]
    today: date
    away_until: date | None
    delegate_key: str | None
    people: tuple[tuple[str, str], ...]  # (key, name) of who may be named delegate
    names: Mapping[str, str]  # key -> name, for "for Alex Walker"

    def values(self) -> dict[str, str]:
        """The form's fields as the answers already given fill them."""
        out: dict[str, str] = {}
        for n, item in enumerate(self.items, start=1):
            given = self.answered.get(item.milestone_ref)
            if given is None:
                continue
            out[field_id(n, "rating")] = str(given.rating or "")
            out[field_id(n, "note")] = given.note or ""
            out[field_id(n, "revised")] = (
                given.revised_due.strftime("%d/%m/%Y") if given.revised_due else ""
            )
            out[field_id(n, "support")] = "on" if given.needs_support else ""
            out[field_id(n, "evidence")] = given.evidence or ""
        out["away"] = self.away_until.strftime("%d/%m/%Y") if self.away_until else ""
        out["delegate"] = self.delegate_key or ""
        return out


@dataclass(frozen=True, slots=True)
class Submitted:
    """The outcome of a submission: the page again with errors, or what was recorded."""

    page: UpdatePage
    draft: Draft
    recorded: tuple[ReplyLine, ...] = ()
    already: bool = False  # the same submission was recorded before (a replayed POST)
    emailed: bool = False

    @property
    def errors(self) -> Mapping[str, str]:
        return self.draft.errors


@dataclass(frozen=True, slots=True)
class AbsenceSet:
    page: UpdatePage
    absence: Absence
    message: str = ""
    errors: Mapping[str, str] = field(default_factory=dict)


class UpdatePages:
    """The update page's use-cases, one unit of work each."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        clock: Clock,
        signer: Signer,
        mail_from: str,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.signer = signer
        self.mail_from = mail_from
        bind = getattr(sessions, "kw", {}).get("bind")
        sqlite = getattr(getattr(bind, "dialect", None), "name", "") == "sqlite"
        # SQLite has one writer at a time: queue the page's writes here rather than in
        # SQLite's busy handler.
        self._writer: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if sqlite else contextlib.nullcontext()
        )
        self._submits: GroupCommit[_Submission, Submitted | None] = GroupCommit(
            sessions, self._submit_batch, lock=self._writer
        )

    async def page(self, token_hash_: str) -> UpdatePage | None:
        """The page a link opens, or None when the link is unknown or no longer works.
        Reads only, so not in the writers' queue: on SQLite it reads the last committed
        state without the write lock (`reads_only`), while submits queue for it."""
        now = self.clock()
        async with self.sessions() as session:
            await reads_only(session)
            opened = await self._open(session, token_hash_, now=now)
            if opened is None:
                return None
            names = await PeopleRepository(session).names()
            return await self._page_of(session, *opened, names, now=now)

    async def submit(self, token_hash_: str, form: Mapping[str, str]) -> Submitted | None:
        """Record the form's answers, all or nothing; None when the link no longer works.
        Submits arriving together are recorded in one transaction (`GroupCommit`); each is
        answered once that transaction has committed."""
        try:
            return await self._submits.submit(_Submission(token_hash_, form, self.clock()))
        except DATABASE_ERRORS as error:
            if not is_duplicate(error):
                raise
            # The same submission committed by a concurrent request: recorded once, there.
            page_again = await self.page(token_hash_)
            if page_again is None:
                return None
            return Submitted(page_again, Draft((), {}), already=True)

    async def _submit_batch(
        self, session: Session, submissions: Sequence[_Submission]
    ) -> list[Submitted | Exception | None]:
        """The submissions' answers, decided in turn and written together in `session`'s
        transaction. Two submissions on one prompt go in separate rounds, the later one
        reading what the earlier recorded, as if each had its own transaction."""
        results: list[Submitted | Exception | None] = [None] * len(submissions)
        links = await WebLinks(session).find_many([s.token_hash for s in submissions])
        waiting = [
            n
            for n, s in enumerate(submissions)
            if (link := links.get(s.token_hash)) is not None and link.open_at(s.now)
        ]
        confirm: list[_Confirmation] = []
        while waiting:
            this_round: list[int] = []
            later: list[int] = []
            prompts: set[int] = set()
            for n in waiting:
                prompt_id = links[submissions[n].token_hash].prompt.id
                (later if prompt_id in prompts else this_round).append(n)
                prompts.add(prompt_id)
            waiting = later
            chosen = [links[submissions[n].token_hash] for n in this_round]
            answers = await _load(session, chosen)
            deciding: list[tuple[int, _Decided]] = []
            for n, link in zip(this_round, chosen, strict=True):
                submission = submissions[n]
                try:
                    context = answers.context(
                        Who(person_key=link.person.key), link.prompt.id, now=submission.now
                    )
                except AnswerRefused:
                    continue  # results[n] stays None: the link no longer works
                # Without everyone's names: only a form sent back with errors shows the
                # delegate list, and those are filled in below.
                page = await self._page_of(session, link, context, answers, {}, now=submission.now)
                try:
                    outcome = self._decide(link, context, answers, page, submission)
                except Exception as failed:  # that request's alone: the others go on
                    log.exception("web: a submission could not be decided")
                    results[n] = failed
                    continue
                if isinstance(outcome, Submitted):
                    results[n] = outcome
                else:
                    deciding.append((n, outcome))
            recorded = await answers.record(session)
            for (n, decided), result in zip(deciding, recorded, strict=True):
                results[n] = self._outcome(decided, result, confirm)
        if confirm:
            await self._confirm(session, confirm)
        names: dict[str, str] | None = None
        for n, told in enumerate(results):
            if isinstance(told, Submitted) and told.errors:  # the form goes back
                if names is None:
                    names = await PeopleRepository(session).names()
                own_key = links[submissions[n].token_hash].person.key
                page = replace(told.page, people=_delegates(names, own_key), names=names)
                results[n] = replace(told, page=page)
        return results

    def _decide(
        self,
        link: FoundLink,
        context: AnswerContext,
        answers: AnswerBatch,
        page: UpdatePage,
        submission: _Submission,
    ) -> Submitted | _Decided:
        """The form judged: the page again with its errors, "nothing changed", or the
        changed lines decided in `answers` (to be recorded with the rest)."""
        form, now = submission.form, submission.now
        refs = [item.milestone_ref for item in page.items]
        draft = read_update(form, refs, today=page.today)
        errors = dict(draft.errors)
        asked = context.asked_by_ref(Source.WEB)
        judged: list[ReplyLine] = []
        for line in draft.lines:
            # Every line, though only changes are kept.
            verdict = judge(asked[line.ref], line, case_numbers=context.case_numbers())
            if isinstance(verdict, LineRefusal):
                reason = verdict.reason
                about = "evidence" if verdict.about_evidence else "note"
                errors.setdefault(field_id(line.line_no, about), reason[0].upper() + reason[1:])
            else:
                judged.append(verdict)
        if errors:
            return Submitted(page, Draft(draft.lines, draft.values, errors))
        changed = [
            line
            for line in judged
            if page.answered.get(line.ref)
            != Answered(line.rating, line.note, line.revised_due, line.needs_support, line.evidence)
        ]
        if not changed:
            return Submitted(page, draft)
        nonce = _nonce(form.get("submission", ""))
        key = f"web:{link.prompt.id}:{link.person.id}:{nonce}"
        who = Who(person_key=link.person.key)
        answers.decide(
            AnswerRequest(
                who, link.prompt.id, changed, now, key, Source.WEB, Recording.ALL_OR_NOTHING, now
            )
        )
        return _Decided(link, context, page, draft, tuple(changed), key, now)

    def _outcome(
        self, decided: _Decided, result: AnswerResult, confirm: list[_Confirmation]
    ) -> Submitted:
        """What a decided submission came to once recorded; its confirmation added to
        `confirm` when it recorded something and its writer has an address."""
        page, draft, changed = decided.page, decided.draft, decided.changed
        if result.refusal is not None or result.refused:  # changed since the page was read
            refused = result.refused[0].reason if result.refused else result.reason
            errors = {field_id(changed[0].line_no, "note"): refused[0].upper() + refused[1:]}
            return Submitted(page, Draft(draft.lines, draft.values, errors))
        if result.recorded == 0:
            return Submitted(page, draft, already=True)
        writer = decided.context.writer
        emailed = bool(writer.email) and not decided.link.person.bounced
        if emailed:
            confirm.append(
                _Confirmation(decided.link, decided.context, changed, decided.key, decided.now)
            )
        log.info(
            "web: %d answers recorded for prompt %d by %s",
            result.recorded,
            decided.link.prompt.id,
            writer.key,
        )
        return Submitted(page, draft, recorded=changed, emailed=emailed)

    async def set_absence(self, token_hash_: str, form: Mapping[str, str]) -> AbsenceSet | None:
        """Set the link's person away until a date (or back) and their delegate."""
        now = self.clock()
        async with self._writer, self.sessions() as session, session.begin():
            opened = await self._open(session, token_hash_, now=now)
            if opened is None:
                return None
            link, context, answers = opened
            names = await PeopleRepository(session).names()
            page = await self._page_of(session, link, context, answers, names, now=now)
            absence = read_absence(
                form,
                people=[key for key, _ in page.people],
                own_key=link.person.key,
                today=page.today,
            )
            if absence.errors:
                return AbsenceSet(page, absence, errors=absence.errors)
            request = AbsenceRequest(
                away=absence.values["away"] or None,
                back=absence.away_until is None,
                delegate=ByKey(absence.delegate) if absence.delegate else None,
                no_delegate=absence.delegate is None,
            )
            outcome = await Absences(session, channel="web", now=now).ask(link.person, request)
            if outcome.refused:
                refused = {f: ABSENCE_ERRORS[r] for f, r in outcome.refusals.items()}
                return AbsenceSet(page, absence, errors=refused)
            log.info("web: absence set for %s", link.person.key)
            names = dict(page.people)
            if absence.away_until is not None:
                whom = names.get(absence.delegate or "", "nobody")
                message = (
                    f"You are away until {absence.away_until:%-d %B %Y}; "
                    f"{whom} answers for you meanwhile."
                )
            elif absence.delegate is not None:
                message = f"{names[absence.delegate]} answers for you when you are away."
            else:
                message = "You are not away, and nobody answers for you."
            page = await self._page_of(session, link, context, answers, names, now=now)
            return AbsenceSet(page, absence, message)

    # -- inside a unit of work --------------------------------------------------------

    async def _open(
        self, session: Session, token_hash_: str, *, now: datetime
    ) -> tuple[FoundLink, AnswerContext, AnswerBatch] | None:
        """The link, what its person may answer, and the answers batch read for it: read
        once per request, and what the page and the recording both use."""
        link = await WebLinks(session).find(token_hash_)
        if link is None or not link.open_at(now):
            return None
        answers = await _load(session, [link])
        try:
            context = answers.context(Who(person_key=link.person.key), link.prompt.id, now=now)
        except AnswerRefused:
            return None
        return link, context, answers

    async def _page_of(
        self,
        session: Session,
        link: FoundLink,
        context: AnswerContext,
        answers: AnswerBatch,
        names: Mapping[str, str],
        *,
        now: datetime,
    ) -> UpdatePage:
        """The page, from what `_open` read and everyone's names (`PeopleRepository.names`);
        the evidence of answers rated 1 is read here."""
        refs = [r for r in link.prompt.milestone_refs if r in context.allowed]
        tracked = answers.plan_of(link.prompt.id)
        if tracked is None:  # read with the context just given: cannot happen
            raise AnswerRefused(Refusal.NO_PROMPT, "the prompt no longer exists")
        since = link.prompt.created_at
        answered: dict[str, Answered] = {}
        latest_of = {
            ref: latest
            for ref in refs
            if (latest := _latest_since(tracked.updates.get(ref, ()), since, now)) is not None
        }
        achieved = [ref for ref, latest in latest_of.items() if latest.rating == 1]
        evidence = (
            await EvidenceRepository(session).of_plan(context.plan.key, refs=achieved)
            if achieved
            else {}
        )
        for ref, latest in latest_of.items():
            given = evidence.get(ref)
            answered[ref] = Answered(
                latest.rating,
                latest.note,
                latest.revised_due,
                latest.needs_support,
                given.text if given is not None and given.given_at == latest.given_at else None,
            )
        return UpdatePage(
            plan_title=context.plan.title,
            writer_name=context.writer.name,
            writer_key=context.writer.key,
            items=tuple(_items(tracked, refs, context)),
            answered=answered,
            labels=DEFAULT_LABELS,
            today=context.today,
            away_until=link.person.away_until,
            delegate_key=link.delegate_key,
            people=_delegates(names, link.person.key),
            names=names,
        )

    async def _confirm(self, session: Session, recorded: Sequence[_Confirmation]) -> None:
        """The usual confirmation emails, in this transaction: a reply token each, and each
        in reply to its prompt's email when there was one."""
        outbox = OutboxRepository(session)
        originals = await outbox.message_ids_for([f"prompt:{c.link.prompt.id}" for c in recorded])
        tokens: dict[datetime, list[tuple[int, str]]] = defaultdict(list)
        messages: dict[datetime, list[NewMessage]] = defaultdict(list)
        for c in recorded:
            writer = c.context.writer
            token = new_token(self.signer)
            tokens[c.now].append((c.link.prompt.id, token_hash(token, self.signer)))
            message = confirmation_email(
                plan=c.context.plan,
                person=writer,
                accepted=c.lines,
                rejected=[],
                token=token,
                mail_from=self.mail_from,
                now=c.now,
                in_reply_to=originals.get(f"prompt:{c.link.prompt.id}"),
            )
            messages[c.now].append(
                NewMessage(
                    dedupe_key=f"confirm:{c.key}"[:255],
                    kind=OutboxKind.CONFIRMATION,
                    channel="email",
                    recipient=writer.email or "",
                    payload=message.payload(),
                    message_id=message.message_id,
                )
            )
        prompts = PromptRepository(session)
        for now, given in tokens.items():  # submissions of one moment: usually one statement
            await prompts.add_tokens(given, expires_at=now + timedelta(days=_REPLY_TOKEN_DAYS))
            await outbox.enqueue_many(messages[now], now=now)


@dataclass(frozen=True, slots=True)
class _Submission:
    token_hash: str
    form: Mapping[str, str]
    now: datetime


@dataclass(frozen=True, slots=True)
class _Decided:
    """A submission whose changed lines were decided, waiting for the batch's record."""

    link: FoundLink
    context: AnswerContext
    page: UpdatePage
    draft: Draft
    changed: tuple[ReplyLine, ...]
    key: str
    now: datetime


@dataclass(frozen=True, slots=True)
class _Confirmation:
    link: FoundLink
    context: AnswerContext
    lines: tuple[ReplyLine, ...]
    key: str
    now: datetime


async def _load(session: Session, links: Sequence[FoundLink]) -> AnswerBatch:
    """The answers batch for these links' prompts and people, reading nothing the links'
    query read already."""
    return await AnswerBatch.load(
        session,
        prompts=[link.prompt.asked() for link in links],
        person_keys=[link.person.key for link in links],
        people_read={
            link.person.id: link.answering for link in links if link.answering is not None
        },
        carrying_none=[link.prompt.id for link in links if not link.carries],
    )


def _nonce(given: str) -> str:
    """The submission's id from the form (made when the page was drawn), so a replayed or
    double-clicked submission is recorded once; a fresh one when it is missing or odd."""
    text = given.strip()
    if 16 <= len(text) <= 43 and all(c.isalnum() or c in "-_" for c in text):
        return text
    return secrets.token_urlsafe(16)


def new_submission_id() -> str:
    """The id a drawn form carries (`_nonce`)."""
    return secrets.token_urlsafe(16)


def _delegates(names: Mapping[str, str], own_key: str) -> tuple[tuple[str, str], ...]:
    """Who the person with `own_key` may name delegate, (key, name) in name order."""
    return tuple(
        sorted(
            ((key, name) for key, name in names.items() if key != own_key),
            key=lambda kn: kn[1].lower(),
        )
    )


def _latest_since(updates: Sequence[Update], since: datetime, now: datetime) -> Update | None:
    latest: Update | None = None
    for given in updates:
        if given.source is Source.IMPORT or given.given_at < since or given.given_at > now:
            continue
        if latest is None or given.given_at >= latest.given_at:
            latest = given
    return latest


def _items(tracked: TrackedPlan, refs: Sequence[str], context: AnswerContext) -> list[PromptItem]:
    wanted = set(refs)
    found: dict[str, PromptItem] = {}
    for action in tracked.actions:
        for milestone in action.milestones:
            if milestone.ref not in wanted:
                continue
            status = tracked.status(milestone, today=context.today)
            lead = context.recorded_for.get(milestone.ref) or (
                context.owner.key
                if context.owner.key in (milestone.leads or action.leads)
                else next(iter(milestone.leads or action.leads), context.owner.key)
            )
            found[milestone.ref] = PromptItem.of(
                milestone, status, action_ref=action.ref, on_behalf_of=lead
            )
    return [found[ref] for ref in refs if ref in found]


__all__ = ["Answered", "Submitted", "UpdatePage", "UpdatePages", "new_submission_id", "rating_id"]
