"""``/api/v1/auth``: confirming an email address and resetting a forgotten password."""

import hashlib
from typing import Annotated

from fastapi import APIRouter, Request
from starlette.responses import Response

from application.email import (
    RequestPasswordReset,
    RequestVerificationLink,
    ResendVerification,
    ResetPassword,
    VerifyEmail,
)
from domain.rules import canonical
from entrypoints.http import schemas
from entrypoints.http.dependencies import (
    IpLimit,
    OptionalPrincipal,
    hit_ip_limit,
    hit_limit,
    ip_rate_limit,
    json_response,
    use,
)
from entrypoints.http.openapi import BEARER, BODY, RATE_LIMITED, described, errors_of
from entrypoints.http.problems import NotAuthenticated
from entrypoints.presenters import User

router = APIRouter(prefix="/api/v1/auth", tags=["email"])


@router.post(
    "/verify-email",
    summary="Confirm my email address",
    description=described(VerifyEmail),
    response_model=User,
    responses=errors_of(VerifyEmail, BODY, RATE_LIMITED),
    dependencies=[ip_rate_limit(IpLimit.EMAIL_TOKEN)],
)
async def verify_email(
    body: schemas.VerifyEmailRequest,
    verify: Annotated[VerifyEmail, use(VerifyEmail)],
) -> Response:
    user = await verify(body.token)
    return json_response(User.of(user))


@router.post(
    "/verify-email/resend",
    summary="Send me a new verification link",
    description=described(ResendVerification)
    + "\n\n**Without a token** (an unconfirmed address may keep you from logging in),"
    ' send `{"email"}`. ' + described(RequestVerificationLink),
    status_code=202,
    response_class=Response,
    responses={
        202: {"description": "Queued: the mail goes out shortly."},
        **errors_of(ResendVerification, RequestVerificationLink, BEARER, BODY, RATE_LIMITED),
    },
)
async def resend_verification(
    request: Request,
    principal: OptionalPrincipal,
    resend: Annotated[ResendVerification, use(ResendVerification)],
    request_link: Annotated[RequestVerificationLink, use(RequestVerificationLink)],
    body: schemas.VerificationRequest | None = None,
) -> Response:
    if principal is not None:
        await hit_limit(request, IpLimit.VERIFICATION_EMAIL, f"user:{principal.user_id}")
        await resend(principal)
        return Response(status_code=202)
    if body is None:
        raise NotAuthenticated()
    # As for a reset request: both limits count every request, and the address only
    # by its hash.
    await hit_ip_limit(request, IpLimit.VERIFICATION_EMAIL)
    await hit_limit(request, IpLimit.VERIFICATION_EMAIL, f"email:{_address_key(body.email)}")
    await request_link(body.email)
    return Response(status_code=202)


def _address_key(email: str) -> str:
    """What the limits count a submitted address by: never the address itself."""
    return hashlib.sha256(canonical(email).encode()).hexdigest()[:32]


@router.post(
    "/password-reset/request",
    summary="Mail me a password reset link",
    description=described(RequestPasswordReset),
    status_code=202,
    response_class=Response,
    responses={
        202: {"description": "Recorded: an active account with this address gets a mail."},
        **errors_of(RequestPasswordReset, BODY, RATE_LIMITED),
    },
)
async def request_password_reset(
    request: Request,
    body: schemas.PasswordResetRequest,
    request_reset: Annotated[RequestPasswordReset, use(RequestPasswordReset)],
) -> Response:
    # Both limits count every request, whether or not an account has the address, so a
    # 429 says nothing about one. The address is counted by its hash: the limiter's
    # storage never holds it.
    await hit_ip_limit(request, IpLimit.PASSWORD_RESET)
    await hit_limit(request, IpLimit.PASSWORD_RESET, f"email:{_address_key(body.email)}")
    await request_reset(body.email)
    return Response(status_code=202)


@router.post(
    "/password-reset",
    summary="Set a new password with a reset link",
    description=described(ResetPassword),
    status_code=204,
    responses=errors_of(ResetPassword, BODY, RATE_LIMITED),
    dependencies=[ip_rate_limit(IpLimit.EMAIL_TOKEN)],
)
async def reset_password(
    body: schemas.PasswordReset,
    reset: Annotated[ResetPassword, use(ResetPassword)],
) -> Response:
    await reset(body.token, body.new_password)
    return Response(status_code=204)
