"""The tasks table."""

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import BigInteger, DateTime, Index, Integer, Table, Text, false
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from core.tokens import USER_ID_MAX

TITLE_MAX = 200
DESCRIPTION_MAX = 10_000

# 64-bit ids on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the rowid alias, and
# AUTOINCREMENT (sqlite_autoincrement below) keeps deleted ids from ever being handed out again.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on PostgreSQL (timestamptz) and SQLite (naive text) alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


# The database's own "now", for rows written by other tools. SQLite's CURRENT_TIMESTAMP is
# "2026-11-25 12:00:00", which sorts before "2026-11-25 12:00:00.000000", the form SQLAlchemy
# stores: such rows would break ordering and keyset pages. Write them in SQLAlchemy's form.
SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


class db_now(FunctionElement[datetime]):
    type = DateTime(timezone=True)
    inherit_cache = True


@compiles(db_now)
def _db_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return SQLITE_NOW


class Task(SQLModel, table=True):
    """A user's task. Statements about tasks live in ``task_store.py``; this is only the table."""

    __tablename__ = "tasks"
    # The list query is "this user's tasks in this order" (newest, recently updated, or by
    # title): these indexes answer it, and its keyset pages, without sorting. They also serve
    # FR-005's "user_id indexed" (user_id is their leading column).
    __table_args__ = (
        Index("ix_tasks_user_created", "user_id", "created_at", "id"),
        Index("ix_tasks_user_updated", "user_id", "updated_at", "id"),
        Index("ix_tasks_user_title", "user_id", "title", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    user_id: str = Field(max_length=USER_ID_MAX)
    title: str = Field(max_length=TITLE_MAX)
    description: str | None = Field(default=None, sa_type=Text)
    # Server defaults too, for rows written by other tools (FR-005, FR-010).
    completed: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = Field(
        default_factory=utc_now,
        sa_type=UTCDateTime,
        sa_column_kwargs={"server_default": db_now()},
    )
    updated_at: datetime = Field(
        default_factory=utc_now,
        sa_type=UTCDateTime,
        sa_column_kwargs={"server_default": db_now()},
    )

    __table__: ClassVar[Table]


# Test fixtures and tools that write rows directly use the Table.
tasks = Task.__table__
