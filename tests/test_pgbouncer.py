"""Through a real PgBouncer in transaction mode, as Neon's pooled (``-pooler``) endpoint runs.

PgBouncer 1.18 (Debian's package) is the strictest case: it has no support for named prepared
statements at all, and in transaction mode it hands every transaction to whichever server
connection is free. Here two server connections serve many more client connections, so
statements of different requests (and of different service instances) share them. What must
hold (README, "Deploying on Neon"): every endpoint works, nothing a statement sets outlives it
(the statement timeout travels with each statement), the timeout still cancels a stuck
statement, and a pooler that restarts under the service is survived without an error.

Needs the ``pgbouncer`` binary (Debian: ``apt-get install pgbouncer``); without it these tests
skip, saying so, except under ``CI=true``, where they fail.
"""

import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import LiveServer, running
from tests.keys import ALICE, BOB, SECRET, bearer, mint

pytestmark = pytest.mark.slow

PGBOUNCER = os.environ.get("TASKAPI_PGBOUNCER", "/usr/sbin/pgbouncer")
SERVER_CONNECTIONS = 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PgBouncer:
    """One pgbouncer process on a free 127.0.0.1 port, in front of the test database."""

    def __init__(self, pg_url: str, pool_size: int = SERVER_CONNECTIONS) -> None:
        url = make_url(pg_url)
        socket_dir = url.query.get("host")
        upstream = (
            f"host={socket_dir} port={url.port or 5432}"
            if isinstance(socket_dir, str)
            else f"host={url.host or '127.0.0.1'} port={url.port or 5432}"
        )
        self.port = _free_port()
        self.workdir = tempfile.TemporaryDirectory()
        directory = Path(self.workdir.name)
        (directory / "users.txt").write_text(f'"{url.username}" ""\n')
        self.config = directory / "pgbouncer.ini"
        self.config.write_text(
            f"[databases]\n{url.database} = {upstream} dbname={url.database}\n\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {directory / 'users.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
            "max_client_conn = 500\n"
        )
        directory.chmod(0o755)  # readable by the unprivileged user it runs as under root
        self.url = (
            url.difference_update_query(["host"])
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())

    def start(self) -> "PgBouncer":
        # PgBouncer refuses to run as root; as root it is told which user to become.
        command = [PGBOUNCER, str(self.config)]
        if os.geteuid() == 0:
            command[1:1] = ["-u", "nobody"]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"pgbouncer exited: {self.log.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("pgbouncer did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        self.log.close()
        self.workdir.cleanup()

    def raw(self) -> psycopg.Connection[Any]:
        """A plain client through the pooler (autocommit: PgBouncer's own unit is the statement)."""
        return psycopg.connect(
            self.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        )


@pytest.fixture(scope="module")
def pgbouncer(pg_url: str) -> Iterator[PgBouncer]:
    if not Path(PGBOUNCER).exists():
        message = "pgbouncer is not installed: apt-get install pgbouncer (Debian's 1.18)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    bouncer = PgBouncer(pg_url).start()
    try:
        yield bouncer
    finally:
        bouncer.close()


def _serve(database_url: str, **env: str) -> Iterator[LiveServer]:
    yield from running(
        {
            "ENVIRONMENT": "production",
            "DATABASE_URL": database_url,
            "BETTER_AUTH_SECRET": SECRET,
            "DB_POOL_SIZE": "8",  # more client connections than PgBouncer has server ones
            "DB_POOL_TIMEOUT": "15",
            "LOG_LEVEL": "WARNING",
            **env,
        }
    )


@pytest.fixture(scope="module")
def pooled_server(pgbouncer: PgBouncer) -> Iterator[LiveServer]:
    yield from _serve(pgbouncer.url, DB_STATEMENT_TIMEOUT="2.5")


def _crud(url: str, headers: dict[str, str], title: str) -> list[int]:
    statuses = []
    with httpx2.Client(base_url=url, headers=headers, timeout=30) as http:
        created = http.post("/api/tasks", json={"title": title})
        statuses.append(created.status_code)
        task = f"/api/tasks/{created.json()['id']}"
        statuses += [
            http.get("/api/tasks", params={"limit": 2}).status_code,
            http.get(task).status_code,
            http.put(task, json={"title": f"{title}!"}).status_code,
            http.patch(task, json={"description": "d"}).status_code,
            http.patch(f"{task}/complete").status_code,
            http.patch(f"{task}/complete", json={"completed": False}).status_code,
            http.delete(task).status_code,
        ]
    return statuses


