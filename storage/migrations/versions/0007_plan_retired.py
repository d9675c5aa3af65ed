"""plans can be retired: no prompts or digests any more, history kept

Revision ID: 0007
Revises: 0012
Create Date: 2026-12-05 06:00:00.000000

`pulse plans retire KEY` sets `retired_at`; the scheduler, `pulse prompt` and digest posting
skip a retired plan, and nothing of it is deleted.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column: SQLite adds it in place, with no table rebuild.
    op.add_column("plans", sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("retired_at")
