"""milestone state kept by a trigger on updates

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 10:30:00.000000

A milestone's status depends only on a few of its updates (its latest, its last two ratings
and its latest revised date). `milestone_state` names them, one row per milestone, and a
trigger keeps it right on every insert into `updates`, whichever code (or bulk load) writes
it; each deciding update is copied whole, so reading a milestone's state is one row. The
trigger compares the new update with the row's current choice, ordered by (given_at,
id) as everywhere else; it never reads the history, so an insert costs the same however long
the history is. On PostgreSQL the upsert's DO UPDATE is applied to the latest committed row
version, so concurrent inserts for one milestone cannot lose each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = ("latest", "rated", "prior_rated", "revised")
# Copied whole for each slot (written out here: a migration never imports the models).
FIELDS: tuple[tuple[str, Any], ...] = (
    ("id", sa.Integer()),
    ("given_at", sa.DateTime(timezone=True)),
    ("rating", sa.Integer()),
    ("note", sa.Text()),
    ("revised_due", sa.Date()),
    ("needs_support", sa.Boolean()),
    ("source", sa.String(length=16)),
    ("person_id", sa.Integer()),
    ("external_id", sa.String(length=255)),
)
COLUMNS = ", ".join(f"{slot}_{name}" for slot in SLOTS for name, _ in FIELDS)


def _later(slot: str) -> str:
    """True when the new update comes after the one the row holds in `slot` (or none)."""
    return (
        f"(milestone_state.{slot}_id IS NULL OR (NEW.given_at, NEW.id) > "
        f"(milestone_state.{slot}_given_at, milestone_state.{slot}_id))"
    )


def _upsert() -> str:
    rated = "NEW.rating IS NOT NULL"
    revised = "NEW.revised_due IS NOT NULL"
    sets = []
    values = []
    for name, _ in FIELDS:
        new, old = f"NEW.{name}", "milestone_state.{}_" + name
        sets += [
            f"latest_{name} = CASE WHEN {_later('latest')} THEN {new} "
            f"ELSE {old.format('latest')} END",
            f"rated_{name} = CASE WHEN {rated} AND {_later('rated')} THEN {new} "
            f"ELSE {old.format('rated')} END",
            # The rating it displaces becomes the prior one; a rating between the two
            # takes the prior place itself.
            f"prior_rated_{name} = CASE WHEN NOT ({rated}) THEN {old.format('prior_rated')} "
            f"WHEN {_later('rated')} THEN {old.format('rated')} "
            f"WHEN {_later('prior_rated')} THEN {new} "
            f"ELSE {old.format('prior_rated')} END",
            f"revised_{name} = CASE WHEN {revised} AND {_later('revised')} THEN {new} "
            f"ELSE {old.format('revised')} END",
        ]
    for slot in SLOTS:
        condition = {"latest": "TRUE", "rated": rated, "prior_rated": "FALSE"}.get(slot, revised)
        values += [f"CASE WHEN {condition} THEN NEW.{name} END" for name, _ in FIELDS]
    return (
        f"INSERT INTO milestone_state (milestone_id, {COLUMNS}) "
        f"VALUES (NEW.milestone_id, {', '.join(values)}) "
        f"ON CONFLICT (milestone_id) DO UPDATE SET {', '.join(sets)}"
    )


def _probe(condition: str = "", offset: int = 0) -> str:
    return (
        "(SELECT u.id FROM updates u WHERE u.milestone_id = m.id"
        f"{' AND ' + condition if condition else ''} "
        f"ORDER BY u.given_at DESC, u.id DESC LIMIT 1 OFFSET {offset})"
    )


def _backfill() -> str:
    """The state of every milestone that already has updates, read from its history."""
    copied = ", ".join(f"s_{slot}.{name}" for slot in SLOTS for name, _ in FIELDS)
    joins = " ".join(f"LEFT JOIN updates s_{slot} ON s_{slot}.id = p.{slot}_id" for slot in SLOTS)
    return (
        f"INSERT INTO milestone_state (milestone_id, {COLUMNS}) "
        f"SELECT p.milestone_id, {copied} FROM ("
        f"SELECT m.id AS milestone_id, {_probe()} AS latest_id, "
        f"{_probe('u.rating IS NOT NULL')} AS rated_id, "
        f"{_probe('u.rating IS NOT NULL', 1)} AS prior_rated_id, "
        f"{_probe('u.revised_due IS NOT NULL')} AS revised_id "
        "FROM milestones m WHERE EXISTS (SELECT 1 FROM updates WHERE milestone_id = m.id)) p "
        f"{joins}"
    )


def upgrade() -> None:
    op.create_table(
        "milestone_state",
        sa.Column("milestone_id", sa.Integer(), nullable=False),
        *(
            sa.Column(f"{slot}_{name}", kind, nullable=True)
            for slot in SLOTS
            for name, kind in FIELDS
        ),
        sa.ForeignKeyConstraint(
            ["milestone_id"],
            ["milestones.id"],
            name=op.f("fk_milestone_state_milestone_id_milestones"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("milestone_id", name=op.f("pk_milestone_state")),
    )
    op.execute(_backfill())
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION keep_milestone_state() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {_upsert()}; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER updates_keep_milestone_state AFTER INSERT ON updates "
            "FOR EACH ROW EXECUTE FUNCTION keep_milestone_state()"
        )
    else:
        op.execute(
            "CREATE TRIGGER updates_keep_milestone_state AFTER INSERT ON updates "
            f"BEGIN {_upsert()}; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER updates_keep_milestone_state ON updates")
        op.execute("DROP FUNCTION keep_milestone_state()")
    else:
        op.execute("DROP TRIGGER updates_keep_milestone_state")
    op.drop_table("milestone_state")
