"""The HTTP app factory: ``uvicorn --factory entrypoints.http.app:create_app``."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from domain.errors import DomainError
from entrypoints.container import Container, close_container, create_container
from entrypoints.http import dependencies
from entrypoints.http.client_ip import ClientIPResolver
from entrypoints.http.dependencies import IpRateLimits
from entrypoints.http.middleware import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    UnhandledErrorMiddleware,
)
from entrypoints.http.openapi import install_docs, install_openapi
from entrypoints.http.problems import (
    domain_error_handler,
    http_error_handler,
    request_validation_handler,
)
from entrypoints.http.routes import auth, health, users
from entrypoints.logging import configure_logging, get_logger
from entrypoints.settings import InvalidSettings, Settings, load_settings

ROUTE_MODULES = (auth, users, health)
DESCRIPTION = """
JWT authentication with server-side sessions, users, and rate limits.

Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) problem details with a
stable `code`. Use **Authorize** to log in with a username (or email) and password.
"""


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """Build the API. Reads the settings from the environment unless given; nothing
    connects to the database until the first request that needs it."""
    if settings is None:
        try:
            settings = load_settings()
        except InvalidSettings as exc:
            # uvicorn would print a traceback; the operator needs one line.
            print(exc, file=sys.stderr)
            raise SystemExit(1) from None
    if container is None:
        configure_logging(settings.log_level, settings.effective_log_format)
        container = create_container(settings)
    logger = get_logger("app")
    for warning in settings.warnings():
        logger.warning(warning)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Wired again at every start: a restarted lifespan (tests) finds it unwired.
        container.wire(modules=[*ROUTE_MODULES, dependencies])
        logger.info("api started", environment=settings.environment)
        yield
        await close_container(container)
        container.unwire()
        logger.info("api stopped")

    app = FastAPI(
        title=settings.project_name,
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    container.wire(modules=[*ROUTE_MODULES, dependencies])
    app.state.container = container
    limiter = container.rate_limiter()
    app.state.ip_rate_limits = IpRateLimits(
        limiter=limiter,
        items={
            "login": limiter.parse(settings.rate_limit_login),
            "refresh": limiter.parse(settings.rate_limit_refresh),
            "logout": limiter.parse(settings.rate_limit_logout),
            "register": limiter.parse(settings.rate_limit_register),
        },
    )

    for module in ROUTE_MODULES:
        app.include_router(module.router)
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
    app.add_middleware(
        RequestContextMiddleware, client_ip=ClientIPResolver(settings.trusted_proxies)
    )
    return app
