"""The Next.js example (examples/nextjs), built and driven in Chromium in all three auth modes
(FR-012, FR-013, SC-004; US1, US2).

``next build`` compiles the example and the typed client under TypeScript strict (a type error
fails the build, hence these tests). Then, per mode, the API runs as deployed (``uvicorn
main:app``, production settings, the test PostgreSQL, only the example's origin in CORS_ORIGINS)
and ``next start`` serves the example on 127.0.0.1 with Better Auth 1.7 (memory adapter). The
driver (examples/nextjs/e2e/drive.mjs, playwright-core on Debian's Chromium) takes two users
through every page: sign-up, the tasks page (list, filter, pages through Link, create, edit,
toggle, delete, the API's detail on errors), the home page (a Server Component calling the API
from the server), sign-out and sign-in, and a page of another origin with a valid token.

| mode | the browser's token | the API's configuration |
|---|---|---|
| jwks | Better Auth's jwt() plugin, GET /api/auth/token | BETTER_AUTH_URL |
| secret | the app's HS256 route, GET /api/token | BETTER_AUTH_SECRET, JWT_ISSUER, JWT_AUDIENCE |
| cookie-cache | Better Auth's cookie cache (5 s), GET /api/session-token | BETTER_AUTH_SECRET |
"""

import contextlib
import json
import secrets
import subprocess
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from tests.betterauth_fixtures import PASSWORD, claims, node_binary
from tests.conftest import running
from tests.frontend_tools import CLIENT_DIR, EXAMPLE_DIR, NextServer, free_port, next_build, npm_ci

pytestmark = pytest.mark.slow

MODES = ["jwks", "secret", "cookie-cache"]
CACHE_SECONDS = 5  # cookie-cache mode: short, so that the cache expires during the run
DRIVE_SECONDS = 300
BLANK_TITLE = "title: must be 1 to 200 characters after trimming surrounding whitespace"
PENDING, DONE = False, True


@dataclass
class Run:
    """One mode's run: what the driver saw, and what the API stored for the first user."""

    mode: str
    api_url: str
    app_url: str
    emails: tuple[str, str]
    result: dict[str, Any]
    stored: list[dict[str, Any]] = field(default_factory=list)

    def shown(self, step: str) -> Any:
        """What the page showed after ``step``; a run that stopped before it fails the test that
        asked, with where it stopped, what the page showed, the browser's console and the logs."""
        if step not in self.result["steps"]:
            pytest.fail(
                f"[{self.mode}] the driver never got to {step!r}: {self.result.get('failure')}\n"
                f"the page showed: {self.result.get('lastShown')}\n"
                f"browser console: {self.result['console']}\n{self.result.get('logs', '')}"
            )
        return self.result["steps"][step]


