"""The database: one statement, one round trip; a small pool; migrations.

Handlers ``await`` the database directly on the event loop (no worker thread per request):
PostgreSQL through psycopg 3's async connections, SQLite (the local default) through aiosqlite.
``task_store.py`` owns every statement about tasks and hands this module compiled SQL and values.

What one statement costs on PostgreSQL, and why (README, "Deploying on Neon"):
- One network round trip at steady state. The connection is in autocommit mode, so a statement
  is its own transaction: no BEGIN and no COMMIT of its own. The statement timeout travels in the
  same message: ``SET LOCAL statement_timeout = N; <statement>`` is one simple-protocol Query,
  which PostgreSQL runs as one implicit transaction; the setting ends with it. Values are bound
  on the client by psycopg (``AsyncClientCursor``, quoted by libpq's rules), so nothing is
  prepared on the server: Neon's pooler (PgBouncer, transaction mode) can give every statement
  to another server connection, and no name can clash or linger there.
- No ping before use. A pooled connection that the server, Neon's idle reaper or a restart
  closed has already received the close: that is seen locally (the socket is readable while the
  connection is idle) and the connection is replaced before anything is sent. A statement that
  fails because its connection broke is retried once on a fresh connection only if it reads;
  a write is never sent twice (the answer says whether it may have been stored).
"""

import asyncio
import select
import sqlite3
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast

import aiosqlite
import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import Request
from psycopg import AsyncClientCursor, AsyncConnection, pq
from psycopg.types.datetime import TimestamptzLoader
from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from core.config import Settings, normalize_url
from core.errors import CommitOutcomeUnknown, ServiceUnavailable

ROOT = Path(__file__).resolve().parent
SCHEMA_NOT_MIGRATED = "Database schema is not migrated: run `make migrate`"
UNAVAILABLE = "Database unavailable, retry shortly"
BUSY = "Database busy, retry shortly"
UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a relation that does not exist
LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout ran out
# Session time zones that already give UTC datetimes (anything else is converted per value).
UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "GMT", "Etc/GMT", "Universal", "Zulu"})
# SQLAlchemy's storage format for SQLite DATETIME columns: the rows and the keyset cursors
# compare these strings, so every timestamp written here has exactly this form.
SQLITE_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"
SQLITE_NOW = "statement_time"  # the parameter SQLite statements read their "now" from
# Rows turned into Python objects at a time before other requests get their turn.
ROWS_PER_TURN = 200
# Connections are replaced after this long: server-side memory and load balancing stay fresh.
RECYCLE_SECONDS = 300.0

Row = tuple[Any, ...]
C = TypeVar("C")


class statement_time(FunctionElement[datetime]):
    """The moment the statement runs: the database server's clock on PostgreSQL (one clock for
    every replica); on SQLite, whose SQL clock has only milliseconds, this process's clock read
    as the statement is sent (after any wait for a connection)."""

    type = DateTime(timezone=True)
    inherit_cache = True


