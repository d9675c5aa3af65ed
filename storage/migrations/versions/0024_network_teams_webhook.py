"""a network may post its digest to a Teams channel through a Workflows webhook

Revision ID: 0024
Revises: 0021
Create Date: 2026-12-05 09:00:00.000000

The webhook's URL carries the flow's signature (`sig`): whoever has it can post to the
channel, so it is stored here once and never copied into outbox rows or logs.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: SQLite adds it in place, with no table rebuild.
    op.add_column("networks", sa.Column("teams_webhook", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("networks", schema=None) as batch_op:
        batch_op.drop_column("teams_webhook")
