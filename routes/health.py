"""Liveness (the process answers) and readiness (the database answers)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from core.errors import ServiceUnavailable, error_responses
from db import SCHEMA_NOT_MIGRATED, Database, get_database, revisions_behind_head

router = APIRouter(prefix="/health", tags=["health"])
NOT_SERVABLE = revisions_behind_head()
SHUTTING_DOWN = "Shutting down: send new requests to another replica"


class Health(BaseModel):
    status: str


@router.get("", response_model=Health, summary="Liveness: never touches the database")
async def liveness() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Health,
    responses=error_responses(503),
    summary="Readiness: the database answers, its schema is migrated, and no shutdown has begun",
)
async def readiness(
    database: Annotated[Database, Depends(get_database)], request: Request
) -> Health:
    # A database failure raises a 503 with Retry-After. (HEAD works too: load balancers and
    # uptime monitors often probe with it; core.middleware.RequestShapeMiddleware.)
    if request.app.state.drain.draining:
        # SIGTERM arrived: the balancer takes this replica out before it stops accepting.
        raise ServiceUnavailable(SHUTTING_DOWN)
    if await database.schema_revision() in NOT_SERVABLE:
        # Production migrates before rollout (`make migrate`); until then, take no traffic.
        raise ServiceUnavailable(SCHEMA_NOT_MIGRATED)
    return Health(status="ready")
