"""Three replicas behind a real load balancer: the production command, one PostgreSQL, haproxy.

Three ``scripts/serve`` processes (the command the image runs) on the test PostgreSQL, behind
Debian's haproxy running deploy/haproxy.cfg as committed (round robin, health-checked on
/health/ready). Through it: the three-user state machine, where any request may land on any
replica; a rolling restart while writers keep writing; a signing key that Better Auth adds.
haproxy is not a Python package: without it these tests skip and say what to install (under
``CI=true`` they fail instead; ``.ci/run`` installs it).
"""

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx2
import pytest
from sqlalchemy import Engine, create_engine, text

from core.config import normalize_url
from tests.betterauth_fixtures import unavailable
from tests.conftest import FRONTEND, UNLIMITED_WRITES
from tests.keys import SECRET, JwksServer, bearer, generate_key, mint
from tests.test_stateful import run_machine

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SERVE = ROOT / "scripts" / "serve"
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
NAMES = ("r1", "r2", "r3")  # the server names in deploy/haproxy.cfg
CHECK_INTERVAL = "300ms"
# Test-only rules, appended to the committed backend section: a request carrying this header goes
# to the named replica (while it is up), so the test can hold a request in flight on the replica
# it is about to stop. Every other request is balanced as configured.
PIN_HEADER = "X-Test-Replica"
PIN_RULES = "".join(
    f"    use-server {name} if {{ req.hdr({PIN_HEADER}) -m str {name} }}\n" for name in NAMES
)


