"""RFC 9457 problem details: the one place where errors become HTTP responses.

A domain error's status follows from its category alone (``STATUS_BY_CATEGORY``); the
framework's own errors (404, 405, 422, bad bodies) are reshaped here too, so every
error a client sees has the same form.
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

from domain.errors import DomainError, ErrorCategory, InsufficientScope, category_of
from entrypoints.http.schemas import RULES

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}

# The one table from a domain error to its HTTP status: by its category. An error with
# no category is a programming error, answered as a 500, never guessed at.
STATUS_BY_CATEGORY: dict[ErrorCategory, int] = {
    ErrorCategory.REJECTED: 400,
    ErrorCategory.UNAUTHENTICATED: 401,
    ErrorCategory.FORBIDDEN: 403,
    ErrorCategory.NOT_FOUND: 404,
    ErrorCategory.CONFLICT: 409,
    ErrorCategory.INVALID: 422,
    ErrorCategory.THROTTLED: 429,
    ErrorCategory.UNAVAILABLE: 503,
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
    message = str(error.get("msg", ""))
    if error.get("type") == "string_pattern_mismatch":
        # A domain text field's rule in words rather than its regular expression.
        message = RULES.get(str(error.get("ctx", {}).get("pattern")), message)
    return {
        "loc": [str(part) if not isinstance(part, int) else part for part in error["loc"]],
        "msg": message,
        "type": str(error.get("type", "value_error")),
    }


def status_of(error: type[DomainError]) -> int | None:
    """The HTTP status of a domain error class, from its category; None without one."""
    category = category_of(error)
    return STATUS_BY_CATEGORY[category] if category is not None else None


class UncategorisedError(TypeError):
    """A domain error reached the HTTP layer without a category: a programming error."""


async def domain_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    status = status_of(type(exc))
    if status is None:
        # Raised on: the last-resort handler answers 500 and logs it with its traceback.
        raise UncategorisedError(
            f"{type(exc).__qualname__} has no category: give it `category = ErrorCategory.…`"
        ) from exc
    if status == 422:
        # Every invalid value has the 422 shape: ``errors`` says which input.
        return _invalid_value_problem(exc)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    if isinstance(exc, InsufficientScope):
        headers["WWW-Authenticate"] = scope_challenge(exc.scope)
    return problem(status, exc.code, exc.detail, headers=headers, **exc.members())


def scope_challenge(scope: str | None) -> str:
    """RFC 6750, 3.1: the scope that would do, when one would."""
    needed = f', scope="{scope}"' if scope is not None else ""
    return f'Bearer error="insufficient_scope"{needed}'


def _invalid_value_problem(exc: DomainError) -> Response:
    # ``InvalidValue`` names its input; a new invalid-value error may too.
    field = getattr(exc, "field", None)
    loc = ["body", field] if field else ["body"]
    return problem(
        422,
        exc.code,
        "The request is not valid.",
        errors=[_clean_error({"loc": loc, "msg": exc.detail, "type": "value_error"})],
    )


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
