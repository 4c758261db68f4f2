"""Liveness, readiness and metrics."""

from typing import Annotated

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from domain.ports import DatabaseProbe, SchemaBehind, SchemaProbe
from entrypoints.http.dependencies import use
from entrypoints.http.openapi import problems
from entrypoints.http.problems import problem
from entrypoints.presenters import Status

router = APIRouter(tags=["operations"])
# Included by the app unless METRICS_PORT serves the metrics on a port of their own.
metrics_router = APIRouter()
OK = b'{"status":"ok"}'


@router.get("/health/live", summary="Liveness", response_model=Status)
async def check_liveness() -> Response:
    """The process is up. Touches no database."""
    return Response(OK, media_type="application/json")


@router.get(
    "/health/ready",
    summary="Readiness",
    response_model=Status,
    responses=problems(503),
)
async def check_readiness(
    database: Annotated[DatabaseProbe, use(DatabaseProbe)],
    schema: Annotated[SchemaProbe, use(SchemaProbe)],
) -> Response:
    """The database answers and its schema is at the code's head revision (or past it,
    once a newer release has migrated), so a new release takes no traffic before its
    migrations have run. Recovers by itself when the database comes back."""
    if not await database.ping():
        return problem(503, "service_unavailable", "The database is not reachable.")
    lag = await schema.behind()
    if lag is not None:
        return _schema_behind(lag)
    return Response(OK, media_type="application/json")


def _schema_behind(lag: SchemaBehind) -> Response:
    at = ", ".join(lag.current) or "no revision"
    return problem(
        503,
        "service_unavailable",
        f"The database schema is behind the code: it is at {at}, the code needs"
        f" {', '.join(lag.head)}. Run `app db upgrade`.",
    )


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
