"""The task endpoints, under ``/api/tasks`` and the ``/api/{user_id}/tasks`` alias.

Isolation by construction: every statement below starts from ``owned_by()`` and runs with
``as_caller(caller)``, the token's subject; another user's row is never in it, so it answers 404
exactly like a missing one (FR-007, US1-3).
Every write is one statement (``INSERT/UPDATE/DELETE ... RETURNING``): the toggle is atomic and
no read-modify-write race can lose an update.

Responses are built once: the selected columns are exactly ``TaskPublic``'s fields, already typed
by the table (timestamps timezone-aware UTC), so each row goes straight to JSON bytes (orjson)
instead of being validated again against ``response_model``, which stays declared for the
OpenAPI document. The bytes are the ones pydantic would write for ``TaskPublic``
(tests/test_performance_contract.py compares them); docs/performance.md has the profiles.
"""

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.sql import Executable, Select, Update
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
    SortKey,
    StatusValue,
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


async def _database(request: Request) -> Database:
    # async: FastAPI runs a plain ``def`` dependency on a worker thread, a hop per request.
    return get_database(request)


DatabaseDep = Annotated[Database, Depends(_database)]
TaskId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="The task's id")]


async def _list_query(request: Request, query: Annotated[TaskListQuery, Query()]) -> TaskListQuery:
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

# Statements are built once, with placeholders, and executed with values: building one (and
# computing its SQL cache key) per request cost more than running it (docs/performance.md).
OWNER = bindparam("owner", type_=tasks.c.user_id.type, required=True)
TASK_ID = bindparam("task_id", type_=tasks.c.id.type, required=True)
NOW = bindparam("now", type_=tasks.c.updated_at.type, required=True)


def owned_by() -> ColumnElement[bool]:
    """The one place that says which rows a caller may see or change.

    Every statement below starts from it and runs with ``as_caller(caller)``: the token's subject
    is the only value the placeholder is ever given, and SQLAlchemy refuses to run a statement
    whose placeholder has no value.
    """
    return tasks.c.user_id == OWNER


def as_caller(caller: Caller, **values: Any) -> dict[str, Any]:
    """The values to run a statement with: the caller's id last, so nothing can replace it."""
    return {**values, OWNER.key: caller.id}


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


# ---- statements, built once per shape -----------------------------------------------------------


@cache
def _filtered(status: StatusValue) -> ColumnElement[bool]:
    if status == "all":
        return owned_by()
    return and_(owned_by(), tasks.c.completed.is_(status == "completed"))


@cache
def _page_shape(status: StatusValue, sort: SortKey, descending: bool, after: bool) -> Select[Any]:
    scope = _filtered(status)
    key = SORT_COLUMNS[sort]
    page = select(*PUBLIC).where(scope)
    if after:
        row_value = tuple_(key, tasks.c.id)
        position = tuple_(
            bindparam("after_value", type_=key.type, required=True),
            bindparam("after_id", type_=tasks.c.id.type, required=True),
        )
        page = page.where(row_value < position if descending else row_value > position)
    order = (key.desc(), tasks.c.id.desc()) if descending else (key.asc(), tasks.c.id.asc())
    # The total rides along as an uncorrelated scalar subquery (evaluated once), and one extra
    # row tells whether a next page exists: a page is a single round trip.
    total = select(func.count()).select_from(tasks).where(scope).scalar_subquery()
    return (
        page.add_columns(total.label("total"))
        .order_by(*order)
        .offset(bindparam("offset", type_=BigInteger(), required=True))
        .limit(bindparam("limit", type_=Integer(), required=True))
    )


@cache
def _count_shape(status: StatusValue) -> Select[Any]:
    return select(func.count()).select_from(tasks).where(_filtered(status))