class Runs:
    """The example run in each mode, started on first use and kept for the session: each run
    builds nothing, starts the API and the example, drives them, and stops them."""

    def __init__(self, node: str, chromium: str, pg_url: str) -> None:
        self.node, self.chromium, self.pg_url = node, chromium, pg_url
        self.secret = secrets.token_urlsafe(32)
        self._runs: dict[str, Run] = {}

    def __getitem__(self, mode: str) -> Run:
        if mode not in self._runs:
            self._runs[mode] = self._run(mode)
        return self._runs[mode]

    def _api_env(self, mode: str, app_url: str) -> dict[str, str]:
        env = {
            "ENVIRONMENT": "production",
            "DATABASE_URL": self.pg_url,
            "CORS_ORIGINS": app_url,
            "LOG_LEVEL": "WARNING",
        }
        if mode == "jwks":
            return {**env, "BETTER_AUTH_URL": app_url}
        if mode == "secret":
            # As the README advises for production: the route's tokens carry iss and aud, and
            # the API requires them.
            return {
                **env,
                "BETTER_AUTH_SECRET": self.secret,
                "JWT_ISSUER": app_url,
                "JWT_AUDIENCE": app_url,
            }
        return {**env, "BETTER_AUTH_SECRET": self.secret}

    def _run(self, mode: str) -> Run:
        port = free_port()
        app_url = f"http://127.0.0.1:{port}"
        emails = (
            f"alice-{uuid.uuid4().hex[:10]}@example.test",
            f"bob-{uuid.uuid4().hex[:10]}@example.test",
        )
        with contextlib.contextmanager(running)(self._api_env(mode, app_url)) as api:
            app = NextServer(
                self.node,
                port,
                {
                    "AUTH_MODE": mode,
                    "BETTER_AUTH_URL": app_url,
                    "BETTER_AUTH_SECRET": self.secret,
                    "TASK_API_URL": api.url,
                    "SESSION_CACHE_SECONDS": str(CACHE_SECONDS),
                },
            )
            try:
                app.wait_ready()
                result = self._drive(mode, app_url, api.url, emails)
                if "failure" in result:
                    result["logs"] = f"next start:\n{app.output()}"
            finally:
                app.stop()
            stored: list[dict[str, Any]] = []
            if "token" in result:  # what the API stored for Alice, read with her own token
                response = httpx2.get(
                    f"{api.url}/api/tasks",
                    headers={"Authorization": f"Bearer {result['token']}"},
                    timeout=30,
                )
                assert response.status_code == 200, response.text
                stored = response.json()
        return Run(mode, api.url, app_url, emails, result, stored)

    def _drive(self, mode: str, app_url: str, api_url: str, emails: tuple[str, str]) -> Any:
        driver_input = {
            "chromium": self.chromium,
            "app": app_url,
            "api": api_url,
            "mode": mode,
            "users": [
                {"name": "Alice", "email": emails[0], "password": PASSWORD},
                {"name": "Bob", "email": emails[1], "password": PASSWORD},
            ],
            "cacheSeconds": CACHE_SECONDS if mode == "cookie-cache" else None,
            "search": mode == "jwks",
        }
        done = subprocess.run(
            [self.node, "e2e/drive.mjs", json.dumps(driver_input)],
            cwd=EXAMPLE_DIR,
            capture_output=True,
            text=True,
            timeout=DRIVE_SECONDS,
            check=False,
        )
        assert done.returncode == 0, f"the driver failed: {done.stderr[-4000:]}"
        return json.loads(done.stdout)


@pytest.fixture(scope="session")
def example_runs(chromium: str, pg_url: str) -> Runs:
    """The example built once (npm ci of the client and the example, then next build)."""
    node = node_binary()
    npm_ci(CLIENT_DIR)
    npm_ci(EXAMPLE_DIR)
    next_build(node)
    return Runs(node, chromium, pg_url)


def titles(shown: dict[str, Any]) -> list[tuple[str | None, bool]]:
    return [(task["title"], task["completed"]) for task in shown["tasks"]]


# --- Every mode ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_example_signs_up_and_shows_an_empty_list_sc004(example_runs: Runs, mode: str) -> None:
    run = example_runs[mode]
    assert run.shown("homeSignedOut")["signedOut"] == (
        "You are signed out. Sign in or create an account."
    )
    signed_up = run.shown("signedUp")
    assert (signed_up["path"], signed_up["user"]) == ("/tasks", run.emails[0])
    assert (signed_up["count"], signed_up["tasks"], signed_up["error"]) == ("0 of 0", [], "")


@pytest.mark.parametrize("mode", MODES)
def test_example_creates_toggles_edits_and_deletes_from_the_browser_us1_1(
    example_runs: Runs, mode: str
) -> None:
    run = example_runs[mode]
    assert titles(run.shown("created3")) == [
        ("Call mum", PENDING),
        ("Walk the dog", PENDING),
        ("Buy milk", PENDING),
    ]
    assert run.shown("created3")["tasks"][2]["description"] == "2 litres"
    assert titles(run.shown("toggled"))[2] == ("Buy milk", DONE)
    edited = run.shown("edited")["tasks"][1]
    assert (edited["title"], edited["description"]) == ("Walk the dog twice", "morning and evening")
    deleted = run.shown("deleted")
    assert titles(deleted) == [("Walk the dog twice", PENDING), ("Buy milk", DONE)]
    assert (deleted["count"], deleted["error"]) == ("2 of 2", "")


