"""the rated updates' index carries the rating on PostgreSQL

Revision ID: 0029
Revises: 0027
Create Date: 2026-12-20 09:00:00.000000

A board pack's rating mix asks each milestone's latest rating at seven days: 350,000 probes
of `ix_updates_milestone_rated` on a national store. Carrying `rating` in the index (a
PostgreSQL INCLUDE column) answers each from the index, without visiting the table. SQLite
has no INCLUDE columns: its index is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rated_index(*, include: list[str]) -> None:
    op.drop_index("ix_updates_milestone_rated", table_name="updates")
    op.create_index(
        "ix_updates_milestone_rated",
        "updates",
        ["milestone_id", "given_at", "id"],
        postgresql_where=sa.text("rating IS NOT NULL"),
        postgresql_include=include,
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rated_index(include=["rating"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rated_index(include=[])
