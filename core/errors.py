"""The error contract: every error is JSON ``{"detail": str}``, validation adds ``errors``.

Status codes (SPEC.md): 400 validation and malformed input (never FastAPI's 422), 401 auth,
403 path-user mismatch, 404 missing or not yours, 413 body too large, 500 unexpected,
503 database or JWKS unavailable (with Retry-After).
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from schemas import ErrorBody

log = logging.getLogger("taskapi.errors")

RETRY_AFTER_SECONDS = "2"


class ServiceUnavailable(HTTPException):
    """A dependency (database, JWKS) is down: 503 with Retry-After, so clients retry later."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, detail, headers={"Retry-After": RETRY_AFTER_SECONDS})


class CommitOutcomeUnknown(ServiceUnavailable):
    """The connection broke after a write was sent and before its answer came: the write may or
    may not be stored (the statement is its own transaction, so its COMMIT was in flight too).

    The only 503 after which a write can exist; every other 503 means nothing was written.
    """

    def __init__(self) -> None:
        super().__init__(
            "Database connection lost while saving: the change may or may not have been "
            "stored; read it back before retrying"
        )


def error_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


# What the OpenAPI document lists for every task operation.
_ERROR_DESCRIPTIONS = {
    400: "Invalid input: the detail says what to correct",
    401: "Missing, malformed, expired or untrusted token",
    403: "The user id in the path is not the token's subject",
    404: "No such task for this user",
    409: (
        "The per-user task limit is reached (create), or this Idempotency-Key's first request "
        "is still in flight"
    ),
    412: "If-Match named a version the task is no longer at; ETag has the current one",
    422: "This Idempotency-Key came with another request (method, path or body)",
    413: "Request body over 1 MiB",
    429: "Too many requests from this user at once (or too many writes); retry after Retry-After",
    500: "Unexpected error (a bug): a generic detail, never a trace",
    503: "Database or key server unavailable; retry after Retry-After seconds",
}
_RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'RFC 6750: `Bearer`, or `Bearer error="invalid_token"`',
            "schema": {"type": "string"},
        }
    },
    429: {"Retry-After": _RETRY_AFTER},
    503: {"Retry-After": _RETRY_AFTER},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for these statuses: the error body, and the headers each carries."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[status]}
        if status in _ERROR_HEADERS:
            response["headers"] = _ERROR_HEADERS[status]
        responses[status] = response
    return responses


_BODY_MESSAGES = {
    "json_invalid": "request body is not valid JSON",
    "missing": "request body is required",
    "model_attributes_type": "request body must be a JSON object",
    "dict_type": "request body must be a JSON object",
    "model_type": "request body must be a JSON object",
}


def _describe(error: Mapping[str, Any]) -> str:
    loc: Sequence[Any] = error.get("loc", ())
    kind = str(error.get("type", ""))
    if tuple(loc) == ("body",) or (kind == "json_invalid" and tuple(loc[:1]) == ("body",)):
        return _BODY_MESSAGES.get(kind, f"request body: {error.get('msg', 'invalid')}")
    where = ".".join(str(part) for part in loc[1:]) or str(loc[0] if loc else "request")
    return f"{where}: {error.get('msg', 'invalid')}"


def validation_body(errors: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    # Never echo the input back: it may be huge, or hold what the caller should not have sent.
    items = [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]
    detail = "; ".join(dict.fromkeys(_describe(e) for e in items)) or "invalid request"
    return {"detail": detail, "errors": items}


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    body = validation_body(exc.errors())
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not media_type.endswith("json") and any(
        e["loc"] == ["body"] and e["type"] != "missing" for e in body["errors"]
    ):
        # A body was sent but not as JSON: fetch() sends text/plain for a string body unless
        # told otherwise, and some clients send no Content-Type at all. Say what to do.
        body["detail"] = "request body must be JSON, sent with Content-Type: application/json"
    return JSONResponse(body, status_code=400)


# FastAPI's answer when a JSON body cannot be decoded at all (invalid UTF-8, a charset it cannot
# read, nesting too deep, a number too long): the same contract as any other malformed body.
_FASTAPI_PARSE_ERROR = "There was an error parsing the body"
_UNREADABLE_BODY = validation_body(
    [{"loc": ("body",), "msg": "could not be decoded as JSON", "type": "json_invalid"}]
)


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's);
    HEAD wherever GET is (core.middleware.RequestShapeMiddleware)."""
    routes = request.app.router.routes
    allowed = {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    }
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == _FASTAPI_PARSE_ERROR:
        return JSONResponse(_UNREADABLE_BODY, status_code=400)
    if isinstance(exc, ServiceUnavailable) and exc.__cause__ is not None:
        # A 503 caused by a failure (the database refused, dropped the connection, lost a
        # write's answer): the driver's message can hold host names and SQL, so the cause goes
        # to the log, never to the client.
        log.warning("%s: %s", exc.detail, type(exc.__cause__).__name__, exc_info=exc.__cause__)
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return error_response(exc.status_code, str(exc.detail), headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
