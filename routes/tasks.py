"""The task endpoints, under ``/api/tasks`` and the ``/api/{user_id}/tasks`` alias.

Isolation by construction: every statement below starts from ``owned_by(caller)``; another
user's row is never in it, so it answers 404 exactly like a missing one (FR-007, US1-3).
Every write is one statement (``INSERT/UPDATE/DELETE ... RETURNING``): the toggle is atomic and
no read-modify-write race can lose an update.

Responses are built once: the selected columns are exactly ``TaskPublic``'s fields, already typed
by the table (timestamps timezone-aware UTC), so each row goes straight to JSON bytes (orjson)
instead of being validated again against ``response_model``, which stays declared for the
OpenAPI document. The bytes are the ones pydantic would write for ``TaskPublic``
(tests/test_performance_contract.py compares them); docs/performance.md has the profiles.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.sql import Select
from sqlmodel import Session
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException

from auth import AuthenticatedRoute, Caller, CurrentUser, path_user_is_caller
from core.errors import error_responses
from db import Database, get_database
from models import tasks, utc_now
from schemas import (
    MAX_BIGINT,
    Cursor,
    TaskCompletion,
    TaskCreate,
    TaskListQuery,
    TaskPublic,
    TaskUpdate,
)

_COMMON = error_responses(400, 401, 503)
router = APIRouter(
    prefix="/api/tasks", tags=["tasks"], responses=_COMMON, route_class=AuthenticatedRoute
)
# Compatibility alias for hackathon-style frontends. The path may only repeat the token's
# subject (else 403); identity still comes from the token alone.
user_path_router = APIRouter(
    prefix="/api/{user_id}/tasks",
    tags=["tasks (user path alias)"],
    responses={**_COMMON, **error_responses(403)},
    dependencies=[Depends(path_user_is_caller)],
    route_class=AuthenticatedRoute,
)
Handler = TypeVar("Handler", bound=Callable[..., Any])


def endpoint(
    method: str, path: str, *, name: str | None = None, **options: Any
) -> Callable[[Handler], Handler]:
    """Register a handler under /api/tasks and under the /api/{user_id}/tasks alias.

    A GET also answers HEAD (RFC 9110 §9.3.2: the same headers, no body), undocumented: e.g.
    ``HEAD /api/tasks`` reads X-Total-Count without the list.
    """

    def register(handler: Handler) -> Handler:
        operation = name or handler.__name__
        for target, operation_id in (
            (router, operation),
            (user_path_router, f"{operation}_user_path"),
        ):
            target.add_api_route(
                path,
                handler,
                methods=[method],
                name=operation_id,
                operation_id=operation_id,
                **options,
            )
            if method == "GET":
                target.add_api_route(
                    path,
                    handler,
                    methods=["HEAD"],
                    name=f"{operation_id}_head",
                    include_in_schema=False,
                    **options,
                )
        return handler

    return register


DatabaseDep = Annotated[Database, Depends(get_database)]
TaskId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="The task's id")]


def _list_query(request: Request, query: Annotated[TaskListQuery, Query()]) -> TaskListQuery:
    """The list parameters, refusing a repeated one (``?status=all&status=completed``)."""
    repeated = [n for n in TaskListQuery.model_fields if len(request.query_params.getlist(n)) > 1]
    if repeated:
        raise RequestValidationError(
            [
                {"loc": ("query", name), "msg": "given more than once", "type": "duplicate"}
                for name in repeated
            ]
        )
    return query


ListQuery = Annotated[TaskListQuery, Depends(_list_query)]

# Exactly the columns of TaskPublic: queries select what they return and nothing more.
FIELDS = tuple(TaskPublic.model_fields)
PUBLIC = tuple(tasks.c[name] for name in FIELDS)
SORT_COLUMNS = {
    "created": tasks.c.created_at,
    "updated": tasks.c.updated_at,
    "title": tasks.c.title,
}
NOT_FOUND = error_responses(404)
WITH_BODY = error_responses(404, 413)


def owned_by(caller: Caller) -> ColumnElement[bool]:
    """The one place that says which rows a caller may see or change."""
    return tasks.c.user_id == caller.id


def found(row: Row[Any] | None) -> Row[Any]:
    if row is None:
        raise HTTPException(404, "Task not found")
    return row


def _task(row: Row[Any]) -> dict[str, Any]:
    return dict(zip(FIELDS, row, strict=False))  # rows may carry extra columns (the total)


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Tasks as JSON, as pydantic writes them (datetimes in UTC end in ``Z``), in one pass."""
    body = orjson.dumps(content, option=orjson.OPT_UTC_Z)
    return Response(body, status_code, headers, media_type="application/json")


