"""Health probes, OpenAPI, CORS, request ids and the error contract (FR-008, FR-012)."""

import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from db import migrate
from main import create_app
from tests.conftest import FRONTEND, make_settings
from tests.keys import ALICE

DOWN_DATABASE = "postgresql://postgres@127.0.0.1:1/unreachable"


def test_liveness_never_touches_the_database(app_factory: Callable[..., TestClient]) -> None:
    client = app_factory(DOWN_DATABASE)
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_is_200_when_the_database_answers(pg_client: TestClient) -> None:
    response = pg_client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readiness_is_503_until_the_schema_is_migrated(
    app_factory: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = app_factory(f"sqlite:///{tmp_path / 'unmigrated.db'}")  # production: no auto-migrate
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json() == {"detail": "Database schema is not migrated: run `make migrate`"}
    assert response.headers["retry-after"] == "2"


def test_readiness_stays_200_when_a_newer_release_has_migrated(
    app_factory: Callable[..., TestClient], tmp_path: Path
) -> None:
    # Rollout order: `make migrate` for release N+1, then its replicas replace release N's.
    # Release N must stay ready meanwhile, not drop out of the load balancer.
    url = f"sqlite:///{tmp_path / 'ahead.db'}"
    engine = create_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_next_release'"))
    engine.dispose()
    response = app_factory(url).get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_database_down_is_503_with_retry_after_not_500_fr008(
    app_factory: Callable[..., TestClient], alice: dict[str, str]
) -> None:
    client = app_factory(DOWN_DATABASE)
    for response in (client.get("/health/ready"), client.get("/api/tasks", headers=alice)):
        assert response.status_code == 503
        assert response.json() == {"detail": "Database unavailable, retry shortly"}
        assert response.headers["retry-after"] == "2"
        assert "127.0.0.1" not in response.text  # no driver message leaks


def test_waiting_for_a_connection_is_bounded_then_503_fr008(
    app_factory: Callable[..., TestClient], alice: dict[str, str]
) -> None:
    # Every connection is busy (one here, held by another request's slow statement): a request
    # waits at most DB_POOL_TIMEOUT, then gets a 503 it can retry, never a hang or a 500.
    client = app_factory(db_pool_size=1, db_pool_timeout=0.5)
    assert isinstance(client.app, FastAPI)
    assert client.portal is not None
    database = client.app.state.database
    held, release = threading.Event(), threading.Event()

    async def hold_the_connection() -> None:
        async with database.pool.connection():
            held.set()
            await anyio.to_thread.run_sync(release.wait, 10)

    running = client.portal.start_task_soon(hold_the_connection)
    try:
        assert held.wait(5)
        response = client.get("/api/tasks", headers=alice)
    finally:
        release.set()
        running.result(10)
    assert response.status_code == 503
    assert response.json() == {"detail": "Database busy, retry shortly"}
    assert response.headers["retry-after"] == "2"
    assert client.get("/api/tasks", headers=alice).status_code == 200  # and it recovers


def test_openapi_documents_bearer_auth_and_error_responses(pg_client: TestClient) -> None:
    document = pg_client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["HTTPBearer"]["description"],
    }
    operations = {
        (path, method): operation
        for path, item in document["paths"].items()
        if "tasks" in path
        for method, operation in item.items()
    }
    assert len(operations) == 14  # 7 routes, each also under /api/{user_id}/tasks
    for (path, method), operation in operations.items():
        assert operation["security"] == [{"HTTPBearer": []}], (path, method)
        documented = set(operation["responses"])
        assert {"400", "401", "503"} <= documented, (path, method)
        if "{task_id}" in path:
            assert "404" in documented, (path, method)
        if "{user_id}" in path:
            assert "403" in documented, (path, method)
    # Validation errors are 400 here; the one 422 is a reused Idempotency-Key, on writes only.
    for (path, method), operation in operations.items():
        if "422" in operation["responses"]:
            assert method in ("post", "put", "patch", "delete"), (path, method)
            assert "Idempotency-Key" in operation["responses"]["422"]["description"]
    assert "HTTPValidationError" not in str(document)
    assert pg_client.get("/docs").status_code == 200


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_cors_preflight_allows_the_frontend_origin_fr012(
    pg_client: TestClient, method: str
) -> None:
    response = pg_client.options(
        "/api/tasks/1",
        headers={
            "Origin": FRONTEND,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONTEND
    assert method in response.headers["access-control-allow-methods"].split(", ")
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed


def test_cors_exposes_paging_headers_and_refuses_other_origins_fr012(
    pg_client: TestClient, alice: dict[str, str]
) -> None:
    allowed = pg_client.get("/api/tasks", headers={**alice, "Origin": FRONTEND})
    assert allowed.headers["access-control-allow-origin"] == FRONTEND
    exposed = allowed.headers["access-control-expose-headers"].lower()
    for header in ("x-total-count", "link", "location"):
        assert header in exposed
    other = pg_client.get("/api/tasks", headers={**alice, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = pg_client.options(
        "/api/tasks",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 400
    assert preflight.json() == {"detail": "Disallowed CORS origin"}
    assert "access-control-allow-origin" not in preflight.headers


def test_errors_carry_cors_headers_so_browsers_can_read_them_fr012(pg_client: TestClient) -> None:
    response = pg_client.get("/api/tasks", headers={"Origin": FRONTEND})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == FRONTEND


def test_unexpected_error_is_json_500_with_cors_and_no_trace_fr008() -> None:
    app = create_app(make_settings("sqlite://"))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: SELECT * FROM tasks")

    with TestClient(app) as client:
        response = client.get("/boom", headers={"Origin": FRONTEND})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert response.headers["access-control-allow-origin"] == FRONTEND
    assert "SELECT" not in response.text


def test_request_id_is_returned_and_an_incoming_one_kept(pg_client: TestClient) -> None:
    generated = pg_client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
    kept = pg_client.get("/health", headers={"X-Request-ID": "req-123"})
    assert kept.headers["x-request-id"] == "req-123"
    # Anything but a short token of safe characters is replaced, so logs cannot be forged.
    for unsafe in ("bad id", "x" * 129, '"quoted"', "a;b=c"):
        replaced = pg_client.get("/health", headers={"X-Request-ID": unsafe})
        assert replaced.headers["x-request-id"] != unsafe
        assert len(replaced.headers["x-request-id"]) == 32
    assert generated.headers["x-content-type-options"] == "nosniff"


def test_access_log_has_one_line_per_request_without_token(
    pg_client: TestClient, alice: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    token = alice["Authorization"].split()[1]
    with caplog.at_level("INFO", logger="taskapi.access"):
        pg_client.get("/api/tasks/5", headers={**alice, "X-Request-ID": "trace-1"})
        pg_client.patch(f"/api/{ALICE}/tasks/5/complete", headers=alice)
    lines = [r for r in caplog.records if r.name == "taskapi.access"]
    assert len(lines) == 2
    entry = lines[0].__dict__
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/api/tasks/{task_id}", 404)
    assert entry["request_id"] == "trace-1"
    alias = lines[1].__dict__
    assert (alias["method"], alias["path"]) == ("PATCH", "/api/{user_id}/tasks/{task_id}/complete")
    assert token not in caplog.text
    assert ALICE not in caplog.text


def test_trailing_slash_is_served_without_a_redirect_fr013(
    pg_client: TestClient, alice: dict[str, str]
) -> None:
    created = pg_client.post("/api/tasks/", json={"title": "slash"}, headers=alice)
    assert created.status_code == 201
    assert created.headers["location"] == f"/api/tasks/{created.json()['id']}"
    listed = pg_client.get("/api/tasks/", headers={**alice, "Host": "evil.example"})
    assert listed.status_code == 200
    assert [t["title"] for t in listed.json()] == ["slash"]
    one = pg_client.get(f"/api/tasks/{created.json()['id']}/", headers=alice)
    assert one.json()["title"] == "slash"
    assert pg_client.get("/api/tasks/", headers={"Host": "evil.example"}).status_code == 401


@pytest.mark.parametrize("path", ["/health", "/health/ready"])
def test_health_probes_answer_head_too(pg_client: TestClient, path: str) -> None:
    # Load balancers and uptime monitors often probe with HEAD.
    response = pg_client.head(path)
    assert response.status_code == 200
    assert response.content == b""


def test_head_answers_like_get_without_a_body(pg_client: TestClient, alice: dict[str, str]) -> None:
    task = pg_client.post("/api/tasks", json={"title": "counted"}, headers=alice).json()
    for path in ("/api/tasks", f"/api/tasks/{task['id']}", f"/api/{ALICE}/tasks"):
        got, head = pg_client.get(path, headers=alice), pg_client.head(path, headers=alice)
        assert head.status_code == got.status_code == 200
        assert head.content == b""
        assert head.headers.get("x-total-count") == got.headers.get("x-total-count")
        assert head.headers["content-length"] == got.headers["content-length"]
    assert pg_client.head("/api/tasks/999999", headers=alice).status_code == 404
    unauthenticated = pg_client.head("/api/tasks")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/tasks", "GET, HEAD, POST"),
        ("POST", "/api/tasks/1", "DELETE, GET, HEAD, PATCH, PUT"),
        ("GET", "/api/tasks/1/complete", "PATCH"),
        ("POST", "/api/someone/tasks/1", "DELETE, GET, HEAD, PATCH, PUT"),
        ("POST", "/health", "GET, HEAD"),
    ],
)
def test_wrong_method_is_json_405_that_lists_every_allowed_method(
    pg_client: TestClient, alice: dict[str, str], method: str, path: str, allowed: str
) -> None:
    response = pg_client.request(method, path, headers=alice)
    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed"}
    assert response.headers["allow"] == allowed


def test_unknown_path_is_json_404(pg_client: TestClient) -> None:
    response = pg_client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