@pytest.mark.parametrize("mode", MODES)
def test_example_filters_and_pages_through_the_link_header_fr006(
    example_runs: Runs, mode: str
) -> None:
    run = example_runs[mode]
    pending = run.shown("pending")
    assert (titles(pending), pending["count"]) == (
        [("Call mum", PENDING), ("Walk the dog twice", PENDING)],
        "2 of 2",
    )
    assert titles(run.shown("completed")) == [("Buy milk", DONE)]
    assert run.shown("all")["count"] == "3 of 3"
    first = run.shown("page1")  # /tasks?limit=2: X-Total-Count says 3, Link says there is more
    assert (first["count"], first["more"]) == ("2 of 3", True)
    second = run.shown("page2")
    assert (second["count"], second["more"]) == ("3 of 3", False)
    assert titles(second) == titles(run.shown("all"))


@pytest.mark.parametrize("mode", MODES)
def test_example_shows_the_apis_detail_on_errors_sc006(example_runs: Runs, mode: str) -> None:
    run = example_runs[mode]
    blank = run.shown("blankTitle")
    assert (blank["error"], blank["count"]) == (BLANK_TITLE, "3 of 3")  # nothing created
    too_long = run.shown("tooLongEdit")
    assert too_long["error"] == BLANK_TITLE
    assert titles(run.shown("pending"))[0] == ("Call mum", PENDING)  # the title did not change


@pytest.mark.parametrize("mode", MODES)
def test_example_server_component_calls_the_api_server_side_fr013(
    example_runs: Runs, mode: str
) -> None:
    run = example_runs[mode]
    assert run.shown("homeAlice") == {
        "user": run.emails[0],
        "signedOut": None,
        "summary": "2 tasks",
        "latest": ["Walk the dog twice", "Buy milk (done)"],
        "serverError": None,
    }
    assert run.shown("homeBob")["summary"] == "1 task"


@pytest.mark.parametrize("mode", MODES)
def test_example_keeps_each_users_tasks_apart_us1_2_sc003(example_runs: Runs, mode: str) -> None:
    run = example_runs[mode]
    bob = run.shown("bobSignedUp")
    assert (bob["user"], bob["count"], bob["tasks"]) == (run.emails[1], "0 of 0", [])
    assert titles(run.shown("bobCreated")) == [("Bob's task", PENDING)]
    alice = run.shown("aliceAfterBob")
    assert "Bob's task" not in [title for title, _ in titles(alice)]
    # What the page shows at the end is what the API stored for Alice, and only that.
    final = run.shown("signedIn")
    assert titles(final) == [(task["title"], task["completed"]) for task in run.stored]
    token = claims(run.result["token"])
    user_id = token["session"]["userId"] if mode == "cookie-cache" else token["sub"]
    assert {task["user_id"] for task in run.stored} == {user_id}


@pytest.mark.parametrize("mode", MODES)
def test_example_from_an_origin_not_in_cors_origins_is_refused_fr012(
    example_runs: Runs, mode: str
) -> None:
    """The same app as http://localhost:PORT, with Alice's valid token: the browser refuses the
    API's answer to the preflight; the token itself is accepted from the app's origin."""
    run = example_runs[mode]
    assert run.shown("stranger") == {"error": "TypeError: Failed to fetch"}
    stranger_origin = run.app_url.replace("127.0.0.1", "localhost")
    refused = (
        f"stranger error: Access to fetch at '{run.api_url}/api/tasks' from origin "
        f"'{stranger_origin}' has been blocked by CORS policy: Response to preflight request "
        "doesn't pass access control check"
    )
    assert any(line.startswith(refused) for line in run.result["console"]), run.result["console"]
    assert run.shown("sameTokenFromApp") == 200
    assert "from a stranger" not in [task["title"] for task in run.stored]


