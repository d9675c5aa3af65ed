"""Personal data in the store: the audit log, retention, subject access and erasure.

- `AuditLog` appends to and reads `audit_log` (append-only: its triggers refuse UPDATE and
  DELETE). People are named there by internal id, never by name, so an erasure has nothing
  to rewrite in it and the log can say who was forgotten.
- `Retention` drops, a small batch per call, the raw bytes of inbound mail older than a
  cut-off (the row keeps its SHA-256, outcome and the answers it gave) and the bodies of
  delivered outbox messages; each batch is meant to be its own short transaction.
- `subject_access` reads everything stored about one person as plain JSON-ready data.
- `forget` anonymises one person in the caller's transaction: see its docstring.

Repositories here take a session and never commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    LargeBinary,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.domain.erasure import Identity, former_lead
from bot.domain.errors import PersonalDataError
from bot.domain.mail_states import InboundState, OutboxState
from storage.models import (
    ActionLeadRow,
    ActionRow,
    AuditRow,
    Base,
    InboundRow,
    MilestoneRow,
    NetworkRow,
    OutboxRow,
    PersonRow,
    PlanRow,
    PromptRow,
    TeamsConversationRow,
    UpdateRow,
)
from storage.repositories import utc

# ---------------------------------------------------------------------------- audit log


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    action: str
    actor: str
    channel: str
    person_id: int | None
    plan_key: str | None
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "action": self.action,
            "actor": self.actor,
            "channel": self.channel,
            "person_id": self.person_id,
            "plan": self.plan_key,
            "details": self.details,
        }


class AuditLog:
    """What admins and leads changed other than answers, in order. Append-only."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(
        self,
        *,
        at: datetime,
        action: str,
        actor: str,
        channel: str,
        person_id: int | None = None,
        plan_key: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        await self.session.execute(
            insert(AuditRow).values(
                at=utc(at),
                action=action,
                actor=actor[:128],
                channel=channel,
                person_id=person_id,
                plan_key=plan_key,
                details=details or {},
            )
        )

    async def entries(
        self,
        *,
        since: datetime | None = None,
        person_id: int | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Entries at or after `since`, about or by `person_id`, oldest first."""
        query = select(AuditRow).order_by(AuditRow.at, AuditRow.id)
        if since is not None:
            query = query.where(AuditRow.at >= utc(since))
        if person_id is not None:
            query = query.where(
                or_(AuditRow.person_id == person_id, AuditRow.actor == f"person:{person_id}")
            )
        if action is not None:
            query = query.where(AuditRow.action == action)
        rows = (await self.session.scalars(query)).all()
        return [
            AuditEntry(
                r.id,
                utc(r.at),
                r.action,
                r.actor,
                r.channel,
                r.person_id,
                r.plan_key,
                dict(r.details or {}),
            )
            for r in rows
        ]


# ---------------------------------------------------------------------------- retention


@dataclass(frozen=True, slots=True)
class RetentionDue:
    """How much retention would drop now."""

    raw_mail: int
    sent_bodies: int


DROPPED = {"dropped": "retention"}


class Retention:
    """Old raw mail and delivered message bodies, dropped a batch at a time."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _raw_due(before: datetime) -> ColumnElement[bool]:
        # Undecided mail ("new") is never dropped: it has not given its answers yet.
        return and_(
            InboundRow.raw_dropped_at.is_(None),
            InboundRow.received_at < utc(before),
            InboundRow.state != InboundState.NEW,
        )

    @staticmethod
    def _sent_due(before: datetime) -> ColumnElement[bool]:
        return and_(
            OutboxRow.body_dropped_at.is_(None),
            OutboxRow.state == OutboxState.SENT,
            OutboxRow.sent_at < utc(before),
        )

    async def due(
        self, *, raw_before: datetime | None, sent_before: datetime | None
    ) -> RetentionDue:
        raw = sent = 0
        if raw_before is not None:
            raw = (
                await self.session.scalar(
                    select(func.count()).select_from(InboundRow).where(self._raw_due(raw_before))
                )
                or 0
            )
        if sent_before is not None:
            sent = (
                await self.session.scalar(
                    select(func.count()).select_from(OutboxRow).where(self._sent_due(sent_before))
                )
                or 0
            )
        return RetentionDue(raw, sent)

    async def drop_raw_mail(self, *, before: datetime, now: datetime, limit: int) -> int:
        """Drop the raw bytes of up to `limit` messages received before `before`, keeping
        each one's SHA-256; how many."""
        query = (
            select(InboundRow.id, InboundRow.raw)
            .where(self._raw_due(before))
            .order_by(InboundRow.received_at, InboundRow.id)
            .limit(limit)
        )
        if self.session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        found = (await self.session.execute(query)).tuples().all()
        await _drop_raw(self.session, [(i, bytes(raw)) for i, raw in found], now=now)
        return len(found)

    async def drop_sent_bodies(self, *, before: datetime, now: datetime, limit: int) -> int:
        """Drop the payload of up to `limit` messages delivered before `before`; how many."""
        chosen = (
            select(OutboxRow.id)
            .where(self._sent_due(before))
            .order_by(OutboxRow.sent_at, OutboxRow.id)
            .limit(limit)
        )
        if self.session.bind.dialect.name == "postgresql":
            chosen = chosen.with_for_update(skip_locked=True)
        ids = list((await self.session.scalars(chosen)).all())
        if ids:
            await self.session.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids), OutboxRow.body_dropped_at.is_(None))
                .values(payload=DROPPED, body_dropped_at=utc(now))
            )
        return len(ids)


