"""Liveness (the process answers) and readiness (the database answers)."""

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from core.errors import ServiceUnavailable, error_responses
from db import SCHEMA_NOT_MIGRATED, Database, get_database, revisions_behind_head

router = APIRouter(prefix="/health", tags=["health"])
NOT_SERVABLE = revisions_behind_head()


class Health(BaseModel):
    status: str


@router.get("", response_model=Health, summary="Liveness: never touches the database")
async def liveness() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Health,
    responses=error_responses(503),
    summary="Readiness: the database answers and its schema is migrated",
)
async def readiness(database: Annotated[Database, Depends(get_database)]) -> Health:
    # A database failure raises a 503 with Retry-After. (HEAD works too: load balancers and
    # uptime monitors often probe with it; core.middleware.HeadMiddleware.)
    if await database.schema_revision() in NOT_SERVABLE:
        # Production migrates before rollout (`make migrate`); until then, take no traffic.
        raise ServiceUnavailable(SCHEMA_NOT_MIGRATED)
    return Health(status="ready")
