"""FastAPI dependencies: the services, the caller's identity, rate limits, and small helpers."""

# No "from __future__ import annotations" here: FastAPI reads the dependencies from the
# evaluated annotations.

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer
from starlette.responses import Response
from starlette.routing import BaseRoute

from application.auth import Authenticate, RecentAuthentication
from domain.audit import act_as, current_actor
from domain.errors import Forbidden, InsufficientScope, RateLimited
from domain.model import MAX_PAGE_SIZE, Principal
from domain.ports import RateLimits
from domain.scopes import Scope
from entrypoints.http.client_ip import limit_key
from entrypoints.http.problems import NotAuthenticated
from entrypoints.services import Services

T = TypeVar("T")
LOGIN_PATH = "/api/v1/auth/login"


def use(kind: type[T]) -> Any:
    """A route parameter's dependency on a use case or a port, from the app's services:
    ``log_in: Annotated[LogIn, use(LogIn)]``. The one way routes get collaborators."""

    # A coroutine: FastAPI runs plain functions in a thread pool.
    async def resolve(request: Request) -> T:
        services: Services = request.app.state.services
        return services.get(kind)

    resolve.__name__ = f"use_{kind.__name__}"
    resolve.used = kind  # type: ignore[attr-defined] # read by ``used_by``
    return Depends(resolve)


def used_by(routes: Iterable[BaseRoute]) -> set[type]:
    """Every use case and port the routes ask for through ``use``, their dependencies'
    included: what the app checks it can resolve before it serves anything."""
    found: set[type] = set()
    pending = [route.dependant for route in routes if isinstance(route, APIRoute)]
    while pending:
        dependant = pending.pop()
        kind = getattr(dependant.call, "used", None)
        if isinstance(kind, type):
            found.add(kind)
        pending.extend(dependant.dependencies)
    return found


bearer = OAuth2PasswordBearer(tokenUrl=LOGIN_PATH, auto_error=False)


async def authenticated(
    token: Annotated[str | None, Depends(bearer)],
    authenticate: Annotated[Authenticate, use(Authenticate)],
) -> Principal:
    """The caller, from a valid access token or personal access token; 401 otherwise.
    Routes never ask for this directly: they declare what they need (``access``)."""
    if not token:
        raise NotAuthenticated()
    principal = await authenticate(token)
    act_as(current_actor().as_user(principal.user_id))
    return principal


def access(scope: Scope | None, *, superuser: bool = False) -> Any:
    """The one check of what a caller may do on a route: a session may do anything its
    user may; a personal access token only what ``scope`` names (None: sessions only),
    else 403 ``insufficient_scope``. With ``superuser``, a caller who is not one gets
    403 ``forbidden``.

    Every route with a bearer token declares its access through this (the aliases
    below); ``tests/e2e/test_http_access_tokens.py`` walks the route table to check."""

    async def check(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if not principal.allows(scope):
            raise InsufficientScope(scope)
        if superuser and not principal.user.is_superuser:
            raise Forbidden()
        return principal

    check.__name__ = f"access_{scope or 'session'}".replace(":", "_")
    check.access = scope  # type: ignore[attr-defined] # read by ``declared_access``
    return Depends(check)


def declared_access(route: BaseRoute) -> list[Scope | None]:
    """What ``access`` declarations a route's dependencies make (one for a secured route,
    none for a public one)."""
    found: list[Scope | None] = []
    pending = [route.dependant] if isinstance(route, APIRoute) else []
    while pending:
        dependant = pending.pop()
        call = dependant.call
        if call is not None and hasattr(call, "access"):
            found.append(call.access)
        pending.extend(dependant.dependencies)
    return found


# The caller of a session (a login): what no personal access token may do.
CurrentPrincipal = Annotated[Principal, access(None)]
# A session, or a token with the scope.
ProfileReader = Annotated[Principal, access(Scope.PROFILE_READ)]
ProfileWriter = Annotated[Principal, access(Scope.PROFILE_WRITE)]
OrgsReader = Annotated[Principal, access(Scope.ORGS_READ)]
OrgsWriter = Annotated[Principal, access(Scope.ORGS_WRITE)]
# A superuser's session, or their token with the scope (while they still are one).
AdminReader = Annotated[Principal, access(Scope.ADMIN_READ, superuser=True)]
AdminWriter = Annotated[Principal, access(Scope.ADMIN_WRITE, superuser=True)]


async def recent_principal(
    principal: CurrentPrincipal,
    recent: Annotated[RecentAuthentication, use(RecentAuthentication)],
) -> Principal:
    """The caller, whose session authenticated recently; 403
    ``reauthentication_required`` otherwise (API.md, "Recent authentication")."""
    return recent(principal)


# For the operations that change how an account is protected.
RecentPrincipal = Annotated[Principal, Depends(recent_principal)]


async def optional_principal(
    token: Annotated[str | None, Depends(bearer)],
    authenticate: Annotated[Authenticate, use(Authenticate)],
) -> Principal | None:
    """The caller of a session when a token came (401 if it is not valid; 403
    ``insufficient_scope`` for a personal access token), else None."""
    if not token:
        return None
    principal = await authenticated(token, authenticate)
    if not principal.allows(None):
        raise InsufficientScope()
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
optional_principal.access = None  # type: ignore[attr-defined] # sessions only


class IpLimit(StrEnum):
    """The per-client-IP limits the routes apply; each must be configured (checked when
    the app is built, by ``check_ip_limits``)."""

    LOGIN = "login"
    REFRESH = "refresh"
    LOGOUT = "logout"
    REGISTER = "register"
    MFA = "mfa"
    EMAIL_TOKEN = "email_token"  # noqa: S105 - a limit's name
    # Counted per user and per submitted address rather than per IP (see the routes).
    VERIFICATION_EMAIL = "verification_email"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a limit's name
    EMAIL_CHANGE = "email_change"
    INVITATIONS = "invitations"


def check_ip_limits(limits: RateLimits) -> None:
    missing = sorted(set(IpLimit) - limits.names())
    if missing:
        raise ValueError(f"no rate limit is configured for {', '.join(missing)}")


async def hit_ip_limit(request: Request, limit: IpLimit) -> None:
    """Count one hit against the per-IP limit; 429 once it is reached."""
    await hit_limit(request, limit, limit_key(request.state.client_ip))


async def hit_limit(request: Request, limit: IpLimit, key: str) -> None:
    """Count one hit of ``key`` (an address, a user) against ``limit``; 429 once it is
    reached."""
    services: Services = request.app.state.services
    retry_after = await services.get(RateLimits).hit(limit, key)
    if retry_after is not None:
        raise RateLimited(retry_after)


def ip_rate_limit(limit: IpLimit) -> Any:
    """A route dependency counting one hit against the per-IP limit."""

    async def check(request: Request) -> None:
        await hit_ip_limit(request, limit)

    return Depends(check)


def install_services(app: FastAPI, services: Services) -> None:
    app.state.services = services


# The query of every paged list. Far past any real page, yet small enough that no offset
# overflows a database integer.
MAX_PAGE = 10_000_000
PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE, description="The page, from 1.")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items a page.")]


# Token pairs, secrets and recovery codes: never kept by a cache (RFC 6749, 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Serialise with orjson: faster than the framework's encoder, same JSON."""
    return Response(
        orjson.dumps(content),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )
