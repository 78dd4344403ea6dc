"""What operators see: one JSON log line per request, security headers, graceful shutdown.

All against a real ``uvicorn main:app`` process on the test PostgreSQL: the log lines are read
from what the process really wrote, and the shutdown is a real SIGTERM.
"""

import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from sqlalchemy import create_engine, text

from core.config import normalize_url
from tests.conftest import LiveServer, running
from tests.keys import ALICE, SECRET, bearer, mint

pytestmark = pytest.mark.slow

MARKER = "do-not-log-me-7f3a"  # in bodies and query strings: user data that must stay out


def _env(pg_url: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "production",
        "DATABASE_URL": pg_url,
        "BETTER_AUTH_SECRET": SECRET,
        "DB_POOL_SIZE": "2",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def logged_server(pg_url: str) -> Iterator[LiveServer]:
    yield from running(_env(pg_url))


def _log_lines(server: LiveServer) -> list[dict[str, Any]]:
    server.log.flush()
    server.log.seek(0)
    text_lines = [line for line in server.log.read().splitlines() if line.startswith("{")]
    return [json.loads(line) for line in text_lines]


def _access_line(server: LiveServer, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [
            e
            for e in _log_lines(server)
            if e.get("request_id") == request_id and e["message"] == "request"
        ]
        if lines:
            assert len(lines) == 1  # one line per request
            return lines[0]
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}")


def test_one_json_line_per_request_with_template_status_duration_and_request_id(
    logged_server: LiveServer,
) -> None:
    token = mint(ALICE, claims={"email": f"{MARKER}@example.com"})
    with httpx2.Client(base_url=logged_server.url, headers=bearer(token)) as http:
        created = http.post(
            "/api/tasks",
            json={"title": MARKER, "description": MARKER},
            headers={"X-Request-ID": "client-req-1"},
        )
        assert created.status_code == 201
        assert created.headers["x-request-id"] == "client-req-1"  # accepted and returned
        task_id = created.json()["id"]
        got = http.get(f"/api/tasks/{task_id}?q={MARKER}", headers={"X-Request-ID": "client-req-2"})
        missing = http.get("/api/tasks/999999999", headers={"X-Request-ID": "client-req-3"})
        # An id that is not a plain token (spaces, too long) is replaced, never echoed.
        odd = http.get("/health", headers={"X-Request-ID": "bad id " + MARKER})
    assert got.status_code == 200
    assert missing.status_code == 404
    generated = odd.headers["x-request-id"]
    assert MARKER not in generated
    assert len(generated) == 32

    create_line = _access_line(logged_server, "client-req-1")
    assert create_line["method"] == "POST"
    assert create_line["path"] == "/api/tasks"
    assert create_line["status"] == 201
    assert isinstance(create_line["duration_ms"], float | int)
    assert create_line["level"] == "info"
    get_line = _access_line(logged_server, "client-req-2")
    assert get_line["path"] == "/api/tasks/{task_id}"  # the template, never the id or query
    assert get_line["status"] == 200
    assert _access_line(logged_server, "client-req-3")["status"] == 404
    assert _access_line(logged_server, generated)["path"] == "/health"

    logged_server.log.seek(0)
    everything = logged_server.log.read()
    for secret in (token, SECRET, MARKER, ALICE):  # no token, secret, user data or user id
        assert secret not in everything


def test_security_headers_on_every_answer_errors_included(logged_server: LiveServer) -> None:
    for response in (
        httpx2.get(f"{logged_server.url}/health"),
        httpx2.get(f"{logged_server.url}/api/tasks"),  # 401
        httpx2.get(f"{logged_server.url}/nowhere"),  # 404
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "server" not in response.headers
        assert response.headers["x-request-id"]


def test_sigterm_drains_the_request_in_flight_then_exits(pg_url: str) -> None:
    # A toggle is held in flight by a row lock taken from another connection; SIGTERM arrives;
    # the lock is released; the toggle still completes (200, and stored) and the process exits.
    server = LiveServer(_env(pg_url))
    try:
        server.wait_ready()
        headers = bearer(mint(ALICE))
        task_id = httpx2.post(
            f"{server.url}/api/tasks", json={"title": "in flight"}, headers=headers
        ).json()["id"]
        engine = create_engine(normalize_url(pg_url))
        blocker = engine.connect()
        transaction = blocker.begin()
        blocker.execute(text("SELECT 1 FROM tasks WHERE id = :id FOR UPDATE"), {"id": task_id})
        result: dict[str, Any] = {}

        def toggle() -> None:
            response = httpx2.patch(
                f"{server.url}/api/tasks/{task_id}/complete", headers=headers, timeout=30
            )
            result["status"], result["body"] = response.status_code, response.json()

        in_flight = threading.Thread(target=toggle)
        in_flight.start()
        _wait_for_lock_wait(engine)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.process.poll() is None  # still draining
        transaction.commit()
        blocker.close()
        in_flight.join(30)
        assert result["status"] == 200
        assert result["body"]["completed"] is True
        # Drained, then gone: uvicorn re-raises the SIGTERM it handled once it has finished, so
        # a supervisor sees the usual "terminated by SIGTERM" status.
        assert server.process.wait(15) in (0, -signal.SIGTERM)
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT completed FROM tasks WHERE id = :id"), {"id": task_id}
            ).scalar_one()
        assert stored is True
        engine.dispose()
    finally:
        server.stop()


def test_sigterm_fails_readiness_first_and_serves_on_for_the_shutdown_delay(pg_url: str) -> None:
    # Behind a load balancer: SIGTERM turns /health/ready to 503 at once, so the balancer's next
    # check takes the replica out, while requests (and new connections) are still served for
    # SHUTDOWN_DELAY_SECONDS; only then does the server stop accepting and exit.
    server = LiveServer({**_env(pg_url), "SHUTDOWN_DELAY_SECONDS": "2"})
    try:
        server.wait_ready()
        assert httpx2.get(f"{server.url}/health/ready").status_code == 200
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        ready = httpx2.get(f"{server.url}/health/ready")  # a new connection: still accepted
        assert ready.status_code == 503
        assert ready.json() == {"detail": "Shutting down: send new requests to another replica"}
        assert ready.headers["retry-after"] == "2"
        assert httpx2.get(f"{server.url}/health").status_code == 200  # alive, not ready
        listed = httpx2.get(f"{server.url}/api/tasks", headers=bearer(mint(ALICE)))
        assert listed.status_code == 200  # requests that still arrive are served
        assert server.process.wait(15) in (0, -signal.SIGTERM)
        assert time.monotonic() - signalled >= 2
    finally:
        server.stop()


def _wait_for_lock_wait(engine: Any) -> None:
    deadline = time.monotonic() + 10
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
