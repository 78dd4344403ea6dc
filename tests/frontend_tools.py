"""Node tooling for the frontend tests: ``npm ci``, the example's ``next build`` and ``next start``.

The example (examples/nextjs) and the typed client (clients/typescript) are Node projects with
their own pinned lock files. Like the Better Auth tests (tests/betterauth_fixtures.py), a missing
Node or npm skips with a message saying what to install, and fails under ``CI=true``.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx2

from tests.betterauth_fixtures import unavailable

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = ROOT / "examples" / "nextjs"
CLIENT_DIR = ROOT / "clients" / "typescript"
NODE_ENV = {
    "NEXT_TELEMETRY_DISABLED": "1",  # nothing phones home from a test run
}
BUILD_SECONDS = 900  # a cold `next build` on two busy cores took about two minutes
START_SECONDS = 60.0


def npm_ci(directory: Path) -> None:
    """``npm ci`` in ``directory`` when node_modules is missing or older than the lock file."""
    installed = directory / "node_modules" / ".package-lock.json"
    lock = directory / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        unavailable(
            f"npm is not installed: install it (e.g. `apt-get install npm`), or run `npm ci` in "
            f"{directory.relative_to(ROOT)}, to build and run the Next.js example"
        )
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=directory,
        env={**os.environ, **NODE_ENV},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"`npm ci` in {directory.relative_to(ROOT)} failed: {done.stderr[-2000:]}")


def _sources() -> list[Path]:
    """Everything `next build` compiles: the example's own files and the client's."""
    skip = {"node_modules", ".next", "e2e", "next-env.d.ts"}  # the last one: written by next
    files = [
        path
        for path in EXAMPLE_DIR.rglob("*")
        if path.is_file()
        and path.suffix != ".tsbuildinfo"
        and not skip & set(path.relative_to(EXAMPLE_DIR).parts)
    ]
    files += [path for path in (CLIENT_DIR / "src").rglob("*") if path.is_file()]
    return [*files, CLIENT_DIR / "package.json"]


def next_build(node: str) -> None:
    """``next build`` (type errors fail it), unless a build newer than every source exists."""
    build_id = EXAMPLE_DIR / ".next" / "BUILD_ID"
    if build_id.exists() and build_id.stat().st_mtime >= max(
        path.stat().st_mtime for path in _sources()
    ):
        return
    done = subprocess.run(
        [node, "node_modules/next/dist/bin/next", "build"],
        cwd=EXAMPLE_DIR,
        env={**os.environ, **NODE_ENV},
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"next build failed:\n{done.stdout[-6000:]}\n{done.stderr[-4000:]}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class NextServer:
    """``next start`` of the built example on 127.0.0.1, in a process group of its own (stopped
    by that id), with its output in a file for failure messages."""

    def __init__(self, node: str, port: int, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop())
        child_env = {k: v for k, v in os.environ.items() if k != "NODE_ENV"}
        self.process = subprocess.Popen(
            [node, "node_modules/next/dist/bin/next", "start", "-H", "127.0.0.1", "-p", str(port)],
            cwd=EXAMPLE_DIR,
            env={**child_env, **NODE_ENV, **env},
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"next start exited: {self.output()}")
            try:
                if httpx2.get(f"{self.url}/api/auth/ok", timeout=5).status_code == 200:
                    return
            except httpx2.TransportError:
                time.sleep(0.2)
        raise TimeoutError(f"next start did not answer within {START_SECONDS} s: {self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-6000:]

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)  # the group this server started

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait()
        self.log.close()
