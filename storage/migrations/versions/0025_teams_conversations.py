"""each person's Teams conversation with the bot

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 09:00:00.000000

When the Teams app is installed for a lead the bot learns their Teams user id and the 1:1
conversation it may post prompts to (issue 16). Personal data: exported with the person,
and gone when they are forgotten (the row goes with them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "teams_conversations",
        sa.Column(
            "person_id",
            sa.Integer,
            sa.ForeignKey("people.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("teams_user_id", sa.String(200), nullable=False, unique=True),
        sa.Column("aad_object_id", sa.String(64)),
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("conversation_id", sa.String(400), nullable=False),
        sa.Column("service_url", sa.String(400), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("teams_conversations")
