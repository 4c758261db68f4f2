"""``/api/v1/orgs``: organizations, their members, invitations and trail; and
``/api/v1/invitations/accept``."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from application.orgs import (
    AcceptInvitation,
    ChangeRole,
    CreateOrg,
    DeleteOrg,
    GetOrg,
    InviteMember,
    ListInvitations,
    ListMembers,
    ListMyOrgs,
    ListOrgAuditEvents,
    RemoveMember,
    RenameOrg,
    RevokeInvitation,
)
from domain.audit import Action
from domain.model import PageRequest
from domain.orgs import Role
from entrypoints.http import schemas
from entrypoints.http.dependencies import (
    IpLimit,
    OrgsReader,
    OrgsWriter,
    PageNumber,
    PageSize,
    hit_limit,
    json_response,
    use,
)
from entrypoints.http.openapi import BEARER, BODY, PARAMS, RATE_LIMITED, described, errors_of
from entrypoints.presenters import AuditPage, Invitation, Member, MemberPage, Org, OrgPage

router = APIRouter(prefix="/api/v1/orgs", tags=["organizations"])
invitations_router = APIRouter(prefix="/api/v1/invitations", tags=["organizations"])
# Any text up to a bound: a slug no organization has (of any form) is 404, like one
# that exists for others only.
Slug = Annotated[str, Path(max_length=64, description="The organization's slug.")]
UserId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The member's user id.")]
InvitationId = Annotated[str, Path(max_length=64, description="The invitation's id.")]


@router.post(
    "",
    summary="Create an organization",
    description=described(CreateOrg),
    status_code=201,
    response_model=Org,
    responses=errors_of(CreateOrg, BEARER, BODY),
)
async def create_org(
    body: schemas.OrgCreate,
    principal: OrgsWriter,
    create: Annotated[CreateOrg, use(CreateOrg)],
) -> Response:
    membership = await create(principal, body.slug, body.name)
    return json_response(Org.of_membership(membership), status_code=201)


@router.get(
    "",
    summary="List my organizations",
    description=described(ListMyOrgs),
    response_model=OrgPage,
    responses=errors_of(ListMyOrgs, BEARER, PARAMS),
)
async def list_my_orgs(
    principal: OrgsReader,
    list_mine: Annotated[ListMyOrgs, use(ListMyOrgs)],
    page: PageNumber = 1,
    size: PageSize = 20,
) -> Response:
    found = await list_mine(principal, PageRequest(page=page, size=size))
    return json_response(OrgPage.of_page(found))


@router.get(
    "/{slug}",
    summary="An organization",
    description=described(GetOrg),
    response_model=Org,
    responses=errors_of(GetOrg, BEARER, PARAMS),
)
async def get_org(
    slug: Slug, principal: OrgsReader, get: Annotated[GetOrg, use(GetOrg)]
) -> Response:
    return json_response(Org.of_membership(await get(principal, slug)))


@router.patch(
    "/{slug}",
    summary="Rename an organization",
    description=described(RenameOrg),
    response_model=Org,
    responses=errors_of(RenameOrg, BEARER, BODY, PARAMS),
)
async def rename_org(
    slug: Slug,
    body: schemas.OrgUpdate,
    principal: OrgsWriter,
    rename: Annotated[RenameOrg, use(RenameOrg)],
) -> Response:
    return json_response(Org.of_membership(await rename(principal, slug, body.name)))


@router.delete(
    "/{slug}",
    summary="Delete an organization",
    description=described(DeleteOrg),
    status_code=204,
    responses=errors_of(DeleteOrg, BEARER, PARAMS),
)
async def delete_org(
    slug: Slug, principal: OrgsWriter, delete: Annotated[DeleteOrg, use(DeleteOrg)]
) -> Response:
    await delete(principal, slug)
    return Response(status_code=204)


@router.get(
    "/{slug}/members",
    summary="List the members",
    description=described(ListMembers),
    response_model=MemberPage,
    responses=errors_of(ListMembers, BEARER, PARAMS),
)
async def list_members(
    slug: Slug,
    principal: OrgsReader,
    list_members: Annotated[ListMembers, use(ListMembers)],
    page: PageNumber = 1,
    size: PageSize = 20,
) -> Response:
    found = await list_members(principal, slug, PageRequest(page=page, size=size))
    return json_response(MemberPage.of_page(found))


@router.patch(
    "/{slug}/members/{user_id}",
    summary="Change a member's role",
    description=described(ChangeRole),
    response_model=Member,
    responses=errors_of(ChangeRole, BEARER, BODY, PARAMS),
)
async def change_role(
    slug: Slug,
    user_id: UserId,
    body: schemas.RoleChange,
    principal: OrgsWriter,
    change: Annotated[ChangeRole, use(ChangeRole)],
) -> Response:
    return json_response(Member.of_member(await change(principal, slug, user_id, body.role)))


@router.delete(
    "/{slug}/members/{user_id}",
    summary="Remove a member, or leave",
    description=described(RemoveMember),
    status_code=204,
    responses=errors_of(RemoveMember, BEARER, PARAMS),
)
async def remove_member(
    slug: Slug,
    user_id: UserId,
    principal: OrgsWriter,
    remove: Annotated[RemoveMember, use(RemoveMember)],
) -> Response:
    await remove(principal, slug, user_id)
    return Response(status_code=204)


@router.post(
    "/{slug}/invitations",
    summary="Invite someone by mail",
    description=described(InviteMember),
    status_code=201,
    response_model=Invitation,
    responses=errors_of(InviteMember, GetOrg, BEARER, BODY, PARAMS, RATE_LIMITED),
)
async def invite_member(
    request: Request,
    slug: Slug,
    body: schemas.InvitationCreate,
    principal: OrgsWriter,
    get: Annotated[GetOrg, use(GetOrg)],
    invite: Annotated[InviteMember, use(InviteMember)],
) -> Response:
    # Counted per organization, and only for those who may invite: nobody else spends
    # its quota.
    membership = await get(principal, slug)
    membership.require(Role.ADMIN)
    await hit_limit(request, IpLimit.INVITATIONS, f"org:{membership.org_id}")
    sent = await invite(principal, slug, body.email, body.role)
    return json_response(Invitation.of_invitation(sent), status_code=201)


@router.get(
    "/{slug}/invitations",
    summary="List the pending invitations",
    description=described(ListInvitations),
    response_model=list[Invitation],
    responses=errors_of(ListInvitations, BEARER, PARAMS),
)
async def list_invitations(
    slug: Slug,
    principal: OrgsReader,
    list_pending: Annotated[ListInvitations, use(ListInvitations)],
) -> Response:
    found = await list_pending(principal, slug)
    return json_response([Invitation.of_invitation(i) for i in found])


@router.delete(
    "/{slug}/invitations/{invitation_id}",
    summary="Revoke an invitation",
    description=described(RevokeInvitation),
    status_code=204,
    responses=errors_of(RevokeInvitation, BEARER, PARAMS),
)
async def revoke_invitation(
    slug: Slug,
    invitation_id: InvitationId,
    principal: OrgsWriter,
    revoke: Annotated[RevokeInvitation, use(RevokeInvitation)],
) -> Response:
    await revoke(principal, slug, invitation_id)
    return Response(status_code=204)


@router.get(
    "/{slug}/audit-events",
    summary="The organization's audit trail",
    description=described(ListOrgAuditEvents),
    response_model=AuditPage,
    responses=errors_of(ListOrgAuditEvents, BEARER, PARAMS),
)
async def list_org_audit_events(
    slug: Slug,
    principal: OrgsReader,
    list_events: Annotated[ListOrgAuditEvents, use(ListOrgAuditEvents)],
    page: PageNumber = 1,
    size: PageSize = 20,
    action: Annotated[Action | None, Query(description="Only this action.")] = None,
) -> Response:
    where = action.value if action else None
    found = await list_events(principal, slug, where, PageRequest(page=page, size=size))
    return json_response(AuditPage.of_page(found))


@invitations_router.post(
    "/accept",
    summary="Accept an invitation",
    description=described(AcceptInvitation),
    response_model=Org,
    responses=errors_of(AcceptInvitation, BEARER, BODY),
)
async def accept_invitation(
    body: schemas.InvitationAccept,
    principal: OrgsWriter,
    accept: Annotated[AcceptInvitation, use(AcceptInvitation)],
) -> Response:
    return json_response(Org.of_membership(await accept(principal, body.token)))