async def _drop_raw(
    session: AsyncSession, found: Sequence[tuple[int, bytes]], *, now: datetime
) -> None:
    if not found:
        return
    table = cast(Table, InboundRow.__table__)
    await session.execute(
        table.update()
        .where(table.c.id == bindparam("row_id"), table.c.raw_dropped_at.is_(None))
        .values(raw=b"", raw_sha256=bindparam("sha"), raw_dropped_at=utc(now)),
        [{"row_id": i, "sha": hashlib.sha256(raw).hexdigest()} for i, raw in found],
    )


# ---------------------------------------------------------------------------- people


async def person_by_key(session: AsyncSession, key: str) -> PersonRow:
    """The person with this key (or alias); PersonalDataError names the problem."""
    found = await session.scalar(select(PersonRow).where(PersonRow.key == key))
    if found is None:
        candidates = await session.scalars(select(PersonRow).where(PersonRow.aliases.contains(key)))
        found = next((p for p in candidates if key in p.aliases.split(";")), None)
    if found is None:
        raise PersonalDataError(f"no person with key {key!r}")
    return found


async def person_by_id(session: AsyncSession, person_id: int) -> PersonRow | None:
    return await session.get(PersonRow, person_id)


def identity_of(person: PersonRow) -> Identity:
    return Identity.of(
        replacement=former_lead(person.id),
        name=person.name,
        keys=[person.key, *(a for a in person.aliases.split(";") if a)],
        emails=[person.email, *(e for e in person.other_emails.split(";") if e)],
        slack_user_id=person.slack_user_id,
    )


def _addresses(person: PersonRow) -> set[str]:
    found = {e.strip().lower() for e in person.other_emails.split(";") if e.strip()}
    if person.email:
        found.add(person.email.strip().lower())
    return found


async def _chunks(
    session: AsyncSession, query: Any, id_column: Any, size: int = 500
) -> AsyncIterator[Sequence[Any]]:
    """The rows of `query` in chunks by ascending id (keyset), so big tables stream."""
    last: Any = None
    while True:
        page = query if last is None else query.where(id_column > last)
        rows = (await session.execute(page.order_by(id_column).limit(size))).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _subject(payload: dict[str, Any]) -> str | None:
    raw = payload.get("raw")
    if not isinstance(raw, str):
        return None
    head = BytesHeaderParser().parsebytes(raw[:16384].encode("ascii", "replace"))
    subject = head.get("Subject")
    return str(subject) if subject is not None else None


