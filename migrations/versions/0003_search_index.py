"""Search: a trigram index for case-insensitive substring matches in title and description.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

``?search=milk`` is ``title ILIKE '%milk%' OR description ILIKE '%milk%'`` within the caller's
tasks. PostgreSQL's pg_trgm makes such a match an index lookup (GIN, gin_trgm_ops) instead of a
read of every row of the user. pg_trgm ships with PostgreSQL's contrib modules (Neon, Debian,
the official images have it); where it is missing or may not be created (a server without
contrib, a role without the right), the migration says so in a warning and goes on without the
index: search still works, at the cost of reading the user's own rows (never the table's).
SQLite has no such index: search reads the user's rows.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")
SEARCH_INDEX = "ix_tasks_search"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).first()
    if available is None:
        log.warning("pg_trgm is not available on this server: search works without its index")
        return
    try:
        with bind.begin_nested():  # a savepoint: a refusal leaves the migration going
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            bind.execute(
                sa.text(
                    f"CREATE INDEX {SEARCH_INDEX} ON tasks USING gin "
                    "(title gin_trgm_ops, description gin_trgm_ops)"
                )
            )
    except sa.exc.DBAPIError as exc:
        log.warning("no search index (%s): search works without it", type(exc.orig).__name__)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {SEARCH_INDEX}")
