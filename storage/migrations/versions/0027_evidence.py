"""evidence of impact with an achieved answer

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-19 09:00:00.000000

When a lead rates a milestone 1 (achieved) they may say what changed for children and
families, or give a link to evidence of it (`updates.evidence`). Digests and board packs ask
which achieved milestones have none: a small partial index finds the updates that carry some.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without constraints: SQLite adds it in place, with no table rebuild
    # (a rebuild of `updates` would drop the trigger that keeps `milestone_state`).
    op.add_column("updates", sa.Column("evidence", sa.Text(), nullable=True))
    op.create_index(
        "ix_updates_milestone_evidence",
        "updates",
        ["milestone_id", "given_at", "id"],
        sqlite_where=sa.text("evidence IS NOT NULL"),
        postgresql_where=sa.text("evidence IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_updates_milestone_evidence", table_name="updates")
    # In place on both databases (SQLite 3.35+), keeping the trigger on `updates`.
    op.execute("ALTER TABLE updates DROP COLUMN evidence")
