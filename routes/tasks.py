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

from collections.abc import Mapping
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
from db import Database, get_database
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
from task_store import TaskRecord

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


def found(task: TaskRecord | None) -> Response:
    if task is None:
        raise HTTPException(404, "Task not found")
    return json_response(task)


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
CREATED_HEADERS = {
    "Location": {
        "description": "The new task's path",
        "required": True,
        "schema": {"type": "string"},
    }
}


@router.get(
    "",
    response_model=list[TaskPublic],
    responses={200: {"headers": LIST_HEADERS}},
    summary="List the caller's tasks",
    # Parsed by _list_query from the query string in one validation (FastAPI's per-parameter
    # parsing of a query model cost more than the database round trip: docs/performance.md).
    openapi_extra={"parameters": query_parameters(TaskListQuery)},
)
async def list_tasks(
    caller: CurrentUser, database: DatabaseDep, query: ListQuery, request: Request
) -> Response:
    """A bare JSON array, newest first by default. ``X-Total-Count`` counts every task matching
    the filter; ``Link: <...>; rel="next"`` carries a keyset cursor when there is another page."""
    limit = request.app.state.settings.max_tasks_per_user
    page = await task_store.list_page(database, caller.id, query, count_limit=limit)
    headers = {"X-Total-Count": str(page.total)}
    if page.next is not None:
        kept = [
            (k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "offset")
        ]
        params = QueryParams([*kept, ("cursor", page.next.encode())])
        headers["Link"] = f'<{_path(request)}?{params}>; rel="next"'
    return json_response(page.tasks, headers=headers)


@router.post(
    "",
    status_code=201,
    response_model=TaskPublic,
    responses={201: {"headers": CREATED_HEADERS}, **error_responses(413)},
    summary="Create a task",
)
async def create_task(
    body: TaskCreate, caller: CurrentUser, database: DatabaseDep, request: Request
) -> Response:
    task = await task_store.create(database, caller.id, body)
    return json_response(task, 201, {"Location": f"{_path(request)}/{task['id']}"})


@router.get(
    "/{task_id}", response_model=TaskPublic, responses=error_responses(404), summary="Get one task"
)
async def get_task(task_id: TaskId, caller: CurrentUser, database: DatabaseDep) -> Response:
    return found(await task_store.get(database, caller.id, task_id))


@router.put(
    "/{task_id}",
    response_model=TaskPublic,
    responses=error_responses(404, 413),
    summary="Update a task",
)
async def update_task(
    task_id: TaskId, body: TaskUpdate, caller: CurrentUser, database: DatabaseDep
) -> Response:
    """Partial update: only the fields sent change (frontends send ``Partial<Task>``);
    ``"description": null`` clears the description."""
    return found(await task_store.update(database, caller.id, task_id, body.changes()))


@router.patch(
    "/{task_id}",
    response_model=TaskPublic,
    responses=error_responses(404, 413),
    summary="Update a task",
)
async def patch_task(
    task_id: TaskId, body: TaskUpdate, caller: CurrentUser, database: DatabaseDep
) -> Response:
    """The same partial update as PUT."""
    return found(await task_store.update(database, caller.id, task_id, body.changes()))


@router.patch(
    "/{task_id}/complete",
    response_model=TaskPublic,
    responses=error_responses(404, 413),
    summary="Toggle completion, or set it",
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
    if body is None or body.completed is None:
        return found(await task_store.toggle(database, caller.id, task_id))
    return found(await task_store.set_completed(database, caller.id, task_id, body.completed))


@router.delete(
    "/{task_id}",
    response_model=TaskPublic,
    responses=error_responses(404),
    summary="Delete a task",
)
async def delete_task(task_id: TaskId, caller: CurrentUser, database: DatabaseDep) -> Response:
    """Answers 200 with the deleted task (clients that parse every success as JSON keep working);
    deleting it again is 404."""
    return found(await task_store.delete(database, caller.id, task_id))
