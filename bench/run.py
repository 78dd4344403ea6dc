"""``make bench``: the product against a raw baseline, interleaved, in one bounded run.

What it does (docs/performance.md explains the figures):
1. creates two databases on BENCH_DATABASE_URL's server (default: the local PostgreSQL):
   "100k" with 1,000 users x 100 tasks and "1M" with 10,000 users x 100 tasks, both with one
   heavy user of 10,000 tasks; seeded with generate_series, dropped at the end;
2. mints HS256 tokens for users 1..1,000 and EdDSA tokens served by a local JWKS;
3. starts the product (``uvicorn main:app``) and the baseline (``uvicorn bench.baseline:app``)
   on free 127.0.0.1 ports, 1 worker and then 2, and drives them with wrk (64 connections,
   round-robin over the users), product and baseline runs alternating, each repeated;
4. prints req/s, p50 and p99 per run and the product/baseline ratios with their spread, the
   flatness ratios (1M vs 100k rows, page 200 vs page 1) with the query plans, and the RSS of
   each worker after the load.
Every server is stopped by its PID at the end, on error and on Ctrl-C.

    python bench/run.py [--quick] [--seconds N] [--repeat N]
"""

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import task_store  # noqa: E402
from bench import seed  # noqa: E402
from bench.netdelay import DelayProxy  # noqa: E402
from core.config import Settings  # noqa: E402
from db import PostgresDatabase  # noqa: E402
from schemas import TaskListQuery  # noqa: E402
from tests.keys import JwksServer, generate_key, mint  # noqa: E402

LUA = Path(__file__).with_name("load.lua")
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
USERS = 1_000
BIG_USERS = 10_000
CONNECTIONS = 64
PAGE = "/api/tasks?limit=50"
COUNT_LIMIT = Settings.model_fields["max_tasks_per_user"].default  # X-Total-Count counts this far


def log(message: str) -> None:
    print(message, flush=True)


# ---- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """One uvicorn (its master and workers), started on a free port, stopped by its PID."""

    name: str
    app: str
    env: dict[str, str]
    workers: int
    logdir: Path
    ready_token: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        if self.app == "main:app":
            # The product runs exactly as deployed: the production entry point.
            command = [sys.executable, str(ROOT / "scripts" / "serve")]
            self.env = {
                **self.env,
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "WORKERS": str(self.workers),
            }
        else:
            command = [sys.executable, "-m", "uvicorn", self.app, "--app-dir", str(ROOT)]
            command += ["--host", "127.0.0.1", "--port", str(self.port)]
            command += ["--workers", str(self.workers), "--no-access-log", "--no-server-header"]
        self.logfile = (self.logdir / f"{self.name}-{self.port}.log").open("wb")
        # A working directory of its own: no developer .env is read. A session of its own:
        # Ctrl-C in the terminal reaches this driver, which stops the server itself.
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            command,
            cwd=self.logdir,
            env={**os.environ, **self.env},
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        RUNNING.append(self)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up; see {self.logfile.name}")
            try:
                status, _, _ = get(self.url + PAGE, self.ready_token)
                # Then every worker answers too: uvicorn spreads connections over them.
                if status == 200 and all(
                    get(self.url + PAGE, self.ready_token)[0] == 200 for _ in range(8)
                ):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not become ready")

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        if self.workers == 1:
            return [self.process.pid]
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.process.pid and b"spawn_main" in cmdline:
                children.append(int(entry.name))
        return sorted(children)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the workers so far (the master only supervises)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.worker_pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def rss_mb(self) -> list[float]:
        sizes = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        return sizes

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # uvicorn's master stops its workers
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session, by its id
                self.process.wait()
        if self in RUNNING:
            RUNNING.remove(self)
        self.logfile.close()


RUNNING: list[Server] = []


def get(url: str, token: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - 127.0.0.1 only
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()


# ---- load ----------------------------------------------------------------------------------


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float  # the server's CPU time per request: steadier than req/s on a shared machine


def wrk(server: Server, mode: str, tokens: Path, seconds: float, path: str = PAGE) -> Run:
    command = ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds:g}s"]
    command += ["--timeout", "10s", "-s", str(LUA), server.url, "--", mode, str(tokens), path]
    cpu_before = server.cpu_seconds()
    done = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    cpu = server.cpu_seconds() - cpu_before
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Run(
        rps=result["requests"] / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        errors=errors,
        cpu_ms=1000 * cpu / max(result["requests"], 1),
    )