def page_statement(caller: Caller, query: TaskListQuery) -> tuple[Select[Any], dict[str, Any]]:
    """The statement for one page of the caller's list, and the values to run it with."""
    position = query.position
    shape = _page_shape(query.status_value, query.sort_key, query.descending, position is not None)
    values = as_caller(caller, offset=query.offset, limit=query.limit + 1)
    if position is not None:
        values.update(after_value=position.value, after_id=position.id)
    return shape, values


GET_ONE = select(*PUBLIC).where(owned_by(), tasks.c.id == TASK_ID)
DELETE_ONE = delete(tasks).where(owned_by(), tasks.c.id == TASK_ID).returning(*PUBLIC)
CREATE = (
    insert(tasks)
    .values(
        user_id=OWNER,
        title=bindparam("title", type_=tasks.c.title.type, required=True),
        description=bindparam("description", type_=tasks.c.description.type, required=True),
        completed=bindparam("completed", type_=tasks.c.completed.type, required=True),
        created_at=NOW,
        updated_at=NOW,
    )
    .returning(*PUBLIC)
)


def _update_shape(values: Mapping[str, Any]) -> Update:
    """One UPDATE of the caller's task; ``updated_at`` moves only if something really changed."""
    changed = or_(*(tasks.c[name].is_distinct_from(value) for name, value in values.items()))
    return (
        update(tasks)
        .where(owned_by(), tasks.c.id == TASK_ID)
        .values(**values, updated_at=case((changed, NOW), else_=tasks.c.updated_at))
        .returning(*PUBLIC)
    )


TOGGLE = _update_shape({"completed": ~tasks.c.completed})


@cache
def _set_shape(fields: frozenset[str]) -> Update:
    # "set_" + name: SQLAlchemy keeps a column's own name for the SET clause's parameters.
    return _update_shape(
        {name: bindparam(f"set_{name}", type_=tasks.c[name].type) for name in sorted(fields)}
    )


# ---- units of work: each runs in one transaction on a database thread ---------------------------
# Core statements run on the session's connection: Session.execute would send them through the
# ORM's execution path, which costs more than the query (docs/performance.md).


def _list(session: Session, caller: Caller, query: TaskListQuery) -> tuple[Sequence[Row[Any]], int]:
    connection = session.connection()
    statement, values = page_statement(caller, query)
    rows = connection.execute(statement, values).all()
    if rows:
        return rows, int(rows[0].total)
    # An empty page (past the end) still reports the total.
    count = connection.execute(_count_shape(query.status_value), as_caller(caller))
    return rows, int(count.scalar_one())


def _run_one(session: Session, statement: Executable, values: dict[str, Any]) -> Row[Any] | None:
    return session.connection().execute(statement, values).one_or_none()


def _update(
    session: Session, caller: Caller, task_id: int, changes: dict[str, Any]
) -> Row[Any] | None:
    """Set the fields in ``changes`` (none: just read the task)."""
    if not changes:
        return _run_one(session, GET_ONE, as_caller(caller, task_id=task_id))
    new = {f"set_{name}": value for name, value in changes.items()}
    values = as_caller(caller, task_id=task_id, now=utc_now(), **new)
    return _run_one(session, _set_shape(frozenset(changes)), values)


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
    values = as_caller(caller, **body.model_dump(), now=utc_now())
    row = found(await database.run(lambda session: _run_one(session, CREATE, values)))
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
    values = as_caller(caller, task_id=task_id)
    return task_response(await database.run(lambda session: _run_one(session, GET_ONE, values)))


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
    if wanted is not None:
        changes = {"completed": wanted}
        row = await database.run(lambda session: _update(session, caller, task_id, changes))
    else:
        # "now" read on the database thread, as _update does: not before the wait for a connection.
        row = await database.run(
            lambda session: _run_one(
                session, TOGGLE, as_caller(caller, task_id=task_id, now=utc_now())
            )
        )
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
    values = as_caller(caller, task_id=task_id)
    return task_response(await database.run(lambda session: _run_one(session, DELETE_ONE, values)))