async def subject_access(session: AsyncSession, person: PersonRow) -> dict[str, Any]:
    """Everything stored about `person`, as plain JSON-ready data."""
    pid = person.id
    delegate = await session.get(PersonRow, person.delegate_id) if person.delegate_id else None
    teams = await _teams_conversation(session, pid)
    profile = {
        "id": pid,
        "key": person.key,
        "name": person.name,
        "email": person.email,
        "other_emails": [e for e in person.other_emails.split(";") if e],
        "aliases": [a for a in person.aliases.split(";") if a],
        "slack_user_id": person.slack_user_id,
        "prefers": person.prefers,
        "timezone": person.timezone,
        "delegate": delegate.key if delegate else None,
        "away_until": _iso(person.away_until),
        "email_bounced_at": _iso(person.email_bounced_at),
        "erased_at": _iso(person.erased_at),
        **teams,
    }
    led = (
        await session.execute(
            select(PlanRow.key, ActionRow.ref, ActionRow.title, ActionRow.retired)
            .join(ActionRow, ActionRow.plan_id == PlanRow.id)
            .join(ActionLeadRow, ActionLeadRow.action_id == ActionRow.id)
            .where(ActionLeadRow.person_id == pid)
            .order_by(PlanRow.key, ActionRow.position, ActionRow.id)
        )
    ).all()
    actions = [
        {"plan": p, "ref": ref, "title": title, "retired": retired}
        for p, ref, title, retired in led
    ]
    giver = PersonRow.__table__.alias("giver")
    columns = (
        UpdateRow.id,
        PlanRow.key,
        MilestoneRow.ref,
        MilestoneRow.title,
        UpdateRow.rating,
        UpdateRow.note,
        UpdateRow.revised_due,
        UpdateRow.needs_support,
        UpdateRow.source,
        UpdateRow.given_at,
        UpdateRow.recorded_at,
        giver.c.key,
        UpdateRow.evidence,
    )

    def answers(condition: ColumnElement[bool]) -> Any:
        return (
            select(*columns)
            .join(MilestoneRow, MilestoneRow.id == UpdateRow.milestone_id)
            .join(PlanRow, PlanRow.id == MilestoneRow.plan_id)
            .outerjoin(giver, giver.c.id == UpdateRow.person_id)
            .where(condition)
            .order_by(UpdateRow.given_at, UpdateRow.id)
        )

    their_milestones = select(MilestoneRow.id).where(
        MilestoneRow.action_id.in_(
            select(ActionLeadRow.action_id).where(ActionLeadRow.person_id == pid)
        )
    )
    given = (await session.execute(answers(UpdateRow.person_id == pid))).all()
    for_them = (
        await session.execute(
            answers(
                and_(
                    UpdateRow.milestone_id.in_(their_milestones),
                    or_(UpdateRow.person_id.is_(None), UpdateRow.person_id != pid),
                )
            )
        )
    ).all()

    def answer(row: Any) -> dict[str, Any]:
        return {
            "id": row[0],
            "plan": row[1],
            "milestone": row[2],
            "milestone_title": row[3],
            "rating": row[4],
            "note": row[5],
            "revised_due": _iso(row[6]),
            "needs_support": bool(row[7]),
            "source": row[8],
            "given_at": _iso(row[9]),
            "recorded_at": _iso(row[10]),
            "given_by": row[11],
            "evidence": row[12],
        }

    prompt_rows = (
        await session.execute(
            select(PromptRow, PlanRow.key)
            .join(PlanRow, PlanRow.id == PromptRow.plan_id)
            .where(PromptRow.person_id == pid)
            .order_by(PromptRow.created_at, PromptRow.id)
        )
    ).all()
    prompt_ids = [p.id for p, _ in prompt_rows]
    prompts = [
        {
            "id": p.id,
            "plan": plan_key,
            "cycle": p.cycle,
            "channel": p.channel,
            "milestones": list(p.milestone_refs or []),
            "on_behalf_of": list(p.on_behalf_of or []),
            "created_at": _iso(p.created_at),
            "sent_at": _iso(p.sent_at),
            "reminded_at": _iso(p.reminded_at),
            "answered_at": _iso(p.answered_at),
        }
        for p, plan_key in prompt_rows
    ]
    messages = [
        {
            "id": m.id,
            "kind": m.kind,
            "channel": m.channel,
            "state": m.state,
            "prompt_id": m.prompt_id,
            "subject": _subject(m.payload or {}),
            "created_at": _iso(m.created_at),
            "sent_at": _iso(m.sent_at),
            "body_dropped_at": _iso(m.body_dropped_at),
        }
        for m in (
            await session.scalars(
                select(OutboxRow)
                .where(_to_them(person, prompt_ids, teams["teams_user_id"]))
                .order_by(OutboxRow.created_at, OutboxRow.id)
            )
        ).all()
    ]
    mail = [
        {
            "id": row.id,
            "received_at": _iso(row.received_at),
            "source": row.source,
            "state": row.state,
            "outcome": row.outcome,
            "sha256": row.raw_sha256 or hashlib.sha256(row.raw).hexdigest(),
            "raw": None if row.raw_dropped_at else bytes(row.raw).decode("utf-8", "replace"),
            "raw_dropped_at": _iso(row.raw_dropped_at),
        }
        for row in await _mail_from(session, person, prompt_ids)
    ]
    audit = [e.to_json() for e in await AuditLog(session).entries(person_id=pid)]
    return {
        "person": profile,
        "leads": actions,
        "answers_given": [answer(r) for r in given],
        "answers_given_for_them": [answer(r) for r in for_them],
        "prompts": prompts,
        "messages_sent": messages,
        "mail_received": mail,
        "audit": audit,
    }


