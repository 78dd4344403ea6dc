"""Fixtures: a real PostgreSQL, a SQLite file, real keys and a JWKS server, app clients.

PostgreSQL: the server named by TEST_DATABASE_URL when set (CI: 127.0.0.1:5432), else an
embedded PostgreSQL 16 from the ``pgserver`` package in a temp dir. Either way the suite creates
its own throwaway database on it, migrates it with Alembic (so the migrations are tested), and
drops it at the end. Each test starts from an empty table (per-test cleanup: the app works from
its own threads and connections, so a wrapping transaction could not isolate it).
"""

import fcntl
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, delete, insert, select
from sqlalchemy.engine import make_url

from core.config import Settings, normalize_url
from db import migrate
from main import create_app
from models import IdempotencyKey, tasks
from tests.keys import ALICE, ASYMMETRIC, SECRET, JwksServer, bearer, generate_key, mint

# The suite configures everything explicitly; nothing from the developer's shell leaks in.
for _name in (
    "ENVIRONMENT",
    "DATABASE_URL",
    "BETTER_AUTH_SECRET",
    "BETTER_AUTH_URL",
    "BETTER_AUTH_JWKS_URL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "CORS_ORIGINS",
):
    os.environ.pop(_name, None)

FRONTEND = "http://localhost:3000"
UNLIMITED_WRITES = "1000000/1"  # WRITE_RATE_LIMIT for tests that are not about it

