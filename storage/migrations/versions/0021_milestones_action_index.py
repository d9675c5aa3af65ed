"""milestones found by their action

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-09 07:00:00.000000

A new plan is imported staged and, on failure, deleted again (storage/importer.py). Deleting
an action makes SQLite and PostgreSQL look for its milestones to check the foreign key; with
no index on `milestones.action_id` that is a scan of every milestone per action, about five
seconds a thousand actions beside 60,000 milestones.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_milestones_action_id", "milestones", ["action_id"])


def downgrade() -> None:
    op.drop_index("ix_milestones_action_id", table_name="milestones")