def haproxy_binary() -> str:
    found = os.environ.get("TASKAPI_HAPROXY") or shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(found, os.X_OK):
        unavailable(
            f"haproxy is not installed ({found}): install Debian's `haproxy` package "
            "(apt-get install haproxy), or set TASKAPI_HAPROXY, to run the replica tests"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _log_file(directory: Path, name: str) -> IO[str]:
    # A file, not a pipe: it never fills up and blocks the process. Appended to across restarts.
    return (directory / f"{name}.log").open("a")


@dataclass
class Replica:
    """One service process: ``scripts/serve`` with HOST, PORT and WORKERS from the environment."""

    name: str
    env: dict[str, str]
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, **self.env, "HOST": "127.0.0.1", "PORT": str(self.port)}
        env["WORKERS"] = "1"
        with _log_file(self.directory, self.name) as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SERVE)], cwd=self.directory, env=env, stdout=log, stderr=log
            )

    def log(self) -> str:
        return (self.directory / f"{self.name}.log").read_text()

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited: {self.log()}")
            try:
                if httpx2.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"replica {self.name} never became ready: {self.log()}")

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Balancer:
    """haproxy with deploy/haproxy.cfg in the foreground, stopped by its PID."""

    def __init__(self, binary: str, directory: Path, replicas: list[Replica]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket = directory / "haproxy.sock"
        config = directory / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.read_text() + PIN_RULES)
        env = {
            **os.environ,
            "LISTEN": f"127.0.0.1:{self.port}",
            "HAPROXY_SOCKET": str(self.socket),
            "CHECK_INTERVAL": CHECK_INTERVAL,
        }
        for number, replica in enumerate(replicas, start=1):
            env[f"REPLICA_{number}"] = f"127.0.0.1:{replica.port}"
        self.log_path = directory / "haproxy.log"
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(config)], env=env, stdout=log, stderr=log
            )

    def stats(self) -> dict[str, dict[str, str]]:
        """haproxy's own view of each replica (``show stat``): status, sessions, answers."""
        with socket.socket(socket.AF_UNIX) as admin:
            admin.connect(str(self.socket))
            admin.sendall(b"show stat\n")
            raw = b""
            while chunk := admin.recv(65536):
                raw += chunk
        rows = csv.DictReader(raw.decode().lstrip("# ").splitlines())
        return {row["svname"]: row for row in rows if row["pxname"] == "replicas"}

    def wait_status(self, name: str, wanted: Callable[[str], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited: {self.log_path.read_text()}")
            if self.socket.exists() and wanted(self.stats()[name]["status"]):
                return
            time.sleep(0.05)
        raise TimeoutError(f"haproxy's status for {name}: {self.stats()[name]['status']}")

    def wait_in_rotation(self, name: str) -> None:
        # "no check": a server haproxy does not check is always sent traffic.
        self.wait_status(name, lambda status: status in ("UP", "no check"))

    def wait_noticed_down(self, name: str) -> None:
        # A checked server shows DOWN; one that is not checked never stops being "no check".
        self.wait_status(name, lambda status: status != "UP")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Cluster:
    balancer: Balancer
    replicas: list[Replica]
    jwks: JwksServer


@pytest.fixture(scope="module")
def cluster(pg_url: str) -> Iterator[Cluster]:
    binary = haproxy_binary()
    jwks = JwksServer([generate_key("ES256")]).start()
    with tempfile.TemporaryDirectory() as workdir:
        directory = Path(workdir)
        env = {
            "ENVIRONMENT": "production",
            "DATABASE_URL": pg_url,
            "BETTER_AUTH_SECRET": SECRET,
            "BETTER_AUTH_URL": jwks.base_url,
            "CORS_ORIGINS": FRONTEND,
            "DB_POOL_SIZE": "4",
            "DB_POOL_TIMEOUT": "15",  # generous: a busy CI machine is no stall
            # On SIGTERM, readiness fails first and the replica serves on this long: a few of
            # haproxy's checks (every CHECK_INTERVAL), so it is out of rotation before it stops
            # accepting (docs/deploy.md).
            "SHUTDOWN_DELAY_SECONDS": "1.5",
            "LOG_LEVEL": "WARNING",
            "WRITE_RATE_LIMIT": UNLIMITED_WRITES,  # three writers, as fast as they can
        }
        replicas = [Replica(name, env, directory) for name in NAMES]
        balancer: Balancer | None = None
        try:
            for replica in replicas:
                replica.start()
            for replica in replicas:
                replica.wait_ready()
            balancer = Balancer(binary, directory, replicas)
            for replica in replicas:
                balancer.wait_in_rotation(replica.name)
            yield Cluster(balancer, replicas, jwks)
        finally:
            if balancer is not None:
                balancer.stop()
            for replica in replicas:
                replica.stop()
            jwks.stop()


def test_three_users_through_the_balancer_match_the_model_on_any_replica_fr007_us1_3(
    cluster: Cluster,
) -> None:
    before = {name: int(row["stot"]) for name, row in cluster.balancer.stats().items()}
    with httpx2.Client(base_url=cluster.balancer.url, timeout=30) as http:
        run_machine(http, max_examples=10)
    after = cluster.balancer.stats()
    served = {name: int(after[name]["stot"]) - before[name] for name in NAMES}
    # Round robin: every replica answered a share of the machine's requests.
    assert all(count > 50 for count in served.values()), served
    assert all(after[name]["hrsp_5xx"] == "0" for name in NAMES), after


# --- Rolling restart under write load ----------------------------------------------------------


@dataclass
class Writers:
    """Threads that create tasks through the balancer until stopped, each as its own user."""

    url: str
    count: int = 3
    acknowledged: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "Writers":
        for number in range(self.count):
            user = f"writer-{number}-{uuid.uuid4().hex[:8]}"
            self.acknowledged[user] = []
            thread = threading.Thread(target=self._write, args=(user,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _write(self, user: str) -> None:
        with httpx2.Client(base_url=self.url, headers=bearer(mint(user)), timeout=30) as http:
            sequence = 0
            while not self._stop.is_set():
                sequence += 1
                title = f"{user} #{sequence}"
                try:
                    response = http.post("/api/tasks", json={"title": title})
                except httpx2.HTTPError as exc:
                    self.failures.append(f"{title}: {exc!r}")
                    continue
                if response.status_code == 201:
                    self.acknowledged[user].append((title, response.json()["id"]))
                else:
                    self.failures.append(f"{title}: {response.status_code} {response.text}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def total(self) -> int:
        return sum(len(writes) for writes in self.acknowledged.values())


def _wait_for_lock_waiters(engine: Engine, count: int) -> None:
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
            if waiting >= count:
                return
            time.sleep(0.02)
    raise AssertionError("the held request never reached the locked row")


def test_rolling_restart_under_writes_fails_nothing_and_stores_each_write_once(
    cluster: Cluster, pg_url: str
) -> None:
    # SIGTERM one replica at a time, with a request held in flight on it; start it again; wait
    # until the balancer has it back in rotation; then the next. Writers never stop writing.
    engine = create_engine(normalize_url(pg_url))
    try:
        writers, held, draining = _rolling_restart(cluster, engine)
        assert writers.failures == [], writers.failures[:10]
        # Every held request was answered by its draining replica, and stored.
        statuses = {name: status for name, (_, status, _) in held.items()}
        assert statuses == dict.fromkeys(NAMES, 200), held
        assert draining == dict.fromkeys(NAMES, True)  # each was still running, 0.5 s on
        assert writers.total() > 30  # the restarts happened under real load
        with engine.connect() as conn:
            for user, writes in writers.acknowledged.items():
                stored = conn.execute(
                    text("SELECT title, id FROM tasks WHERE user_id = :user"), {"user": user}
                ).all()
                # Exactly once: no acknowledged write missing, none stored twice, nothing else.
                assert sorted((row.title, row.id) for row in stored) == sorted(writes)
            completed = conn.execute(
                text("SELECT bool_and(completed) FROM tasks WHERE id = ANY(:ids)"),
                {"ids": [task_id for task_id, _, _ in held.values()]},
            ).scalar_one()
            assert completed is True
    finally:
        engine.dispose()


def _rolling_restart(
    cluster: Cluster, engine: Engine
) -> tuple[Writers, dict[str, tuple[int, int, str]], dict[str, bool]]:
    """Restart every replica in turn under write load; what the writers and held requests saw."""
    holder = bearer(mint(f"holder-{uuid.uuid4().hex[:8]}"))
    balancer = cluster.balancer
    held: dict[str, tuple[int, int, str]] = {}
    draining: dict[str, bool] = {}
    writers = Writers(balancer.url).start()
    try:
        time.sleep(0.5)
        for replica in cluster.replicas:
            task = httpx2.post(f"{balancer.url}/api/tasks", json={"title": "held"}, headers=holder)
            assert task.status_code == 201, task.text
            task_id = task.json()["id"]

            def toggle(name: str = replica.name, task_id: int = task_id) -> None:
                response = httpx2.patch(
                    f"{balancer.url}/api/tasks/{task_id}/complete",
                    headers={**holder, PIN_HEADER: name},
                    timeout=60,
                )
                held[name] = (task_id, response.status_code, response.text)

            in_flight = threading.Thread(target=toggle)
            with engine.connect() as blocker:  # holds the toggle on the row lock until commit
                blocker.execute(
                    text("SELECT 1 FROM tasks WHERE id = :id FOR UPDATE"), {"id": task_id}
                )
                in_flight.start()
                _wait_for_lock_waiters(engine, 1)
                replica.terminate()
                time.sleep(0.5)  # writers keep writing while the replica drains
                draining[replica.name] = replica.running()
                blocker.commit()
            in_flight.join(60)
            assert replica.wait_exit(30) in (0, -signal.SIGTERM)
            balancer.wait_noticed_down(replica.name)
            replica.start()
            balancer.wait_in_rotation(replica.name)  # the balancer's verdict: ready again
        time.sleep(0.5)
    finally:
        writers.stop()
    return writers, held, draining


# --- A signing key Better Auth adds ------------------------------------------------------------


class RefusedNewKey(AssertionError):
    """A replica answered 401 to a token signed with a key its JWKS already publishes."""


def _answer(url: str, token: str, patience: float = 30.0) -> httpx2.Response:
    """What a client ends up with: a 503 is retried after its Retry-After, for ``patience`` s."""
    deadline = time.monotonic() + patience
    while True:
        response = httpx2.get(f"{url}/api/tasks", headers=bearer(token), timeout=patience)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(float(response.headers.get("retry-after", "1")))


def test_a_key_better_auth_adds_is_accepted_by_every_replica_us2_1(cluster: Cluster) -> None:
    jwks = cluster.jwks
    origin = jwks.base_url  # BETTER_AUTH_URL: the tokens' issuer and audience
    user = f"rotation-{uuid.uuid4().hex[:8]}"

    def signed_with(key: Any) -> str:
        return mint(user, alg=key.alg, key=key.private, kid=key.kid, issuer=origin, audience=origin)

    current = jwks.keys[0]
    for replica in cluster.replicas:  # each replica fetches the JWKS now and trusts this key
        assert _answer(replica.url, signed_with(current)).status_code == 200

    added = generate_key("ES256")
    jwks.keys = [current, added]  # Better Auth starts signing with a new key
    token = signed_with(added)
    answers: dict[str, httpx2.Response] = {}

    def ask(replica: Replica) -> None:
        answers[replica.name] = _answer(replica.url, token)

    threads = [threading.Thread(target=ask, args=(replica,)) for replica in cluster.replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    refused = {name: r.text for name, r in answers.items() if r.status_code == 401}
    if refused:  # a Next.js frontend signs its user out on a 401
        raise RefusedNewKey(f"the new kid was refused: {refused}")
    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(NAMES, 200)
    with httpx2.Client(base_url=cluster.balancer.url, headers=bearer(token)) as http:
        assert [http.get("/api/tasks").status_code for _ in NAMES] == [200] * len(NAMES)
