"""superseded answers, answers recorded on a lead's behalf, coordinators' view links

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-12 09:00:00.000000

A lead who changes an answer on the update page within the same prompt writes a new update
that names the one it replaces (`supersedes_id`): the replaced one no longer counts towards
the milestone's status, and history keeps both. A coordinator may record an answer on a
lead's behalf (source `coordinator`): `recorded_by` keeps who did (their address, or
the OS user of a command). Coordinators open the
live view of their network through a link in each digest email, stored as a keyed hash like
the update page's (`view_links`), revocable.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without constraints: SQLite adds them in place, with no table rebuild
    # (a rebuild of `updates` would drop the trigger that keeps `milestone_state`).
    op.add_column("updates", sa.Column("supersedes_id", sa.Integer(), nullable=True))
    op.add_column("updates", sa.Column("recorded_by", sa.String(320), nullable=True))
    # Status reads ask "is this update superseded?" per update: a small partial index.
    op.create_index(
        "ix_updates_supersedes",
        "updates",
        ["supersedes_id"],
        sqlite_where=sa.text("supersedes_id IS NOT NULL"),
        postgresql_where=sa.text("supersedes_id IS NOT NULL"),
    )
    op.create_table(
        "view_links",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "plan_id", sa.Integer, sa.ForeignKey("plans.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "network_id",
            sa.Integer,
            sa.ForeignKey("networks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_view_links_email", "view_links", ["email"])


def downgrade() -> None:
    op.drop_index("ix_view_links_email", table_name="view_links")
    op.drop_table("view_links")
    op.drop_index("ix_updates_supersedes", table_name="updates")
    # In place on both databases (SQLite 3.35+), keeping the trigger on `updates`.
    op.execute("ALTER TABLE updates DROP COLUMN recorded_by")
    op.execute("ALTER TABLE updates DROP COLUMN supersedes_id")
