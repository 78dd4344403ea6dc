"""Where a product worker's CPU goes under load: py-spy, summarised.

Seeds a 100k-row database, starts the product (1 worker), drives one operation with wrk for a
while and samples the worker with ``py-spy record --gil`` (only the thread holding the GIL: in
one Python process that is the work that queues every other request). Prints the share of
samples under each of a few groups of frames, and the heaviest functions.

    python bench/profile.py [list|create|toggle] [--seconds N]
"""

import argparse
import collections
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import seed
from bench.run import DEFAULT_SERVER, USERS, Context, log, started, write_tokens, wrk
from tests.keys import JwksServer, generate_key

# First match wins: a sample counts under the first group any of its frames belongs to.
GROUPS = (
    ("token verification (PyJWT, cryptography)", ("jwt/", "cryptography/")),
    ("logging (one JSON line per request)", ("logging/", "core/logs.py")),
    ("database driver (psycopg 3, the pool in db.py)", ("psycopg/", "psycopg_", "db.py")),
    ("statements (task_store.py, SQLAlchemy)", ("task_store.py", "sqlalchemy/", "sqlmodel/")),
    ("thread hand-off (anyio to_thread, futures)", ("anyio/to_thread", "concurrent/futures")),
    ("response: validation + JSON (pydantic, FastAPI serialize)", ("pydantic", "encoders.py")),
    ("FastAPI routing and dependencies", ("fastapi/",)),
    ("Starlette + middleware", ("starlette/", "core/middleware.py")),
    ("uvicorn HTTP (h11) and asyncio", ("uvicorn/", "h11/", "asyncio/")),
)


def summarise(collapsed: Path, top: int = 15) -> list[str]:
    groups: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        # The innermost frame that matches decides the group (a driver call made by SQLAlchemy
        # counts as the driver).
        group = "other"
        for frame in reversed(frames):
            hit = next((name for name, keys in GROUPS if any(k in frame for k in keys)), None)
            if hit:
                group = hit
                break
        groups[group] += count
        own[frames[-1]] += count
    lines = [f"{total} samples (GIL held)"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in groups.most_common()]
    lines.append("heaviest innermost frames:")
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "mode", nargs="?", default="list", choices=("list", "get", "create", "update", "toggle")
    )
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--raw", help="also keep py-spy's collapsed stacks in this file")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--pool-size", type=int, default=10)
    args = parser.parse_args()
    args.warmup = 2
    server_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER)
    key = generate_key("EdDSA")
    jwks = JwksServer([key]).start()
    with tempfile.TemporaryDirectory(prefix="taskapi-profile-") as workdir:
        ctx = Context(args, server_url, Path(workdir), secrets.token_urlsafe(32), jwks, key)
        ctx.small = seed.create_database(server_url, "profile")
        try:
            seed.seed(ctx.small, USERS)
            write_tokens(ctx)
            with started(ctx.product(ctx.small, 1)) as (product,):
                wrk(product, args.mode, ctx.tokens, args.warmup)
                assert product.process is not None
                raw = Path(workdir) / "profile.txt"
                spy = [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--gil",
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                ]
                spy += ["-o", str(raw), "--pid", str(product.process.pid), "--nonblocking"]
                recorder = subprocess.Popen(  # noqa: S603
                    [*spy, "--duration", str(int(args.seconds))]
                )
                run = wrk(product, args.mode, ctx.tokens, args.seconds)
                recorder.wait(timeout=60)
                log(
                    f"{args.mode}: {run.rps:.0f} req/s, p50 {run.p50_ms:.1f} ms, "
                    f"p99 {run.p99_ms:.1f} ms, CPU {run.cpu_ms:.2f} ms per request"
                )
                for line in summarise(raw):
                    log(line)
                if args.raw:
                    Path(args.raw).write_text(raw.read_text())
        finally:
            jwks.stop()
            seed.drop_database(server_url, ctx.small)


if __name__ == "__main__":
    main()
