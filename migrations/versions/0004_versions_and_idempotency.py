"""Row versions (ETags) and idempotency keys.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Issue 12. ``tasks.version`` starts at 1 and goes up by one with every change that changes
something; a task's ETag is derived from it. ``idempotency_keys`` remembers, per user and for
24 hours, each ``Idempotency-Key`` a write came with: what the request was (a fingerprint of
its method, path and body) and what it answered (status and the task as it was then), so a
retry is answered the same without doing anything again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    # A frozen copy of models.SQLITE_NOW (see 0001): a migration never changes with the code.
    if op.get_bind().dialect.name == "sqlite":
        return sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
    return sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    # A plain ADD COLUMN, on SQLite too: a batch copy of the table would lose its AUTOINCREMENT
    # (ids handed out again after a delete).
    op.add_column(
        "tasks", sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("1"))
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        # NULL only inside the transaction that claimed the key; then the answer it gave.
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=True),
        sa.Column("task_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("task_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("task_version", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_column("tasks", "version")
