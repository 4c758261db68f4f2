"""The public signing keys, for services that verify our access tokens on their own."""

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response

from application.signing_keys import PublishedSigningKeys
from entrypoints.http.dependencies import json_response, use
from entrypoints.http.openapi import described, errors_of

router = APIRouter(tags=["keys"])
JWKS_PATH = "/.well-known/jwks.json"
# Shorter than the time a new key is published before it signs (10 minutes by default),
# so a verifier's cached copy always holds it first.
CACHE_CONTROL = "public, max-age=300"


class Jwk(BaseModel):
    """A public key (RFC 7517): EC P-256 for ES256, OKP Ed25519 for EdDSA."""

    kty: Literal["EC", "OKP"]
    kid: str = Field(description="The RFC 7638 thumbprint of the key; tokens name it.")
    alg: Literal["ES256", "EdDSA"]
    use: Literal["sig"]
    crv: Literal["P-256", "Ed25519"]
    x: str
    y: str | None = Field(default=None, description="EC keys only.")


class Jwks(BaseModel):
    keys: list[Jwk]


@router.get(
    JWKS_PATH,
    summary="Public signing keys (JWKS)",
    description=described(PublishedSigningKeys),
    response_model=Jwks,
    responses={
        200: {
            "headers": {
                "Cache-Control": {
                    "description": f"`{CACHE_CONTROL}`.",
                    "schema": {"type": "string"},
                }
            }
        },
        **errors_of(PublishedSigningKeys),
    },
)
async def get_jwks(
    published: Annotated[PublishedSigningKeys, use(PublishedSigningKeys)],
) -> Response:
    keys = [key.jwk() for key in await published()]
    return json_response({"keys": keys}, headers={"Cache-Control": CACHE_CONTROL})
