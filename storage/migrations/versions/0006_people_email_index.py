"""people found by any of their email addresses, whatever its case

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 11:00:00.000000

Inbound mail looks its sender up by `lower(email)`; without an index on that expression
every message scanned the whole people table. `other_emails` holds the further addresses a
person writes from (DESIGN: a secondary address is accepted when configured).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# SQLite's batch mode rebuilds the table from its reflection, which cannot carry an
# expression index: the index is made after the column is added, and dropped before.


def upgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("other_emails", sa.Text(), nullable=False, server_default=""))
    op.create_index("ix_people_email_lower", "people", [sa.text("lower(email)")])


def downgrade() -> None:
    op.drop_index("ix_people_email_lower", table_name="people")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("other_emails")
