"""The task endpoints: HTTP only. Every statement lives in ``task_store.py``.

Mounted twice by ``main.py``: at ``/api/tasks``, and at ``/api/{user_id}/tasks`` for
hackathon-style frontends (the path may only repeat the token's subject, else 403; identity
comes from the token alone). A task of another user is a 404, exactly like a missing one
(FR-007, US1-3): the store's statements only ever see the caller's rows.

Responses are built once: the store returns ``TaskPublic``'s fields already typed (timestamps
timezone-aware UTC), so they go straight to JSON bytes (orjson) instead of being validated again
against ``response_model``, which stays declared for the OpenAPI document. The bytes are the ones
pydantic would write (tests/test_performance_contract.py compares them).
"""

from collections.abc import Awaitable, Callable, Mapping
from contextlib import nullcontext
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Body, Depends, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException

import task_store
from auth import AuthenticatedRoute, CurrentUser
from core.errors import error_responses
from core.fairness import LONG_PAGE_ROWS
from db import Database, get_database
from routes.conditions import (
    KEY_IN_FLIGHT,
    KEY_REUSED,
    REPLAYED,
    Preconditions,
    etag,
    not_modified,
    preconditions,
    refusal,
)
from schemas import (
    COMPLETION_BODY,
    MAX_BIGINT,
    TaskCompletion,
    TaskCreate,
    TaskListQuery,
    TaskPublic,
    TaskUpdate,
    query_parameters,
)
from task_store import KeyInFlight, KeyReused, Written

# AuthenticatedRoute: the token (401), the alias's path user (403) and the caller's fair share
# of the service (429) are settled before a body is read.
router = APIRouter(
    tags=["tasks"],
    responses=error_responses(400, 401, 429, 500, 503),
    route_class=AuthenticatedRoute,
)


async def _list_query(request: Request) -> TaskListQuery:
    """The list parameters, validated by ``TaskListQuery`` (documented as query parameters on
    the route), refusing a repeated one (``?status=all&status=completed``)."""
    params = request.query_params
    repeated = [name for name in TaskListQuery.model_fields if len(params.getlist(name)) > 1]
    if repeated:
        raise RequestValidationError(
            [
                {"loc": ("query", name), "msg": "given more than once", "type": "duplicate"}
                for name in repeated
            ]
        )
    try:
        return TaskListQuery.model_validate(params)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        ) from None


DatabaseDep = Annotated[Database, Depends(get_database)]
ListQuery = Annotated[TaskListQuery, Depends(_list_query)]
TaskId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="The task's id")]


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Tasks as JSON, as pydantic writes them (datetimes in UTC end in ``Z``), in one pass."""
    body = orjson.dumps(content, option=orjson.OPT_UTC_Z)
    return Response(body, status_code, headers, media_type="application/json")


def answer(written: Written, request: Request, status_code: int = 200) -> Response:
    """A write's answer: the task with its ETag (a 201 also its Location), or the refusal;
    a stored answer replayed for an Idempotency-Key says so."""
    if written.task is None or written.version is None:
        raise refusal(written, request.app.state.settings.max_tasks_per_user)
    headers = {"ETag": etag(written.version)}
    if written.status == 201:
        headers["Location"] = f"{_path(request)}/{written.task['id']}"
    if written.replayed:
        headers.update(REPLAYED)
    return json_response(written.task, written.status, headers)


async def written_once(
    request: Request, write: Callable[[Preconditions], Awaitable[Written]]
) -> Response:
    """Run ``write`` with the request's Idempotency-Key and If-Match (if any)."""
    conditions = await preconditions(request)
    try:
        return answer(await write(conditions), request)
    except KeyReused:
        raise HTTPException(422, KEY_REUSED) from None
    except KeyInFlight:
        raise HTTPException(409, KEY_IN_FLIGHT, {"Retry-After": "1"}) from None


def _path(request: Request) -> str:
    # The alias path holds a user id, which may be any Unicode: headers must be ASCII.
    return quote(request.url.path.rstrip("/"), safe="/")


