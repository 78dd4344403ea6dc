"""The raw baseline: bare Starlette + asyncpg + orjson, the product's queries and JSON.

What a hand-written server would do for the measured operations, and nothing more: the
same token check (PyJWT, HS256 with the shared secret, ``exp`` required, the same leeway, the
subject read from ``sub``) on every request, the same SQL (the page with its total as a scalar
subquery, ``INSERT ... RETURNING``, the atomic toggle), and byte-for-byte the same JSON body
and paging headers. No ORM, no validation framework, no middleware, no logging.

Run by ``bench/run.py`` under uvicorn with the product's own flags:
``BASELINE_DATABASE_URL=postgresql://... BETTER_AUTH_SECRET=... uvicorn bench.baseline:app``.
"""

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import jwt
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SECRET = os.environ["BETTER_AUTH_SECRET"].encode()
LEEWAY = int(os.environ.get("JWT_LEEWAY_SECONDS", "30"))
POOL_SIZE = int(os.environ.get("DB_POOL_SIZE", "10"))
PAGE = (
    "SELECT id, user_id, title, description, completed, created_at, updated_at, "
    "(SELECT count(*) FROM tasks WHERE user_id = $1) AS total "
    "FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
)
CREATE = (
    "INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $5) "
    "RETURNING id, user_id, title, description, completed, created_at, updated_at"
)
TOGGLE = (
    "UPDATE tasks SET completed = NOT completed, updated_at = CASE WHEN "
    "(completed IS DISTINCT FROM NOT completed) THEN $3 ELSE updated_at END "
    "WHERE user_id = $1 AND id = $2 "
    "RETURNING id, user_id, title, description, completed, created_at, updated_at"
)
GET = (
    "SELECT id, user_id, title, description, completed, created_at, updated_at "
    "FROM tasks WHERE user_id = $1 AND id = $2"
)
UPDATE = (
    "UPDATE tasks SET title = $3::varchar, updated_at = CASE WHEN "
    "(title IS DISTINCT FROM $3::varchar) THEN $4 ELSE updated_at END "
    "WHERE user_id = $1 AND id = $2 "
    "RETURNING id, user_id, title, description, completed, created_at, updated_at"
)
DELETE = (
    "DELETE FROM tasks WHERE user_id = $1 AND id = $2 "
    "RETURNING id, user_id, title, description, completed, created_at, updated_at"
)
FIELDS = ("id", "user_id", "title", "description", "completed", "created_at", "updated_at")


def _error(status: int, detail: str) -> Response:
    return Response(orjson.dumps({"detail": detail}), status, media_type="application/json")


def _caller(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        claims = jwt.decode(
            token.strip(),
            SECRET,
            algorithms=["HS256"],
            leeway=LEEWAY,
            options={"require": ["exp"]},
        )
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub else None


def _task(row: asyncpg.Record) -> dict[str, Any]:
    return dict(zip(FIELDS, row, strict=False))


def _cursor(last: dict[str, Any]) -> str:
    raw = orjson.dumps(
        {
            "sort": "created",
            "desc": True,
            "status": "all",
            "value": last["created_at"],
            "id": last["id"],
        },
        option=orjson.OPT_UTC_Z,
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def list_tasks(request: Request) -> Response:
    user = _caller(request)
    if user is None:
        return _error(401, "Invalid token")
    try:
        limit = int(request.query_params.get("limit", "100"))
        offset = int(request.query_params.get("offset", "0"))
    except ValueError:
        return _error(400, "limit and offset must be integers")
    if not 1 <= limit <= 1000 or offset < 0:
        return _error(400, "limit must be 1 to 1000, offset 0 or more")
    rows = await request.app.state.pool.fetch(PAGE, user, limit + 1, offset)
    total = rows[0]["total"] if rows else 0
    items = [_task(row) for row in rows[:limit]]
    headers = {"x-total-count": str(total)}
    if len(rows) > limit:
        headers["link"] = f'</api/tasks?limit={limit}&cursor={_cursor(items[-1])}>; rel="next"'
    body = orjson.dumps(items, option=orjson.OPT_UTC_Z)
    return Response(body, 200, headers=headers, media_type="application/json")


async def create_task(request: Request) -> Response:
    user = _caller(request)
    if user is None:
        return _error(401, "Invalid token")
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _error(400, "request body is not valid JSON")
    title = body.get("title") if isinstance(body, dict) else None
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= 200:
        return _error(400, "title: must be 1 to 200 characters")
    description = body.get("description")
    completed = body.get("completed", False)
    now = datetime.now(UTC)
    row = await request.app.state.pool.fetchrow(
        CREATE, user, title.strip(), description, completed, now
    )
    task = _task(row)
    headers = {"location": f"/api/tasks/{task['id']}"}
    return Response(
        orjson.dumps(task, option=orjson.OPT_UTC_Z),
        201,
        headers=headers,
        media_type="application/json",
    )


def _one(row: asyncpg.Record | None) -> Response:
    if row is None:
        return _error(404, "Task not found")
    body = orjson.dumps(_task(row), option=orjson.OPT_UTC_Z)
    return Response(body, 200, media_type="application/json")


def _task_id(request: Request) -> int | None:
    try:
        return int(request.path_params["task_id"])
    except ValueError:
        return None


async def toggle_task(request: Request) -> Response:
    user, task_id = _caller(request), _task_id(request)
    if user is None:
        return _error(401, "Invalid token")
    if task_id is None:
        return _error(400, "task_id must be an integer")
    return _one(await request.app.state.pool.fetchrow(TOGGLE, user, task_id, datetime.now(UTC)))


async def get_task(request: Request) -> Response:
    user, task_id = _caller(request), _task_id(request)
    if user is None:
        return _error(401, "Invalid token")
    if task_id is None:
        return _error(400, "task_id must be an integer")
    return _one(await request.app.state.pool.fetchrow(GET, user, task_id))


async def update_task(request: Request) -> Response:
    user, task_id = _caller(request), _task_id(request)
    if user is None:
        return _error(401, "Invalid token")
    if task_id is None:
        return _error(400, "task_id must be an integer")
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _error(400, "request body is not valid JSON")
    title = body.get("title") if isinstance(body, dict) else None
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= 200:
        return _error(400, "title: must be 1 to 200 characters")
    now = datetime.now(UTC)
    return _one(await request.app.state.pool.fetchrow(UPDATE, user, task_id, title.strip(), now))


async def delete_task(request: Request) -> Response:
    user, task_id = _caller(request), _task_id(request)
    if user is None:
        return _error(401, "Invalid token")
    if task_id is None:
        return _error(400, "task_id must be an integer")
    return _one(await request.app.state.pool.fetchrow(DELETE, user, task_id))


async def liveness(request: Request) -> Response:
    # The floor: no token, no database, just the server and the framework.
    return Response(b'{"status":"ok"}', 200, media_type="application/json")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    dsn = os.environ["BASELINE_DATABASE_URL"]
    async with asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE) as pool:
        app.state.pool = pool
        yield


app = Starlette(
    routes=[
        Route("/health", liveness, methods=["GET"]),
        Route("/api/tasks", list_tasks, methods=["GET"]),
        Route("/api/tasks", create_task, methods=["POST"]),
        Route("/api/tasks/{task_id}", get_task, methods=["GET"]),
        Route("/api/tasks/{task_id}", update_task, methods=["PUT"]),
        Route("/api/tasks/{task_id}", delete_task, methods=["DELETE"]),
        Route("/api/tasks/{task_id}/complete", toggle_task, methods=["PATCH"]),
    ],
    lifespan=lifespan,
)
