"""The image: built from the Dockerfile with podman, run against the test PostgreSQL.

What docs/deploy.md promises of it: ``migrate`` is a command of its own and the service never
migrates at start; the service answers on $PORT as a non-root user with only the runtime files;
its HEALTHCHECK reports healthy; a SIGTERM reaches the server, which finishes the request in
flight before the container exits. Registries are unreachable here, so the base is built from
Debian's packages (deploy/build-pybase: mmdebstrap, podman import). podman and mmdebstrap are
not Python packages: without them these tests skip and say what to install (under ``CI=true``
they fail instead; ``.ci/run`` installs them). Everything the tests create (containers, the
image, a database) is removed by id; the base and the dependency layers stay as a cache.
"""

import hashlib
import json
import os
import resource
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from core.config import normalize_url
from tests.betterauth_fixtures import unavailable
from tests.keys import ALICE, BOB, SECRET, bearer, mint

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BUILD_PYBASE = ROOT / "deploy" / "build-pybase"
DEPENDENCIES = "localhost/taskapi-dependencies"  # the cached dependency stage, by input hash
UID = "10001"
# As docs/deploy.md shows it: docker format keeps HEALTHCHECK (OCI drops it); the host's network
# lets pip reach PyPI without a container network.
BUILD = ("build", "--format", "docker", "--network", "host")
NOWHERE = "postgresql://nobody@127.0.0.1:9/nothing"  # the discard port: nothing listens


@dataclass
class Podman:
    """The podman command line with this machine's settings (a CONTAINERS_CONF of our own)."""

    binary: str
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        done = subprocess.run(
            [self.binary, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:3])}...: {done.stderr[-3000:]}")
        return done.stdout.strip()

    def returncode(self, *args: str) -> int:
        return subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, timeout=120, check=False
        ).returncode


def containers_conf(nofile: int) -> str:
    """Settings this machine kind needs (docs/deploy.md shows them): crun cannot start containers
    here, runc can; podman's default nofile limit (1048576) exceeds the host's hard limit."""
    return (
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
    )


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    binary = shutil.which("podman")
    if binary is None:
        unavailable(
            "podman is not installed: install Debian's podman and runc (apt-get install podman "
            "runc mmdebstrap) to build and run the container image"
        )
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(containers_conf(nofile if nofile != resource.RLIM_INFINITY else 1048576))
    return Podman(binary, {**os.environ, "CONTAINERS_CONF": str(conf)})