async def _teams_conversation(session: AsyncSession, person_id: int) -> dict[str, Any]:
    """Their Teams conversation with the bot, when the app was installed for them (all
    None when not)."""
    row = await session.get(TeamsConversationRow, person_id)
    return {
        "teams_user_id": row.teams_user_id if row else None,
        "teams_object_id": row.aad_object_id if row else None,
        "teams_tenant_id": row.tenant_id if row else None,
        "teams_conversation_id": row.conversation_id if row else None,
        "teams_service_url": row.service_url if row else None,
        "teams_installed_at": _iso(row.updated_at) if row else None,
    }


def _to_them(
    person: PersonRow, prompt_ids: Sequence[int], teams_user_id: str | None = None
) -> ColumnElement[bool]:
    """Outbox rows addressed to `person`: for their prompts, or to their address, Slack id or
    Teams user id."""
    conditions: list[ColumnElement[bool]] = []
    if prompt_ids:
        conditions.append(OutboxRow.prompt_id.in_(list(prompt_ids)))
    addresses = _addresses(person)
    if addresses:
        conditions.append(func.lower(OutboxRow.recipient).in_(sorted(addresses)))
    if person.slack_user_id:
        conditions.append(OutboxRow.recipient == person.slack_user_id)
    if teams_user_id:
        conditions.append(OutboxRow.recipient == teams_user_id)
    return or_(*conditions) if conditions else OutboxRow.id.is_(None)


def _sent_by(raw: bytes, addresses: set[str]) -> bool:
    head = BytesHeaderParser().parsebytes(raw[:65536])
    senders = getaddresses([str(v) for v in head.get_all("From", [])])
    return any(address.strip().lower() in addresses for _, address in senders)


