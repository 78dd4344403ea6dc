"""The database goes away, and comes back: a real server under write load (FR-008, SC-004).

The tests that stop and start PostgreSQL never touch the suite's (possibly shared) server:
they start their OWN embedded PostgreSQL 16 (``pgserver``, real binaries from PyPI) in a temp
directory and control it with ``pg_ctl``, so they need nothing installed on the machine. The
others break one connection of their own (``pg_terminate_backend`` of its pid), hold a row
lock, or point the app at a port that never answers.

What they prove (README, "When the database goes away"):
- during an outage every request is answered promptly: 503 with ``Retry-After``, never a 500
  or a hang; ``/health`` stays 200 and ``/health/ready`` turns 503;
- once PostgreSQL accepts connections again, every request succeeds, with no restart;
- every write acknowledged with a 2xx is in the database, exactly once;
- connections killed while the service is idle are replaced on the next request, before
  anything is sent on them (a write goes out once, on a fresh connection);
- a write the server refused (its error came instead of the answer) is a plain 503 and stores
  nothing; a write whose answer was lost says the outcome is unknown (both sides of it shown
  through a proxy that reads the protocol: tests/pgproxy.py);
- a read that loses its connection is sent again once, on a fresh connection;
- connecting, and every statement, is bounded in time (connect and statement timeouts).
"""

import importlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
from sqlalchemy import create_engine, select, text

import task_store
from core.config import normalize_url
from db import PostgresDatabase, SQLiteDatabase, migrate
from models import tasks
from tests.conftest import LiveServer, running
from tests.keys import ALICE, SECRET, bearer, mint
from tests.pgproxy import PgProxy

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

WRITERS = 4
NOT_STORED = "Database unavailable, retry shortly"
MAYBE_STORED = (
    "Database connection lost while saving: the change may or may not have been stored; "
    "read it back before retrying"
)
OUTAGE_SECONDS = 4.0
CONNECT_TIMEOUT = 2  # DB_CONNECT_TIMEOUT for the server under test


