"""``/api/v1/admin``: accounts and the audit trail, for superusers only.

The same use cases as the CLI's: an admin's change ends sessions, keeps the last
superuser and is recorded exactly as an operator's is.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from application.accounts import UNSET
from application.admin import (
    DeleteUser,
    EndUserSessions,
    GetUser,
    ListUserSessions,
    QueuePasswordReset,
    SearchUsers,
    UpdateUser,
    UserChanges,
)
from application.audit import ListAuditEvents
from application.mfa import ResetMfa
from domain.audit import Action, AuditFilter
from domain.model import PageRequest, UserFilter
from entrypoints.http import schemas
from entrypoints.http.dependencies import (
    AdminReader,
    AdminWriter,
    PageNumber,
    PageSize,
    json_response,
    use,
)
from entrypoints.http.openapi import BODY, PARAMS, SUPERUSER, described, errors_of
from entrypoints.presenters import AdminUserPage, AuditPage, Session, User

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
# Ids are positive and fit the database's BIGINT.
UserId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The user's id.")]


@router.get(
    "/users",
    summary="Search users",
    description=described(SearchUsers),
    response_model=AdminUserPage,
    responses=errors_of(SearchUsers, SUPERUSER, PARAMS),
)
async def search_users(
    _admin: AdminReader,
    search: Annotated[SearchUsers, use(SearchUsers)],
    page: PageNumber = 1,
    size: PageSize = 20,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=320,
            pattern=r"^[^\x00]*$",
            description="A part of the email or the username, in any case.",
        ),
    ] = None,
    is_active: bool | None = None,
    is_superuser: bool | None = None,
    is_verified: bool | None = None,
) -> Response:
    where = UserFilter(q=q, is_active=is_active, is_superuser=is_superuser, is_verified=is_verified)
    found = await search(where, PageRequest(page=page, size=size))
    return json_response(AdminUserPage.of_page(found))


@router.get(
    "/users/{user_id}",
    summary="Get a user",
    response_model=User,
    responses=errors_of(GetUser, SUPERUSER, PARAMS),
)
async def get_user(
    user_id: UserId, _admin: AdminReader, get: Annotated[GetUser, use(GetUser)]
) -> Response:
    return json_response(User.of(await get(user_id)))


@router.patch(
    "/users/{user_id}",
    summary="Change a user",
    description=described(UpdateUser),
    response_model=User,
    responses=errors_of(UpdateUser, SUPERUSER, BODY),
)
async def update_user(
    user_id: UserId,
    body: schemas.AdminUserUpdate,
    admin: AdminWriter,
    update: Annotated[UpdateUser, use(UpdateUser)],
) -> Response:
    changes = UserChanges(
        email=body.email,
        username=body.username,
        full_name=body.full_name if "full_name" in body.model_fields_set else UNSET,
        is_active=body.is_active,
        is_superuser=body.is_superuser,
        is_verified=body.is_verified,
    )
    user = await update(user_id, changes, acting_user=admin.user_id)
    return json_response(User.of(user))


@router.delete(
    "/users/{user_id}",
    summary="Delete a user",
    description=described(DeleteUser),
    status_code=204,
    responses=errors_of(DeleteUser, SUPERUSER, PARAMS),
)
async def delete_user(
    user_id: UserId, admin: AdminWriter, delete: Annotated[DeleteUser, use(DeleteUser)]
) -> Response:
    await delete(user_id, acting_user=admin.user_id)
    return Response(status_code=204)


@router.post(
    "/users/{user_id}/password-reset",
    summary="Mail a user a password reset link",
    description=described(QueuePasswordReset),
    status_code=202,
    response_class=Response,
    responses={
        202: {"description": "Queued: the mail goes out shortly."},
        **errors_of(QueuePasswordReset, SUPERUSER, PARAMS),
    },
)
async def queue_password_reset(
    user_id: UserId,
    _admin: AdminWriter,
    queue: Annotated[QueuePasswordReset, use(QueuePasswordReset)],
) -> Response:
    await queue(user_id)
    return Response(status_code=202)


@router.get(
    "/users/{user_id}/sessions",
    summary="List a user's sessions",
    description=described(ListUserSessions),
    response_model=list[Session],
    responses=errors_of(ListUserSessions, SUPERUSER, PARAMS),
)
async def list_user_sessions(
    user_id: UserId,
    admin: AdminReader,
    list_sessions: Annotated[ListUserSessions, use(ListUserSessions)],
) -> Response:
    found = await list_sessions(user_id)
    body: list[dict[str, Any]] = [Session.of_session(s, admin.session_id) for s in found]
    return json_response(body)


@router.delete(
    "/users/{user_id}/sessions",
    summary="End all of a user's sessions",
    description=described(EndUserSessions),
    status_code=204,
    responses=errors_of(EndUserSessions, SUPERUSER, PARAMS),
)
async def end_user_sessions(
    user_id: UserId,
    _admin: AdminWriter,
    end: Annotated[EndUserSessions, use(EndUserSessions)],
) -> Response:
    await end(user_id)
    return Response(status_code=204)


@router.delete(
    "/users/{user_id}/mfa",
    summary="Remove all of a user's second factors",
    description=described(ResetMfa),
    status_code=204,
    responses=errors_of(ResetMfa, SUPERUSER, PARAMS),
)
async def reset_user_mfa(
    user_id: UserId,
    _admin: AdminWriter,
    reset: Annotated[ResetMfa, use(ResetMfa)],
) -> Response:
    await reset(user_id)
    return Response(status_code=204)


@router.get(
    "/audit-events",
    summary="List audit events",
    description=described(ListAuditEvents),
    response_model=AuditPage,
    responses=errors_of(ListAuditEvents, SUPERUSER, PARAMS),
)
async def list_audit_events(
    _admin: AdminReader,
    list_events: Annotated[ListAuditEvents, use(ListAuditEvents)],
    page: PageNumber = 1,
    size: PageSize = 20,
    action: Annotated[Action | None, Query(description="Only this action.")] = None,
    actor_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    target_user_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    org_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    where = AuditFilter(
        action=action.value if action else None,
        actor_id=actor_id,
        target_user_id=target_user_id,
        org_id=org_id,
    )
    found = await list_events(where, PageRequest(page=page, size=size))
    return json_response(AuditPage.of_page(found))