def task_response(row: Row[Any] | None, status_code: int = 200) -> Response:
    return json_response(_task(found(row)), status_code)


# ---- units of work: each runs in one transaction on a database thread ---------------------------


def _filtered(caller: Caller, query: TaskListQuery) -> ColumnElement[bool]:
    if query.status_value == "all":
        return owned_by(caller)
    return and_(owned_by(caller), tasks.c.completed.is_(query.status_value == "completed"))


def _page_statement(caller: Caller, query: TaskListQuery) -> Select[Any]:
    scope = _filtered(caller, query)
    key = SORT_COLUMNS[query.sort_key]
    page = select(*PUBLIC).where(scope)
    if (position := query.position) is not None:
        row_value = tuple_(key, tasks.c.id)
        after = tuple_(literal(position.value, key.type), literal(position.id, tasks.c.id.type))
        page = page.where(row_value < after if query.descending else row_value > after)
    order = (key.desc(), tasks.c.id.desc()) if query.descending else (key.asc(), tasks.c.id.asc())
    # The total rides along as an uncorrelated scalar subquery (evaluated once), and one extra
    # row tells whether a next page exists: a page is a single round trip.
    total = select(func.count()).select_from(tasks).where(scope).scalar_subquery()
    return (
        page.add_columns(total.label("total"))
        .order_by(*order)
        .offset(query.offset)
        .limit(query.limit + 1)
    )


def _list(session: Session, caller: Caller, query: TaskListQuery) -> tuple[Sequence[Row[Any]], int]:
    rows = session.execute(_page_statement(caller, query)).all()
    if rows:
        return rows, int(rows[0].total)
    # An empty page (past the end) still reports the total.
    count = select(func.count()).select_from(tasks).where(_filtered(caller, query))
    return rows, int(session.execute(count).scalar_one())


def _get(session: Session, caller: Caller, task_id: int) -> Row[Any] | None:
    statement = select(*PUBLIC).where(owned_by(caller), tasks.c.id == task_id)
    return session.execute(statement).one_or_none()


def _update(
    session: Session, caller: Caller, task_id: int, values: dict[str, Any]
) -> Row[Any] | None:
    """Apply ``values`` in one UPDATE; ``updated_at`` moves only if something really changed."""
    if not values:
        return _get(session, caller, task_id)
    changed = or_(*(tasks.c[name].is_distinct_from(value) for name, value in values.items()))
    statement = (
        update(tasks)
        .where(owned_by(caller), tasks.c.id == task_id)
        .values(**values, updated_at=case((changed, utc_now()), else_=tasks.c.updated_at))
        .returning(*PUBLIC)
    )
    return session.execute(statement).one_or_none()


def _header_path(request: Request) -> str:
    # The alias path holds a user id, which may be any Unicode: headers must be ASCII.
    return quote(request.url.path.rstrip("/"), safe="/")


def _next_link(request: Request, query: TaskListQuery, last: Row[Any]) -> str:
    cursor = Cursor(
        sort=query.sort_key,
        desc=query.descending,
        status=query.status_value,
        value=getattr(last, SORT_COLUMNS[query.sort_key].name),
        id=last.id,
    )
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "offset")]
    params = QueryParams([*kept, ("cursor", cursor.encode())])
    return f'<{_header_path(request)}?{params}>; rel="next"'


