"""links to a person's update page, stored hashed

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-08 09:00:00.000000

A prompt or reminder carries a link to a web page where its person answers in one go
(issue 14); only a keyed hash of the link's token is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_links",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "prompt_id", sa.Integer, sa.ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "person_id", sa.Integer, sa.ForeignKey("people.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_web_links_prompt_id", "web_links", ["prompt_id"])


def downgrade() -> None:
    op.drop_index("ix_web_links_prompt_id", table_name="web_links")
    op.drop_table("web_links")
