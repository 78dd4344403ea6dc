"""Every statement about the caller's tasks, and the typed API the routes call.

Isolation by construction: every statement starts from ``owned_by()``, whose placeholder is
given the owner (the token's subject) and nothing else; another user's row is never in it, so
it answers "not found" exactly like a missing one (FR-007, US1-3). Every function takes the owner.

Every call is one statement, one round trip (db.py): writes are ``INSERT/UPDATE/DELETE ...
RETURNING``, so the toggle is atomic and no read-modify-write race can lose an update; the list
carries its total as a scalar subquery. Timestamps come from the database's clock when the
statement runs (one clock for every replica; never read before a wait for a connection).

Statements are written once against the SQLModel ``Task`` model and compiled once per database
dialect; a request only supplies values. Rows come back as ``TaskRecord`` dicts with exactly
``TaskPublic``'s fields, ready for JSON.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, TypedDict, cast

from sqlalchemy import BigInteger, ColumnElement, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import (
    and_,
    bindparam,
    case,
    col,
    func,
    insert,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlmodel import delete as delete_from
from sqlmodel import update as update_rows

from db import Database, Row, statement_time
from models import Task
from schemas import Cursor, SortKey, StatusValue, TaskCreate, TaskListQuery, TaskPublic


class TaskRecord(TypedDict):
    """A task as the API returns it (``TaskPublic``'s fields, in its order)."""

    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Page:
    tasks: list[TaskRecord]
    total: int  # every task matching the filter, not just this page's
    next: Cursor | None  # where the next page starts; None on the last page


FIELDS = tuple(TaskPublic.model_fields)
PUBLIC = tuple(col(getattr(Task, name)) for name in FIELDS)
SORT_FIELDS: dict[SortKey, str] = {
    "created": "created_at",
    "updated": "updated_at",
    "title": "title",
}
# Placeholders take their column's type from what they are compared with or assigned to.
OWNER: BindParameter[str] = bindparam("owner", required=True)
TASK_ID: BindParameter[int] = bindparam("task_id", required=True)


def owned_by() -> ColumnElement[bool]:
    """The one place that says which rows a caller may see or change."""
    return col(Task.user_id) == OWNER


class Statement:
    """A statement written once, compiled once per dialect (compiling costs more than running)."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self.writes = statement.is_dml  # INSERT, UPDATE or DELETE: never sent twice
        self._compiled: dict[str, str] = {}

    def sql(self, dialect: Dialect) -> str:
        sql = self._compiled.get(dialect.name)
        if sql is None:
            compiled = cast(SQLCompiler, self.statement.compile(dialect=dialect))
            # Values are supplied per request, by name; a value SQLAlchemy would bind on its own
            # (a Python literal in the statement) would be missing when the driver runs it.
            own = [name for name, bind in compiled.binds.items() if bind.value is not None]
            if own:
                raise ValueError(f"statement binds values of its own {own}: use bindparam()")
            sql = self._compiled[dialect.name] = str(compiled)
        return sql


async def _rows(database: Database, statement: Statement, owner: str, **values: Any) -> list[Row]:
    # The owner goes in last: nothing a caller sends can stand in for it.
    sql = statement.sql(database.dialect)
    return await database.fetch(sql, {**values, OWNER.key: owner}, write=statement.writes)


def _record(row: Row) -> TaskRecord:
    return cast(TaskRecord, dict(zip(FIELDS, row, strict=False)))  # a page row also has the total


def _one(rows: list[Row]) -> TaskRecord | None:
    return _record(rows[0]) if rows else None


# ---- reading -----------------------------------------------------------------------------------


SEARCH: BindParameter[str] = bindparam("search_pattern", required=True)


@cache
def _filtered(status: StatusValue, searching: bool) -> ColumnElement[bool]:
    scope = owned_by()
    if status != "all":
        scope = and_(scope, col(Task.completed).is_(status == "completed"))
    if searching:
        # Case-insensitive substring of the title or the description (PostgreSQL: ILIKE, which
        # the trigram index of migration 0003 serves; SQLite: lower() on both sides).
        matches = or_(
            col(Task.title).ilike(SEARCH, escape="\\"),
            col(Task.description).ilike(SEARCH, escape="\\"),
        )
        scope = and_(scope, matches)
    return scope


def search_pattern(text: str) -> str:
    """``%text%`` for LIKE, with the caller's own ``%``, ``_`` and ``\\`` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _counted(scope: ColumnElement[bool]) -> Select[Any]:
    """How many rows match, reading at most ``count_limit`` of them (the per-user cap): the
    total costs no more than the largest list a user may have, whatever the table holds."""
    matching = (
        select(col(Task.id))
        .where(scope)
        .limit(bindparam("count_limit", required=True))
        .offset(literal_column("0"))  # else SQLite's compiler adds an OFFSET placeholder of its own
    )
    return select(func.count()).select_from(matching.subquery("matching"))


@cache
def _page(
    status: StatusValue, searching: bool, sort: SortKey, descending: bool, after: bool
) -> Statement:
    scope = _filtered(status, searching)
    key = col(getattr(Task, SORT_FIELDS[sort]))
    page = select(*PUBLIC).where(scope)
    if after:
        position = tuple_(
            bindparam("after_value", required=True), bindparam("after_id", required=True)
        )
        row_value = tuple_(key, col(Task.id))
        page = page.where(row_value < position if descending else row_value > position)
    order = (key.desc(), col(Task.id).desc()) if descending else (key.asc(), col(Task.id).asc())
    # The total rides along as an uncorrelated scalar subquery (evaluated once), and one extra
    # row tells whether a next page exists: a page is a single round trip.
    total = _counted(scope).scalar_subquery()
    return Statement(
        page.add_columns(total.label("total"))
        .order_by(*order)
        .offset(bindparam("offset", type_=BigInteger(), required=True))
        .limit(bindparam("limit", type_=Integer(), required=True))
    )


@cache
def _count(status: StatusValue, searching: bool) -> Statement:
    return Statement(_counted(_filtered(status, searching)))


async def list_page(
    database: Database, owner: str, query: TaskListQuery, *, count_limit: int
) -> Page:
    """One page of the owner's tasks, in the query's order, with the filter's total (counted
    up to ``count_limit``, the per-user cap)."""
    position, searching = query.position, query.search is not None
    shape = (query.status_value, searching)
    statement = _page(*shape, query.sort_key, query.descending, position is not None)
    values: dict[str, Any] = {
        "offset": query.offset,
        "limit": query.limit + 1,
        "count_limit": count_limit,
    }
    if position is not None:
        values.update(after_value=position.value, after_id=position.id)
    if query.search is not None:
        values["search_pattern"] = search_pattern(query.search)
    rows = await _rows(database, statement, owner, **values)
    if rows:
        total = int(rows[0][-1])
    else:  # past the end: the total still counts (a second statement, only here)
        counted = await _rows(database, _count(*shape), owner, **values)
        total = int(counted[0][0])
    fields = FIELDS  # one dict per row, in a comprehension: no call per row (docs/performance.md)
    tasks = cast(
        list[TaskRecord], [dict(zip(fields, row, strict=False)) for row in rows[: query.limit]]
    )
    after = None
    if len(rows) > query.limit:
        last = tasks[-1]
        after = Cursor(
            sort=query.sort_key,
            desc=query.descending,
            status=query.status_value,
            value=last[SORT_FIELDS[query.sort_key]],  # type: ignore[literal-required]
            id=last["id"],
        )
    return Page(tasks, total, after)


GET = Statement(select(*PUBLIC).where(owned_by(), col(Task.id) == TASK_ID))


async def get(database: Database, owner: str, task_id: int) -> TaskRecord | None:
    return _one(await _rows(database, GET, owner, task_id=task_id))


# ---- writing -----------------------------------------------------------------------------------

CREATE = Statement(
    insert(Task)
    .values(
        user_id=OWNER,
        title=bindparam("title", required=True),
        description=bindparam("description", required=True),
        completed=bindparam("completed", required=True),
        created_at=statement_time(),
        updated_at=statement_time(),
    )
    .returning(*PUBLIC)
)


async def create(database: Database, owner: str, task: TaskCreate) -> TaskRecord:
    rows = await _rows(database, CREATE, owner, **task.model_dump())
    return _record(rows[0])


def _update(values: Mapping[str, Any]) -> Statement:
    """One UPDATE of the owner's task; ``updated_at`` moves only if something really changed."""
    changed = or_(*(col(getattr(Task, name)).is_distinct_from(v) for name, v in values.items()))
    return Statement(
        update_rows(Task)
        .where(owned_by(), col(Task.id) == TASK_ID)
        .values(**values, updated_at=case((changed, statement_time()), else_=col(Task.updated_at)))
        .returning(*PUBLIC)
    )


TOGGLE = _update({"completed": ~col(Task.completed)})


@cache
def _set(fields: frozenset[str]) -> Statement:
    # "set_" + name: SQLAlchemy keeps a column's own name for the SET clause's parameters.
    return _update({name: bindparam(f"set_{name}", required=True) for name in sorted(fields)})


async def update(
    database: Database, owner: str, task_id: int, changes: Mapping[str, Any]
) -> TaskRecord | None:
    """Set the fields in ``changes`` (none: just read the task)."""
    if not changes:
        return await get(database, owner, task_id)
    values = {f"set_{name}": value for name, value in changes.items()}
    return _one(await _rows(database, _set(frozenset(changes)), owner, task_id=task_id, **values))


async def set_completed(
    database: Database, owner: str, task_id: int, completed: bool
) -> TaskRecord | None:
    """Idempotent: setting the state it already has changes nothing, ``updated_at`` included."""
    return await update(database, owner, task_id, {"completed": completed})


async def toggle(database: Database, owner: str, task_id: int) -> TaskRecord | None:
    """Flip ``completed`` atomically (two toggles at once give two flips, never one)."""
    return _one(await _rows(database, TOGGLE, owner, task_id=task_id))


DELETE = Statement(delete_from(Task).where(owned_by(), col(Task.id) == TASK_ID).returning(*PUBLIC))


async def delete(database: Database, owner: str, task_id: int) -> TaskRecord | None:
    return _one(await _rows(database, DELETE, owner, task_id=task_id))
