"""who sent each inbound message, and until when it waits; answers counted per address

Revision ID: 0010
Revises: 0012
Create Date: 2026-11-24 10:00:00.000000

No more than 100 messages from one address are decided in an hour (a careless
auto-responder must not loop with us): `inbound.sender` is the From address of a decided or
waiting message, `inbound.not_before` when a waiting one may be decided. Answers to a
person's replies are capped per address per hour, counted from the outbox by recipient.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs, as 0012 and 0014: nothing about the table needs rebuilding.
    op.add_column("inbound", sa.Column("sender", sa.String(length=320), nullable=True))
    op.add_column("inbound", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_inbound_sender_processed", "inbound", ["sender", "processed_at"])
    op.create_index("ix_outbox_recipient_created", "outbox", ["recipient", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_recipient_created", table_name="outbox")
    op.drop_index("ix_inbound_sender_processed", table_name="inbound")
    # Plain DROP COLUMNs (SQLite 3.35+): a batch rebuild would reflect the people table and
    # trip over its expression index.
    op.drop_column("inbound", "not_before")
    op.drop_column("inbound", "sender")