@dataclass
class Measured:
    label: str
    runs: dict[str, list[Run]] = field(default_factory=dict)


def interleaved(
    label: str,
    contenders: dict[str, Callable[[], Run]],
    repeat: int,
) -> Measured:
    """Each contender once per round, the order rotating every round."""
    measured = Measured(label, {name: [] for name in contenders})
    names = list(contenders)
    for round_number in range(repeat):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            run = contenders[name]()
            measured.runs[name].append(run)
            log(
                f"  {label:<34} {name:<12} {run.rps:8.0f} req/s  p50 {run.p50_ms:7.1f} ms  "
                f"p99 {run.p99_ms:7.1f} ms  cpu {run.cpu_ms:5.2f} ms/req"
                + (f"  ERRORS {run.errors}" if run.errors else "")
            )
    return measured


def spread(values: list[float], digits: int = 0) -> str:
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.{digits}f}"
    return f"{middle:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def ratios(top: list[Run], bottom: list[Run], attribute: str) -> list[float]:
    return [getattr(a, attribute) / getattr(b, attribute) for a, b in zip(top, bottom, strict=True)]


# ---- the run -------------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    server_url: str
    workdir: Path
    secret: str
    jwks: JwksServer
    eddsa: Any
    small: str = ""
    big: str = ""
    tokens: Path = Path()
    eddsa_tokens: Path = Path()
    heavy_tokens: Path = Path()
    heavy_token: str = ""
    report: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)

    def product(self, database_url: str, workers: int, pool_size: int | None = None) -> Server:
        env = {
            "ENVIRONMENT": "production",
            "DATABASE_URL": database_url,
            "BETTER_AUTH_SECRET": self.secret,
            "BETTER_AUTH_URL": self.jwks.base_url,
            "CORS_ORIGINS": "http://localhost:3000",
            "LOG_LEVEL": self.args.log_level,
            "DB_POOL_SIZE": str(pool_size or self.args.pool_size),
            # The load is the point here: no per-user write limit, no fair-share queue.
            "WRITE_RATE_LIMIT": "1000000/1",
            "PER_USER_CONCURRENCY": "1000",
        }
        return Server("product", "main:app", env, workers, self.workdir, self.first_token())

    def baseline(self, database_url: str, workers: int, pool_size: int | None = None) -> Server:
        env = {
            "BASELINE_DATABASE_URL": seed._dsn(database_url),
            "BETTER_AUTH_SECRET": self.secret,
            "DB_POOL_SIZE": str(pool_size or self.args.pool_size),
        }
        return Server(
            "baseline", "bench.baseline:app", env, workers, self.workdir, self.first_token()
        )

    def first_token(self) -> str:
        return self.tokens.read_text().split()[0]


@contextmanager
def started(*servers: Server) -> Iterator[tuple[Server, ...]]:
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def write_tokens(ctx: Context) -> None:
    task_ids = seed.first_task_ids(ctx.small, USERS)
    assert len(task_ids) == USERS
    issuer = ctx.jwks.base_url
    hs, ed = [], []
    for number, task_id in zip(range(1, USERS + 1), task_ids, strict=True):
        user = seed.user_id(number)
        hs.append(f"{mint(user, key=ctx.secret, expires_in=3600)} {task_id}")
        ed_token = mint(
            user,
            alg="EdDSA",
            key=ctx.eddsa.private,
            kid=ctx.eddsa.kid,
            issuer=issuer,
            audience=issuer,
            expires_in=3600,
        )
        ed.append(f"{ed_token} {task_id}")
    ctx.tokens = ctx.workdir / "tokens-hs256.txt"
    ctx.tokens.write_text("\n".join(hs) + "\n")
    ctx.eddsa_tokens = ctx.workdir / "tokens-eddsa.txt"
    ctx.eddsa_tokens.write_text("\n".join(ed) + "\n")
    ctx.heavy_token = mint(seed.HEAVY_USER, key=ctx.secret, expires_in=3600)
    ctx.heavy_tokens = ctx.workdir / "tokens-heavy.txt"
    ctx.heavy_tokens.write_text(f"{ctx.heavy_token} 0\n")