# ---- endpoints ---------------------------------------------------------------------------------


@endpoint("GET", "", response_model=list[TaskPublic], summary="List the caller's tasks")
async def list_tasks(
    caller: CurrentUser,
    database: DatabaseDep,
    query: ListQuery,
    request: Request,
) -> Response:
    """A bare JSON array, newest first by default. ``X-Total-Count`` counts every task matching
    the filter; ``Link: <...>; rel="next"`` carries a keyset cursor when there is another page."""
    rows, total = await database.run(lambda session: _list(session, caller, query))
    headers = {"X-Total-Count": str(total)}
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        headers["Link"] = _next_link(request, query, rows[-1])
    return json_response([_task(row) for row in rows], headers=headers)


@endpoint(
    "POST",
    "",
    status_code=201,
    response_model=TaskPublic,
    responses=error_responses(413),
    summary="Create a task",
)
async def create_task(
    body: TaskCreate,
    caller: CurrentUser,
    database: DatabaseDep,
    request: Request,
) -> Response:
    now = utc_now()
    statement = (
        insert(tasks)
        .values(user_id=caller.id, **body.model_dump(), created_at=now, updated_at=now)
        .returning(*PUBLIC)
    )
    row = await database.run(lambda session: session.execute(statement).one())
    location = {"Location": f"{_header_path(request)}/{row.id}"}
    return json_response(_task(row), 201, location)


@endpoint(
    "GET",
    "/{task_id}",
    response_model=TaskPublic,
    responses=NOT_FOUND,
    summary="Get one task",
)
async def get_task(task_id: TaskId, caller: CurrentUser, database: DatabaseDep) -> Response:
    return task_response(await database.run(lambda session: _get(session, caller, task_id)))


@endpoint(
    "PUT",
    "/{task_id}",
    response_model=TaskPublic,
    responses=WITH_BODY,
    summary="Update a task",
)
@endpoint(
    "PATCH",
    "/{task_id}",
    name="patch_task",
    response_model=TaskPublic,
    responses=WITH_BODY,
    summary="Update a task",
)
async def update_task(
    task_id: TaskId, body: TaskUpdate, caller: CurrentUser, database: DatabaseDep
) -> Response:
    """Partial update: only the fields sent change (frontends send ``Partial<Task>``);
    ``"description": null`` clears the description."""
    changes = body.changes()
    row = await database.run(lambda session: _update(session, caller, task_id, changes))
    return task_response(row)


@endpoint(
    "PATCH",
    "/{task_id}/complete",
    response_model=TaskPublic,
    responses=WITH_BODY,
    summary="Toggle completion, or set it",
)
async def complete_task(
    task_id: TaskId,
    caller: CurrentUser,
    database: DatabaseDep,
    body: Annotated[TaskCompletion | None, Body()] = None,
) -> Response:
    """No body (or no ``completed``): toggle, atomically. ``{"completed": true|false}``: set it
    (idempotent: repeating it changes nothing, not even ``updated_at``)."""
    wanted = body.completed if body is not None else None
    values = {"completed": ~tasks.c.completed if wanted is None else wanted}
    row = await database.run(lambda session: _update(session, caller, task_id, values))
    return task_response(row)


@endpoint(
    "DELETE",
    "/{task_id}",
    response_model=TaskPublic,
    responses=NOT_FOUND,
    summary="Delete a task",
)
async def delete_task(task_id: TaskId, caller: CurrentUser, database: DatabaseDep) -> Response:
    """Answers 200 with the deleted task (clients that parse every success as JSON keep working);
    deleting it again is 404."""
    statement = delete(tasks).where(owned_by(caller), tasks.c.id == task_id).returning(*PUBLIC)
    return task_response(
        await database.run(lambda session: session.execute(statement).one_or_none())
    )
