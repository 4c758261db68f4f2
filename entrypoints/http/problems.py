"""RFC 9457 problem details: the one place where errors become HTTP responses.

Domain errors map through ``ERRORS``; the framework's own errors (404, 405, 422, bad
bodies) are reshaped here too, so every error a client sees has the same form.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from domain.errors import (
    AlreadyVerified,
    CannotChangeOwnAccess,
    DomainError,
    EmailNotVerified,
    EmailTaken,
    Forbidden,
    InvalidCredentials,
    InvalidResetToken,
    InvalidToken,
    InvalidValue,
    InvalidVerificationToken,
    LastSuperuser,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    UnsupportedGrantType,
    UsernameTaken,
    WrongPassword,
)

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}

# The error table: domain error -> HTTP status. The first match along the MRO wins.
ERRORS: dict[type[DomainError], int] = {
    InvalidCredentials: 401,
    InvalidToken: 401,
    InvalidVerificationToken: 400,
    UnsupportedGrantType: 400,
    InvalidResetToken: 400,
    WrongPassword: 403,
    EmailNotVerified: 403,
    Forbidden: 403,
    AlreadyVerified: 409,
    CannotChangeOwnAccess: 409,
    LastSuperuser: 409,
    NotFound: 404,
    EmailTaken: 409,
    UsernameTaken: 409,
    InvalidValue: 422,
    RateLimited: 429,
    ServiceUnavailable: 503,
}

# Framework errors that carry no domain error: status -> (code, detail).
HTTP_CODES: dict[int, tuple[str, str]] = {
    401: ("not_authenticated", "Not authenticated."),
    404: ("not_found", "The requested resource was not found."),
    405: ("method_not_allowed", "The method is not allowed for this resource."),
    413: ("payload_too_large", "The request body is larger than 1 MiB."),
    503: ("service_unavailable", "The service is temporarily unavailable."),
}


class NotAuthenticated(HTTPException):
    """No bearer token came with a request that needs one."""

    def __init__(self) -> None:
        super().__init__(401, "Not authenticated.", headers=BEARER_CHALLENGE)


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.update(BEARER_CHALLENGE)
    return Response(
        orjson.dumps(body), status_code=status, headers=all_headers, media_type=PROBLEM_JSON
    )


def validation_problem(errors: list[dict[str, Any]]) -> Response:
    return problem(
        422,
        "validation_error",
        "The request is not valid.",
        errors=[_clean_error(e) for e in errors],
    )


def _clean_error(error: dict[str, Any]) -> dict[str, Any]:
    # Never echo the input back: it may be a password.
    return {
        "loc": [str(part) if not isinstance(part, int) else part for part in error["loc"]],
        "msg": str(error.get("msg", "")),
        "type": str(error.get("type", "value_error")),
    }


async def domain_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    if isinstance(exc, InvalidValue):
        return validation_problem(
            [{"loc": ["body", exc.field], "msg": exc.detail, "type": "value_error"}]
        )
    status = next((ERRORS[cls] for cls in type(exc).__mro__ if cls in ERRORS), 400)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return problem(status, exc.code, exc.detail, headers=headers)


async def request_validation_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return validation_problem(list(exc.errors()))


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it could not parse at all (e.g. nested too deep):
        # reported like every other malformed input.
        return validation_problem(
            [{"loc": ["body"], "msg": "The body could not be parsed.", "type": "json_invalid"}]
        )
    code, detail = HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    if isinstance(exc, NotAuthenticated):
        detail = str(exc.detail)
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request, headers)}
    return problem(exc.status_code, code, detail, headers=headers)


def _allowed_methods(request: Request, headers: Mapping[str, str] | None) -> str:
    """Every method of every route of the request's path. Starlette's own ``Allow``
    names the methods of the first route that matched the path only, and each method of
    a path (GET, PATCH and DELETE of ``/users/me``) is a route of its own."""
    methods = {m.strip() for m in (headers or {}).get("Allow", "").split(",") if m.strip()}
    # The scope as the app's router saw it (a mount moves ``root_path``).
    root_path = request.scope.get("app_root_path", request.scope.get("root_path", ""))
    scope = {**request.scope, "root_path": root_path}
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] is not Match.NONE:
            methods |= route_methods
    return ", ".join(sorted(methods))


def internal_error(request_id: str) -> Response:
    return problem(
        500,
        "internal_error",
        "An unexpected error occurred. Quote the request id when reporting it.",
        request_id=request_id,
    )