def same_json(product: Server, baseline: Server, token: str) -> None:
    """The baseline answers exactly what the product answers, or the comparison is void."""
    p_status, p_headers, p_body = get(product.url + PAGE, token)
    b_status, b_headers, b_body = get(baseline.url + PAGE, token)
    assert p_status == b_status == 200, (p_status, b_status)
    assert p_body == b_body, "baseline body differs from the product's"
    for header in ("x-total-count", "link", "content-type"):
        assert p_headers.get(header) == b_headers.get(header), header
    count = len(json.loads(p_body))
    log(f"  same JSON: {len(p_body)} bytes, {count} tasks, headers equal (product == baseline)")


def nth_page_path(server: Server, token: str, page: int) -> str:
    path = PAGE
    for _ in range(page - 1):
        _, headers, _ = get(server.url + path, token)
        link = headers["link"]
        path = link[link.index("<") + 1 : link.index(">")]
    return path


PLANNED_PAGES: tuple[tuple[str, dict[str, int]], ...] = (
    ("page 1", {"limit": 50}),
    ("?limit=1000&offset=9000 (the noisy neighbour's page)", {"limit": 1000, "offset": 9000}),
    ("the page after row 9,950 (Link cursor)", {"limit": 50, "after_row": 9950}),
)


def plans(ctx: Context) -> None:
    """``EXPLAIN ANALYZE`` of the product's own list statement for the heavy user (10,000 tasks),
    every sort key, page 1, the deepest offset page and a keyset page as deep."""
    for sort in ("created", "updated", "title"):
        for label, shape in PLANNED_PAGES:
            query = TaskListQuery.model_validate({"sort": sort, "limit": shape["limit"]})
            params: dict[str, object] = {
                "owner": seed.HEAVY_USER,
                "offset": shape.get("offset", 0),
                "limit": query.limit + 1,
                "count_limit": COUNT_LIMIT,
            }
            after = "after_row" in shape
            if after:  # the position a Link cursor would carry: row 9,950's sort value and id
                first = task_store._page(
                    query.status_value, False, query.sort_key, query.descending, False
                )
                row = seed.fetch_row(
                    ctx.small,
                    first.compiled(PostgresDatabase.dialect),
                    {**params, "offset": shape["after_row"] - 1, "limit": 1},
                )
                key = task_store.FIELDS.index(task_store.SORT_FIELDS[query.sort_key])
                params.update(after_value=row[key], after_id=row[0])
            statement = task_store._page(
                query.status_value, False, query.sort_key, query.descending, after
            )
            sql = statement.compiled(PostgresDatabase.dialect)
            plan = seed.explain(ctx.small, sql, params, setup=statement.planner)
            ctx.report.append(f"\nQuery plan, heavy user, sort={sort}, {label}:\n{plan}")


def flatness(ctx: Context) -> None:
    args = ctx.args
    log("\n1M rows vs 100k rows, and page 200 vs page 1 (1 worker each)")
    with started(ctx.product(ctx.small, 1), ctx.product(ctx.big, 1)) as (small, big):
        for server in (small, big):
            wrk(server, "list", ctx.tokens, args.warmup)
        sizes = interleaved(
            "GET list, 50 newest",
            {
                "100k rows": lambda: wrk(small, "list", ctx.tokens, args.seconds),
                "1M rows": lambda: wrk(big, "list", ctx.tokens, args.seconds),
            },
            args.repeat,
        )
        page_200 = nth_page_path(small, ctx.heavy_token, 200)
        pages = interleaved(
            "heavy user (10,000 tasks)",
            {
                "page 1": lambda: wrk(small, "list", ctx.heavy_tokens, args.seconds),
                "page 200": lambda: wrk(small, "list", ctx.heavy_tokens, args.seconds, page_200),
            },
            args.repeat,
        )
    for measured, (a, b) in ((sizes, ("1M rows", "100k rows")), (pages, ("page 200", "page 1"))):
        rows, base = measured.runs[a], measured.runs[b]
        ctx.report.append(
            f"| {a} / {b} | {spread([r.rps for r in rows])} | {spread([r.rps for r in base])} "
            f"| {spread(ratios(base, rows, 'rps'), 2)} | {spread(ratios(rows, base, 'p50_ms'), 2)} "
            f"| {spread(ratios(rows, base, 'p99_ms'), 2)} "
            f"| {spread(ratios(rows, base, 'cpu_ms'), 2)} |"
        )


