"""an index on the answers each person gave, for subject-access exports

Revision ID: 0023
Revises: 0020
Create Date: 2026-12-10 07:00:00.000000

An export lists the answers one person gave: without an index on `updates.person_id` that
reads every answer in the store (2,000,000 in a national one).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_updates_person_given", "updates", ["person_id", "given_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_updates_person_given", table_name="updates")
