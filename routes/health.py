"""Liveness (the process answers) and readiness (the database answers)."""

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from core.errors import error_responses
from db import Database, get_database

router = APIRouter(prefix="/health", tags=["health"])


class Health(BaseModel):
    status: str


@router.get("", response_model=Health, summary="Liveness: never touches the database")
async def liveness() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Health,
    responses=error_responses(503),
    summary="Readiness: the database answers a query",
)
async def readiness(database: Annotated[Database, Depends(get_database)]) -> Health:
    # A database failure raises, and the error handlers turn it into a 503 with Retry-After.
    await database.ping()
    return Health(status="ready")
