"""aliases of a person, and prompts that travel in another prompt's message

Revision ID: 0014
Revises: 0006
Create Date: 2026-11-24 10:00:00.000000

Two rows of a people file with the same address and the same name are one person with two
keys: the second key is kept in `people.aliases` (";"-separated) so lead cells naming it
resolve to the person. People with different names sharing one address (a team mailbox, a
PA) are separate people who get one combined prompt a cycle: each keeps their own prompt
row, and `prompts.sent_with` names the prompt whose message carries theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ADD COLUMNs: SQLite's batch mode would rebuild the tables from their reflection,
# which cannot carry the expression index on lower(email) of `people` (see 0006).


def upgrade() -> None:
    op.add_column("people", sa.Column("aliases", sa.Text(), nullable=False, server_default=""))
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its REFERENCES clause in place, but alters no constraint.
        op.execute(
            "ALTER TABLE prompts ADD COLUMN sent_with INTEGER "
            "REFERENCES prompts (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("prompts", sa.Column("sent_with", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_prompts_sent_with_prompts",
            "prompts",
            "prompts",
            ["sent_with"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_index("ix_prompts_sent_with", "prompts", ["sent_with"])


def downgrade() -> None:
    op.drop_index("ix_prompts_sent_with", table_name="prompts")
    op.drop_index("ix_people_email_lower", table_name="people")
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.drop_column("sent_with")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("aliases")
    op.create_index("ix_people_email_lower", "people", [sa.text("lower(email)")])