LIST_HEADERS = {
    "X-Total-Count": {
        "description": "How many tasks match the filter (all pages)",
        "required": True,
        "schema": {"type": "integer"},
    },
    "Link": {
        "description": 'The next page, if any: `</api/tasks?...&cursor=...>; rel="next"`',
        "schema": {"type": "string"},
    },
}
ETAG_HEADER = {
    "ETag": {
        "description": "The task's version, a strong entity-tag: send it back in If-Match",
        "required": True,
        "schema": {"type": "string"},
    }
}
NOT_MODIFIED = {"description": "Not modified: If-None-Match named the current ETag (no body)"}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "An ETag you have: 304 if it is still current",
    "schema": {"type": "string"},
}
IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "1 to 255 visible ASCII characters, unique per request you mean: a retry with the same key "
        "and request gets the first answer again (Idempotent-Replayed: true), for 24 hours"
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
CONDITIONAL_WRITE = [
    IDEMPOTENCY_KEY_PARAMETER,
    {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "The ETag you read: written only if the task is still at it, else 412",
        "schema": {"type": "string"},
    },
]
WRITE_ERRORS = error_responses(409, 422)
CREATED_HEADERS = {
    "Location": {
        "description": "The new task's path",
        "required": True,
        "schema": {"type": "string"},
    },
    **ETAG_HEADER,
}


@router.get(
    "",
    response_model=list[TaskPublic],
    responses={200: {"headers": LIST_HEADERS}, 304: NOT_MODIFIED},
    summary="List the caller's tasks",
    # Parsed by _list_query from the query string in one validation (FastAPI's per-parameter
    # parsing of a query model cost more than the database round trip: docs/performance.md).
    openapi_extra={"parameters": [*query_parameters(TaskListQuery), IF_NONE_MATCH]},
)
async def list_tasks(
    caller: CurrentUser, database: DatabaseDep, query: ListQuery, request: Request
) -> Response:
    """A bare JSON array, newest first by default. ``X-Total-Count`` counts every task matching
    the filter; ``Link: <...>; rel="next"`` carries a keyset cursor when there is another page;
    ``ETag`` changes whenever the page would (``If-None-Match``: 304)."""
    limit = request.app.state.settings.max_tasks_per_user
    long_page = query.limit > LONG_PAGE_ROWS  # one at a time per user (core/fairness.py)
    async with request.app.state.long_pages.turn(caller.id) if long_page else nullcontext():
        page = await task_store.list_page(database, caller.id, query, count_limit=limit)
    headers = {"X-Total-Count": str(page.total), "ETag": page.etag}
    if page.next is not None:
        kept = [
            (k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "offset")
        ]
        params = QueryParams([*kept, ("cursor", page.next.encode())])
        headers["Link"] = f'<{_path(request)}?{params}>; rel="next"'
    unchanged = not_modified(request, page.etag)
    if unchanged is not None:
        unchanged.headers.update({k: v for k, v in headers.items() if k != "ETag"})
        return unchanged
    return json_response(page.tasks, headers=headers)


@router.post(
    "",
    status_code=201,
    response_model=TaskPublic,
    responses={201: {"headers": CREATED_HEADERS}, **WRITE_ERRORS, **error_responses(413)},
    summary="Create a task",
    openapi_extra={"parameters": [IDEMPOTENCY_KEY_PARAMETER]},
)
async def create_task(
    body: TaskCreate, caller: CurrentUser, database: DatabaseDep, request: Request
) -> Response:
    """201 with the new task; 409 once the caller has ``MAX_TASKS_PER_USER`` tasks."""
    cap = request.app.state.settings.max_tasks_per_user

    async def create(conditions: Preconditions) -> Written:
        return await task_store.create(database, caller.id, body, cap=cap, key=conditions.key)

    return await written_once(request, create)