# The real Better Auth (Node) and Chromium fixtures: tests/betterauth_fixtures.py.
pytest_plugins = ("tests.betterauth_fixtures",)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver  # embedded PostgreSQL: real server binaries shipped in a PyPI wheel

    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"taskapi-pg-{uuid.uuid4().hex[:8]}"
    server = pgserver.get_server(data_dir, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def _admin_engine(server_url: str) -> Engine:
    return create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh database on the test server, migrated to head, dropped afterwards."""
    name = f"taskapi_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(postgres_server)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = normalize_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    migrate(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'tasks.db'}"
    engine = create_engine(url)
    migrate(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def signing_keys() -> dict[str, Any]:
    return {alg: generate_key(alg) for alg in ASYMMETRIC}


@pytest.fixture(scope="session")
def jwks_server(signing_keys: dict[str, Any]) -> Iterator[JwksServer]:
    server = JwksServer(list(signing_keys.values())).start()
    yield server
    server.stop()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "database_url": database_url,
        "better_auth_secret": SECRET,
        "cors_origins": FRONTEND,
        "db_pool_size": 4,
        "log_level": "WARNING",
        # Tests write fast, as one user; the limit itself is tested with its own settings.
        "write_rate_limit": UNLIMITED_WRITES,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def app_factory(jwks_server: JwksServer, pg_url: str) -> Iterator[Callable[..., TestClient]]:
    """Build a started app with custom settings; both auth modes are on unless overridden.

    The test PostgreSQL's table starts empty, as with ``client``: rows a live-server test left
    behind never show up in another test's list."""
    _clean(pg_url)
    clients: list[TestClient] = []

    def build(database_url: str | None = None, **overrides: Any) -> TestClient:
        overrides.setdefault("better_auth_url", jwks_server.base_url)
        client = TestClient(create_app(make_settings(database_url or pg_url, **overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def insert_rows(url: str, *rows: dict[str, Any]) -> None:
    """Write task rows straight to the table, as another tool would: no API, the columns'
    own defaults for whatever a row leaves out."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for row in rows:
            conn.execute(insert(tasks).values(**row))
    engine.dispose()


def _clean(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(delete(tasks))
        conn.execute(delete(IdempotencyKey))
    engine.dispose()


@pytest.fixture(scope="session", params=["postgresql", "sqlite"])
def backend_url(request: pytest.FixtureRequest, pg_url: str, sqlite_url: str) -> str:
    """API tests run once on PostgreSQL (production) and once on SQLite (the local default)."""
    return pg_url if request.param == "postgresql" else sqlite_url


def _started(database_url: str, jwks_server: JwksServer) -> Iterator[TestClient]:
    settings = make_settings(database_url, better_auth_url=jwks_server.base_url)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="session")
def _backend_client(backend_url: str, jwks_server: JwksServer) -> Iterator[TestClient]:
    yield from _started(backend_url, jwks_server)


@pytest.fixture(scope="session")
def _pg_client(pg_url: str, jwks_server: JwksServer) -> Iterator[TestClient]:
    yield from _started(pg_url, jwks_server)


@pytest.fixture
def client(_backend_client: TestClient, backend_url: str) -> TestClient:
    """The app on PostgreSQL and on SQLite (both modes of auth on), with an empty table."""
    _clean(backend_url)
    return _backend_client


@pytest.fixture
def pg_client(_pg_client: TestClient, pg_url: str) -> TestClient:
    """For behaviour that does not depend on the database engine (auth, headers, docs)."""
    _clean(pg_url)
    return _pg_client


@pytest.fixture
def db_rows(client: TestClient, backend_url: str) -> Callable[[], list[tuple[Any, ...]]]:
    """Every row of the tasks table, for asserting that a rejected request changed nothing."""

    def read() -> list[tuple[Any, ...]]:
        engine = create_engine(backend_url)
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(select(tasks).order_by(tasks.c.id))]
        engine.dispose()
        return rows

    return read


@pytest.fixture
def alice() -> dict[str, str]:
    return bearer(mint(ALICE))


def database_name(url: str) -> str:
    return str(make_url(url).database)


class LiveServer:
    """The real thing: ``uvicorn main:app`` in a subprocess on 127.0.0.1, stopped by its PID."""

    def __init__(self, env: dict[str, str]) -> None:
        import socket
        import subprocess
        import sys

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        root = Path(__file__).resolve().parent.parent
        command = [sys.executable, "-m", "uvicorn", "main:app", "--app-dir", str(root)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--no-access-log", "--no-server-header"]
        import tempfile

        # A file, not a pipe: it never fills up and blocks the server. Closed in stop().
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        # The server shares this file's offset: without O_APPEND, a test that seeks back to
        # read the log while the server runs makes the server's next lines overwrite old ones.
        flags = fcntl.fcntl(self.log.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(self.log.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
        self.workdir = tempfile.TemporaryDirectory()  # no developer .env is read from here
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir.name,
            env={**os.environ, "WRITE_RATE_LIMIT": UNLIMITED_WRITES, **env},
            stdout=self.log,
            stderr=self.log,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        import time

        import httpx2

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"server exited: {self.log.read()}")
            try:
                if httpx2.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx2.TransportError:
                time.sleep(0.1)
        raise TimeoutError("server did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self.workdir.cleanup()


def running(env: dict[str, str]) -> Iterator[LiveServer]:
    """A LiveServer with ``env``, ready to serve; stopped afterwards, however the test ends."""
    server = LiveServer(env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def serve(pg_url: str, pool_size: int) -> Iterator[LiveServer]:
    yield from running(
        {
            "ENVIRONMENT": "production",
            "DATABASE_URL": pg_url,
            "BETTER_AUTH_SECRET": SECRET,
            "DB_POOL_SIZE": str(pool_size),
            # Generous: a stall shows as a 503 after this long, a busy CI machine is no stall.
            "DB_POOL_TIMEOUT": "15",
            "LOG_LEVEL": "WARNING",
        }
    )


@pytest.fixture(scope="module")
def live_server(pg_url: str) -> Iterator[LiveServer]:
    """The API served by uvicorn against the test PostgreSQL, with a deliberately small pool."""
    yield from serve(pg_url, pool_size=2)


@pytest.fixture(scope="module")
def wide_live_server(pg_url: str) -> Iterator[LiveServer]:
    """The same with many connections, so that many updates of one row really run at once."""
    yield from serve(pg_url, pool_size=16)
