"""``/api/v1/auth``: log in (form or JSON), refresh, log out, and one's sessions."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response

from application.auth import (
    EndSession,
    ListSessions,
    LogIn,
    LogOut,
    LogOutEverywhere,
    RefreshTokens,
)
from domain.errors import InvalidCredentials
from entrypoints.http import schemas
from entrypoints.http.dependencies import (
    CurrentPrincipal,
    IpLimit,
    ip_rate_limit,
    json_response,
    use,
)
from entrypoints.http.openapi import described, problems
from entrypoints.metrics import LOGINS
from entrypoints.presenters import Session, TokenPair

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}

_login_form_schema = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["password"]},
        "username": {"type": "string", "description": "The username or the email address."},
        "password": {"type": "string", "format": "password"},
        "scope": {"type": "string"},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string", "format": "password"},
    },
}
LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _login_form_schema},
            "application/json": {
                "schema": schemas.LoginRequest.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            },
        },
    }
}


async def _credentials(request: Request) -> schemas.LoginRequest:
    """The login body: an OAuth2 password form (Swagger's Authorize) or JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            return schemas.LoginRequest.model_validate_json(await request.body())
        if content_type in FORM_TYPES:
            form = await request.form()
            fields = {key: form[key] for key in ("username", "password") if key in form}
            return schemas.LoginRequest.model_validate(fields)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None
    except Exception:  # a form the parser could not read
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "The form could not be parsed.", "type": "form_invalid"}]
        ) from None
    raise RequestValidationError(
        [
            {
                "loc": ("body",),
                "msg": "Send a JSON body or an application/x-www-form-urlencoded form.",
                "type": "content_type",
            }
        ]
    )


@router.post(
    "/login",
    summary="Log in",
    description=described(LogIn),
    response_model=TokenPair,
    responses=problems(401, 413, 422, 429, 503),
    openapi_extra=LOGIN_BODY,
    dependencies=[ip_rate_limit(IpLimit.LOGIN)],
)
async def log_in(request: Request, login: Annotated[LogIn, use(LogIn)]) -> Response:
    credentials = await _credentials(request)
    try:
        result = await login(
            credentials.username,
            credentials.password,
            user_agent=request.headers.get("user-agent"),
        )
    except InvalidCredentials:
        LOGINS.labels("failure").inc()
        raise
    LOGINS.labels("success").inc()
    return json_response(TokenPair.of_pair(result.tokens), headers=NO_STORE)


@router.post(
    "/refresh",
    summary="Refresh the token pair",
    description=described(RefreshTokens),
    response_model=TokenPair,
    responses=problems(401, 413, 422, 429, 503),
    dependencies=[ip_rate_limit(IpLimit.REFRESH)],
)
async def refresh_tokens(
    body: schemas.RefreshRequest,
    refresh: Annotated[RefreshTokens, use(RefreshTokens)],
) -> Response:
    pair = await refresh(body.refresh_token)
    return json_response(TokenPair.of_pair(pair), headers=NO_STORE)


@router.post(
    "/logout",
    summary="Log out",
    description=described(LogOut),
    status_code=204,
    responses=problems(401, 413, 422, 429, 503),
    dependencies=[ip_rate_limit(IpLimit.LOGOUT)],
)
async def log_out(
    body: schemas.RefreshRequest,
    log_out: Annotated[LogOut, use(LogOut)],
) -> Response:
    await log_out(body.refresh_token)
    return Response(status_code=204)


@router.post(
    "/logout-all",
    summary="Log out everywhere",
    description=described(LogOutEverywhere),
    status_code=204,
    responses=problems(401, 503),
)
async def log_out_everywhere(
    principal: CurrentPrincipal,
    end_all: Annotated[LogOutEverywhere, use(LogOutEverywhere)],
) -> Response:
    await end_all(principal)
    return Response(status_code=204)


@router.get(
    "/sessions",
    summary="List my sessions",
    description=described(ListSessions),
    response_model=list[Session],
    responses=problems(401, 503),
)
async def list_sessions(
    principal: CurrentPrincipal,
    list_mine: Annotated[ListSessions, use(ListSessions)],
) -> Response:
    found = await list_mine(principal)
    body: list[dict[str, Any]] = [Session.of_session(s, principal.session_id) for s in found]
    return json_response(body)


@router.delete(
    "/sessions/{session_id}",
    summary="End one of my sessions",
    description=described(EndSession),
    status_code=204,
    responses=problems(401, 404, 422, 503),
)
async def end_session(
    session_id: Annotated[str, Path(max_length=64)],
    principal: CurrentPrincipal,
    end: Annotated[EndSession, use(EndSession)],
) -> Response:
    await end(principal, session_id)
    return Response(status_code=204)