@router.get(
    "/{task_id}",
    response_model=TaskPublic,
    responses={200: {"headers": ETAG_HEADER}, 304: NOT_MODIFIED, **error_responses(404)},
    summary="Get one task",
    openapi_extra={"parameters": [IF_NONE_MATCH]},
)
async def get_task(
    task_id: TaskId, caller: CurrentUser, database: DatabaseDep, request: Request
) -> Response:
    found = await task_store.get_versioned(database, caller.id, task_id)
    if found is None or found.version is None:
        raise HTTPException(404, "Task not found")
    unchanged = not_modified(request, etag(found.version))
    return unchanged or answer(found, request)


@router.put(
    "/{task_id}",
    response_model=TaskPublic,
    responses={200: {"headers": ETAG_HEADER}, **WRITE_ERRORS, **error_responses(404, 412, 413)},
    summary="Update a task",
    openapi_extra={"parameters": CONDITIONAL_WRITE},
)
async def update_task(
    task_id: TaskId, body: TaskUpdate, caller: CurrentUser, database: DatabaseDep, request: Request
) -> Response:
    """Partial update: only the fields sent change (frontends send ``Partial<Task>``);
    ``"description": null`` clears the description."""
    return await _update(request, database, caller.id, task_id, body)


@router.patch(
    "/{task_id}",
    response_model=TaskPublic,
    responses={200: {"headers": ETAG_HEADER}, **WRITE_ERRORS, **error_responses(404, 412, 413)},
    summary="Update a task",
    openapi_extra={"parameters": CONDITIONAL_WRITE},
)
async def patch_task(
    task_id: TaskId, body: TaskUpdate, caller: CurrentUser, database: DatabaseDep, request: Request
) -> Response:
    """The same partial update as PUT."""
    return await _update(request, database, caller.id, task_id, body)


async def _update(
    request: Request, database: Database, owner: str, task_id: int, body: TaskUpdate
) -> Response:
    async def update(conditions: Preconditions) -> Written:
        return await task_store.update(
            database,
            owner,
            task_id,
            body.changes(),
            expected=conditions.expected,
            key=conditions.key,
        )

    return await written_once(request, update)


@router.patch(
    "/{task_id}/complete",
    response_model=TaskPublic,
    responses={200: {"headers": ETAG_HEADER}, **WRITE_ERRORS, **error_responses(404, 412, 413)},
    summary="Toggle completion, or set it",
    openapi_extra={"parameters": CONDITIONAL_WRITE},
)
async def complete_task(
    task_id: TaskId,
    caller: CurrentUser,
    database: DatabaseDep,
    request: Request,
    body: Annotated[TaskCompletion | None, Body()] = None,
) -> Response:
    """No body or ``{}``: toggle, atomically. ``{"completed": true|false}``: set it (idempotent:
    repeating it changes nothing, not even ``updated_at``). Any other body is a 400 that says
    what to send: ``{"completed": null}``, ``{"done": true}`` or ``{"completed": "yes"}`` never
    toggles a task by accident."""
    if body is None and (await request.body()).strip():
        # A JSON ``null`` body reaches here as no body at all: it is not one of the two shapes.
        raise RequestValidationError(
            [{"loc": ("body",), "msg": COMPLETION_BODY, "type": "completion_body"}]
        )
    wanted = None if body is None else body.completed

    async def complete(conditions: Preconditions) -> Written:
        expected, key = conditions.expected, conditions.key
        if wanted is None:
            return await task_store.toggle(database, caller.id, task_id, expected=expected, key=key)
        return await task_store.set_completed(
            database, caller.id, task_id, wanted, expected=expected, key=key
        )

    return await written_once(request, complete)


@router.delete(
    "/{task_id}",
    response_model=TaskPublic,
    responses={**WRITE_ERRORS, **error_responses(404, 412)},
    summary="Delete a task",
    openapi_extra={"parameters": CONDITIONAL_WRITE},
)
async def delete_task(
    task_id: TaskId, caller: CurrentUser, database: DatabaseDep, request: Request
) -> Response:
    """Answers 200 with the deleted task (clients that parse every success as JSON keep working);
    deleting it again is 404."""

    async def delete(conditions: Preconditions) -> Written:
        return await task_store.delete(
            database, caller.id, task_id, expected=conditions.expected, key=conditions.key
        )

    return await written_once(request, delete)
