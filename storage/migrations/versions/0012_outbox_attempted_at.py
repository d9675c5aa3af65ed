"""when each outbox row was last attempted

Revision ID: 0012
Revises: 0014
Create Date: 2026-11-24 10:00:00.000000

`pulse outbox` lists failed and needs-review messages with when they were tried; the row
kept only when it was created and when it was due.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, which SQLite does for a nullable column: batch mode would rebuild the
# table from a reflection that cannot carry the people table's expression index.


def upgrade() -> None:
    op.add_column("outbox", sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "attempted_at")
