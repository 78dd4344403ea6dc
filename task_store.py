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

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import repeat
from operator import itemgetter
from typing import Any, TypedDict, cast

import orjson
from sqlalchemy import BigInteger, ColumnElement, Integer
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import BindParameter, ColumnClause
from sqlmodel import (
    and_,
    bindparam,
    case,
    col,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlmodel import delete as delete_from
from sqlmodel import update as update_rows

from db import Database, LockTimeout, Row, Runs, statement_time
from models import IdempotencyKey, Task
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
    etag: str  # changes whenever the page would (a task's version, the total, the next page)


FIELDS = tuple(TaskPublic.model_fields)
PUBLIC = tuple(col(getattr(Task, name)) for name in FIELDS)
# What reads and writes return: the public fields, then the row's version (the ETag).
RETURNED = tuple(col(getattr(Task, name)) for name in (*FIELDS, "version"))
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
    """A statement written once, compiled once per dialect (compiling costs more than running).

    ``planner``: ``SET LOCAL`` settings sent in front of it on PostgreSQL, in the same message;
    they hold for this statement's transaction only.
    """

    def __init__(self, statement: ClauseElement, *, planner: str = "") -> None:
        self.statement = statement
        self.planner = planner
        self.writes = statement.is_dml  # INSERT, UPDATE or DELETE: never sent twice
        self._compiled: dict[str, str] = {}
        self._sent: dict[str, str] = {}

    def compiled(self, dialect: Dialect) -> str:
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

    def sql(self, dialect: Dialect) -> str:
        """What is sent: the planner's settings (PostgreSQL) and the statement."""
        sql = self._sent.get(dialect.name)
        if sql is None:
            sql = self.compiled(dialect)
            if self.planner and dialect.name == "postgresql":
                sql = f"{self.planner} {sql}"
            self._sent[dialect.name] = sql
        return sql


async def _rows(database: Runs, statement: Statement, owner: str, **values: Any) -> list[Row]:
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


# A page is a walk along the user's index for its sort key, however deep. PostgreSQL's default
# random_page_cost (4, for spinning disks) makes a deep page (?offset=9000&limit=1000) look
# cheaper as a bitmap scan of all of the user's rows plus a sort: 3x the time, most of it
# comparing titles. 1.1 is PostgreSQL's own advice for SSDs and cached data (Neon's storage);
# with it the planner walks the index (docs/performance.md, "Query plans").
PAGE_PLANNER = "SET LOCAL random_page_cost = 1.1;"


@cache
def _page(
    status: StatusValue, searching: bool, sort: SortKey, descending: bool, after: bool
) -> Statement:
    scope = _filtered(status, searching)
    key = col(getattr(Task, SORT_FIELDS[sort]))
    page = select(*RETURNED).where(scope)
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
        .limit(bindparam("limit", type_=Integer(), required=True)),
        planner=PAGE_PLANNER,
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
    shown = rows[: query.limit]
    # One dict per row, built by C loops with no Python call per row: a 1,000-row page is the
    # dearest thing a user can ask for, so its cost is the fair-share bound (docs/performance.md).
    tasks = cast(list[TaskRecord], list(map(dict, map(zip, repeat(FIELDS), shown))))
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
    return Page(tasks, total, after, _page_etag(shown, total, after))


_ID_AND_VERSION = itemgetter(0, len(FIELDS))


def _page_etag(rows: list[Row], total: int, after: Cursor | None) -> str:
    """Derived from what the page shows: each task's id and version, the total, the next page.
    (No hash of the JSON body: the versions say when a task changed.)"""
    seen = orjson.dumps([total, after.encode() if after else None, *map(_ID_AND_VERSION, rows)])
    return f'"L{hashlib.blake2b(seen, digest_size=12).hexdigest()}"'


GET = Statement(select(*RETURNED).where(owned_by(), col(Task.id) == TASK_ID))


async def get(database: Database, owner: str, task_id: int) -> TaskRecord | None:
    return _one(await _rows(database, GET, owner, task_id=task_id))


async def get_versioned(database: Database, owner: str, task_id: int) -> "Written | None":
    """The task with its version (its ETag), as a 200."""
    rows = await _rows(database, GET, owner, task_id=task_id)
    return Written(200, _record(rows[0]), rows[0][len(FIELDS)]) if rows else None


# ---- writing -----------------------------------------------------------------------------------
# Every write answers a Written: its status, and the task as the write left it (with its version,
# the ETag). A write may carry an Idempotency-Key; then the answer is stored with the key, in the
# same transaction and, on PostgreSQL, in the same round trip (one message of several statements),
# and a retry with the key gets the stored answer without writing again.

IDEMPOTENCY_HOURS = 24
PURGE_PER_WRITE = 20  # expired keys deleted by each keyed write: no cron, bounded work
KEY_WAIT_MS = 2000  # how long a retry waits for the same key's first request to finish


@dataclass(frozen=True, slots=True)
class Written:
    """A write's answer: 201/200 with the task; 404; 409 (the per-user cap was reached); 412
    (If-Match named another version: ``version`` is the current one). ``replayed``: the stored
    answer to an earlier request with the same Idempotency-Key."""

    status: int
    task: TaskRecord | None = None
    version: int | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Idempotency:
    key: str
    fingerprint: str  # the request's method, path and body, hashed


class KeyReused(Exception):
    """The Idempotency-Key came before with another request (method, path or body)."""


class KeyInFlight(Exception):
    """The first request with this Idempotency-Key is still being processed."""


KEY_MATCH = and_(
    col(IdempotencyKey.user_id) == OWNER, col(IdempotencyKey.key) == bindparam("idem_key")
)
# The key this transaction claimed (its answer not stored yet: status is NULL only inside it).
CLAIMED = exists(
    select(col(IdempotencyKey.key)).where(KEY_MATCH, col(IdempotencyKey.status).is_(None))
)
ONE: ColumnClause[Any] = literal_column("1")


@dataclass(frozen=True, slots=True)
class _Write:
    """One write: its statement (which returns RETURNED, or no row), and how to read no row."""

    kind: str  # "create", "update" or "delete"
    shape: tuple[Any, ...]  # what chooses the statement (see _statement)
    values: dict[str, Any]
    task_id: int | None = None
    expected: int | None = None  # If-Match's version

    @property
    def ok(self) -> int:
        return 201 if self.kind == "create" else 200


def _create_statement(guarded: bool) -> UpdateBase:
    """INSERT ... SELECT: nothing when the owner already has ``cap`` tasks (checked in the
    statement itself), or, ``guarded``, when this transaction has not claimed the key."""
    owned = select(col(Task.id)).where(owned_by()).limit(bindparam("cap", required=True))
    count = select(func.count()).select_from(owned.offset(literal_column("0")).subquery("owned"))
    new_row: list[Any] = [
        OWNER,
        bindparam("title", required=True),
        bindparam("description", required=True),
        bindparam("completed", required=True),
        statement_time(),
        statement_time(),
        ONE,  # version
    ]
    source = select(*new_row).where(count.scalar_subquery() < bindparam("cap", required=True))
    if guarded:
        source = source.where(CLAIMED)
    columns = ["user_id", "title", "description", "completed", "created_at", "updated_at"]
    return insert(Task).from_select([*columns, "version"], source).returning(*RETURNED)


def _update_statement(values: Mapping[str, Any], conditional: bool, guarded: bool) -> UpdateBase:
    """One UPDATE of the owner's task; ``updated_at`` and ``version`` move only if something
    really changed. ``conditional``: only at the version If-Match named (checked in the same
    statement: nothing can change between check and write)."""
    changed = or_(*(col(getattr(Task, name)).is_distinct_from(v) for name, v in values.items()))
    statement = update_rows(Task).where(owned_by(), col(Task.id) == TASK_ID)
    if conditional:
        statement = statement.where(col(Task.version) == bindparam("expected", required=True))
    if guarded:
        statement = statement.where(CLAIMED)
    return statement.values(
        **values,
        updated_at=case((changed, statement_time()), else_=col(Task.updated_at)),
        version=case((changed, col(Task.version) + ONE), else_=col(Task.version)),
    ).returning(*RETURNED)


def _delete_statement(conditional: bool, guarded: bool) -> UpdateBase:
    statement = delete_from(Task).where(owned_by(), col(Task.id) == TASK_ID)
    if conditional:
        statement = statement.where(col(Task.version) == bindparam("expected", required=True))
    if guarded:
        statement = statement.where(CLAIMED)
    return statement.returning(*RETURNED)


def _dml(write: _Write, guarded: bool) -> UpdateBase:
    conditional = write.expected is not None
    if write.kind == "create":
        return _create_statement(guarded)
    if write.kind == "delete":
        return _delete_statement(conditional, guarded)
    (fields,) = write.shape
    if fields == "toggle":
        values: Mapping[str, Any] = {"completed": ~col(Task.completed)}
    else:
        # "set_" + name: SQLAlchemy keeps a column's own name for the SET clause's parameters.
        values = {name: bindparam(f"set_{name}", required=True) for name in sorted(fields)}
    return _update_statement(values, conditional, guarded)


@cache
def _statement(kind: str, shape: tuple[Any, ...], conditional: bool) -> Statement:
    return Statement(_dml(_Write(kind, shape, {}, expected=0 if conditional else None), False))


def _written(write: _Write, rows: list[Row]) -> Written | None:
    if not rows:
        return None
    row = rows[0]
    return Written(write.ok, _record(row), row[len(FIELDS)])


async def _run(database: Runs, owner: str, write: _Write) -> Written:
    """The write alone (no key): one statement, one round trip; a second one only to tell a
    missing task (404) from one that changed since If-Match's version (412)."""
    statement = _statement(write.kind, write.shape, write.expected is not None)
    values = {**write.values, "task_id": write.task_id, "expected": write.expected}
    done = _written(write, await _rows(database, statement, owner, **values))
    if done is not None:
        return done
    if write.kind == "create":
        return Written(409)  # the cap: the only way this INSERT writes nothing
    if write.expected is None:
        return Written(404)
    current = await _rows(database, GET, owner, task_id=write.task_id)
    return Written(412, version=current[0][len(FIELDS)]) if current else Written(404)


# -- with an Idempotency-Key

EXPIRED_KEY = Statement(
    delete_from(IdempotencyKey).where(
        KEY_MATCH, col(IdempotencyKey.created_at) < bindparam("expired_before", required=True)
    )
)
PURGE = Statement(
    delete_from(IdempotencyKey).where(
        tuple_(col(IdempotencyKey.user_id), col(IdempotencyKey.key)).in_(
            select(col(IdempotencyKey.user_id), col(IdempotencyKey.key))
            .where(col(IdempotencyKey.created_at) < bindparam("expired_before", required=True))
            .order_by(col(IdempotencyKey.created_at))
            .limit(bindparam("purge_limit", required=True))
            .offset(literal_column("0"))
        )
    )
)
STORED_COLUMNS = tuple(IdempotencyKey.__table__.c.keys())
STORED = Statement(select(*(col(c) for c in IdempotencyKey.__table__.c)).where(KEY_MATCH))
CLAIM_VALUES = {
    "user_id": OWNER,
    "key": bindparam("idem_key", required=True),
    "fingerprint": bindparam("idem_fp", required=True),
    "created_at": statement_time(),
}
CLAIM_PG = Statement(
    postgresql.insert(IdempotencyKey).values(CLAIM_VALUES).on_conflict_do_nothing().returning(ONE)
)
CLAIM_SQLITE = Statement(
    sqlite.insert(IdempotencyKey).values(CLAIM_VALUES).on_conflict_do_nothing().returning(ONE)
)
STORE_SQLITE = Statement(
    update_rows(IdempotencyKey)
    .where(KEY_MATCH, col(IdempotencyKey.status).is_(None))
    .values(
        status=bindparam("s_status", required=True),
        task_id=bindparam("s_id", required=True),
        title=bindparam("s_title", required=True),
        description=bindparam("s_description", required=True),
        completed=bindparam("s_completed", required=True),
        task_created_at=bindparam("s_created_at", required=True),
        task_updated_at=bindparam("s_updated_at", required=True),
        task_version=bindparam("s_version", required=True),
    )
)


@cache
def _write_and_store(kind: str, shape: tuple[Any, ...], conditional: bool) -> Statement:
    """PostgreSQL: the write, guarded by the claim, and its answer stored with the key, in one
    statement (data-modifying CTEs run once, whatever the main query reads)."""
    write = _Write(kind, shape, {}, expected=0 if conditional else None)
    written = _dml(write, guarded=True).cte("written")

    def first(name: str) -> Any:
        return select(written.c[name]).scalar_subquery()

    current = select(col(Task.version)).where(owned_by(), col(Task.id) == TASK_ID)
    wrote = exists(select(ONE).select_from(written))
    if kind == "create":
        status = case((wrote, literal_column("201")), else_=literal_column("409"))
        version = first("version")
    else:
        status = case(
            (wrote, literal_column("200")),
            (exists(current), literal_column("412")),
            else_=literal_column("404"),
        )
        version = func.coalesce(first("version"), current.scalar_subquery())
    stored = (
        update_rows(IdempotencyKey)
        .where(KEY_MATCH, col(IdempotencyKey.status).is_(None))
        .values(
            status=status,
            task_id=first("id"),
            title=first("title"),
            description=first("description"),
            completed=first("completed"),
            task_created_at=first("created_at"),
            task_updated_at=first("updated_at"),
            task_version=version,
        )
        .cte("stored")
    )
    return Statement(select(ONE).add_cte(written).add_cte(stored))


def _from_stored(row: Row, owner: str, replayed: bool) -> Written:
    stored = dict(zip(STORED_COLUMNS, row, strict=True))
    task: TaskRecord | None = None
    if stored["task_id"] is not None:
        task = TaskRecord(
            id=stored["task_id"],
            user_id=owner,
            title=stored["title"],
            description=stored["description"],
            completed=stored["completed"],
            created_at=stored["task_created_at"],
            updated_at=stored["task_updated_at"],
        )
    return Written(stored["status"], task, stored["task_version"], replayed)


async def _run_once(database: Database, owner: str, write: _Write, key: Idempotency) -> Written:
    """The write with its Idempotency-Key: claimed, written and stored in one transaction; or
    the stored answer, when the key came before with the same request."""
    values = {
        **write.values,
        "task_id": write.task_id,
        "expected": write.expected,
        "idem_key": key.key,
        "idem_fp": key.fingerprint,
        "expired_before": datetime.now(UTC) - timedelta(hours=IDEMPOTENCY_HOURS),
        "purge_limit": PURGE_PER_WRITE,
    }
    if database.dialect.name == "postgresql":
        # The owner goes in last: nothing a caller sends can stand in for it.
        claimed, stored = await _run_once_in_one_message(
            database, write, {**values, OWNER.key: owner}
        )
    else:
        claimed, stored = await _run_once_in_a_transaction(database, owner, write, values)
    answer = _from_stored(stored, owner, replayed=not claimed)
    if stored[STORED_COLUMNS.index("fingerprint")] != key.fingerprint:
        raise KeyReused()
    return answer


async def _run_once_in_one_message(
    database: Database, write: _Write, values: dict[str, Any]
) -> tuple[bool, Row]:
    dialect = database.dialect
    statements = [
        EXPIRED_KEY.sql(dialect),  # an expired key is a new key
        PURGE.sql(dialect),
        # A retry while the first request is in flight waits for its answer, a while.
        f"SET LOCAL lock_timeout = {KEY_WAIT_MS}",
        CLAIM_PG.sql(dialect),
        "SET LOCAL lock_timeout = 0",
    ]
    if write.kind == "create":
        # The cap is exact: a user's creates take turns for the count (released at commit).
        statements.append("SELECT pg_advisory_xact_lock(hashtextextended(%(owner)s, 0))")
    shape_sql = _write_and_store(write.kind, write.shape, write.expected is not None).sql(dialect)
    statements += [shape_sql, STORED.sql(dialect)]
    try:
        results = await database.script(statements, values)
    except LockTimeout:
        raise KeyInFlight() from None
    return bool(results[3]), results[-1][0]


async def _run_once_in_a_transaction(
    database: Database, owner: str, write: _Write, values: dict[str, Any]
) -> tuple[bool, Row]:
    """SQLite: the same steps one statement at a time, under the file's write lock."""
    async with database.transaction() as tx:
        await _rows(tx, EXPIRED_KEY, owner, **values)
        await _rows(tx, PURGE, owner, **values)
        claimed = bool(await _rows(tx, CLAIM_SQLITE, owner, **values))
        if claimed:
            done = await _run(tx, owner, write)
            task = done.task
            answer = {
                "s_status": done.status,
                "s_id": task["id"] if task else None,
                "s_title": task["title"] if task else None,
                "s_description": task["description"] if task else None,
                "s_completed": task["completed"] if task else None,
                "s_created_at": task["created_at"] if task else None,
                "s_updated_at": task["updated_at"] if task else None,
                "s_version": done.version,
            }
            await _rows(tx, STORE_SQLITE, owner, **values, **answer)
        (stored,) = await _rows(tx, STORED, owner, **values)
    return claimed, stored


async def _write(database: Database, owner: str, write: _Write, key: Idempotency | None) -> Written:
    if key is None:
        return await _run(database, owner, write)
    return await _run_once(database, owner, write, key)


# -- the writes


async def create(
    database: Database,
    owner: str,
    task: TaskCreate,
    *,
    cap: int,
    key: Idempotency | None = None,
) -> Written:
    """201 with the new task; 409 when the owner already has ``cap`` tasks."""
    return await _write(
        database, owner, _Write("create", (), {**task.model_dump(), "cap": cap}), key
    )


async def update(
    database: Database,
    owner: str,
    task_id: int,
    changes: Mapping[str, Any],
    *,
    expected: int | None = None,
    key: Idempotency | None = None,
) -> Written:
    """Set the fields in ``changes``; ``expected``: only at that version (If-Match)."""
    if not changes:  # nothing to set: the task as it is (If-Match still applies)
        found = await get_versioned(database, owner, task_id)
        if found is None:
            return Written(404)
        if expected is not None and found.version != expected:
            return Written(412, version=found.version)
        return found
    values = {f"set_{name}": value for name, value in changes.items()}
    write = _Write("update", (frozenset(changes),), values, task_id, expected)
    return await _write(database, owner, write, key)


async def set_completed(
    database: Database,
    owner: str,
    task_id: int,
    completed: bool,
    *,
    expected: int | None = None,
    key: Idempotency | None = None,
) -> Written:
    """Idempotent: setting the state it already has changes nothing, ``updated_at`` included."""
    return await update(
        database, owner, task_id, {"completed": completed}, expected=expected, key=key
    )


async def toggle(
    database: Database,
    owner: str,
    task_id: int,
    *,
    expected: int | None = None,
    key: Idempotency | None = None,
) -> Written:
    """Flip ``completed`` atomically (two toggles at once give two flips, never one)."""
    return await _write(database, owner, _Write("update", ("toggle",), {}, task_id, expected), key)


async def delete(
    database: Database,
    owner: str,
    task_id: int,
    *,
    expected: int | None = None,
    key: Idempotency | None = None,
) -> Written:
    return await _write(database, owner, _Write("delete", (), {}, task_id, expected), key)
