"""priorities keep a Word plan's "Key areas" and "Overall lead(s)" rows

Revision ID: 0019
Revises: 0007
Create Date: 2026-12-08 06:00:00.000000

A Word plan's priority table opens with a "Key areas" row (what the priority covers) and an
"Overall lead(s)" row (as the plan writes it); the import stores both with the priority.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns: SQLite adds them in place, with no table rebuild.
    op.add_column("priorities", sa.Column("description", sa.Text(), nullable=True))
    op.add_column("priorities", sa.Column("leads", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("priorities", schema=None) as batch_op:
        batch_op.drop_column("leads")
        batch_op.drop_column("description")
