"""Engine, the unit-of-work runner, migrations.

Concurrency model: handlers are ``async``; every database unit of work is one plain function run
in a worker thread, holding a connection only inside that call. At most ``pool_size +
max_overflow`` such calls run at once (a capacity limiter), so a thread never waits for a
connection and a request never holds one across a thread hop. That is what rules out the
classic FastAPI deadlock: sync endpoints + a ``yield`` session + a pool smaller than anyio's 40
threads, where threads holding connections wait for threads waiting for connections.
"""

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import Request
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from core.config import Settings, normalize_url
from core.errors import CommitOutcomeUnknown, ServiceUnavailable

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent
WROTE = "taskapi.wrote"  # connection info key: this transaction sent a write
UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a relation that does not exist
SCHEMA_NOT_MIGRATED = "Database schema is not migrated: run `make migrate`"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    # Readers never block the writer. The mode is kept in the file, so only a new file is
    # switched; processes that open it at once (`--workers N`) can find each other switching,
    # which SQLite answers with "locked" at once rather than waiting: try again shortly.
    for _ in range(50):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            time.sleep(0.1)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _transaction_begins(connection: Connection) -> None:
    connection.info[WROTE] = False


def _note_writes(connection: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
    if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
        connection.info[WROTE] = True


def _track_writes(engine: Engine) -> Engine:
    """Note whether a transaction wrote, so a COMMIT lost in transit is reported truthfully."""
    event.listen(engine, "begin", _transaction_begins)
    event.listen(engine, "before_cursor_execute", _note_writes)
    return engine


def make_engine(settings: Settings) -> Engine:
    url = normalize_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        pooling: dict[str, Any] = (
            # One in-memory database shared by every thread: one connection, one user at a time.
            {"poolclass": StaticPool}
            if url.database in (None, "", ":memory:")
            else {
                "pool_size": settings.db_pool_size,
                "max_overflow": settings.db_max_overflow,
                "pool_timeout": settings.db_pool_timeout,
            }
        )
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, hide_parameters=True, **pooling
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return _track_writes(engine)
    # libpq parameters, unless the URL sets them: connecting gives up after a few seconds, and a
    # connection whose peer vanished without closing it (a suspended Neon compute, a dropped
    # NAT entry) is found dead within seconds instead of the kernel's two hours.
    connect_args: dict[str, Any] = {
        name: value
        for name, value in {
            "connect_timeout": settings.db_connect_timeout,
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            "tcp_user_timeout": settings.db_connect_timeout * 2000,  # ms of unacknowledged data
        }.items()
        if name not in url.query
    }
    engine = create_engine(
        url,
        connect_args=connect_args,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # Each checkout is checked with a ping; a connection the server (or Neon's idle reaper)
        # closed is replaced, and a failed ping discards every older pooled connection too, so
        # the first request after an outage already gets a fresh one.
        pool_pre_ping=True,
        pool_recycle=300,
        hide_parameters=True,  # user data stays out of exception messages and logs
    )
    if settings.db_statement_timeout:
        # Per transaction, not per session: Neon's -pooler (PgBouncer, transaction mode) hands
        # the server connection to someone else after COMMIT, so session settings would leak
        # or vanish; SET LOCAL ends with the transaction on either.
        # Whole milliseconds, at least 1: PostgreSQL reads 0 as "no limit".
        milliseconds = max(1, round(settings.db_statement_timeout * 1000))
        timeout = f"SET LOCAL statement_timeout = {milliseconds}"
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(timeout))
    return _track_writes(engine)


class Database:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        shared = isinstance(engine.pool, StaticPool)
        self.capacity = 1 if shared else settings.db_pool_size + settings.db_max_overflow
        self.wait_timeout = settings.db_pool_timeout
        self._slots: anyio.Semaphore | None = None
        self._threads: anyio.CapacityLimiter | None = None

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction on a worker thread; commit on return, roll back on error.

        Waiting for a free connection is bounded (503 after ``db_pool_timeout``); once the work
        has started it is never abandoned, so a write is either committed or rolled back, and the
        answer says which. The one exception is a connection lost while COMMIT is in flight:
        nobody can know the outcome, and ``CommitOutcomeUnknown`` says exactly that.
        """
        if self._slots is None or self._threads is None:  # created inside the running loop
            self._slots = anyio.Semaphore(self.capacity)
            self._threads = anyio.CapacityLimiter(self.capacity)
        with anyio.move_on_after(self.wait_timeout) as waiting:
            await self._slots.acquire()
        if waiting.cancelled_caught:
            raise ServiceUnavailable("Database busy, retry shortly")
        try:
            # Own thread limiter, sized like the pool: database work neither takes nor waits for
            # anyio's default 40 tokens.
            return await anyio.to_thread.run_sync(self._transaction, work, limiter=self._threads)
        except sa_exc.DBAPIError as exc:
            if _schema_missing(exc):
                raise ServiceUnavailable(SCHEMA_NOT_MIGRATED) from exc
            raise
        finally:
            self._slots.release()

    def _transaction(self, work: Callable[[Session], T]) -> T:
        with Session(self.engine) as session:
            session.begin()
            try:
                result = work(session)
                session.flush()  # pending ORM changes go out now, so `wrote` sees them
            except BaseException:
                session.rollback()
                raise
            wrote = session.connection().info.get(WROTE, False)
            try:
                session.commit()
            except sa_exc.DBAPIError as exc:
                if wrote and _answer_lost(exc):
                    # COMMIT was sent and the connection broke before its answer: the server
                    # may have committed or not, and nothing here can tell which.
                    raise CommitOutcomeUnknown from exc
                raise
            return result

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None: never migrated)."""
        return await self.run(
            lambda session: MigrationContext.configure(session.connection()).get_current_revision()
        )


def _answer_lost(exc: sa_exc.DBAPIError) -> bool:
    """The connection ended with no answer from the server (a drop, not an error it sent).

    An error the server sends in reply to COMMIT (a SQLSTATE: a constraint, a serialization
    failure, or "terminating connection" at shutdown) means it did not commit: a backend sends
    nothing after COMMIT's own answer, so an error in its place is the answer.
    """
    return exc.connection_invalidated and getattr(exc.orig, "pgcode", None) is None


def _schema_missing(exc: sa_exc.DBAPIError) -> bool:
    """The tasks table is not there: production started before `make migrate` ran."""
    code = getattr(exc.orig, "pgcode", None)
    return code == UNDEFINED_TABLE or (
        isinstance(exc, sa_exc.OperationalError) and "no such table" in str(exc.orig)
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


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (idempotent; safe from several processes)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database