@compiles(statement_time)
def _statement_time(element: statement_time, compiler: SQLCompiler, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(statement_time, "sqlite")
def _statement_time_sqlite(element: statement_time, compiler: SQLCompiler, **kw: Any) -> str:
    return f":{SQLITE_NOW}"


class LockTimeout(Exception):
    """A statement waited longer than its ``lock_timeout`` for a row another transaction holds
    (only statements that set one: an Idempotency-Key's claim, task_store)."""


class SchemaMissing(ServiceUnavailable):
    """The tasks table is not there: production started before ``make migrate`` ran."""

    def __init__(self) -> None:
        super().__init__(SCHEMA_NOT_MIGRATED)


# ---- the pool ----------------------------------------------------------------------------------


@dataclass(eq=False)
class Pooled(Generic[C]):
    connection: C
    opened_at: float
    idle_since: float = field(default_factory=time.monotonic)


class Pool(Generic[C]):
    """At most ``size`` connections, opened on demand, most recently used first.

    A checkout waits at most ``timeout`` seconds for a free connection, then answers 503 "busy".
    Before a pooled connection is handed out, ``usable`` looks at it locally (no round trip);
    one that is closed or older than ``max_lifetime`` is closed and replaced. Opening a
    connection is bounded by the driver's own connect timeout.
    """

    def __init__(
        self,
        open_connection: Callable[[], Awaitable[C]],
        close_connection: Callable[[C], Awaitable[None]],
        usable: Callable[[C], bool],
        *,
        size: int,
        timeout: float,
        max_lifetime: float,
    ) -> None:
        self._open = open_connection
        self._close = close_connection
        self._usable = usable
        self.size = size
        self._timeout = timeout
        self._max_lifetime = max_lifetime
        self._idle: list[Pooled[C]] = []
        self._slots: asyncio.Semaphore | None = None  # made inside the running loop

    @asynccontextmanager
    async def connection(self, *, fresh: bool = False) -> AsyncIterator[Pooled[C]]:
        """A connection for one statement; ``fresh``: a newly opened one, never a pooled one.

        The caller marks it ``reusable`` by setting ``pooled.idle_since`` (via ``release``);
        anything else (an exception, a cancellation mid-statement) closes it.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise ServiceUnavailable(BUSY) from None
        try:
            pooled = None if fresh else await self._take_idle()
            if pooled is None:
                pooled = Pooled(await self._open(), time.monotonic())
            pooled.idle_since = -1.0
            try:
                yield pooled
            finally:
                if pooled.idle_since >= 0:
                    self._idle.append(pooled)
                else:
                    await self._close(pooled.connection)
        finally:
            self._slots.release()

    @staticmethod
    def reuse(pooled: Pooled[C]) -> None:
        """The statement finished cleanly: the connection goes back to the pool."""
        pooled.idle_since = time.monotonic()

    async def _take_idle(self) -> Pooled[C] | None:
        now = time.monotonic()
        while self._idle:
            pooled = self._idle.pop()
            if now - pooled.opened_at < self._max_lifetime and self._usable(pooled.connection):
                return pooled
            await self._close(pooled.connection)
        return None

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for pooled in idle:
            await self._close(pooled.connection)


# ---- the database ------------------------------------------------------------------------------


class Runs(Protocol):
    """What runs a statement: a ``Database``, or a transaction one hands out."""

    dialect: Dialect

    async def fetch(self, sql: str, values: Mapping[str, Any], *, write: bool) -> list[Row]: ...


class Database(ABC):
    """Runs one compiled statement per call; ``task_store`` compiles them for ``dialect``."""

    dialect: Dialect
    pool: Pool[Any]
    url: URL  # where migrations reach the same database (make_engine)

    @abstractmethod
    async def fetch(self, sql: str, values: Mapping[str, Any], *, write: bool) -> list[Row]:
        """The statement's rows (none for a statement that returns none).

        ``write``: the statement changes data. A write is never sent twice; a read whose
        connection broke is retried once on a fresh connection. Raises ``ServiceUnavailable``
        (503) when the database cannot answer, ``CommitOutcomeUnknown`` when a write's answer
        was lost, ``SchemaMissing`` when the schema is not migrated.
        """

    async def script(self, statements: Sequence[str], values: Mapping[str, Any]) -> list[list[Row]]:
        """Several statements as one transaction in one round trip (PostgreSQL: one message),
        each one's rows in order; a write like ``fetch(write=True)``."""
        raise NotImplementedError(f"{type(self).__name__} runs statements one at a time")

    def transaction(self) -> AbstractAsyncContextManager["Runs"]:
        """Statements run one at a time, in one transaction (SQLite: the file's write lock)."""
        raise NotImplementedError(f"{type(self).__name__} sends a script instead")

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None: never migrated)."""
        try:
            rows = await self.fetch("SELECT version_num FROM alembic_version", {}, write=False)
        except SchemaMissing:
            return None
        return str(rows[0][0]) if rows else None

    async def close(self) -> None:
        await self.pool.close()


def open_database(settings: Settings) -> Database:
    url = normalize_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return SQLiteDatabase(url, settings)
    return PostgresDatabase(url, settings)


async def get_database(request: Request) -> Database:
    """The dependency (``async``: FastAPI runs a plain ``def`` one on a worker thread)."""
    database: Database = request.app.state.database
    return database


# ---- PostgreSQL --------------------------------------------------------------------------------


def libpq_defaults(url: URL, settings: Settings) -> dict[str, Any]:
    """libpq parameters for what the URL leaves out: bounded connects, dead peers found.

    Connecting gives up after ``DB_CONNECT_TIMEOUT``; a connection whose peer vanished without
    closing it (a suspended Neon compute, a dropped NAT entry) is found dead by TCP keepalives
    (5 s idle, 3 probes 2 s apart) instead of the kernel's two hours, and the keepalives keep
    the NAT mapping of an idle pooled connection alive.
    """
    defaults = {
        "connect_timeout": settings.db_connect_timeout,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": settings.db_connect_timeout * 2000,  # ms of unacknowledged data
    }
    return {name: value for name, value in defaults.items() if name not in url.query}


def libpq_parameters(url: URL, settings: Settings) -> dict[str, Any]:
    """Everything libpq is given: the URL's own parameters as pasted (Neon's ``sslmode`` and
    ``channel_binding`` included), then ``libpq_defaults``."""
    parameters: dict[str, Any] = {
        key: value
        for key, value in url.translate_connect_args(username="user", database="dbname").items()
        if value not in (None, "")
    }
    parameters.update(url.query)
    parameters.update(libpq_defaults(url, settings))
    return parameters


def statement_timeout_prefix(seconds: float) -> str:
    """Sent in front of every statement, in the same message: it bounds that statement only.

    Whole milliseconds, at least 1: PostgreSQL reads 0 as "no limit". ``0`` seconds: no prefix.
    """
    if not seconds:
        return ""
    return f"SET LOCAL statement_timeout = {max(1, round(seconds * 1000))}; "


class _UTCTimestamptzLoader(TimestamptzLoader):
    """timestamptz in UTC whatever the session's TimeZone (a role or database may set one)."""

    def load(self, data: Any) -> datetime:
        return super().load(data).astimezone(UTC)


