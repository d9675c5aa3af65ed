"""SQLAlchemy tables. The unique keys here are what later idempotency stands on:
a reference is unique in its plan, an update's external id is unique per source, and
updates are never updated or deleted (append-only history)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


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
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PriorityRow(Base):
    __tablename__ = "priorities"
    __table_args__ = (UniqueConstraint("plan_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)


class PersonRow(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(320))
    slack_user_id: Mapped[str | None] = mapped_column(String(32))
    prefers: Mapped[str] = mapped_column(String(16), default="email")
    timezone: Mapped[str | None] = mapped_column(String(64))
    delegate_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    away_until: Mapped[date | None] = mapped_column(Date)


class NetworkRow(Base):
    __tablename__ = "networks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Text)
    slack_channel: Mapped[str | None] = mapped_column(String(128))
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
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id", ondelete="CASCADE"))
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
        Index("ix_updates_milestone_given", "milestone_id", "given_at"),
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
