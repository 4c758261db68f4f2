"""Liveness, readiness and metrics."""

from typing import Annotated

from dependency_injector.wiring import inject
from fastapi import APIRouter, Depends
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from adapters.database import Database
from entrypoints.container import Container
from entrypoints.http import schemas
from entrypoints.http.dependencies import Provided
from entrypoints.http.openapi import problems
from entrypoints.http.problems import problem

router = APIRouter(tags=["operations"])
OK = b'{"status":"ok"}'


@router.get("/health/live", summary="Liveness", response_model=schemas.Status)
async def live() -> Response:
    """The process is up. Touches no database."""
    return Response(OK, media_type="application/json")


@router.get(
    "/health/ready",
    summary="Readiness",
    response_model=schemas.Status,
    responses=problems(503),
)
@inject
async def ready(database: Annotated[Database, Depends(Provided[Container.database])]) -> Response:
    """The database answers. Recovers by itself when the database comes back."""
    if await database.ping():
        return Response(OK, media_type="application/json")
    return problem(503, "service_unavailable", "The database is not reachable.")


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
