"""SQLAlchemy tables. The unique keys here are what later idempotency stands on:
a reference is unique in its plan, an update's external id is unique per source, and
updates are never updated or deleted (append-only history)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.domain.mail_states import InboundState, OutboxState

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# A new plan is imported under a key that starts so, retired, and given its own key in one
# short transaction at the end (storage/importer.py): no listing shows it, no rule prompts or
# digests it, and an import refuses a plan key that starts so.
STAGED_PLAN_PREFIX = "~import~"


class PlanRow(Base):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(Text)
    organisation: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    start: Mapped[date | None] = mapped_column(Date)
    # Thresholds, schedules and labels that override the defaults; a plain mapping.
    settings: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The last import (dry runs aside): `pulse plans` shows it.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set by `pulse plans retire`: no prompts or digests any more; everything is kept.
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PriorityRow(Base):
    __tablename__ = "priorities"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    # A Word plan's "Key areas" row, and its "Overall lead(s)" row as the plan writes it.
    description: Mapped[str | None] = mapped_column(Text)
    leads: Mapped[str | None] = mapped_column(Text)


class PersonRow(Base):
    __tablename__ = "people"
    # Inbound mail finds its sender by address, whatever its case.
    __table_args__ = (Index("ix_people_email_lower", func.lower(text("email"))),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(320))
    slack_user_id: Mapped[str | None] = mapped_column(String(32))
    prefers: Mapped[str] = mapped_column(String(16), default="email")
    timezone: Mapped[str | None] = mapped_column(String(64))
    delegate_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    away_until: Mapped[date | None] = mapped_column(Date)
    # Set once hard bounces reach BOUNCE_LIMIT: the person is no longer emailed.
    email_bounced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Further addresses they write from, lower case, ";"-separated (never mailed to).
    other_emails: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Further keys the plans use for them, ";"-separated: a people file's second row with
    # the same name and address.
    aliases: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Set by `pulse people forget`: the row is "former lead <id>", with nothing else left.
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NetworkRow(Base):
    __tablename__ = "networks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Text)
    slack_channel: Mapped[str | None] = mapped_column(String(128))
    # A Workflows webhook's URL, signature (`sig`) included: a secret (bot.domain.webhooks).
    teams_webhook: Mapped[str | None] = mapped_column(Text)
    coordinators: Mapped[str] = mapped_column(Text, default="")  # addresses, ";"-separated
    all_actions: Mapped[bool] = mapped_column(Boolean, default=False)


class PlanNetworkRow(Base):
    """The networks that receive a plan's digests."""

    __tablename__ = "plan_networks"

    plan_id: Mapped[int] = mapped_column(
        ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True
    )
    network_id: Mapped[int] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True
    )


