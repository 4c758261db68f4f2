"""``/api/v1/auth/tokens``: one's own personal access tokens."""

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from application.access_tokens import CreateAccessToken, ListAccessTokens, RevokeAccessToken
from entrypoints.http import schemas
from entrypoints.http.dependencies import (
    NO_STORE,
    CurrentPrincipal,
    RecentPrincipal,
    json_response,
    use,
)
from entrypoints.http.openapi import BEARER, BODY, PARAMS, RECENT, described, errors_of
from entrypoints.presenters import AccessToken, NewAccessToken

router = APIRouter(prefix="/api/v1/auth/tokens", tags=["access tokens"])
TokenId = Annotated[str, Path(max_length=64, description="The token's id.")]


@router.post(
    "",
    summary="Create a personal access token",
    description=described(CreateAccessToken),
    status_code=201,
    response_model=NewAccessToken,
    responses=errors_of(CreateAccessToken, RECENT, BODY),
)
async def create_access_token(
    body: schemas.AccessTokenCreate,
    principal: RecentPrincipal,
    create: Annotated[CreateAccessToken, use(CreateAccessToken)],
) -> Response:
    token, stored = await create(principal, body.name, body.scopes, body.expires_in_days)
    return json_response(
        NewAccessToken.of(stored, token=token, scopes=sorted(stored.scopes)),
        status_code=201,
        headers=NO_STORE,
    )


@router.get(
    "",
    summary="List my personal access tokens",
    description=described(ListAccessTokens),
    response_model=list[AccessToken],
    responses=errors_of(ListAccessTokens, BEARER),
)
async def list_access_tokens(
    principal: CurrentPrincipal,
    list_mine: Annotated[ListAccessTokens, use(ListAccessTokens)],
) -> Response:
    return json_response([AccessToken.of_token(t) for t in await list_mine(principal)])


@router.delete(
    "/{token_id}",
    summary="Revoke a personal access token",
    description=described(RevokeAccessToken),
    status_code=204,
    responses=errors_of(RevokeAccessToken, BEARER, PARAMS),
)
async def revoke_access_token(
    token_id: TokenId,
    principal: CurrentPrincipal,
    revoke: Annotated[RevokeAccessToken, use(RevokeAccessToken)],
) -> Response:
    await revoke(principal, token_id)
    return Response(status_code=204)