async def _mail_from(
    session: AsyncSession, person: PersonRow, prompt_ids: Sequence[int]
) -> list[InboundRow]:
    """Inbound mail from `person`: sent from one of their addresses (read from the raw
    headers) or, once its raw bytes are gone, recorded against one of their prompts."""
    addresses = _addresses(person)
    # A message from them has one of their addresses in its bytes: found by a plain search
    # first, so only those few have their headers parsed (a year of mail is 50,000 messages).
    needles = [a.encode("utf-8") for a in addresses]
    found: list[InboundRow] = []
    query = select(InboundRow.id, InboundRow.raw, InboundRow.prompt_id)
    ids: list[int] = []
    async for rows in _chunks(session, query, InboundRow.id):
        for row_id, raw, prompt_id in rows:
            data = bytes(raw)
            head = data[:65536].lower()
            if (data and any(n in head for n in needles) and _sent_by(data, addresses)) or (
                not data and prompt_id in prompt_ids
            ):
                ids.append(row_id)
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        found += (
            await session.scalars(
                select(InboundRow).where(InboundRow.id.in_(batch)).order_by(InboundRow.id)
            )
        ).all()
    return found


# ---------------------------------------------------------------------------- erasure


@dataclass(frozen=True, slots=True)
class Erasure:
    """What `forget` did: counts only, never names."""

    person_id: int
    replacement: str
    reassigned_to: int | None
    actions_reassigned: int
    answers_kept: int
    messages_dropped: int
    mail_dropped: int
    texts_rewritten: int

    def to_json(self) -> dict[str, Any]:
        return {
            "reassigned_to": self.reassigned_to,
            "actions_reassigned": self.actions_reassigned,
            "answers_kept": self.answers_kept,
            "messages_dropped": self.messages_dropped,
            "mail_dropped": self.mail_dropped,
            "texts_rewritten": self.texts_rewritten,
        }


ERASED = {"dropped": "erasure"}
# Outbox messages not yet on their way: an erasure stops them.
_NOT_YET_SENT = (OutboxState.PENDING, OutboxState.CLAIMED)
# Handled on their own: people (the person's row), audit_log (names nobody), network
# coordinators (a list of addresses: theirs is taken out, not renamed).
_OWN_WAY = {("networks", "coordinators")}
# Names no one: a webhook URL's signature may hold a person's initials by chance, and
# rewriting them would cut the network off from its Teams channel.
_NOT_PERSONAL = {("networks", "teams_webhook")}
_SKIP_TABLES = {"people", "audit_log"}


async def leading(session: AsyncSession, person_id: int) -> list[str]:
    """The live actions `person_id` leads, as "plan ref"."""
    rows = await session.execute(
        select(PlanRow.key, ActionRow.ref)
        .join(ActionRow, ActionRow.plan_id == PlanRow.id)
        .join(ActionLeadRow, ActionLeadRow.action_id == ActionRow.id)
        .where(ActionLeadRow.person_id == person_id, ActionRow.retired.is_(False))
        .order_by(PlanRow.key, ActionRow.position, ActionRow.id)
    )
    return [f"{plan} {ref}" for plan, ref in rows.tuples()]


