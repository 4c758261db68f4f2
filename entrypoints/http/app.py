"""The HTTP app: the routes listed in ``entrypoints.http.routes``, the error table,
middleware and docs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from application.signing_keys import EnsureSigningKey
from domain.errors import DomainError
from domain.ports import RateLimits
from domain.signing_keys import KeySetCache
from entrypoints.http.client_ip import ClientIPResolver
from entrypoints.http.dependencies import check_ip_limits, install_services, used_by
from entrypoints.http.middleware import (
    AllowedHostsMiddleware,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    StartupErrorsMiddleware,
    UnhandledErrorMiddleware,
)
from entrypoints.http.openapi import install_docs, install_openapi, operation_id
from entrypoints.http.problems import (
    domain_error_handler,
    http_error_handler,
    request_validation_handler,
)
from entrypoints.http.route_index import install_route_index
from entrypoints.http.routes import ROUTERS
from entrypoints.http.routes.health import metrics_router
from entrypoints.logging import get_logger
from entrypoints.metrics_server import MetricsServer, serve_metrics
from entrypoints.outbox_relay import RelayLoop
from entrypoints.services import Services
from entrypoints.settings import Settings

DESCRIPTION = """
JWT authentication with server-side sessions, users, and rate limits.

Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) problem details with a
stable `code`. Use **Authorize** to log in with a username (or email) and password.
"""


def create_app(settings: Settings, services: Services) -> FastAPI:
    """Build the API over the services of the composition root (``entrypoints.asgi``
    builds them for uvicorn). Nothing connects to the database until a request needs it."""
    logger = get_logger("app")
    for warning in settings.warnings():
        logger.warning(warning)
    check_ip_limits(services.get(RateLimits))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        metrics = None
        try:
            metrics = _serve_metrics(settings)
            await services.open()
            # ES256/EdDSA: the first key if there is none, and this process's key set; a
            # SECRET_KEY that cannot decrypt the signing key stops the start here.
            await services.get(EnsureSigningKey)()
        except BaseException:
            await _stop_metrics(metrics)
            await services.close()
            raise
        key_refresh = asyncio.create_task(services.get(KeySetCache).keep_fresh())
        relay = RelayLoop(services, settings.outbox_poll_seconds)
        if settings.relay_in_api:
            relay.start()
        logger.info(
            "api started", environment=settings.environment, mail_relay=settings.relay_in_api
        )
        yield
        await relay.stop()
        key_refresh.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await key_refresh
        await _stop_metrics(metrics)
        await services.close()
        logger.info("api stopped")

    app = FastAPI(
        title=settings.project_name,
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # A path with a missing or extra slash is a 404, never a redirect: a redirect
        # would be built from the request's Host and replayed with its body.
        redirect_slashes=False,
        generate_unique_id_function=operation_id,
    )
    install_services(app, services)

    for router in ROUTERS:
        app.include_router(router)
    if settings.metrics_port is None:  # else /metrics is on a port of its own only
        app.include_router(metrics_router)
    install_route_index(app.router)
    # Everything a route asks for resolves, or the app refuses to start, naming it.
    services.require(used_by(app.routes) | {EnsureSigningKey, KeySetCache})
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    install_openapi(app, description=DESCRIPTION)
    install_docs(app)

    # Added last = outermost: the request id exists before anything else runs.
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(UnhandledErrorMiddleware)  # inside CORS: a 500 gets its headers
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    if "*" not in settings.allowed_hosts:  # inside the request context: the 400 has an id
        app.add_middleware(AllowedHostsMiddleware, allowed=settings.allowed_hosts)
    app.add_middleware(
        RequestContextMiddleware, client_ip=ClientIPResolver(settings.trusted_proxies)
    )
    app.add_middleware(StartupErrorsMiddleware)  # the lifespan only: no cost per request
    return app


def _serve_metrics(settings: Settings) -> MetricsServer | None:
    """``/metrics`` on ``METRICS_HOST:METRICS_PORT``, when that is set. Every worker of
    ``app serve --workers N`` binds the port (``shared``)."""
    if settings.metrics_port is None:
        return None
    served = serve_metrics(
        settings.metrics_host, settings.metrics_port, setting="METRICS_PORT", shared=True
    )
    get_logger("app").info(
        "metrics served", host=settings.metrics_host, port=settings.metrics_port, path="/metrics"
    )
    return served


async def _stop_metrics(metrics: MetricsServer | None) -> None:
    if metrics is not None:
        await asyncio.to_thread(metrics.close)  # waits for the serving thread's next poll