class PostgresDatabase(Database):
    dialect = psycopg_dialect.dialect()  # type: ignore[no-untyped-call]

    def __init__(self, url: URL, settings: Settings) -> None:
        self.url = url
        self._parameters = libpq_parameters(url, settings)
        self._prefix = statement_timeout_prefix(settings.db_statement_timeout)
        self.pool = Pool(
            self._connect,
            self._disconnect,
            _still_open,
            size=settings.db_pool_size + settings.db_max_overflow,
            timeout=settings.db_pool_timeout,
            max_lifetime=RECYCLE_SECONDS,
        )

    async def _connect(self) -> AsyncConnection[Row]:
        try:
            connection = await AsyncConnection.connect(
                autocommit=True,
                prepare_threshold=None,  # never a named server-side statement (PgBouncer)
                cursor_factory=AsyncClientCursor,
                **self._parameters,
            )
        except psycopg.OperationalError as exc:
            raise ServiceUnavailable(UNAVAILABLE) from exc
        if getattr(connection.info.timezone, "key", None) not in UTC_ZONES:
            connection.adapters.register_loader("timestamptz", _UTCTimestamptzLoader)
        return connection

    @staticmethod
    async def _disconnect(connection: AsyncConnection[Row]) -> None:
        await connection.close()

    async def fetch(self, sql: str, values: Mapping[str, Any], *, write: bool) -> list[Row]:
        statement = self._prefix + sql
        for fresh in (False, True):
            async with self.pool.connection(fresh=fresh) as pooled:
                connection: AsyncConnection[Row] = pooled.connection
                try:
                    rows = await self._run(connection, statement, values)
                except psycopg.Error as exc:
                    if not connection.broken:
                        # The server answered with an error; the connection itself is fine.
                        if connection.info.transaction_status == pq.TransactionStatus.IDLE:
                            Pool.reuse(pooled)
                        raise _translate(exc) from exc
                    if write:
                        if exc.sqlstate is None:
                            # Sent, and no answer: the server may have committed or not.
                            raise CommitOutcomeUnknown from exc
                        # The server's error ("terminating connection", a crash) came instead
                        # of the answer: the statement's transaction did not commit.
                        raise ServiceUnavailable(UNAVAILABLE) from exc
                    if fresh:
                        raise ServiceUnavailable(UNAVAILABLE) from exc
                    continue  # a read: once more, on a fresh connection
                Pool.reuse(pooled)
                return rows
        raise AssertionError("unreachable")  # pragma: no cover

    async def script(self, statements: Sequence[str], values: Mapping[str, Any]) -> list[list[Row]]:
        sql = self._prefix + ";\n".join(statements)
        async with self.pool.connection() as pooled:
            connection: AsyncConnection[Row] = pooled.connection
            try:
                cursor = connection.cursor()
                await cursor.execute(sql, values)
                if self._prefix:
                    cursor.nextset()
                results = []
                for _ in statements:
                    fetched = await cursor.fetchall() if cursor.description is not None else []
                    results.append(fetched)
                    cursor.nextset()
            except psycopg.Error as exc:
                if not connection.broken:
                    if connection.info.transaction_status == pq.TransactionStatus.IDLE:
                        Pool.reuse(pooled)
                    raise _translate(exc) from exc
                if exc.sqlstate is None:
                    raise CommitOutcomeUnknown from exc
                raise ServiceUnavailable(UNAVAILABLE) from exc
            Pool.reuse(pooled)
            return results

    async def _run(
        self, connection: AsyncConnection[Row], statement: str, values: Mapping[str, Any]
    ) -> list[Row]:
        cursor = connection.cursor()
        await cursor.execute(statement, values)
        while cursor.description is None and cursor.nextset():
            pass  # past the SETs' empty results, to the statement's
        if cursor.description is None:
            return []
        rows = await cursor.fetchmany(ROWS_PER_TURN)
        while len(rows) % ROWS_PER_TURN == 0 and (more := await cursor.fetchmany(ROWS_PER_TURN)):
            # A long result is turned into Python objects a slice at a time, and other
            # requests run in between: a 1,000-row page never holds the event loop for long.
            await asyncio.sleep(0)
            rows += more
        return rows