def versus(ctx: Context, workers: int) -> None:
    args = ctx.args
    log(f"\nproduct vs baseline, {workers} worker(s) each, 100k rows")
    scenarios = [
        (label, mode)
        for label, mode in (
            ("GET list", "list"),
            ("GET one", "get"),
            ("POST create", "create"),
            ("PUT update", "update"),
            ("PATCH toggle", "toggle"),
        )
        if mode in args.operations
    ]
    with started(ctx.product(ctx.small, workers), ctx.baseline(ctx.small, workers)) as servers:
        product, baseline = servers
        same_json(product, baseline, ctx.first_token())
        for server in servers:
            wrk(server, "list", ctx.tokens, args.warmup)
        for label, mode in scenarios:
            measured = interleaved(
                f"{label}, {workers} worker(s)",
                {
                    "product": lambda m=mode: wrk(product, m, ctx.tokens, args.seconds),  # type: ignore[misc]
                    "baseline": lambda m=mode: wrk(baseline, m, ctx.tokens, args.seconds),  # type: ignore[misc]
                },
                args.repeat,
            )
            p, b = measured.runs["product"], measured.runs["baseline"]
            ctx.report.append(
                f"| {label} | {workers} | {spread([r.rps for r in p])} "
                f"| {spread([r.rps for r in b])} "
                f"| {spread(ratios(p, b, 'rps'), 2)} | {spread([r.p50_ms for r in p], 1)} "
                f"| {spread([r.p50_ms for r in b], 1)} | {spread([r.p99_ms for r in p], 1)} "
                f"| {spread([r.p99_ms for r in b], 1)} | {spread(ratios(p, b, 'p99_ms'), 2)} "
                f"| {spread([r.cpu_ms for r in p], 2)} | {spread([r.cpu_ms for r in b], 2)} |"
            )
        if "floor" in args.operations:
            measured = interleaved(
                f"GET /health (no token, no database), {workers} worker(s)",
                {
                    "product": lambda: wrk(product, "list", ctx.tokens, args.seconds, "/health"),
                    "baseline": lambda: wrk(baseline, "list", ctx.tokens, args.seconds, "/health"),
                },
                args.repeat,
            )
            p, b = measured.runs["product"], measured.runs["baseline"]
            ctx.report.append(
                f"| GET /health (floor) | {workers} | {spread([r.rps for r in p])} "
                f"| {spread([r.rps for r in b])} | {spread(ratios(p, b, 'rps'), 2)} "
                f"| {spread([r.p50_ms for r in p], 1)} | {spread([r.p50_ms for r in b], 1)} "
                f"| {spread([r.p99_ms for r in p], 1)} | {spread([r.p99_ms for r in b], 1)} "
                f"| {spread(ratios(p, b, 'p99_ms'), 2)} "
                f"| {spread([r.cpu_ms for r in p], 2)} | {spread([r.cpu_ms for r in b], 2)} |"
            )
        if workers == 1 and "eddsa" in args.operations:
            eddsa = interleaved(
                "GET list, EdDSA tokens (JWKS)",
                {"product": lambda: wrk(product, "list", ctx.eddsa_tokens, args.seconds)},
                args.repeat,
            )
            runs = eddsa.runs["product"]
            ctx.report.append(
                f"| GET list, EdDSA | 1 | {spread([r.rps for r in runs])} | - | - "
                f"| {spread([r.p50_ms for r in runs], 1)} | - "
                f"| {spread([r.p99_ms for r in runs], 1)} | - | - "
                f"| {spread([r.cpu_ms for r in runs], 2)} | - |"
            )
        ctx.report.append(
            f"RSS after the load, {workers} worker(s): product "
            + ", ".join(f"{mb:.0f} MB" for mb in product.rss_mb())
            + "; baseline "
            + ", ".join(f"{mb:.0f} MB" for mb in baseline.rss_mb())
        )


# ---- the database 10 ms away ------------------------------------------------------------------

REMOTE_RTT_MS = 10.0
LOOPBACK_OPERATIONS = {"list", "get", "create", "update", "toggle", "eddsa", "floor"}
REMOTE_OPERATIONS = ("list", "get", "create", "update", "toggle", "delete")
REMOTE_TITLE = "Remote benchmark task"


