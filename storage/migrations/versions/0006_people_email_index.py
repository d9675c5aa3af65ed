"""people found by email address, whatever its case

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 11:00:00.000000

Inbound mail looks its sender up by `lower(email)`; without an index on that expression
every message scanned the whole people table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_people_email_lower", "people", [sa.text("lower(email)")])


def downgrade() -> None:
    op.drop_index("ix_people_email_lower", table_name="people")