def _still_open(connection: AsyncConnection[Row]) -> bool:
    """Alive as far as this side can tell, without a round trip.

    An idle connection receives nothing; if its socket is readable, the server sent its goodbye
    ("terminating connection") and closed, or the peer reset it, or keepalives gave up. libpq
    reads whatever is there (a TLS record is harmless; a close marks the connection bad).
    """
    if connection.closed or connection.broken:
        return False
    pgconn = connection.pgconn
    try:
        # A goodbye comes as a message, then the close: read until nothing is left (or it fails).
        for _ in range(4):
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
            if not readable:
                break
            pgconn.consume_input()
        else:
            return False  # still talking while idle: not a connection to trust
    except (OSError, ValueError, psycopg.OperationalError):
        return False
    return pgconn.status == pq.ConnStatus.OK and not pgconn.is_busy()


def _translate(exc: psycopg.Error) -> Exception:
    """A server error on a healthy connection, as the answer it deserves."""
    if exc.sqlstate == UNDEFINED_TABLE:
        return SchemaMissing()
    if exc.sqlstate == LOCK_NOT_AVAILABLE:
        return LockTimeout()
    if isinstance(exc, psycopg.OperationalError):
        # e.g. query_canceled (the statement timeout), too many connections: not stored.
        return ServiceUnavailable(UNAVAILABLE)
    return exc  # a bug (a constraint, a type error): the 500 handler logs it


# ---- SQLite (the local default) ----------------------------------------------------------------


def _sqlite_timestamp(value: bytes) -> datetime:
    return datetime.fromisoformat(value.decode()).replace(tzinfo=UTC)


# Applied to columns by their declared type (PARSE_DECLTYPES), RETURNING included.
sqlite3.register_converter("DATETIME", _sqlite_timestamp)
sqlite3.register_converter("BOOLEAN", lambda value: value != b"0")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(SQLITE_TIMESTAMP)
    return value