def _inputs_key(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


@pytest.fixture(scope="module")
def image(podman: Podman) -> Iterator[str]:
    """The Dockerfile built as CI builds it; removed by id afterwards."""
    if podman.returncode("image", "exists", "localhost/pybase") != 0 and not shutil.which(
        "mmdebstrap"
    ):
        unavailable(
            "mmdebstrap is not installed and there is no localhost/pybase: apt-get install "
            "mmdebstrap (deploy/build-pybase builds the base from Debian's packages)"
        )
    done = subprocess.run(
        [str(BUILD_PYBASE)],
        env=podman.env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    base = done.stdout.strip().splitlines()[-1]
    build = [*BUILD, "--build-arg", f"BASE={base}"]
    # The dependency stage keeps a tag of its own, so removing the image below leaves its layers
    # as the next run's cache; its name changes with everything that goes into it.
    base_id = podman.run("image", "inspect", "--format", "{{.Id}}", base)
    dockerfile, requirements = (ROOT / "Dockerfile").read_bytes(), (ROOT / "requirements.txt")
    key = _inputs_key(base_id.encode(), dockerfile, requirements.read_bytes())
    podman.run(*build, "--target", "dependencies", "-t", f"{DEPENDENCIES}:{key}", str(ROOT))
    image_id = podman.run(*build, "-q", str(ROOT)).splitlines()[-1]
    try:
        yield image_id
    finally:
        podman.run("rmi", "--force", image_id, check=False)


@contextmanager
def _empty_database(postgres_server: str) -> Iterator[str]:
    """A database of its own with no schema, dropped afterwards; its URL as an operator would
    paste it (postgresql://..., not the driver's name for it)."""
    name = f"taskapi_container_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(postgres_server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def fresh_database(postgres_server: str) -> Iterator[str]:
    with _empty_database(postgres_server) as url:
        yield url


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Container:
    """One container of the image on the host's network, bound to 127.0.0.1:$PORT."""

    def __init__(self, podman: Podman, image: str, database_url: str, *command: str) -> None:
        self.podman = podman
        self.database_url = database_url
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            "DATABASE_URL": database_url,
            "BETTER_AUTH_SECRET": SECRET,
            "CORS_ORIGINS": "https://app.example.com",
            "HOST": "127.0.0.1",  # the image's default is 0.0.0.0; this is a shared machine
            "PORT": str(self.port),
            "DB_POOL_SIZE": "2",
        }
        options = ["--network", "host", "--health-interval", "disable", *_env_options(env)]
        self.id = podman.run("run", "--detach", *options, image, *command)

    def inspect(self, template: str) -> str:
        return self.podman.run("inspect", "--format", template, self.id)

    def logs(self) -> str:
        """What the service wrote (podman replays the container's stderr on its own stderr)."""
        done = subprocess.run(
            [self.podman.binary, "logs", self.id],
            env=self.podman.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout + done.stderr

    def wait_live(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.inspect("{{.State.Running}}") != "true":
                raise AssertionError(f"the container exited: {self.logs()}")
            try:
                if httpx2.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the service never answered on {self.url}: {self.logs()}")

    def remove(self) -> None:
        self.podman.run("rm", "--force", "--time", "0", self.id, check=False)


CONTAINER_SOCKETS = "/run/postgresql"


def _env_options(env: dict[str, str]) -> list[str]:
    """``--env`` options; a database URL on a Unix socket (the embedded PostgreSQL has no TCP
    port) gets that socket mounted into the container. The socket itself, not its directory:
    that is the data directory, which the container's user may not enter."""
    options: list[str] = []
    for name, value in env.items():
        passed = value
        url = make_url(value) if "DATABASE_URL" in name else None
        directory = url.query.get("host") if url is not None else None
        if url is not None and isinstance(directory, str) and directory.startswith("/"):
            socket_name = f".s.PGSQL.{url.query.get('port') or url.port or 5432}"
            options.append(f"--volume={directory}/{socket_name}:{CONTAINER_SOCKETS}/{socket_name}")
            query = {**url.query, "host": CONTAINER_SOCKETS}
            passed = url.set(query=query).render_as_string(hide_password=False)
        options += ["--env", f"{name}={passed}"]
    return options


def migrate(podman: Podman, image: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``docker run IMAGE migrate``: the release step, a container of its own."""
    command = [podman.binary, "run", "--rm", "--network", "host", "--no-healthcheck"]
    command += _env_options(env)
    return subprocess.run(
        [*command, image, "migrate"],
        env=podman.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def served(podman: Podman, image: str, postgres_server: str) -> Iterator[Container]:
    """The service in a container, on a database that `migrate` brought to the schema."""
    with _empty_database(postgres_server) as url:
        assert migrate(podman, image, DATABASE_URL=url).returncode == 0
        container = Container(podman, image, url)
        try:
            container.wait_live()
            yield container
        finally:
            container.remove()


def test_service_never_migrates_at_start_migrate_is_its_own_command(
    podman: Podman, image: str, fresh_database: str
) -> None:
    container = Container(podman, image, fresh_database)
    try:
        container.wait_live()
        # Alive, but not ready: a load balancer sends it no traffic until the release step ran.
        ready = httpx2.get(f"{container.url}/health/ready")
        assert ready.status_code == 503
        assert "not migrated" in ready.json()["detail"]
        # As on Fly.io: the service's DATABASE_URL (there, Neon's pooler; here, nothing
        # listens) and MIGRATE_DATABASE_URL, the direct host, which `migrate` uses.
        first = migrate(podman, image, DATABASE_URL=NOWHERE, MIGRATE_DATABASE_URL=fresh_database)
        assert first.returncode == 0, first.stderr
        assert "Running upgrade" in first.stderr
        assert httpx2.get(f"{container.url}/health/ready").status_code == 200
        again = migrate(
            podman, image, DATABASE_URL=fresh_database
        )  # a second release step changes nothing
        assert again.returncode == 0, again.stderr
        assert "Running upgrade" not in again.stderr
    finally:
        container.remove()


def test_crud_round_trip_through_the_container_on_its_port_us1_1(served: Container) -> None:
    with httpx2.Client(base_url=served.url, headers=bearer(mint(ALICE))) as http:
        created = http.post("/api/tasks", json={"title": " Buy milk ", "description": "2 l"})
        assert created.status_code == 201, created.text
        task = created.json()
        assert (task["title"], task["user_id"], task["completed"]) == ("Buy milk", ALICE, False)
        assert created.headers["location"].endswith(f"/api/tasks/{task['id']}")
        path = f"/api/tasks/{task['id']}"
        assert http.get(path).json() == task
        assert http.put(path, json={"description": None}).json()["description"] is None
        assert http.patch(path, json={"title": "Buy oat milk"}).json()["title"] == "Buy oat milk"
        assert http.patch(f"{path}/complete").json()["completed"] is True
        listed = http.get("/api/tasks")
        assert [t["id"] for t in listed.json()] == [task["id"]]
        assert listed.headers["x-total-count"] == "1"
        other = httpx2.get(f"{served.url}{path}", headers=bearer(mint(BOB)))
        assert other.status_code == 404  # another user's task, as if it did not exist
        assert http.delete(path).status_code == 200
        assert http.get(path).status_code == 404
        assert http.get("/api/tasks", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_runs_as_non_root_with_uvicorn_as_pid_1_and_only_runtime_files(
    podman: Podman, image: str, served: Container
) -> None:
    assert podman.run("image", "inspect", "--format", "{{.Config.User}}", image) == f"{UID}:{UID}"
    probe = (
        "import json, os; print(json.dumps({'uid': os.getuid(), "
        "'pid1': open('/proc/1/cmdline').read().split(chr(0)), "
        "'app': sorted(os.listdir('/app')), 'scripts': sorted(os.listdir('/app/scripts'))}))"
    )
    seen: dict[str, Any] = json.loads(podman.run("exec", served.id, "python3", "-c", probe))
    assert seen["uid"] == int(UID)
    # PID 1 is the server itself (scripts/serve exec'd it): no shell to swallow the SIGTERM.
    assert Path(seen["pid1"][0]).name.startswith("python")  # not sh, bash or dash
    assert "uvicorn" in seen["pid1"]
    assert "--proxy-headers" in seen["pid1"]
    assert seen["scripts"] == ["migrate", "serve"]
    for dev_only in ("tests", "bench", "docs", "deploy", ".git", ".venv", ".env", "Makefile"):
        assert dev_only not in seen["app"]
    assert not [name for name in seen["app"] if name.startswith("requirements-dev")]
    assert {"main.py", "alembic.ini", "migrations", "core", "routes"} <= set(seen["app"])


def test_healthcheck_in_the_image_reports_healthy(
    podman: Podman, image: str, served: Container
) -> None:
    # podman keeps HEALTHCHECK only in the docker format (the OCI format drops it).
    check: dict[str, Any] = json.loads(
        podman.run("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image)
    )
    assert "/health" in " ".join(check["Test"])
    assert podman.returncode("healthcheck", "run", served.id) == 0
    assert served.inspect("{{.State.Health.Status}}") == "healthy"


def test_sigterm_finishes_the_request_in_flight_then_the_container_exits(
    podman: Podman, image: str, served: Container, postgres_server: str
) -> None:
    # A toggle is held in flight by a row lock; `podman kill --signal TERM` (what `podman stop`
    # and every orchestrator send first) arrives; the lock goes; the toggle still answers 200.
    engine = create_engine(normalize_url(served.database_url))
    headers = bearer(mint(ALICE))
    created = httpx2.post(f"{served.url}/api/tasks", json={"title": "held"}, headers=headers)
    task_id = created.json()["id"]
    result: dict[str, Any] = {}

    def toggle() -> None:
        response = httpx2.patch(
            f"{served.url}/api/tasks/{task_id}/complete", headers=headers, timeout=60
        )
        result["status"], result["body"] = response.status_code, response.json()

    in_flight = threading.Thread(target=toggle)
    try:
        with engine.connect() as blocker:
            blocker.execute(text("SELECT 1 FROM tasks WHERE id = :id FOR UPDATE"), {"id": task_id})
            in_flight.start()
            _wait_for_lock_waiter(engine)
            podman.run("kill", "--signal", "TERM", served.id)
            time.sleep(0.5)
            assert served.inspect("{{.State.Running}}") == "true"  # draining, not gone
            blocker.commit()
        in_flight.join(60)
        assert result["status"] == 200
        assert result["body"]["completed"] is True
        assert podman.run("wait", served.id, timeout=60) in ("0", "143")
        assert "Finished server process" in served.logs()
    finally:
        engine.dispose()


def _wait_for_lock_waiter(engine: Engine) -> None:
    deadline = time.monotonic() + 15
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            conn.commit()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the request never reached the locked row")
