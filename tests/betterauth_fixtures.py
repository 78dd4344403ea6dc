"""A real Better Auth and a real Chromium for the tests (tests/betterauth/: server and page).

One Node process hosts every Better Auth instance the tests need, each on its own 127.0.0.1
port (see tests/betterauth/server.mjs). Node, npm and Chromium are not Python packages: when one
is missing these tests skip and say what to install. Under ``CI=true`` a missing tool is a
failure instead, because CI must run them (``.ci/run`` installs both).
"""

import base64
import fcntl
import json
import os
import re
import secrets
import select
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx2
import pytest

NODE_DIR = Path(__file__).resolve().parent / "betterauth"
# Debian's chromium; TASKAPI_CHROMIUM names another binary (or a missing one, to see the skip).
CHROMIUM = os.environ.get("TASKAPI_CHROMIUM", "/usr/bin/chromium")
NODE_MAJOR = 20  # import.meta.resolve without a flag; Request/Response/fetch built in
START_SECONDS = 60.0
PASSWORD = "correct horse battery staple"


def unavailable(message: str) -> NoReturn:
    """Skip on a developer's machine; fail under CI, where a skipped proof proves nothing."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: these tests must run, not skip)", pytrace=False)
    pytest.skip(message)


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        unavailable(
            f"Node.js is not installed: install Node.js {NODE_MAJOR} or newer with npm "
            "(https://nodejs.org/en/download) to run the real Better Auth tests"
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    match = re.fullmatch(r"v(\d+)\..*", version)
    if match is None or int(match.group(1)) < NODE_MAJOR:
        unavailable(f"Node.js {NODE_MAJOR}+ is needed for the Better Auth tests; found {version!r}")
    return node


def node_modules() -> None:
    """``npm ci`` in tests/betterauth when node_modules is missing or older than the lock file."""
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        unavailable(
            "npm is not installed: install it (e.g. `apt-get install npm`), or run `npm ci` in "
            "tests/betterauth, to run the real Better Auth tests"
        )
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"`npm ci` in tests/betterauth failed: {done.stderr[-2000:]}")


def chromium_binary() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(
            f"Chromium is not installed at {CHROMIUM}: install Debian's `chromium` package (or "
            "set TASKAPI_CHROMIUM to a Chromium binary) to run the browser tests"
        )
    return CHROMIUM


def _segment(token: str, index: int) -> dict[str, Any]:
    segment = token.split(".")[index]
    value: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return value


def claims(token: str) -> dict[str, Any]:
    """A JWT's payload, read without verification: what Better Auth wrote, for assertions."""
    return _segment(token, 1)


def header(token: str) -> dict[str, Any]:
    return _segment(token, 0)


@dataclass(frozen=True)
class User:
    """A Better Auth user with a signed-in session (its cookies) on one instance."""

    id: str
    email: str
    base_url: str
    cookie: str  # the Cookie header a browser would send back
    session_token: str  # the bearer() plugin's set-auth-token header, for cookie-less clients

    def get(self, path: str) -> httpx2.Response:
        return httpx2.get(f"{self.base_url}{path}", headers={"Cookie": self.cookie}, timeout=30)


def _user(response: httpx2.Response, email: str, base_url: str) -> User:
    assert response.status_code == 200, response.text
    cookie = "; ".join(f"{name}={value}" for name, value in response.cookies.items())
    session_token = response.headers.get("set-auth-token", "")  # only with bearer()
    return User(response.json()["user"]["id"], email, base_url, cookie, session_token)


class BetterAuth:
    """The Node process of tests/betterauth/server.mjs, its instances, and a frontend's calls."""

    def __init__(self, node: str) -> None:
        self.secret = secrets.token_urlsafe(32)
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop())
        # Shared offset with the child: O_APPEND, so reading it (seek 0) never makes the
        # server's next lines overwrite earlier ones.
        flags = fcntl.fcntl(self.log.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(self.log.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
        # NODE_ENV unset: Better Auth's development defaults. "test" would skip its origin check
        # (which the browser test goes through); "production" would rate-limit the many
        # sign-ups that come from one address here.
        env = {name: value for name, value in os.environ.items() if name != "NODE_ENV"}
        # stdin stays open: the server exits when it closes, so it cannot outlive the tests.
        self.process = subprocess.Popen(
            [node, "server.mjs"],
            cwd=NODE_DIR,
            env={**env, "BETTER_AUTH_SECRET": self.secret},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        try:
            ready = self._first_line()
        except BaseException:
            self.stop()
            raise
        self.instances: dict[str, str] = ready["instances"]
        self.stranger: str = ready["stranger"]

    def _first_line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], START_SECONDS)
        line = self.process.stdout.readline() if readable else ""
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"Better Auth test server did not start: {self.log.read()[-4000:]}")
        value: dict[str, Any] = json.loads(line)
        return value

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()

    def url(self, instance: str) -> str:
        return self.instances[instance]

    def sign_up(self, instance: str = "main", email: str | None = None) -> User:
        base = self.url(instance)
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.test"
        response = httpx2.post(
            f"{base}/api/auth/sign-up/email",
            json={"email": email, "password": PASSWORD, "name": email.split("@")[0]},
            timeout=30,
        )
        return _user(response, email, base)

    def sign_in(self, instance: str, email: str) -> User:
        base = self.url(instance)
        response = httpx2.post(
            f"{base}/api/auth/sign-in/email",
            json={"email": email, "password": PASSWORD},
            timeout=30,
        )
        return _user(response, email, base)

    @staticmethod
    def token(user: User) -> str:
        """``GET /api/auth/token``: what ``authClient.token()`` returns to a frontend."""
        response = user.get("/api/auth/token")
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    @staticmethod
    def token_with_session_bearer(user: User) -> str:
        """``GET /api/auth/token`` with no cookie, the session token as bearer (bearer() plugin):
        how a client without cookies (a native app, a script) gets its JWT."""
        response = httpx2.get(
            f"{user.base_url}/api/auth/token",
            headers={"Authorization": f"Bearer {user.session_token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    @staticmethod
    def header_jwt(user: User) -> str:
        """The ``set-auth-jwt`` header of ``GET /api/auth/get-session`` (the jwt plugin adds it)."""
        response = user.get("/api/auth/get-session")
        assert response.status_code == 200, response.text
        assert "set-auth-jwt" in response.headers["access-control-expose-headers"]
        return response.headers["set-auth-jwt"]

    def jwks(self, instance: str) -> list[dict[str, Any]]:
        response = httpx2.get(f"{self.url(instance)}/api/auth/jwks", timeout=30)
        assert response.status_code == 200, response.text
        keys: list[dict[str, Any]] = response.json()["keys"]
        return keys


@pytest.fixture(scope="session")
def better_auth() -> Iterator[BetterAuth]:
    """The real Better Auth server (all instances), started once for the whole run."""
    node = node_binary()
    node_modules()
    server = BetterAuth(node)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium() -> str:
    return chromium_binary()