@dataclass
class Sequential:
    round_trips: float  # database round trips per request, counted by the proxy
    p50_ms: float
    p99_ms: float


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def sequential(
    server: Server, proxy: DelayProxy, operation: str, token: str, *, ids: list[int], count: int
) -> Sequential:
    """``count`` requests one after another over one keep-alive connection, as one user's
    browser tab makes them; latency per request and round trips per request."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    latencies = []
    before = proxy.round_trips
    try:
        for n in range(count):
            task = f"/api/tasks/{ids[n % len(ids)]}"
            method, path, body = {
                "list": ("GET", PAGE, None),
                "get": ("GET", task, None),
                "create": ("POST", "/api/tasks", json.dumps({"title": REMOTE_TITLE})),
                "update": ("PUT", task, json.dumps({"title": f"Renamed {n}"})),
                "toggle": ("PATCH", f"{task}/complete", None),
                "delete": ("DELETE", task, None),
            }[operation]
            started_at = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            latencies.append(time.perf_counter() - started_at)
            if response.status not in (200, 201):
                raise RuntimeError(f"{server.name} {method} {path}: {response.status}")
    finally:
        connection.close()
    return Sequential(
        round_trips=(proxy.round_trips - before) / count,
        p50_ms=1000 * _percentile(latencies, 0.5),
        p99_ms=1000 * _percentile(latencies, 0.99),
    )


def remote(ctx: Context) -> None:
    """Product and baseline with PostgreSQL 10 ms away (a delaying proxy in front of it): one
    keep-alive client, sequential requests, one user with 100 tasks; both with one pooled
    connection, so every request's round trips are its own."""
    args = ctx.args
    count = 60 if args.quick else 150
    log(f"\nPostgreSQL {REMOTE_RTT_MS:g} ms away: {count} sequential requests per run")
    proxy = DelayProxy.in_front_of(ctx.small, REMOTE_RTT_MS).start()
    user = seed.user_id(USERS)  # a user no load above writes to
    token = mint(user, key=ctx.secret, expires_in=3600)
    product = ctx.product(proxy.database_url(ctx.small), 1, pool_size=1)
    baseline = ctx.baseline(proxy.database_url(ctx.small), 1, pool_size=1)
    product.ready_token = baseline.ready_token = token
    try:
        with started(product, baseline):
            ids = seed.task_ids(ctx.small, user)
            for server in (product, baseline):  # warm: connections open, statements known
                for operation in ("list", "get", "update", "toggle"):
                    sequential(server, proxy, operation, token, ids=ids, count=10)
            for operation in REMOTE_OPERATIONS:
                runs: dict[str, list[Sequential]] = {"product": [], "baseline": []}
                for round_number in range(args.repeat):
                    order = (product, baseline) if round_number % 2 == 0 else (baseline, product)
                    for server in order:
                        targets = ids
                        if operation == "delete":
                            targets = seed.add_tasks(ctx.small, user, count)
                        run = sequential(server, proxy, operation, token, ids=targets, count=count)
                        if operation == "create":
                            seed.remove_tasks(ctx.small, user, REMOTE_TITLE)  # stays at 100
                        runs[server.name].append(run)
                        log(
                            f"  remote {operation:<8} {server.name:<9} "
                            f"{run.round_trips:4.2f} round trips/request  "
                            f"p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms"
                        )
                p, b = runs["product"], runs["baseline"]
                ctx.remote.append(
                    f"| {operation} | {spread([r.round_trips for r in p], 2)} "
                    f"| {spread([r.round_trips for r in b], 2)} "
                    f"| {spread([r.p50_ms for r in p], 1)} | {spread([r.p50_ms for r in b], 1)} "
                    f"| {spread(ratios(p, b, 'p50_ms'), 2)} "
                    f"| {spread([r.p99_ms for r in p], 1)} | {spread([r.p99_ms for r in b], 1)} |"
                )
    finally:
        proxy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, 2 rounds, no 1M database")
    parser.add_argument("--seconds", type=float, help="length of one wrk run (default 8)")
    parser.add_argument("--repeat", type=int, help="rounds of each comparison (default 3)")
    parser.add_argument("--log-level", default="INFO", help="the product's LOG_LEVEL")
    parser.add_argument("--pool-size", type=int, default=10, help="DB_POOL_SIZE of both")
    parser.add_argument(
        "--operations",
        default="plans,remote,list,get,create,update,toggle,eddsa,floor,flat",
        help="a subset of plans (the list's query plans at 10,000 tasks, every sort), remote "
        "(PostgreSQL 10 ms away: round trips and latency of every "
        "endpoint), list,get,create,update,toggle (loopback load), eddsa (GET list with EdDSA "
        "tokens), floor (GET /health: no token, no database), flat (1M rows, page 200)",
    )
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts to compare")
    args = parser.parse_args()
    args.seconds = args.seconds or (3 if args.quick else 8)
    args.repeat = args.repeat or (2 if args.quick else 3)
    args.warmup = 2
    args.operations = set(args.operations.split(","))
    if args.quick:
        args.operations.discard("flat")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian/Ubuntu)")

    server_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER)
    started_at = time.monotonic()
    load_before = os.getloadavg()
    eddsa = generate_key("EdDSA")
    jwks = JwksServer([eddsa]).start()
    created: list[str] = []
    with tempfile.TemporaryDirectory(prefix="taskapi-bench-") as workdir:
        ctx = Context(args, server_url, Path(workdir), secrets.token_urlsafe(32), jwks, eddsa)
        try:
            ctx.small = seed.create_database(server_url, "100k")
            created.append(ctx.small)
            took = seed.seed(ctx.small, USERS)
            log(f"seeded {seed.row_count(ctx.small):,} rows in {took:.1f} s")
            if "flat" in args.operations:
                ctx.big = seed.create_database(server_url, "1m")
                created.append(ctx.big)
                took = seed.seed(ctx.big, BIG_USERS)
                log(f"seeded {seed.row_count(ctx.big):,} rows in {took:.1f} s")
            write_tokens(ctx)
            if "plans" in args.operations:
                plans(ctx)
            if "remote" in args.operations:
                remote(ctx)
            if "flat" in args.operations:
                flatness(ctx)
            if args.operations & LOOPBACK_OPERATIONS:
                for workers in args.workers.split(","):
                    versus(ctx, int(workers))
        finally:
            for server in list(RUNNING):
                server.stop()
            jwks.stop()
            for url in created:
                seed.drop_database(server_url, url)
    print_report(ctx, load_before, time.monotonic() - started_at)


