"""digests, status indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 08:30:35.640988
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("network_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("mix", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_id"],
            ["networks.id"],
            name=op.f("fk_digests_network_id_networks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_digests_plan_id_plans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digests")),
        sa.UniqueConstraint(
            "plan_id", "network_id", "period", name=op.f("uq_digests_plan_id_network_id_period")
        ),
    )
    with op.batch_alter_table("updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_updates_milestone_given"))
        batch_op.create_index(
            "ix_updates_milestone_given", ["milestone_id", "given_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_updates_milestone_rated",
            ["milestone_id", "given_at", "id"],
            unique=False,
            sqlite_where=sa.text("rating IS NOT NULL"),
            postgresql_where=sa.text("rating IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_updates_milestone_revised",
            ["milestone_id", "given_at", "id"],
            unique=False,
            sqlite_where=sa.text("revised_due IS NOT NULL"),
            postgresql_where=sa.text("revised_due IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("updates", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_updates_milestone_revised",
            sqlite_where=sa.text("revised_due IS NOT NULL"),
            postgresql_where=sa.text("revised_due IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_updates_milestone_rated",
            sqlite_where=sa.text("rating IS NOT NULL"),
            postgresql_where=sa.text("rating IS NOT NULL"),
        )
        batch_op.drop_index("ix_updates_milestone_given")
        batch_op.create_index(
            batch_op.f("ix_updates_milestone_given"), ["milestone_id", "given_at"], unique=False
        )

    op.drop_table("digests")
