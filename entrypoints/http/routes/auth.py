"""``/api/v1/auth``: log in (form or JSON), refresh, log out, and one's sessions."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from application.auth import (
    EndSession,
    ListSessions,
    LogIn,
    LogOut,
    LogOutEverywhere,
    Reauthenticate,
    RefreshTokens,
)
from domain.errors import InvalidCredentials, UnsupportedGrantType
from entrypoints.http import schemas
from entrypoints.http.dependencies import (
    NO_STORE,
    CurrentPrincipal,
    IpLimit,
    hit_ip_limit,
    ip_rate_limit,
    json_response,
    use,
)
from entrypoints.http.oauth2 import OAuth2TokenRoute
from entrypoints.http.openapi import (
    BEARER,
    BODY,
    PARAMS,
    RATE_LIMITED,
    described,
    errors_of,
)
from entrypoints.metrics import LOGINS
from entrypoints.presenters import Session, TokenPair

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
# The OAuth2 token endpoint and its refresh twin: errors also speak RFC 6749.
token_router = APIRouter(tags=["auth"], route_class=OAuth2TokenRoute)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
PASSWORD_GRANT, REFRESH_GRANT = schemas.GRANT_TYPES


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def _token_body(json_model: type[BaseModel], *forms: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a token endpoint: one of the OAuth2 ``forms``, or
    JSON."""
    schemas_of_forms = [_schema(form) for form in forms]
    form = {"schema": schemas_of_forms[0] if len(forms) == 1 else {"oneOf": schemas_of_forms}}
    content = {"application/json": {"schema": _schema(json_model)}}
    content.update(dict.fromkeys(FORM_TYPES, form))
    return {"requestBody": {"required": True, "content": content}}


Grant = schemas.LoginRequest | schemas.RefreshRequest


async def _grant(request: Request, *, json_grant: str, allowed: tuple[str, ...]) -> Grant:
    """The body of a token request: a form (RFC 6749: ``grant_type`` among ``allowed``,
    the first by default) or JSON (the ``json_grant``'s fields)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "application/json":
            model = schemas.LoginRequest if json_grant == PASSWORD_GRANT else schemas.RefreshRequest
            return model.model_validate_json(await request.body())
        if content_type in FORM_TYPES:
            form = await request.form()
            grant = form.get("grant_type") or allowed[0]
            if grant not in allowed:
                raise UnsupportedGrantType()
            if grant == PASSWORD_GRANT:
                found = schemas.PasswordGrantForm.model_validate(_pick(form))
                return schemas.LoginRequest(username=found.username, password=found.password)
            refresh = schemas.RefreshForm.model_validate(_pick(form))
            return schemas.RefreshRequest(refresh_token=refresh.refresh_token)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None
    except UnsupportedGrantType:
        raise
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


def _pick(form: FormData) -> dict[str, Any]:
    """The form's fields but the grant type (read on its own), the last value of each."""
    return {key: form[key] for key in form if key != "grant_type"}


@token_router.post(
    "/login",
    summary="Log in",
    description=described(LogIn)
    + "\n\nThe OAuth2 token endpoint: with a form, `grant_type=refresh_token` refreshes"
    " as `/refresh` does. Errors carry the RFC 6749 `error` member.",
    response_model=TokenPair,
    responses=errors_of(LogIn, RefreshTokens, UnsupportedGrantType, BODY, RATE_LIMITED),
    openapi_extra=_token_body(
        schemas.LoginRequest, schemas.PasswordGrantForm, schemas.RefreshGrantForm
    ),
    dependencies=[ip_rate_limit(IpLimit.LOGIN)],
)
async def log_in(
    request: Request,
    login: Annotated[LogIn, use(LogIn)],
    refresh: Annotated[RefreshTokens, use(RefreshTokens)],
) -> Response:
    grant = await _grant(request, json_grant=PASSWORD_GRANT, allowed=schemas.GRANT_TYPES)
    if isinstance(grant, schemas.RefreshRequest):
        pair = await refresh(grant.refresh_token)
        return json_response(TokenPair.of_pair(pair), headers=NO_STORE)
    try:
        result = await login(
            grant.username,
            grant.password,
            user_agent=request.headers.get("user-agent"),
        )
    except InvalidCredentials:
        LOGINS.labels("failure").inc()
        raise
    LOGINS.labels("success").inc()
    return json_response(TokenPair.of_pair(result.tokens), headers=NO_STORE)


@token_router.post(
    "/refresh",
    summary="Refresh the token pair",
    description=described(RefreshTokens)
    + "\n\nJSON, or the OAuth2 form (`grant_type=refresh_token`). Errors carry the"
    " RFC 6749 `error` member.",
    response_model=TokenPair,
    responses=errors_of(RefreshTokens, UnsupportedGrantType, BODY, RATE_LIMITED),
    openapi_extra=_token_body(schemas.RefreshRequest, schemas.RefreshForm),
    dependencies=[ip_rate_limit(IpLimit.REFRESH)],
)
async def refresh_tokens(
    request: Request,
    refresh: Annotated[RefreshTokens, use(RefreshTokens)],
) -> Response:
    grant = await _grant(request, json_grant=REFRESH_GRANT, allowed=(REFRESH_GRANT,))
    assert isinstance(grant, schemas.RefreshRequest)
    pair = await refresh(grant.refresh_token)
    return json_response(TokenPair.of_pair(pair), headers=NO_STORE)


router.include_router(token_router)


@router.post(
    "/logout",
    summary="Log out",
    description=described(LogOut),
    status_code=204,
    responses=errors_of(LogOut, BODY, RATE_LIMITED),
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
    responses=errors_of(LogOutEverywhere, BEARER),
)
async def log_out_everywhere(
    principal: CurrentPrincipal,
    end_all: Annotated[LogOutEverywhere, use(LogOutEverywhere)],
) -> Response:
    await end_all(principal)
    return Response(status_code=204)


@router.post(
    "/reauthenticate",
    summary="Re-authenticate",
    description=described(Reauthenticate),
    status_code=204,
    responses=errors_of(Reauthenticate, BEARER, BODY, RATE_LIMITED),
)
async def reauthenticate(
    request: Request,
    body: schemas.Reauthentication,
    principal: CurrentPrincipal,
    reauthenticate: Annotated[Reauthenticate, use(Reauthenticate)],
) -> Response:
    # A password check, like a login: limited per client IP as well as per account.
    await hit_ip_limit(request, IpLimit.LOGIN)
    await reauthenticate(principal, body.password, body.factor())
    return Response(status_code=204)


@router.get(
    "/sessions",
    summary="List my sessions",
    description=described(ListSessions),
    response_model=list[Session],
    responses=errors_of(ListSessions, BEARER),
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
    responses=errors_of(EndSession, BEARER, PARAMS),
)
async def end_session(
    session_id: Annotated[str, Path(max_length=64)],
    principal: CurrentPrincipal,
    end: Annotated[EndSession, use(EndSession)],
) -> Response:
    await end(principal, session_id)
    return Response(status_code=204)