def print_report(ctx: Context, load_before: tuple[float, ...], seconds: float) -> None:
    args = ctx.args
    if ctx.remote:
        log(
            f"\n## PostgreSQL {REMOTE_RTT_MS:g} ms away (one client, sequential requests, "
            "one pooled connection each; median (min-max) over the rounds)\n"
        )
        log(
            "| endpoint | product round trips/request | baseline round trips/request "
            "| product p50 ms | baseline p50 ms | ratio p50 | product p99 ms | baseline p99 ms |"
        )
        log("|---|---|---|---|---|---|---|---|")
        for line in ctx.remote:
            log(line)
    log(
        f"\n## Results ({args.repeat} rounds of {args.seconds:g} s, {CONNECTIONS} connections, "
        f"DB_POOL_SIZE={args.pool_size}, LOG_LEVEL={args.log_level}; median (min-max))\n"
    )
    log(
        "| operation | workers | product req/s | baseline req/s | ratio req/s | product p50 ms "
        "| baseline p50 ms | product p99 ms | baseline p99 ms | ratio p99 "
        "| product CPU ms/req | baseline CPU ms/req |"
    )
    log("|---|---|---|---|---|---|---|---|---|---|---|---|")
    # Flatness rows compare two runs of the product: "| 1M rows / 100k rows | ...".
    rows = [
        line for line in ctx.report if line.startswith("| ") and " / " not in line.split("|")[1]
    ]
    for line in rows:
        log(line)
    flat = [line for line in ctx.report if line.startswith("| ") and line not in rows]
    if flat:
        log(
            "\n| comparison | req/s | reference req/s | cost ratio (time per request) "
            "| ratio p50 | ratio p99 | ratio CPU per request |"
        )
        log("|---|---|---|---|---|---|---|")
        for line in flat:
            log(line)
    log("")
    for line in ctx.report:
        if not line.startswith("| "):
            log(line)
    load_after = os.getloadavg()
    log(
        f"\n{os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, after "
        f"{load_after[0]:.2f}; whole run {seconds / 60:.1f} min"
    )


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGHUP, _stop_on_signal)
    try:
        main()
    except KeyboardInterrupt:
        # main()'s finally blocks have run: servers stopped by PID, databases dropped.
        raise SystemExit("interrupted: servers stopped, benchmark databases dropped") from None
