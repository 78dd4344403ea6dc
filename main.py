"""The application factory: settings, middleware, error handlers, routers. Nothing else."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import httpx2 as httpx
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from pydantic import ValidationError

from auth import bearer_scheme, path_user_is_caller
from core.config import ConfigurationError, Settings, get_settings
from core.errors import (
    RETRY_AFTER_SECONDS,
    error_responses,
    install_error_handlers,
)
from core.fairness import FairShare
from core.jwks import JwksCache
from core.logs import configure_logging
from core.middleware import (
    JsonCORSMiddleware,
    RequestContextMiddleware,
    RequestShapeMiddleware,
)
from core.openapi import finish_openapi
from core.rate_limit import WriteRateLimit
from core.shutdown import Drain, readiness_drops_first
from core.tokens import TokenVerifier
from db import DatabaseUnreachable, migrate_for_development, open_database
from routes import health, tasks

log = logging.getLogger("taskapi")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    for warning in settings.check_startup():  # raises ConfigurationError in production
        log.warning("insecure configuration (development only): %s", warning)

    database = open_database(settings)
    if settings.environment == "development":
        # Production migrates once, before rollout: `make migrate`. Raises DatabaseUnreachable
        # with one line to show the developer.
        migrate_for_development(settings, database)

    drain = Drain()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with readiness_drops_first(drain, settings.shutdown_delay_seconds):
            async with _verifier(app, settings):
                yield
        await database.close()

    app = FastAPI(
        title="Task API",
        version="1.0.0",
        description="Per-user tasks for Next.js + Better Auth apps. Send a Bearer JWT.",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry asks the providers on every request; this service
        # exports none (its own JSON log line per request is the record).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        redirect_slashes=False,  # RequestShapeMiddleware serves /api/tasks/ as /api/tasks
    )
    app.state.settings = settings
    app.state.database = database
    app.state.drain = drain
    share = settings.per_user_queue, settings.per_user_wait_seconds
    app.state.fair_share = FairShare(settings.per_user_concurrency, *share)
    app.state.long_pages = FairShare(1, *share)  # core/fairness.py: one long page at a time
    app.state.write_rate = WriteRateLimit(*settings.write_rate)

    install_error_handlers(app)
    finish_openapi(app, bearer_scheme)
    # Added innermost first. Outermost: request id and access log, then CORS (so every answer,
    # 413 and 500 included, carries CORS headers), then the request's shape (trailing slash,
    # HEAD, body limit) and the 500 catch-all, around routing.
    app.add_middleware(RequestShapeMiddleware)
    app.add_middleware(
        JsonCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "X-Request-ID",
            "If-Match",
            "If-None-Match",
            "Idempotency-Key",
        ],
        expose_headers=[
            "X-Total-Count",
            "Link",
            "Location",
            "X-Request-ID",
            "Retry-After",
            "ETag",
            "Idempotent-Replayed",
        ],
        max_age=600,
    )
    app.add_middleware(RequestContextMiddleware)

    app.include_router(health.router)
    app.include_router(tasks.router, prefix="/api/tasks", generate_unique_id_function=_route_name)
    # Compatibility alias for hackathon-style frontends: the same handlers; the path may only
    # repeat the token's subject (else 403), and identity still comes from the token alone.
    app.include_router(
        tasks.router,
        prefix="/api/{user_id}/tasks",
        tags=["tasks (user path alias)"],
        dependencies=[Depends(path_user_is_caller)],
        responses=error_responses(403),
        generate_unique_id_function=_alias_route_name,
    )
    return app


@asynccontextmanager
async def _verifier(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """The token verifier, with its JWKS client when JWKS mode is on, for the app's lifetime."""
    async with httpx.AsyncClient(timeout=5.0, follow_redirects=False) as client:
        jwks = None
        if settings.jwks_url:
            # After a failed fetch, the next one is allowed when the 503 says to retry.
            retry = float(RETRY_AFTER_SECONDS)
            jwks = JwksCache(settings.jwks_url, client, retry_interval=retry)
        app.state.verifier = TokenVerifier(settings, jwks)
        yield
        if jwks is not None:
            await jwks.aclose()


def _route_name(route: APIRoute) -> str:
    return route.name  # operation ids: list_tasks, create_task, ...


def _alias_route_name(route: APIRoute) -> str:
    return f"{route.name}_user_path"


def _describe(error: ValidationError) -> str:
    """``DATABASE_URL: is not a database URL ...``: the variable and the problem, never the value
    (it may hold a password or the secret)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']).upper()}: "
        + item["msg"].removeprefix("Value error, ")
        for item in error.errors(include_input=False, include_url=False)
    )


@lru_cache(maxsize=1)
def _default_app() -> FastAPI:
    try:
        return create_app()
    except ConfigurationError as exc:
        # One readable line for the operator instead of a traceback through uvicorn.
        raise SystemExit(f"Task API configuration error: {exc}") from None
    except DatabaseUnreachable as exc:
        raise SystemExit(f"Task API: {exc}") from None
    except ValidationError as exc:
        raise SystemExit(f"Task API configuration error: {_describe(exc)}") from None


def __getattr__(name: str) -> Any:
    # `uvicorn main:app` builds the app from the environment on first access; importing this
    # module (tests, tools) reads no configuration and opens nothing.
    if name == "app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