class SQLiteDatabase(Database):
    """aiosqlite: each connection runs sqlite3 on a thread of its own."""

    dialect = pysqlite.dialect(paramstyle="named")

    def __init__(self, url: URL, settings: Settings) -> None:
        self.url = url
        self._path = url.database or ":memory:"
        self._keeper: sqlite3.Connection | None = None
        if self._path == ":memory:":
            # One in-memory database for this process's connections and for the migration that
            # creates its schema: a named, shared one, alive while the keeper connection is.
            self._path = f"file:taskapi-{uuid.uuid4().hex}?mode=memory&cache=shared"
            self.url = url.set(database=self._path, query={"uri": "true"})
            self._keeper = sqlite3.connect(self._path, uri=True, check_same_thread=False)
        self.pool = Pool(
            self._connect,
            self._disconnect,
            lambda _connection: True,
            size=settings.db_pool_size + settings.db_max_overflow,
            timeout=settings.db_pool_timeout,
            max_lifetime=float("inf"),
        )

    async def close(self) -> None:
        await super().close()
        if self._keeper is not None:
            self._keeper.close()

    async def _connect(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(
            self._path,
            detect_types=sqlite3.PARSE_DECLTYPES,
            isolation_level=None,
            uri=self._keeper is not None,
        )
        # SQLite's own lower() folds ASCII only: search's case-insensitive match (task_store)
        # folds every letter, as PostgreSQL's ILIKE does. (Before any statement: SQLite will
        # not replace a function while a statement is open.)
        await connection.create_function("lower", 1, _lower, deterministic=True)
        await connection.execute("PRAGMA busy_timeout=5000")
        await _wal(connection)
        await connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    @staticmethod
    async def _disconnect(connection: aiosqlite.Connection) -> None:
        await connection.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator["Runs"]:
        async with self.pool.connection() as pooled:
            connection: aiosqlite.Connection = pooled.connection
            try:
                await connection.execute("BEGIN IMMEDIATE")  # the write lock, before any read
            except sqlite3.OperationalError as exc:
                Pool.reuse(pooled)
                raise ServiceUnavailable(BUSY) from exc
            try:
                yield _SQLiteTransaction(self, connection)
            except BaseException:
                await connection.execute("ROLLBACK")
                Pool.reuse(pooled)
                raise
            await connection.execute("COMMIT")
            Pool.reuse(pooled)

    async def execute(
        self, connection: aiosqlite.Connection, sql: str, values: Mapping[str, Any]
    ) -> list[Row]:
        parameters = {key: _sqlite_value(value) for key, value in values.items()}
        if f":{SQLITE_NOW}" in sql:
            parameters[SQLITE_NOW] = _sqlite_value(datetime.now(UTC))
        try:
            rows = await connection.execute_fetchall(sql, parameters)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise SchemaMissing() from exc
            raise ServiceUnavailable(BUSY if "locked" in str(exc) else UNAVAILABLE) from exc
        return cast(list[Row], list(rows))  # plain tuples: no row factory is set

    async def fetch(self, sql: str, values: Mapping[str, Any], *, write: bool) -> list[Row]:
        async with self.pool.connection() as pooled:
            try:
                rows = await self.execute(pooled.connection, sql, values)
            except ServiceUnavailable:
                Pool.reuse(pooled)  # SQLite said no (locked, no table): the connection is fine
                raise
            Pool.reuse(pooled)
            return rows


class _SQLiteTransaction:
    """One connection in ``BEGIN IMMEDIATE``: statements run one at a time, all or nothing."""

    dialect: Dialect = pysqlite.dialect(paramstyle="named")

    def __init__(self, database: "SQLiteDatabase", connection: aiosqlite.Connection) -> None:
        self._database = database
        self._connection = connection

    async def fetch(self, sql: str, values: Mapping[str, Any], *, write: bool) -> list[Row]:
        return await self._database.execute(self._connection, sql, values)


async def _wal(connection: aiosqlite.Connection) -> None:
    # Readers never block the writer. The mode is kept in the file, so only a new file is
    # switched; processes that open it at once (`--workers N`) can find each other switching,
    # which SQLite answers with "locked" at once rather than waiting: try again shortly.
    for _ in range(50):
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            await asyncio.sleep(0.1)


# ---- migrations (SQLAlchemy + Alembic, synchronous, run once per release) ----------------------


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(settings: Settings, url: URL | None = None) -> Engine:
    """The SQLAlchemy engine migrations run on (and tests and tools that write rows directly).

    The same URL handling and libpq parameters as the service; no statement timeout (a
    migration may rightly run long). ``url``: a running ``Database``'s own (an in-memory SQLite
    database is reachable only through it).
    """
    url = url or normalize_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        memory = url.database in (None, "", ":memory:")
        engine = create_engine(
            url,
            hide_parameters=True,
            **({"poolclass": StaticPool} if memory else {}),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        connect_args=libpq_defaults(url, settings),
        pool_pre_ping=True,
        hide_parameters=True,
    )


def alembic_config() -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    return config


def revisions_behind_head() -> frozenset[str | None]:
    """Schema revisions this code cannot serve: none at all, or an older one it knows.

    A revision it does not know is a newer release's, migrated before that release rolls out
    (migrations only add to the schema): this code keeps serving through the rollout.
    """
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    return frozenset({None} | {s.revision for s in scripts.walk_revisions() if s.revision != head})


class DatabaseUnreachable(RuntimeError):
    """A development start-up could not reach its database; the message says where and what to
    set, in one line (no password, no traceback)."""


def migrate_for_development(settings: Settings, database: Database) -> None:
    """Development start-up: bring the database to the newest schema, or say in one line why
    it cannot be reached."""
    engine = make_engine(settings, database.url)
    try:
        migrate(engine)
    except sa_exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        url = database.url
        where = url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)
        raise DatabaseUnreachable(
            f"cannot reach the database at {where} ({reason}). Start it, or set DATABASE_URL "
            "to one that answers (unset, the service uses a local SQLite file, ./tasks.db)"
        ) from None
    finally:
        engine.dispose()


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (idempotent; safe from several processes)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
