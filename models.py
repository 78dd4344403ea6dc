"""The tasks table."""

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
USER_ID_MAX = 255

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


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    # The list query is "this user's tasks, newest (or most recently updated) first": these
    # indexes answer it, and its keyset pages, without sorting. They also serve FR-005's
    # "user_id indexed" (user_id is their leading column).
    __table_args__ = (
        Index("ix_tasks_user_created", "user_id", "created_at", "id"),
        Index("ix_tasks_user_updated", "user_id", "updated_at", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True)
    )
    user_id: str = Field(sa_column=Column(String(USER_ID_MAX), nullable=False))
    title: str = Field(sa_column=Column(String(TITLE_MAX), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Server defaults too, for rows written by other tools (FR-005, FR-010).
    completed: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    created_at: datetime = Field(
        default_factory=utc_now,
        sa_column=Column(UTCDateTime, nullable=False, server_default=func.current_timestamp()),
    )
    updated_at: datetime = Field(
        default_factory=utc_now,
        sa_column=Column(UTCDateTime, nullable=False, server_default=func.current_timestamp()),
    )

    __table__: ClassVar[Table]


# Core statements (select only the returned columns, UPDATE ... RETURNING) read better against
# the Table than through ORM attributes.
tasks = Task.__table__
