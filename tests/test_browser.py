"""A real browser (Chromium) and a real Better Auth against the served API (FR-012, FR-013, SC-004).

The page (tests/betterauth/page.html, page.mjs) is served by the Better Auth test server, an
origin other than the API's. It uses Better Auth's own browser client to sign up and to get a
JWT (``authClient.token()``), then lists, creates, toggles, edits and deletes tasks with
``fetch`` and ``Authorization: Bearer``: CORS, preflight and error bodies as a browser sees them.
Playwright (``playwright-core`` from npm) drives Debian's Chromium, with a fresh profile.
"""

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.betterauth_fixtures import NODE_DIR, PASSWORD, BetterAuth, node_binary
from tests.conftest import LiveServer, running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser_api(pg_url: str, better_auth: BetterAuth) -> Iterator[LiveServer]:
    """``uvicorn main:app`` as deployed: JWKS mode, and only the page's origin in CORS_ORIGINS."""
    yield from running(
        {
            "ENVIRONMENT": "production",
            "DATABASE_URL": pg_url,
            "BETTER_AUTH_URL": better_auth.url("main"),
            "CORS_ORIGINS": better_auth.url("main"),
            "LOG_LEVEL": "WARNING",
        }
    )


@pytest.fixture(scope="module")
def page_run(chromium: str, better_auth: BetterAuth, browser_api: LiveServer) -> dict[str, Any]:
    """One run of tests/betterauth/browser.mjs; the tests below assert on what it saw."""
    email = f"browser-{uuid.uuid4().hex[:12]}@example.test"
    driver_input = {
        "chromium": chromium,
        "page": better_auth.url("main"),
        "stranger": better_auth.stranger,
        "api": browser_api.url,
        "name": "Browser User",
        "email": email,
        "password": PASSWORD,
    }
    done = subprocess.run(
        [node_binary(), "browser.mjs", json.dumps(driver_input)],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    result["email"] = email
    return result


def shown(result: dict[str, Any], step: str) -> Any:
    """What the page showed after ``step``; a run that stopped before it fails the test that
    asked, saying where the page stopped, what it showed, and what the browser logged."""
    if step not in result["steps"]:
        pytest.fail(
            f"the page never got to {step!r}: {result.get('failure')}\n"
            f"it showed: {result.get('lastShown')}\nbrowser console: {result['console']}"
        )
    return result["steps"][step]


def test_page_signs_up_and_lists_tasks_through_cors_fr012_sc004(page_run: dict[str, Any]) -> None:
    signed_up = shown(page_run, "signedUp")
    assert signed_up == {"user": page_run["email"], "count": "0 tasks", "tasks": [], "error": ""}


def test_page_creates_toggles_edits_and_deletes_us1_1(page_run: dict[str, Any]) -> None:
    pending = {"completed": False, "done": False}
    assert shown(page_run, "created")["tasks"] == [
        {"title": "Buy milk", **pending},
        {"title": "Walk the dog", **pending},
    ]
    assert shown(page_run, "toggled")["tasks"] == [
        {"title": "Buy milk", "completed": True, "done": True},
        {"title": "Walk the dog", **pending},
    ]
    assert shown(page_run, "edited")["tasks"] == [
        {"title": "Buy oat milk", "completed": True, "done": True},
        {"title": "Walk the dog", **pending},
    ]
    deleted = shown(page_run, "deleted")
    assert deleted["tasks"] == [{"title": "Buy oat milk", "completed": True, "done": True}]
    assert (deleted["count"], deleted["error"]) == ("1 tasks", "")


def test_page_state_is_what_the_api_stored_us1_2(
    page_run: dict[str, Any], browser_api: LiveServer, better_auth: BetterAuth
) -> None:
    """The same user, signed in again outside the browser, sees what the page left."""
    user = better_auth.sign_in("main", page_run["email"])
    token = better_auth.token(user)
    response = httpx2.get(
        f"{browser_api.url}/api/tasks", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert [(t["title"], t["completed"], t["user_id"]) for t in response.json()] == [
        ("Buy oat milk", True, user.id)
    ]


def test_api_error_details_are_readable_from_the_page_sc006(page_run: dict[str, Any]) -> None:
    blank = shown(page_run, "blankTitle")
    assert blank["error"] == (
        "Error: title: must be 1 to 200 characters after trimming surrounding whitespace"
    )
    assert blank["count"] == "1 tasks"  # nothing was created
    assert shown(page_run, "missing") == {"ok": False, "error": "Error: Task not found"}


def test_a_page_on_another_origin_gets_304_412_and_replays_fr012(page_run: dict[str, Any]) -> None:
    """ETag, If-None-Match, If-Match and Idempotency-Key through CORS, as a browser sends them."""
    conditional = shown(page_run, "conditional")
    etag = conditional["etag"]
    assert etag is not None
    assert etag.startswith('"')  # readable: ETag is exposed
    assert conditional["notModified"] == 304
    assert conditional["stale"] == {
        "status": 412,
        "etag": etag,
        "body": {
            "detail": (
                f"The task changed since you read it (its ETag is now {etag}): "
                "read it again, then retry"
            )
        },
    }
    assert conditional["first"] == 200
    assert conditional["retry"] == {"status": 200, "replayed": "true"}


def test_origin_not_in_cors_origins_is_refused_by_the_browser_fr012(
    page_run: dict[str, Any], browser_api: LiveServer, better_auth: BetterAuth
) -> None:
    """The same page and session from another origin: the browser refuses the API's answer to
    the preflight, so the page's fetch fails and nothing is created."""
    stranger = shown(page_run, "stranger")
    assert stranger == {"error": "TypeError: Failed to fetch", "tasks": 0}
    blocked = (
        f"stranger error: Access to fetch at '{browser_api.url}/api/tasks' from origin "
        f"'{better_auth.stranger}' has been blocked by CORS policy"
    )
    assert any(line.startswith(blocked) for line in page_run["console"]), page_run["console"]
    assert shown(page_run, "afterStranger") == ["Buy oat milk"]
    # Only the origin was wrong: the stranger page's token itself is good.
    token = shown(page_run, "strangerToken")
    response = httpx2.get(
        f"{browser_api.url}/api/tasks", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200
