"""``/api/v1/users``: registration, the public list, and one's own profile."""

from typing import Annotated

from fastapi import APIRouter, Request
from starlette.responses import Response

from application.accounts import UNSET
from application.users import (
    DeleteAccount,
    ListUsers,
    NewUser,
    ProfileChanges,
    RegisterUser,
    UpdateProfile,
)
from domain.model import PageRequest
from domain.rules import normalize_email
from entrypoints.http import schemas
from entrypoints.http.dependencies import (
    CurrentPrincipal,
    IpLimit,
    PageNumber,
    PageSize,
    ProfileReader,
    ProfileWriter,
    hit_ip_limit,
    hit_limit,
    ip_rate_limit,
    json_response,
    use,
)
from entrypoints.http.openapi import (
    BEARER,
    BODY,
    PARAMS,
    RATE_LIMITED,
    described,
    errors_of,
)
from entrypoints.presenters import User, UserPage

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.post(
    "/",
    summary="Register",
    description=described(RegisterUser),
    status_code=201,
    response_model=User,
    responses=errors_of(RegisterUser, BODY, RATE_LIMITED),
    dependencies=[ip_rate_limit(IpLimit.REGISTER)],
)
async def register_user(
    body: schemas.UserCreate,
    register: Annotated[RegisterUser, use(RegisterUser)],
) -> Response:
    user = await register(
        NewUser(
            email=body.email,
            username=body.username,
            password=body.password,
            full_name=body.full_name,
        )
    )
    return json_response(User.of(user), status_code=201)


@router.get(
    "/",
    summary="List users",
    description=described(ListUsers).split("\n")[0] + " Emails are never shown.",
    response_model=UserPage,
    responses=errors_of(ListUsers, PARAMS),
)
async def list_users(
    list_users: Annotated[ListUsers, use(ListUsers)],
    page: PageNumber = 1,
    size: PageSize = 20,
) -> Response:
    found = await list_users(PageRequest(page=page, size=size))
    return json_response(UserPage.of_page(found))


@router.get(
    "/me",
    summary="My profile",
    response_model=User,
    responses=errors_of(BEARER),
)
async def get_me(principal: ProfileReader) -> Response:
    return json_response(User.of(principal.user))


@router.patch(
    "/me",
    summary="Update my profile",
    description=described(UpdateProfile),
    response_model=User,
    responses=errors_of(UpdateProfile, BEARER, BODY, RATE_LIMITED),
)
async def update_me(
    request: Request,
    body: schemas.UserUpdate,
    principal: ProfileWriter,
    update_profile: Annotated[UpdateProfile, use(UpdateProfile)],
) -> Response:
    if body.current_password is not None:
        # A password check, like a login: limited per client IP as well as per account.
        await hit_ip_limit(request, IpLimit.LOGIN)
    if body.email is not None and normalize_email(body.email) != principal.user.email:
        # Each change mails both addresses: limited per user, whatever the IP.
        await hit_limit(request, IpLimit.EMAIL_CHANGE, f"user:{principal.user_id}")
    user = await update_profile(
        principal,
        ProfileChanges(
            email=body.email,
            username=body.username,
            full_name=body.full_name if "full_name" in body.model_fields_set else UNSET,
            password=body.password,
            current_password=body.current_password,
        ),
    )
    return json_response(User.of(user))


@router.delete(
    "/me",
    summary="Delete my account",
    description=described(DeleteAccount),
    status_code=204,
    responses=errors_of(DeleteAccount, BEARER),
)
async def delete_me(
    principal: CurrentPrincipal,
    delete_account: Annotated[DeleteAccount, use(DeleteAccount)],
) -> Response:
    await delete_account(principal)
    return Response(status_code=204)