def test_every_endpoint_works_through_pgbouncer_transaction_mode_fr004(
    pooled_server: LiveServer,
) -> None:
    # 32 request sequences at once from two users over 8 pooled client connections, all
    # multiplexed by PgBouncer onto 2 server connections: any prepared statement or session
    # state would surface here as an error or as one request seeing another's setting.
    users = [bearer(mint(ALICE)), bearer(mint(BOB))]
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(
            pool.map(
                lambda n: _crud(pooled_server.url, users[n % 2], f"t{n}"),
                range(32),
            )
        )
    for statuses in outcomes:
        assert statuses == [201, 200, 200, 200, 200, 200, 200, 200]
    with httpx2.Client(base_url=pooled_server.url, timeout=30) as http:
        for headers in users:
            left = http.get("/api/tasks", params={"limit": 1000}, headers=headers).json()
            # All deleted (the shared test database may hold other tests' tasks).
            assert [t for t in left if t["title"].rstrip("!") in {f"t{n}" for n in range(32)}] == []


def test_nothing_a_statement_sets_outlives_it_through_pgbouncer_fr004(
    pgbouncer: PgBouncer, pooled_server: LiveServer
) -> None:
    # After the service's traffic (its statements carry a 2.5 s timeout), plain clients of the
    # same server connections see the server's own settings and no prepared statement.
    assert _crud(pooled_server.url, bearer(mint(ALICE)), "leak?")[0] == 201
    seen = set()
    for _ in range(SERVER_CONNECTIONS * 3):
        with pgbouncer.raw() as client:
            row = client.execute(
                "SELECT current_setting('statement_timeout'), "
                "(SELECT count(*) FROM pg_prepared_statements), pg_backend_pid()"
            ).fetchone()
        assert row is not None
        timeout, prepared, backend = row
        assert timeout != "2500ms"
        assert prepared == 0
        seen.add(backend)
    assert seen  # the pooler's own server connections were the ones asked


def test_the_statement_timeout_still_cancels_a_stuck_statement_through_pgbouncer_fr008(
    pgbouncer: PgBouncer, pg_url: str
) -> None:
    # A second service instance with a short timeout shares the pooler's server connections
    # with the first: its timeout applies to its own statements only.
    headers = bearer(mint(ALICE))
    short = _serve(pgbouncer.url, DB_STATEMENT_TIMEOUT="0.5")
    server = next(short)
    try:
        with httpx2.Client(base_url=server.url, headers=headers, timeout=30) as http:
            task = http.post("/api/tasks", json={"title": "locked"}).json()
            engine = create_engine(pg_url)
            with engine.connect() as blocker:
                blocker.execute(
                    text("SELECT 1 FROM tasks WHERE id = :id FOR UPDATE"), {"id": task["id"]}
                )
                started = time.monotonic()
                stuck = http.patch(f"/api/tasks/{task['id']}/complete")
                waited = time.monotonic() - started
                blocker.rollback()
            engine.dispose()
            assert stuck.status_code == 503
            assert stuck.json() == {"detail": "Database unavailable, retry shortly"}
            assert waited < 5
            assert http.get(f"/api/tasks/{task['id']}").json()["completed"] is False
            assert http.delete(f"/api/tasks/{task['id']}").status_code == 200
    finally:
        next(short, None)


def test_a_pooler_restart_under_the_service_surfaces_no_error_fr008(
    pgbouncer: PgBouncer, pooled_server: LiveServer
) -> None:
    # PgBouncer restarts (a deploy of the pooler, Neon moving it): every client connection the
    # service holds is closed. The next requests, reads and writes, find out locally and
    # reconnect; none fails.
    headers = bearer(mint(ALICE))
    title = f"after-restart-{uuid.uuid4().hex[:8]}"
    with httpx2.Client(base_url=pooled_server.url, headers=headers, timeout=30) as http:
        assert http.get("/api/tasks").status_code == 200
        pgbouncer.stop()
        pgbouncer.start()
        time.sleep(0.2)
        statuses = [http.get("/api/tasks").status_code]
        created = http.post("/api/tasks", json={"title": title})
        statuses += [
            created.status_code,
            http.delete(f"/api/tasks/{created.json()['id']}").status_code,
        ]
    assert statuses == [200, 201, 200]