class ActionRow(Base):
    __tablename__ = "actions"
    __table_args__ = (UniqueConstraint("plan_id", "ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    priority_id: Mapped[int] = mapped_column(ForeignKey("priorities.id"))
    ref: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text)
    aim: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Actions dropped from a re-imported plan are retired, never deleted: history stays.
    retired: Mapped[bool] = mapped_column(Boolean, default=False)


class ActionLeadRow(Base):
    __tablename__ = "action_leads"

    action_id: Mapped[int] = mapped_column(
        ForeignKey("actions.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ActionNetworkRow(Base):
    __tablename__ = "action_networks"

    action_id: Mapped[int] = mapped_column(
        ForeignKey("actions.id", ondelete="CASCADE"), primary_key=True
    )
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id"), primary_key=True)


class MilestoneRow(Base):
    __tablename__ = "milestones"
    __table_args__ = (UniqueConstraint("plan_id", "ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    # Indexed so that deleting an action (a staged import undone) does not scan every
    # milestone for each one: both databases check the foreign key row by row.
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"), index=True)
    ref: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(Text)
    timescale_text: Mapped[str] = mapped_column(Text, default="")
    due: Mapped[date | None] = mapped_column(Date)
    start: Mapped[date | None] = mapped_column(Date)
    recurrence: Mapped[str | None] = mapped_column(String(16))
    ongoing: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    retired: Mapped[bool] = mapped_column(Boolean, default=False)


class UpdateRow(Base):
    """One answer about one milestone. Append-only: the latest is the status."""

    __tablename__ = "updates"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_updates_milestone_given", "milestone_id", "given_at", "id"),
        # A milestone's status needs only its latest update, its last two ratings and its
        # latest revised date: these indexes find each without reading the history.
        # On PostgreSQL it carries the rating too (migration 0029): a pack's rating mix
        # probes it 350,000 times and reads each rating from the index alone.
        Index(
            "ix_updates_milestone_rated",
            "milestone_id",
            "given_at",
            "id",
            sqlite_where=text("rating IS NOT NULL"),
            postgresql_where=text("rating IS NOT NULL"),
            postgresql_include=["rating"],
        ),
        Index(
            "ix_updates_milestone_revised",
            "milestone_id",
            "given_at",
            "id",
            sqlite_where=text("revised_due IS NOT NULL"),
            postgresql_where=text("revised_due IS NOT NULL"),
        ),
        # The answers one person gave, for a subject-access export (migration 0023).
        Index("ix_updates_person_given", "person_id", "given_at", "id"),
        # Whether an update is superseded, asked per update by status reads (0026).
        # The milestones that have evidence of impact, asked by digests and packs (0027).
        Index(
            "ix_updates_milestone_evidence",
            "milestone_id",
            "given_at",
            "id",
            sqlite_where=text("evidence IS NOT NULL"),
            postgresql_where=text("evidence IS NOT NULL"),
        ),
        Index(
            "ix_updates_supersedes",
            "supersedes_id",
            sqlite_where=text("supersedes_id IS NOT NULL"),
            postgresql_where=text("supersedes_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    milestone_id: Mapped[int] = mapped_column(ForeignKey("milestones.id", ondelete="RESTRICT"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    rating: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    revised_due: Mapped[date | None] = mapped_column(Date)
    needs_support: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str | None] = mapped_column(String(255))
    given_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The update this one replaces: a lead's change on the update page within the same
    # prompt. The replaced one stays in the history and no longer counts for the status.
    supersedes_id: Mapped[int | None] = mapped_column(Integer)
    # Who recorded it, when not the person it is for: a coordinator on a lead's behalf (their
    # address, or "os:<user>" from the command line).
    recorded_by: Mapped[str | None] = mapped_column(String(320))
    # With a rating of 1: what changed for children and families, or a link to evidence
    # (migration 0027). Personal data, like the note.
    evidence: Mapped[str | None] = mapped_column(Text)


# What a copy of an update holds in `milestone_state`, in the order of `UPDATE_FIELDS`.
UPDATE_FIELDS: tuple[tuple[str, Any], ...] = (
    ("id", Integer),
    ("given_at", DateTime(timezone=True)),
    ("rating", Integer),
    ("note", Text),
    ("revised_due", Date),
    ("needs_support", Boolean),
    ("source", String(16)),
    ("person_id", Integer),
    ("external_id", String(255)),
)
# The updates that decide a milestone's status: its latest, its last two ratings (the
# latest and the one before) and its latest revised date.
STATE_SLOTS = ("latest", "rated", "prior_rated", "revised")

# Each milestone's deciding updates, copied whole into one row per milestone so that a
# digest reads 50,000 milestones without touching the history. Kept by a database trigger
# on every insert into `updates` (migration 0005), whoever writes it; a slot is empty (all
# NULL) until there is such an update. Only `latest_*` is never empty once the row exists.
milestone_state = Table(
    "milestone_state",
    Base.metadata,
    Column(
        "milestone_id",
        Integer,
        ForeignKey("milestones.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    *(
        Column(f"{slot}_{name}", kind, nullable=True)
        for slot in STATE_SLOTS
        for name, kind in UPDATE_FIELDS
    ),
)


class PromptRow(Base):
    """One request to one person in one cycle; unique per (plan, person, cycle)."""

    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("plan_id", "person_id", "cycle"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    cycle: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    # The milestone references asked about, frozen when the prompt was planned.
    milestone_refs: Mapped[list[str]] = mapped_column(JSON)
    on_behalf_of: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when this prompt went out in another's message: one combined prompt a cycle to a
    # mailbox several people share. Only that prompt has a message and reply tokens.
    sent_with: Mapped[int | None] = mapped_column(
        ForeignKey("prompts.id", ondelete="SET NULL"), index=True
    )


class PromptTokenRow(Base):
    """A reply token of a prompt (the prompt's own, or its reminder's), stored hashed: the
    token itself is only in the message we sent."""

    __tablename__ = "prompt_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebLinkRow(Base):
    """A link to a person's update page (handlers/web), stored as a keyed hash of its
    token: the token itself is only in the message we sent. It is bound to one person and
    one prompt, and ends at `expires_at` or at that person's next prompt of the plan."""

    __tablename__ = "web_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TeamsConversationRow(Base):
    """A person's 1:1 conversation with the Teams bot, learnt when the app was installed for
    them: where their prompts are posted. Personal data (README "Personal data")."""

    __tablename__ = "teams_conversations"

    person_id: Mapped[int] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), primary_key=True
    )
    teams_user_id: Mapped[str] = mapped_column(String(200), unique=True)
    aad_object_id: Mapped[str | None] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    conversation_id: Mapped[str] = mapped_column(String(400))
    service_url: Mapped[str] = mapped_column(String(400))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ViewLinkRow(Base):
    """A coordinator's link to their network's live view, sent in a digest email: only a
    keyed hash of its token is kept. Revoked links stay, for the audit."""

    __tablename__ = "view_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxRow(Base):
    """A message to deliver, frozen when it was decided, so a retry sends the same thing.

    state: pending → claimed (leased) → sending (handed over: the far end may have it) →
    sent | failed | needs_review; an admin settles failed and needs-review rows with
    `pulse outbox` (back to pending, sent, or not_sent). An expired lease on a claimed row
    puts it back to pending; one on a row that was sending is reconciled with the transport
    before anything is sent again.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next", "state", "next_attempt_at"),
        Index("ix_outbox_lease", "state", "lease_until"),
        Index("ix_outbox_recipient_created", "recipient", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # prompt, reminder, confirmation, digest
    channel: Mapped[str] = mapped_column(String(16))  # email, slack
    recipient: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the latest attempt began: what `pulse outbox` shows for a failed message.
    attempted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when retention (or an erasure) dropped the payload of a delivered message.
    body_dropped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WatermarkRow(Base):
    """The last scheduled occurrence a job has handled, per plan: catch-up runs once."""

    __tablename__ = "watermarks"

    plan_id: Mapped[int] = mapped_column(
        ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True
    )
    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InboundRow(Base):
    """Every inbound message, raw, committed before its source is told it was taken."""

    __tablename__ = "inbound"
    __table_args__ = (Index("ix_inbound_sender_processed", "sender", "processed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # maildir, imap, smtp
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), default=InboundState.NEW)
    outcome: Mapped[str | None] = mapped_column(Text)
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id", ondelete="SET NULL"))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The From address once decided or held back, and when a held-back message may be
    # decided: at most so many messages from one address are decided an hour.
    sender: Mapped[str | None] = mapped_column(String(320))
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Retention drops `raw` (to empty bytes) after RETAIN_RAW_MAIL_DAYS; its hash stays.
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    raw_dropped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DigestRow(Base):
    """One posting of one network's digest for one period: posted once, whatever happens."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("plan_id", "network_id", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(16))
    as_of: Mapped[date] = mapped_column(Date)
    # The rating mix it reported, so later digests can draw the trend.
    mix: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EmailBounceRow(Base):
    """One delivery failure reported to us (a DSN), per failed address: hard ones are counted."""

    __tablename__ = "email_bounces"
    __table_args__ = (UniqueConstraint("inbound_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), index=True)
    hard: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))  # the DSN status code, e.g. 5.1.1
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id", ondelete="CASCADE"))
    bounced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    """One change by an admin or a lead other than an answer. Append-only: triggers refuse
    UPDATE and DELETE (migration 0016). People are named by internal id, never by name."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at", "id"),
        Index("ix_audit_log_person_id", "person_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(32))
    # "os:<user>" for a command, "person:<id>" for a lead, "scheduler" for the bot itself.
    actor: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))  # cli, slack, email, scheduler
    person_id: Mapped[int | None] = mapped_column(Integer)  # whom it was about, if anyone
    plan_key: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