class OwnPostgres:
    """An embedded PostgreSQL this module may stop and start at will."""

    def __init__(self) -> None:
        import pgserver

        # pg_ctl from the same wheel (the module builds its command wrappers at import).
        self._pg_ctl = importlib.import_module("pgserver._commands").pg_ctl
        data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"taskapi-fault-{uuid.uuid4().hex[:8]}"
        self.server = pgserver.get_server(data_dir, cleanup_mode="delete")
        admin = create_engine(normalize_url(self.server.get_uri()), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql('CREATE DATABASE "taskapi"')
        admin.dispose()
        self.url = self.server.get_uri("taskapi")
        engine = create_engine(normalize_url(self.url))
        migrate(engine)
        engine.dispose()

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: open transactions are rolled back, clients disconnected."""
        self._pg_ctl(
            ["-w", "-m", "fast", "stop"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
            timeout=30,
        )

    def start(self) -> None:
        """Start again on the same socket (if stopped); returns once it accepts connections."""
        self.server.ensure_postgres_running()
        assert self.server.get_uri("taskapi") == self.url

    def execute(self, sql: str) -> list[Any]:
        engine = create_engine(normalize_url(self.url), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(text(sql))
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def titles(self) -> list[str]:
        engine = create_engine(normalize_url(self.url))
        try:
            with engine.connect() as conn:
                return [row.title for row in conn.execute(select(tasks.c.title))]
        finally:
            engine.dispose()

    def cleanup(self) -> None:
        self.server.cleanup()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    postgres = OwnPostgres()
    try:
        yield postgres
    finally:
        postgres.cleanup()


@pytest.fixture
def server(own_postgres: OwnPostgres) -> Iterator[LiveServer]:
    own_postgres.execute("DELETE FROM tasks")
    yield from running(
        {
            "ENVIRONMENT": "production",
            "DATABASE_URL": own_postgres.url,
            "BETTER_AUTH_SECRET": SECRET,
            "DB_POOL_SIZE": str(WRITERS),
            "DB_POOL_TIMEOUT": "5",
            "DB_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
            "LOG_LEVEL": "WARNING",
        }
    )


@dataclass
class Outcome:
    title: str
    started: float
    finished: float
    status: int  # 0: no HTTP answer at all
    retry_after: str | None
    body: dict[str, Any] = field(default_factory=dict)


def _write_load(url: str, stop: threading.Event, outcomes: list[Outcome]) -> None:
    headers = bearer(mint(ALICE))
    with httpx2.Client(base_url=url, headers=headers, timeout=30) as http:
        while not stop.is_set():
            title = f"w-{uuid.uuid4().hex}"
            started = time.monotonic()
            try:
                response = http.post("/api/tasks", json={"title": title})
                status, retry, body = (
                    response.status_code,
                    response.headers.get("retry-after"),
                    response.json(),
                )
            except httpx2.TransportError:
                status, retry, body = 0, None, {}
            outcomes.append(Outcome(title, started, time.monotonic(), status, retry, body))
            if status == 503:
                time.sleep(0.05)  # a client honouring Retry-After would wait longer


def _log_figures(
    outcomes: list[Outcome],
    stopping: float,
    starting: float,
    during: int,
    maybe: set[str],
    stored: set[str],
) -> None:
    """The README's outage figures (shown with ``-o log_cli=true``)."""
    first_503 = min(o.finished for o in outcomes if o.status == 503) - stopping
    first_201 = min(o.finished for o in outcomes if o.started > starting and o.status == 201)
    log.warning(
        "outage figures: %d writes (%d during the outage, %d 'may or may not', %d of them "
        "stored), first 503 %.3f s after the stop began, slowest 503 %.3f s, first 201 %.3f s "
        "after the start command (PostgreSQL's own start-up included)",
        len(outcomes),
        during,
        len(maybe),
        len(maybe & stored),
        first_503,
        max(o.finished - o.started for o in outcomes if o.status == 503),
        first_201 - starting,
    )


def test_outage_under_write_load_503s_then_recovers_and_loses_no_acknowledged_write_fr008(
    own_postgres: OwnPostgres, server: LiveServer
) -> None:
    outcomes: list[Outcome] = []
    stop = threading.Event()
    writers = [
        threading.Thread(target=_write_load, args=(server.url, stop, outcomes))
        for _ in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    try:
        time.sleep(1.5)
        stopping = time.monotonic()
        own_postgres.stop()
        down = time.monotonic()
        time.sleep(OUTAGE_SECONDS / 2)
        health = httpx2.get(f"{server.url}/health", timeout=10)
        ready = httpx2.get(f"{server.url}/health/ready", timeout=10)
        time.sleep(OUTAGE_SECONDS / 2)
        starting = time.monotonic()
        own_postgres.start()
        up = time.monotonic()
        time.sleep(3.0)
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
        own_postgres.start()  # whatever failed above, the next test finds it running

    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.headers["retry-after"] == "2"

    before = [o for o in outcomes if o.finished < stopping]
    during = [o for o in outcomes if o.started > down and o.finished < starting]
    after = [o for o in outcomes if o.started > up]
    assert before, "no write before the outage"
    assert during, "no write during the outage"
    assert after, "no write after the outage"
    # Every answer is a 201 or a 503 with Retry-After; nothing hangs, nothing is a 500.
    assert {o.status for o in outcomes} <= {201, 503}
    for outcome in outcomes:
        if outcome.status == 503:
            assert outcome.retry_after == "2"
            assert outcome.body["detail"] in (NOT_STORED, MAYBE_STORED)
        assert outcome.finished - outcome.started < CONNECT_TIMEOUT + 5
    assert {o.status for o in before} == {201}
    assert {o.status for o in during} == {503}
    # Recovery with no restart: every write sent once PostgreSQL accepts connections succeeds.
    assert {o.status for o in after} == {201}
    # Nothing acknowledged is lost or doubled; nothing refused was stored. A write whose COMMIT
    # was in flight when the server went down was told "may or may not": either is allowed,
    # twice is not. Nothing else is stored (no phantom).
    stored = own_postgres.titles()
    acknowledged = [o.title for o in outcomes if o.status == 201]
    maybe = {o.title for o in outcomes if o.body.get("detail") == MAYBE_STORED}
    refused = {o.title for o in outcomes if o.body.get("detail") == NOT_STORED}
    assert sorted(t for t in stored if t in set(acknowledged)) == sorted(acknowledged)
    assert not refused & set(stored)
    assert len(stored) == len(set(stored))
    assert set(stored) <= set(acknowledged) | maybe

    _log_figures(outcomes, stopping, starting, len(during), maybe, set(stored))


def test_connections_killed_while_idle_are_replaced_on_the_next_request_fr008(
    own_postgres: OwnPostgres, server: LiveServer
) -> None:
    headers = bearer(mint(ALICE))
    with httpx2.Client(base_url=server.url, headers=headers, timeout=30) as http:
        assert http.post("/api/tasks", json={"title": "before"}).status_code == 201
        killed = own_postgres.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = 'taskapi' AND pid <> pg_backend_pid()"
        )
        assert killed
        assert all(row[0] for row in killed)
        # The very next requests, reads and writes, succeed on fresh connections.
        assert http.get("/api/tasks").status_code == 200
        assert http.post("/api/tasks", json={"title": "after"}).status_code == 201
        assert http.get("/health/ready").status_code == 200
    assert sorted(own_postgres.titles()) == ["after", "before"]


def _backends_of(url: str, *, waiting_on_a_lock: bool = False) -> list[int]:
    """The server processes of the app's connections (every connection but the admin's)."""
    engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
                "AND (NOT :waiting OR wait_event_type = 'Lock')"
            ),
            {"waiting": waiting_on_a_lock},
        ).all()
    engine.dispose()
    return [row.pid for row in rows]