@pytest.mark.parametrize("mode", MODES)
def test_example_says_signed_out_instead_of_failing_sc005(example_runs: Runs, mode: str) -> None:
    """After sign-out the tasks page (its token request is a 401) and the home page (no session
    on the server) both say so; signing in again shows the same tasks."""
    run = example_runs[mode]
    assert run.shown("signedOutAt") == "/sign-in"
    tasks = run.shown("tasksSignedOut")
    assert tasks["signedOut"] == "You are signed out. Sign in to see your tasks."
    assert (tasks["user"], tasks["tasks"]) == (None, [])
    assert run.shown("homeAfterSignOut")["signedOut"] == (
        "You are signed out. Sign in or create an account."
    )
    signed_in = run.shown("signedIn")
    assert (signed_in["user"], signed_in["error"]) == (run.emails[0], "")
    assert titles(signed_in) == titles(run.shown("aliceAfterBob"))


@pytest.mark.parametrize("mode", ["jwks", "secret"])
def test_example_fetches_one_token_per_lifetime_not_per_call_us2_1(
    example_runs: Runs, mode: str
) -> None:
    """From sign-up to the filters, on one page: a dozen API calls and no token request (the
    token is cached until 60 s before its exp)."""
    window = example_runs[mode].result["requests"]
    calls = window["beforePaging"]["api"] - window["afterSignUp"]["api"]
    fetched = window["beforePaging"]["token"] - window["afterSignUp"]["token"]
    assert (calls >= 10, fetched) == (True, 0), window


# --- Cookie-cache mode ----------------------------------------------------------------------------


def test_cookie_cache_expiring_mid_session_is_refreshed_and_keeps_working_fr002(
    example_runs: Runs,
) -> None:
    """The cache cookie lives 5 s: the browser drops it, and the next call still works, because
    the token route asks Better Auth for the session (getSession), which sets a new cookie."""
    run = example_runs["cookie-cache"]
    cookie = run.shown("cacheCookie")
    assert cookie["before"] is not None
    assert cookie["dropped"] is True
    assert cookie["after"] is not None
    assert claims(cookie["after"])["exp"] > claims(cookie["before"])["exp"]
    after = run.shown("afterCacheExpired")
    assert (after["signedOut"], after["error"], titles(after)[:1]) == (
        None,
        "",
        [("After the cache expired", PENDING)],
    )
    assert run.shown("homeAfterCacheExpired")["summary"] == "3 tasks"  # the server side too
    # A token that expires before the refresh margin is never cached: one request per call.
    window = run.result["requests"]
    calls = window["beforePaging"]["api"] - window["afterSignUp"]["api"]
    fetched = window["beforePaging"]["token"] - window["afterSignUp"]["token"]
    assert fetched == calls, window


# --- Search: needs the API's ?search= (issue 13 item 5) ------------------------------------------


def test_example_search_box_matches_title_or_description_with_filters_fr006(
    example_runs: Runs,
) -> None:
    run = example_runs["jwks"]
    assert titles(run.shown("searchMilk")) == [("Buy milk", DONE)]
    assert titles(run.shown("searchDescription")) == [("Buy milk", DONE)]  # "2 litres"
    nothing = run.shown("searchNothing")
    assert (nothing["tasks"], nothing["count"], nothing["error"]) == ([], "0 of 0", "")
    assert titles(run.shown("searchDog")) == [("Walk the dog twice", PENDING)]
    assert run.shown("searchDogCompleted")["tasks"] == []  # search and status together
    assert titles(run.shown("searchCleared")) == titles(run.shown("signedIn"))
