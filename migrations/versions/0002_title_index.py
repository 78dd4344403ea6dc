"""Every list order is an index walk: (user_id, title, id) for sort=title.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

The created and updated orders have had their indexes since 0001; without this one, a
``sort=title`` page read and sorted all of a user's rows (issue 15, docs/performance.md).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tasks_user_title", "tasks", ["user_id", "title", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_user_title", table_name="tasks")
