"""``/api/v1/auth/mfa`` and ``/api/v1/auth/login/mfa``: second factors, and the second
step of a login."""

from typing import Annotated

from fastapi import APIRouter, Request
from starlette.responses import Response

from application.mfa import (
    CompleteMfaLogin,
    ConfirmTotp,
    DisableTotp,
    GetMfaStatus,
    RegenerateRecoveryCodes,
    StartTotp,
)
from entrypoints.http import schemas
from entrypoints.http.dependencies import (
    NO_STORE,
    CurrentPrincipal,
    IpLimit,
    RecentPrincipal,
    ip_rate_limit,
    json_response,
    use,
)
from entrypoints.http.openapi import BEARER, BODY, RATE_LIMITED, RECENT, described, errors_of
from entrypoints.metrics import LOGINS
from entrypoints.presenters import MfaStatus, RecoveryCodes, TokenPair, TotpSetup

router = APIRouter(prefix="/api/v1/auth", tags=["mfa"])


@router.get(
    "/mfa",
    summary="My second factors",
    description=described(GetMfaStatus),
    response_model=MfaStatus,
    responses=errors_of(GetMfaStatus, BEARER),
)
async def get_mfa_status(
    principal: CurrentPrincipal,
    get_status: Annotated[GetMfaStatus, use(GetMfaStatus)],
) -> Response:
    return json_response(MfaStatus.of(await get_status(principal)))


@router.post(
    "/mfa/totp",
    summary="Set up TOTP",
    description=described(StartTotp),
    response_model=TotpSetup,
    responses=errors_of(StartTotp, RECENT),
)
async def start_totp(
    principal: RecentPrincipal,
    start: Annotated[StartTotp, use(StartTotp)],
) -> Response:
    return json_response(TotpSetup.of(await start(principal)), headers=NO_STORE)


@router.post(
    "/mfa/totp/confirm",
    summary="Turn TOTP on",
    description=described(ConfirmTotp),
    response_model=RecoveryCodes,
    responses=errors_of(ConfirmTotp, RECENT, BODY),
)
async def confirm_totp(
    body: schemas.TotpConfirmation,
    principal: RecentPrincipal,
    confirm: Annotated[ConfirmTotp, use(ConfirmTotp)],
) -> Response:
    codes = await confirm(principal, body.code)
    return json_response({"recovery_codes": codes}, headers=NO_STORE)


@router.delete(
    "/mfa/totp",
    summary="Turn TOTP off",
    description=described(DisableTotp),
    status_code=204,
    responses=errors_of(DisableTotp, RECENT),
)
async def disable_totp(
    principal: RecentPrincipal,
    disable: Annotated[DisableTotp, use(DisableTotp)],
) -> Response:
    await disable(principal)
    return Response(status_code=204)


@router.post(
    "/mfa/recovery-codes",
    summary="Make new recovery codes",
    description=described(RegenerateRecoveryCodes),
    response_model=RecoveryCodes,
    responses=errors_of(RegenerateRecoveryCodes, RECENT),
)
async def regenerate_recovery_codes(
    principal: RecentPrincipal,
    regenerate: Annotated[RegenerateRecoveryCodes, use(RegenerateRecoveryCodes)],
) -> Response:
    codes = await regenerate(principal)
    return json_response({"recovery_codes": codes}, headers=NO_STORE)


@router.post(
    "/login/mfa",
    summary="Log in: the second step",
    description=described(CompleteMfaLogin),
    response_model=TokenPair,
    responses=errors_of(CompleteMfaLogin, BODY, RATE_LIMITED),
    dependencies=[ip_rate_limit(IpLimit.MFA)],
)
async def complete_mfa_login(
    request: Request,
    body: schemas.MfaLogin,
    complete: Annotated[CompleteMfaLogin, use(CompleteMfaLogin)],
) -> Response:
    result = await complete(
        body.mfa_token, body.factor(), user_agent=request.headers.get("user-agent")
    )
    LOGINS.labels("success").inc()
    return json_response(TokenPair.of_pair(result.tokens), headers=NO_STORE)
