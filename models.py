"""The tasks table."""

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import BigInteger, DateTime, Index, Integer, Table, Text, false, text
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
    # Up by one with every change that changes something: the task's ETag (issue 12).
    version: int = Field(
        default=1, sa_type=BigInteger, sa_column_kwargs={"server_default": text("1")}
    )

    __table__: ClassVar[Table]


class IdempotencyKey(SQLModel, table=True):
    """A write's ``Idempotency-Key``, per user, for 24 hours: the request it came with (a
    fingerprint) and the answer it got (status, and the task as it was then)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created", "created_at"),)

    user_id: str = Field(primary_key=True, max_length=USER_ID_MAX)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)
    created_at: datetime = Field(
        default_factory=utc_now,
        sa_type=UTCDateTime,
        sa_column_kwargs={"server_default": db_now()},
    )
    # NULL only inside the transaction that claimed the key; then the status it answered.
    status: int | None = Field(default=None)
    task_id: int | None = Field(default=None, sa_type=BigInteger)
    title: str | None = Field(default=None, max_length=TITLE_MAX)
    description: str | None = Field(default=None, sa_type=Text)
    completed: bool | None = Field(default=None)
    task_created_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    task_updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    task_version: int | None = Field(default=None, sa_type=BigInteger)

    __table__: ClassVar[Table]


# Test fixtures and tools that write rows directly use the Table.
tasks = Task.__table__