def _terminate(url: str, pids: list[int]) -> None:
    engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    engine.dispose()


def test_a_write_whose_pooled_connection_died_idle_is_sent_once_on_a_fresh_one_fr008(
    app_factory: Any, pg_url: str, alice: dict[str, str]
) -> None:
    # Neon's idle reaper, a restart, pg_terminate_backend: the server closes a pooled connection
    # while nobody uses it. Its goodbye is already in the socket when the next write comes, so
    # the write is sent on a fresh connection instead, with no ping first: 201, stored once.
    client = app_factory(db_pool_size=1)
    _clean_tasks(pg_url)
    assert client.get("/api/tasks", headers=alice).status_code == 200  # one pooled connection
    killed = _backends_of(pg_url)  # every idle connection to this database, this app's included
    _terminate(pg_url, killed)
    time.sleep(0.2)  # the server's FATAL and close reach the idle sockets
    response = client.post("/api/tasks", json={"title": "once"}, headers=alice)
    assert response.status_code == 201
    assert _stored_titles(pg_url) == ["once"]
    assert not set(_backends_of(pg_url)) & set(killed)


def test_a_write_whose_connection_the_server_ends_mid_statement_is_503_not_stored_fr008(
    app_factory: Any, pg_url: str, alice: dict[str, str]
) -> None:
    # The server ends the connection while the write runs (a fast shutdown, an administrator):
    # it says so (FATAL 57P01) instead of answering, and rolls the statement back. A plain 503,
    # "not stored", which is the truth: the task is unchanged and a retry is safe.
    client = app_factory()
    _clean_tasks(pg_url)
    task = client.post("/api/tasks", json={"title": "held"}, headers=alice).json()
    engine = create_engine(pg_url)
    with engine.connect() as blocker:
        blocker.execute(text("SELECT 1 FROM tasks WHERE id = :id FOR UPDATE"), {"id": task["id"]})
        toggling = threading.Thread(
            target=lambda: answers.append(
                client.patch(f"/api/tasks/{task['id']}/complete", headers=alice)
            )
        )
        answers: list[Any] = []
        toggling.start()
        deadline = time.monotonic() + 10
        while not (waiting := _backends_of(pg_url, waiting_on_a_lock=True)):
            assert time.monotonic() < deadline, "the toggle never waited on the lock"
            time.sleep(0.05)
        _terminate(pg_url, waiting)
        toggling.join(10)
        blocker.rollback()
    engine.dispose()
    (response,) = answers
    assert response.status_code == 503
    assert response.json() == {"detail": NOT_STORED}
    assert response.headers["retry-after"] == "2"
    assert client.get(f"/api/tasks/{task['id']}", headers=alice).json()["completed"] is False
    assert client.patch(f"/api/tasks/{task['id']}/complete", headers=alice).status_code == 200