async def forget(
    session: AsyncSession,
    person: PersonRow,
    *,
    now: datetime,
    reassign_to: PersonRow | None = None,
) -> Erasure:
    """Anonymise `person` in the caller's transaction.

    Their live actions move to `reassign_to` (required when they lead any). Messages sent
    to them are dropped (outbox payloads emptied; unsent ones failed); inbound mail that
    mentions them or answered their prompts loses its raw bytes (its hash stays). Their
    answers stay, as "former lead N", with every mention of their name, keys, addresses
    and Slack id in any stored text — notes (and their copies in `milestone_state`),
    evidence of impact, lead cells, kept message bodies, outcomes — replaced by "former
    lead N". Their row keeps only its id, the new name, and when it was erased.
    """
    if person.erased_at is not None:
        raise PersonalDataError(f"{person.key} has already been forgotten")
    pid = person.id
    identity = identity_of(person)
    led = await leading(session, pid)
    moved = 0
    if led and reassign_to is None:
        raise PersonalDataError(
            f"{person.key} still leads {len(led)} action(s) ({', '.join(led[:10])}"
            f"{', …' if len(led) > 10 else ''}): reassign them first with --reassign-to KEY"
        )
    if reassign_to is not None:
        if reassign_to.id == pid or reassign_to.erased_at is not None:
            raise PersonalDataError("reassign to someone else, who has not been forgotten")
        moved = await _reassign(session, pid, reassign_to.id)
    prompt_ids = list(
        (await session.scalars(select(PromptRow.id).where(PromptRow.person_id == pid))).all()
    )
    teams = await session.get(TeamsConversationRow, pid)
    messages = await _drop_messages_to(
        session,
        person,
        prompt_ids,
        identity,
        now=now,
        teams_user_id=teams.teams_user_id if teams is not None else None,
    )
    # Where the bot could reach them in Teams goes: a prompt there would be to no one.
    await session.execute(delete(TeamsConversationRow).where(TeamsConversationRow.person_id == pid))
    mail = await _drop_mail_about(session, identity, prompt_ids, now=now)
    await _drop_coordinator(session, _addresses(person))
    rewritten = await _rewrite_texts(session, identity)
    await session.execute(
        update(PersonRow).where(PersonRow.delegate_id == pid).values(delegate_id=None)
    )
    await session.execute(
        update(PersonRow)
        .where(PersonRow.id == pid)
        .values(
            key=identity.replacement,
            name=identity.replacement,
            email=None,
            other_emails="",
            aliases="",
            slack_user_id=None,
            prefers="email",
            timezone=None,
            delegate_id=None,
            away_until=None,
            email_bounced_at=None,
            erased_at=utc(now),
        )
    )
    kept = await session.scalar(
        select(func.count()).select_from(UpdateRow).where(UpdateRow.person_id == pid)
    )
    return Erasure(
        person_id=pid,
        replacement=identity.replacement,
        reassigned_to=reassign_to.id if reassign_to else None,
        actions_reassigned=moved,
        answers_kept=kept or 0,
        messages_dropped=messages,
        mail_dropped=mail,
        texts_rewritten=rewritten,
    )


async def _reassign(session: AsyncSession, from_id: int, to_id: int) -> int:
    live = select(ActionRow.id).where(ActionRow.retired.is_(False))
    theirs = set(
        (
            await session.scalars(
                select(ActionLeadRow.action_id).where(
                    ActionLeadRow.person_id == from_id, ActionLeadRow.action_id.in_(live)
                )
            )
        ).all()
    )
    if not theirs:
        return 0
    already = set(
        (
            await session.scalars(
                select(ActionLeadRow.action_id).where(
                    ActionLeadRow.person_id == to_id, ActionLeadRow.action_id.in_(theirs)
                )
            )
        ).all()
    )
    if already:  # a joint lead with the new lead already: one lead fewer
        await session.execute(
            delete(ActionLeadRow).where(
                ActionLeadRow.person_id == from_id, ActionLeadRow.action_id.in_(already)
            )
        )
    if theirs - already:
        await session.execute(
            update(ActionLeadRow)
            .where(
                ActionLeadRow.person_id == from_id,
                ActionLeadRow.action_id.in_(theirs - already),
            )
            .values(person_id=to_id)
        )
    return len(theirs)


async def _drop_messages_to(
    session: AsyncSession,
    person: PersonRow,
    prompt_ids: Sequence[int],
    identity: Identity,
    *,
    now: datetime,
    teams_user_id: str | None = None,
) -> int:
    to_them = _to_them(person, prompt_ids, teams_user_id)
    ids = list((await session.scalars(select(OutboxRow.id).where(to_them))).all())
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        await session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id.in_(batch),
                OutboxRow.state.in_(_NOT_YET_SENT),
            )
            .values(state=OutboxState.FAILED, last_error="recipient forgotten")
        )
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(batch))
            .values(
                payload=ERASED,
                recipient=identity.replacement,
                body_dropped_at=func.coalesce(OutboxRow.body_dropped_at, utc(now)),
            )
        )
    return len(ids)


