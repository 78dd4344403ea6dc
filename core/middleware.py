"""Pure ASGI middleware (no BaseHTTPMiddleware: it buffers and breaks streaming/cancellation)."""

import logging
import re
import time
import uuid

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import error_response
from core.logs import log_fields

log = logging.getLogger("taskapi.access")

MAX_BODY_BYTES = 1024 * 1024
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestContextMiddleware:
    """Request id, one structured log line per request, and security headers.

    Outermost, so it logs the status the client really got. Never logs headers, bodies, query
    strings or identities: tokens and user data stay out of logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                headers += [
                    (b"x-request-id", request_id.encode()),
                    (b"x-content-type-options", b"nosniff"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            fields = {
                "request_id": request_id,
                "method": scope["method"],
                "path": route_template(scope),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            log_fields(log, logging.INFO, "request", fields)


def route_template(scope: Scope) -> str:
    """The matched route's path template with its router's prefix (``/api/{user_id}/tasks/
    {task_id}``), never the concrete path. FastAPI keeps an included router's routes unprefixed
    and records the effective one (prefix included) in its own scope entry, which its
    OpenTelemetry support reads as ``http.route``; tests/test_operations.py checks both mounts.
    """
    effective = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(effective, "path_format", None) or getattr(scope.get("route"), "path", None)
    return template or "<unmatched>"


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in JSON like every other error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code >= 400:
            detail = bytes(response.body).decode()  # e.g. "Disallowed CORS origin"
            headers = {k: v for k, v in response.headers.items() if k != "content-length"}
            headers.pop("content-type", None)
            return error_response(response.status_code, detail, headers)
        return response


class RequestShapeMiddleware:
    """Inside CORS, around routing: what a request may look like, and what may escape from it.

    One layer for four small rules (every layer of middleware is a frame each await of every
    request passes through: docs/performance.md):

    - ``/api/tasks/`` is ``/api/tasks``: served directly, never redirected (a redirect would
      echo the Host header into ``Location`` and cost browsers a round trip);
    - HEAD is GET without the body (RFC 9110 §9.3.2): the same status and headers,
      ``Content-Length`` included, for every GET route (undocumented);
    - a body over ``max_bytes``, declared (Content-Length) or streamed (chunked), is a 413 when
      it is read, not on arrival: a route checks the caller first (auth's AuthenticatedRoute),
      so a request without a valid token, or for another user's path, gets its 401 or 403
      whatever its size, and nothing of the body is read;
    - an unexpected exception is a JSON 500 inside CORS, so browsers can read it (Starlette's
      own 500 handler sits outside every middleware); no stack trace or SQL reaches the body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = f"Request body is larger than {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        head = scope["method"] == "HEAD"
        if head or (len(path) > 1 and path.endswith("/")):
            scope = dict(scope)
            if head:
                scope["method"] = "GET"
            if len(path) > 1 and path.endswith("/"):
                raw: bytes = scope.get("raw_path") or path.encode()
                scope["path"] = path.rstrip("/") or "/"
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
        declared_too_large = False
        if declared is not None:
            try:
                declared_too_large = int(declared) > self.max_bytes
            except ValueError:
                await error_response(400, "Content-Length is not a number")(scope, receive, send)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            if declared_too_large:
                raise HTTPException(413, self.too_large)  # before a byte of it is read
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPExceptions from body reading; the handler answers 413.
                    raise HTTPException(413, self.too_large)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except Exception:
            log.exception("unhandled error", extra={"request_id": scope["state"].get("request_id")})
            if started:
                raise
            await error_response(500, "Internal server error")(scope, receive, send)
