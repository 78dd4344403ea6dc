"""The OpenAPI document, finished: what FastAPI does not write (or writes differently) by itself.

- Validation errors are 400 here (listed per route), never FastAPI's 422 (the one 422 is an
  Idempotency-Key that came with another request).
- Every response carries ``X-Request-ID`` (core.middleware.RequestContextMiddleware).
- An optional body (``Model | None = None``) is optional, not nullable: FastAPI writes
  ``anyOf [model, null]``, which would invite a JSON ``null`` body.
- The bearer scheme: the task routes verify the token themselves (auth.AuthenticatedRoute), so
  no per-request security dependency declares it; every ``/api/`` operation is marked here.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.security import HTTPBearer

REQUEST_ID_HEADER = {
    "description": "The request's id (the caller's X-Request-ID when it is a plain token)",
    "schema": {"type": "string"},
}


def finish_openapi(app: FastAPI, bearer: HTTPBearer, secured_prefix: str = "/api/") -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _finished(build(), bearer, secured_prefix)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _finished(document: dict[str, Any], bearer: HTTPBearer, secured_prefix: str) -> dict[str, Any]:
    components = document.setdefault("components", {})
    name = bearer.scheme_name
    components.setdefault("securitySchemes", {})[name] = bearer.model.model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            if path.startswith(secured_prefix):
                operation["security"] = [{name: []}]
            _optional_body_is_not_nullable(operation)
            responses = operation.get("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]  # FastAPI's own; an Idempotency-Key's 422 stays
            for response in responses.values():
                response.setdefault("headers", {})["X-Request-ID"] = REQUEST_ID_HEADER
    schemas = components.get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def _optional_body_is_not_nullable(operation: dict[str, Any]) -> None:
    for media in operation.get("requestBody", {}).get("content", {}).values():
        options = media.get("schema", {}).get("anyOf", [])
        if len(options) == 2 and {"type": "null"} in options:
            media["schema"] = next(option for option in options if option != {"type": "null"})