async def _drop_mail_about(
    session: AsyncSession, identity: Identity, prompt_ids: Sequence[int], *, now: datetime
) -> int:
    """Raw mail that answered their prompts or mentions them anywhere: bytes dropped."""
    query = select(InboundRow.id, InboundRow.raw, InboundRow.prompt_id).where(
        InboundRow.raw_dropped_at.is_(None)
    )
    asked = set(prompt_ids)
    chosen: list[tuple[int, bytes]] = []
    async for rows in _chunks(session, query, InboundRow.id):
        for row_id, raw, prompt_id in rows:
            data = bytes(raw)
            if prompt_id in asked or identity.mentions(data):
                chosen.append((row_id, data))
    # After the scan: its keyset pages must not see rows change under them.
    for start in range(0, len(chosen), 500):
        await _drop_raw(session, chosen[start : start + 500], now=now)
    return len(chosen)


async def _drop_coordinator(session: AsyncSession, addresses: set[str]) -> None:
    if not addresses:
        return
    for network in (await session.scalars(select(NetworkRow))).all():
        kept = [
            a for a in (network.coordinators or "").split(";") if a.strip().lower() not in addresses
        ]
        if ";".join(kept) != (network.coordinators or ""):
            network.coordinators = ";".join(kept)


def _escaped(needle: str) -> str:
    return needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def _rewrite_texts(session: AsyncSession, identity: Identity) -> int:
    """Every text and JSON column of every other table, with mentions replaced; how many
    values changed."""
    changed = 0
    for table in Base.metadata.sorted_tables:
        if table.name in _SKIP_TABLES:
            continue
        keys = list(table.primary_key.columns)
        for column in table.columns:
            if column.primary_key or isinstance(column.type, LargeBinary):
                continue
            is_json = isinstance(column.type, JSON)
            if not is_json and not isinstance(column.type, String):
                continue
            if (table.name, column.name) in _OWN_WAY | _NOT_PERSONAL:
                continue
            query = select(*keys, column)
            if is_json:
                if table.name == "outbox":
                    query = query.where(table.c.body_dropped_at.is_(None))
            else:
                query = query.where(
                    or_(*(column.ilike(f"%{_escaped(n)}%", escape="\\") for n in identity.needles))
                )
            updates: list[dict[str, Any]] = []
            async for rows in (
                _chunks(session, query, keys[0]) if len(keys) == 1 else _all(session, query)
            ):
                for row in rows:
                    value = row[-1]
                    if value is None:
                        continue
                    new = identity.redact_json(value) if is_json else identity.redact(value)
                    if new != value:
                        updates.append(
                            {**{f"k_{i}": row[i] for i in range(len(keys))}, "v_new": new}
                        )
            if updates:
                statement = (
                    table.update()
                    .where(and_(*(c == bindparam(f"k_{i}") for i, c in enumerate(keys))))
                    .values({column.name: bindparam("v_new", type_=column.type)})
                )
                await session.execute(statement, updates)
                changed += len(updates)
    return changed


async def _all(session: AsyncSession, query: Any) -> AsyncIterator[Sequence[Any]]:
    yield (await session.execute(query)).all()


async def forgotten(session: AsyncSession) -> set[int]:
    """The ids of people already anonymised."""
    return set(
        (await session.scalars(select(PersonRow.id).where(PersonRow.erased_at.is_not(None)))).all()
    )


async def truncate_sqlite_wal(engine: AsyncEngine) -> None:
    """Checkpoint SQLite's write-ahead log into the file and truncate it, so the old page
    images it keeps (erased text among them) are gone. Outside any transaction."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await cursor.close()