def test_a_write_whose_answer_never_comes_says_the_outcome_is_unknown_fr008(
    app_factory: Any, pg_url: str, alice: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # The one case no service can decide alone: the write was sent and its answer was lost.
    # The 503 says so, and differs from every other 503 (which all mean "not stored, retry
    # freely"). Here the statement never reached the server: reading back shows nothing.
    proxy = PgProxy(pg_url)
    try:
        client = app_factory(proxy.url)
        _clean_tasks(pg_url)
        proxy.arm("INSERT INTO tasks", "swallow")
        errors_log = logging.getLogger("taskapi.errors")  # the app's loggers do not propagate
        errors_log.addHandler(caplog.handler)
        try:
            response = client.post("/api/tasks", json={"title": "maybe"}, headers=alice)
        finally:
            errors_log.removeHandler(caplog.handler)
        assert proxy.fired.is_set()
        assert response.status_code == 503
        assert response.json() == {"detail": MAYBE_STORED}
        assert response.headers["retry-after"] == "2"
        # Operators see it too: the one 503 that may have left a write behind, with its cause.
        (record,) = [r for r in caplog.records if r.name == "taskapi.errors"]
        assert record.getMessage() == f"{MAYBE_STORED}: OperationalError"
        assert record.exc_info is not None
        assert record.exc_info[0] is psycopg.OperationalError
        listed = client.get("/api/tasks", headers=alice)
        assert listed.status_code == 200
        assert listed.json() == []
        assert _stored_titles(pg_url) == []
    finally:
        proxy.close()


def test_a_write_refused_by_a_terminating_server_is_a_plain_503_fr008(
    app_factory: Any, pg_url: str, alice: dict[str, str]
) -> None:
    # An error the server sends instead of the answer (here its FATAL at shutdown) means the
    # statement did not commit: a plain 503, never "may or may not".
    proxy = PgProxy(pg_url)
    try:
        client = app_factory(proxy.url)
        _clean_tasks(pg_url)
        proxy.arm("INSERT INTO tasks", "fatal")
        response = client.post("/api/tasks", json={"title": "refused"}, headers=alice)
        assert proxy.fired.is_set()
        assert response.status_code == 503
        assert response.json() == {"detail": NOT_STORED}
        assert _stored_titles(pg_url) == []
    finally:
        proxy.close()


def test_a_read_that_loses_its_connection_is_retried_once_on_a_fresh_one_fr008(
    app_factory: Any, pg_url: str, alice: dict[str, str]
) -> None:
    # A read changes nothing, so it may be sent again: once, on a newly opened connection.
    proxy = PgProxy(pg_url)
    try:
        client = app_factory(proxy.url)
        assert client.get("/api/tasks", headers=alice).status_code == 200
        opened = proxy.connections
        proxy.arm("FROM tasks", "swallow")
        response = client.get("/api/tasks", headers=alice)
        assert proxy.fired.is_set()
        assert response.status_code == 200
        assert response.json() == []
        assert proxy.connections == opened + 1  # the retry's fresh connection
        # Twice in a row: no third try, a plain 503 (nothing was written), then recovery.
        proxy.arm("FROM tasks", "swallow", times=2)
        response = client.get("/api/tasks", headers=alice)
        assert response.status_code == 503
        assert response.json() == {"detail": NOT_STORED}
        assert response.headers["retry-after"] == "2"
        assert client.get("/api/tasks", headers=alice).status_code == 200
    finally:
        proxy.close()


def _clean_tasks(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(tasks.delete())
    engine.dispose()


def _stored_titles(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        titles = [row.title for row in conn.execute(select(tasks.c.title).order_by(tasks.c.id))]
    engine.dispose()
    return titles


def test_a_database_that_accepts_but_never_answers_is_a_503_within_the_connect_timeout_fr008(
    app_factory: Any, alice: dict[str, str]
) -> None:
    # The worst kind of outage: the port is open (the kernel completes the handshake) and
    # nothing ever answers, as with a hung server or a black-holed route. DB_CONNECT_TIMEOUT
    # bounds it; without it the request would hang for minutes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        client = app_factory(f"postgresql://postgres@127.0.0.1:{port}/silent", db_connect_timeout=1)
        started = time.monotonic()
        response = client.get("/api/tasks", headers=alice)
        elapsed = time.monotonic() - started
        ready = client.get("/health/ready")
        health = client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"detail": NOT_STORED}
    assert response.headers["retry-after"] == "2"
    assert elapsed < 10  # bounded by the 1 s connect timeout (libpq may try twice: TLS, plain)
    assert ready.status_code == 503
    assert health.status_code == 200


def test_a_statement_stuck_behind_a_lock_is_a_503_after_the_statement_timeout_fr008(
    app_factory: Any, pg_url: str, alice: dict[str, str]
) -> None:
    client = app_factory(db_statement_timeout=0.5)
    _clean_tasks(pg_url)
    created = client.post("/api/tasks", json={"title": "locked"}, headers=alice).json()
    engine = create_engine(pg_url)
    with engine.connect() as blocker:
        blocker.execute(
            text("SELECT 1 FROM tasks WHERE id = :id FOR UPDATE"), {"id": created["id"]}
        )
        response = client.patch(f"/api/tasks/{created['id']}/complete", headers=alice)
        blocker.rollback()
    engine.dispose()
    assert response.status_code == 503
    assert response.json() == {"detail": NOT_STORED}
    assert response.headers["retry-after"] == "2"
    # Cancelled means rolled back: the toggle did not happen, and the next one works.
    assert client.get(f"/api/tasks/{created['id']}", headers=alice).json()["completed"] is False
    toggled = client.patch(f"/api/tasks/{created['id']}/complete", headers=alice)
    assert toggled.json()["completed"] is True


def test_write_answer_lost_after_the_server_committed_says_unknown_and_reading_tells_fr008(
    app_factory: Any, pg_url: str, alice: dict[str, str]
) -> None:
    # The other side of the lost answer: here the server did commit. The service cannot know,
    # so it answers the same "may or may not" 503 (never a plain 503, which would invite a
    # blind retry and a duplicate), and reading back shows the task, exactly once.
    proxy = PgProxy(pg_url)
    try:
        client = app_factory(proxy.url)
        _clean_tasks(pg_url)
        proxy.arm("INSERT INTO tasks", "drop_answer")
        response = client.post("/api/tasks", json={"title": "committed"}, headers=alice)
        assert proxy.fired.is_set()
        assert response.status_code == 503
        assert response.json() == {"detail": MAYBE_STORED}
        assert response.headers["retry-after"] == "2"
        assert _stored_titles(pg_url) == ["committed"]
        listed = client.get("/api/tasks", headers=alice)  # a fresh connection, same proxy
        assert [task["title"] for task in listed.json()] == ["committed"]
    finally:
        proxy.close()


def test_every_statement_that_changes_data_is_known_as_a_write_fr008() -> None:
    # A write is never sent twice and a lost answer says "may or may not": both hang on the
    # store marking its statements. Every INSERT, UPDATE and DELETE is marked; no read is.
    statements = {
        name: value
        for name, value in vars(task_store).items()
        if isinstance(value, task_store.Statement)
    }
    statements |= {
        "page": task_store._page("all", True, "created", True, False),
        "set": task_store._statement("update", (frozenset({"title"}),), False),
        "create": task_store._statement("create", (), False),
        "toggle": task_store._statement("update", ("toggle",), True),
        "delete": task_store._statement("delete", (), False),
    }
    for name, statement in statements.items():
        dialect = SQLiteDatabase.dialect if name.endswith("SQLITE") else PostgresDatabase.dialect
        sql = statement.compiled(dialect).lstrip().upper()
        assert statement.writes is sql.startswith(("INSERT", "UPDATE", "DELETE")), name
    assert {n for n, s in statements.items() if s.writes} == {
        "set",
        "create",
        "toggle",
        "delete",
        "EXPIRED_KEY",
        "PURGE",
        "CLAIM_PG",
        "CLAIM_SQLITE",
        "STORE_SQLITE",
    }
