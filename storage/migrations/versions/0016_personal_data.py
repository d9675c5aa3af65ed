"""retention marks, erased people and an append-only audit log

Revision ID: 0016
Revises: 0012
Create Date: 2026-11-25 09:00:00.000000

Retention drops the raw bytes of old inbound mail (keeping the row, its SHA-256, its
outcome and the answers it gave) and the bodies of delivered outbox messages; the columns
here say when, and partial indexes find what is still to go without reading what has gone.
`people.erased_at` marks a person anonymised by `pulse people forget`. `audit_log` records
what admins and leads changed other than answers; triggers refuse to change or delete its
rows on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSE = "audit_log is append-only"


def upgrade() -> None:
    op.add_column("inbound", sa.Column("raw_sha256", sa.String(length=64), nullable=True))
    op.add_column("inbound", sa.Column("raw_dropped_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_inbound_raw_kept",
        "inbound",
        ["received_at", "id"],
        sqlite_where=sa.text("raw_dropped_at IS NULL"),
        postgresql_where=sa.text("raw_dropped_at IS NULL"),
    )
    op.add_column("outbox", sa.Column("body_dropped_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_outbox_body_kept",
        "outbox",
        ["sent_at", "id"],
        sqlite_where=sa.text("body_dropped_at IS NULL AND state = 'sent'"),
        postgresql_where=sa.text("body_dropped_at IS NULL AND state = 'sent'"),
    )
    op.add_column("people", sa.Column("erased_at", sa.DateTime(timezone=True)))
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("plan_key", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at", "id"])
    op.create_index("ix_audit_log_person_id", "audit_log", ["person_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{_REFUSE}'; END $$"
        )
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
            )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{_REFUSE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.drop_table("audit_log")
    op.drop_column("people", "erased_at")
    op.drop_index("ix_outbox_body_kept", table_name="outbox")
    op.drop_column("outbox", "body_dropped_at")
    op.drop_index("ix_inbound_raw_kept", table_name="inbound")
    op.drop_column("inbound", "raw_dropped_at")
    op.drop_column("inbound", "raw_sha256")
