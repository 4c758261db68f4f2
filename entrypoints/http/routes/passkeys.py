"""``/api/v1/auth/passkeys``: registering, listing, renaming and removing passkeys, and
logging in with one."""

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from application.passkeys import (
    DeletePasskey,
    ListPasskeys,
    PasskeyLogin,
    RegisterPasskey,
    RenamePasskey,
    StartPasskeyLogin,
    StartPasskeyRegistration,
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
from entrypoints.http.openapi import (
    BEARER,
    BODY,
    PARAMS,
    RATE_LIMITED,
    RECENT,
    described,
    errors_of,
)
from entrypoints.metrics import LOGINS
from entrypoints.presenters import CeremonyOptions, Passkey, TokenPair

router = APIRouter(prefix="/api/v1/auth/passkeys", tags=["passkeys"])
PasskeyId = Annotated[str, Path(max_length=64, description="The passkey's id.")]


@router.post(
    "/registration/options",
    summary="Start adding a passkey",
    description=described(StartPasskeyRegistration),
    response_model=CeremonyOptions,
    responses=errors_of(StartPasskeyRegistration, RECENT),
)
async def start_passkey_registration(
    principal: RecentPrincipal,
    start: Annotated[StartPasskeyRegistration, use(StartPasskeyRegistration)],
) -> Response:
    return json_response(CeremonyOptions.of(await start(principal)), headers=NO_STORE)


@router.post(
    "",
    summary="Add a passkey",
    description=described(RegisterPasskey),
    status_code=201,
    response_model=Passkey,
    responses=errors_of(RegisterPasskey, RECENT, BODY),
)
async def register_passkey(
    body: schemas.PasskeyRegistration,
    principal: RecentPrincipal,
    register: Annotated[RegisterPasskey, use(RegisterPasskey)],
) -> Response:
    added = await register(principal, body.challenge_id, body.credential, body.name)
    return json_response(Passkey.of(added), status_code=201)


@router.get(
    "",
    summary="List my passkeys",
    description=described(ListPasskeys),
    response_model=list[Passkey],
    responses=errors_of(ListPasskeys, BEARER),
)
async def list_passkeys(
    principal: CurrentPrincipal,
    list_mine: Annotated[ListPasskeys, use(ListPasskeys)],
) -> Response:
    return json_response([Passkey.of(p) for p in await list_mine(principal)])


@router.patch(
    "/{passkey_id}",
    summary="Rename a passkey",
    description=described(RenamePasskey),
    response_model=Passkey,
    responses=errors_of(RenamePasskey, BEARER, BODY, PARAMS),
)
async def rename_passkey(
    passkey_id: PasskeyId,
    body: schemas.PasskeyRename,
    principal: CurrentPrincipal,
    rename: Annotated[RenamePasskey, use(RenamePasskey)],
) -> Response:
    return json_response(Passkey.of(await rename(principal, passkey_id, body.name)))


@router.delete(
    "/{passkey_id}",
    summary="Remove a passkey",
    description=described(DeletePasskey),
    status_code=204,
    responses=errors_of(DeletePasskey, RECENT, PARAMS),
)
async def delete_passkey(
    passkey_id: PasskeyId,
    principal: RecentPrincipal,
    delete: Annotated[DeletePasskey, use(DeletePasskey)],
) -> Response:
    await delete(principal, passkey_id)
    return Response(status_code=204)


@router.post(
    "/authentication/options",
    summary="Start a passkey login",
    description=described(StartPasskeyLogin),
    response_model=CeremonyOptions,
    responses=errors_of(StartPasskeyLogin, BODY, RATE_LIMITED),
    dependencies=[ip_rate_limit(IpLimit.MFA)],
)
async def start_passkey_login(
    body: schemas.PasskeyLoginOptions,
    start: Annotated[StartPasskeyLogin, use(StartPasskeyLogin)],
) -> Response:
    return json_response(CeremonyOptions.of(await start(body.mfa_token)), headers=NO_STORE)


@router.post(
    "/authentication",
    summary="Log in with a passkey",
    description=described(PasskeyLogin),
    response_model=TokenPair,
    responses=errors_of(PasskeyLogin, BODY, RATE_LIMITED),
    dependencies=[ip_rate_limit(IpLimit.MFA)],
)
async def passkey_login(
    request: Request,
    body: schemas.PasskeyAssertion,
    log_in: Annotated[PasskeyLogin, use(PasskeyLogin)],
) -> Response:
    result = await log_in(
        body.challenge_id, body.credential, user_agent=request.headers.get("user-agent")
    )
    LOGINS.labels("success").inc()
    return json_response(TokenPair.of_pair(result.tokens), headers=NO_STORE)
