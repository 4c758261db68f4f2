"""Organizations: creating them, their members and roles, invitations, and their trail.

Every use case of an existing organization starts with ``enter``: the caller's
membership, in one statement, and the role the operation needs. A non-member gets
``OrgNotFound`` whatever they ask, so nobody learns which organizations exist.
"""

from __future__ import annotations

from datetime import timedelta

from application.audit import record_in
from application.email import queue_message
from domain.audit import Action, AuditEvent, AuditFilter, AuditLog
from domain.errors import EmailNotVerified, Forbidden, InvalidValue, Raises
from domain.model import Page, PageRequest, Principal
from domain.orgs import (
    AlreadyMember,
    InvalidInvitationToken,
    Invitation,
    InvitationEmailMismatch,
    InvitationNotFound,
    InvitationRepository,
    LastOwner,
    Member,
    MemberNotFound,
    Membership,
    Org,
    OrgNotFound,
    OrgRepository,
    Role,
    RoleTooLow,
    SlugTaken,
    TooManyOrgs,
    invitation_token_hash,
    may_grant,
    may_manage,
    validate_org_name,
    validate_slug,
)
from domain.outbox import Template
from domain.ports import Clock, UnitOfWork, UowFactory
from domain.rules import canonical, validate_email


async def enter(uow: UnitOfWork, slug: str, principal: Principal, role: Role) -> Membership:
    """The caller's membership of the organization ``slug``, which must be at least
    ``role``: ``OrgNotFound`` for a non-member (or no such organization), ``Forbidden``
    for a member below it. The one check on the way into an organization."""
    found = await uow.repository(OrgRepository).membership(slug, principal.user_id)
    if found is None:
        raise OrgNotFound()
    found.require(role)
    return found


class CreateOrg:
    """Create an organization; the caller is its owner. A user creates at most
    ``ORGS_PER_USER`` of them, also when creating several at once."""

    raises: Raises = (InvalidValue, SlugTaken, TooManyOrgs)

    def __init__(self, uow: UowFactory, clock: Clock, per_user: int) -> None:
        self._uow = uow
        self._clock = clock
        self._per_user = per_user

    async def __call__(self, principal: Principal, slug: str, name: str) -> Membership:
        org = Org(
            slug=validate_slug(slug),
            name=validate_org_name(name),
            created_at=self._clock.now(),
            created_by=principal.user_id,
        )
        async with self._uow() as uow:
            stored = await uow.repository(OrgRepository).create(
                org, principal.user_id, self._per_user
            )
            if stored is None:
                raise TooManyOrgs()
            assert stored.id is not None
            await record_in(
                uow,
                stored.id,
                Action.ORG_CREATED,
                principal.user_id,
                org.created_at,
                slug=stored.slug,
            )
            await uow.commit()
        return Membership(org=stored, user_id=principal.user_id, role=Role.OWNER)


class ListMyOrgs:
    """The caller's organizations, ordered by slug, each with the caller's role."""

    raises: Raises = ()

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, principal: Principal, page: PageRequest) -> Page[Membership]:
        async with self._reader() as uow:
            return await uow.repository(OrgRepository).list_for_user(principal.user_id, page)


class GetOrg:
    """One of the caller's organizations."""

    raises: Raises = (OrgNotFound,)

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, principal: Principal, slug: str) -> Membership:
        async with self._reader() as uow:
            return await enter(uow, slug, principal, Role.MEMBER)


class RenameOrg:
    """Change an organization's name (its slug never changes). Admins and owners."""

    raises: Raises = (OrgNotFound, Forbidden, InvalidValue)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, slug: str, name: str) -> Membership:
        name = validate_org_name(name)
        async with self._uow() as uow:
            membership = await enter(uow, slug, principal, Role.ADMIN)
            renamed = await uow.repository(OrgRepository).rename(membership.org_id, name)
            if renamed is None:
                raise OrgNotFound()
            await record_in(
                uow,
                membership.org_id,
                Action.ORG_UPDATED,
                None,
                self._clock.now(),
                fields=["name"],
            )
            await uow.commit()
        return Membership(org=renamed, user_id=principal.user_id, role=membership.role)


class DeleteOrg:
    """Delete an organization with its memberships and invitations. Owners only."""

    raises: Raises = (OrgNotFound, Forbidden)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, slug: str) -> None:
        async with self._uow() as uow:
            membership = await enter(uow, slug, principal, Role.OWNER)
            if not await uow.repository(OrgRepository).delete(membership.org_id):
                raise OrgNotFound()
            await record_in(
                uow,
                membership.org_id,
                Action.ORG_DELETED,
                None,
                self._clock.now(),
                slug=slug,
            )
            await uow.commit()


class ListMembers:
    """An organization's members, by user id (no emails)."""

    raises: Raises = (OrgNotFound,)

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, principal: Principal, slug: str, page: PageRequest) -> Page[Member]:
        async with self._reader() as uow:
            membership = await enter(uow, slug, principal, Role.MEMBER)
            return await uow.repository(OrgRepository).members(membership.org_id, page)


async def _held_target(
    uow: UnitOfWork, membership: Membership, user_id: int
) -> tuple[OrgRepository, Role]:
    """Hold the organization (every change to its owners does, so two of them never
    both see another owner left), then the target's role as it is now."""
    orgs = uow.repository(OrgRepository)
    if not await orgs.hold(membership.org_id):
        raise OrgNotFound()
    role = await orgs.role_of(membership.org_id, user_id)
    if role is None:
        raise MemberNotFound()
    return orgs, role


class ChangeRole:
    """Change a member's role. Admins move members and admins between `member` and
    `admin`; only owners make or unmake owners. The last owner stays one."""

    raises: Raises = (OrgNotFound, MemberNotFound, Forbidden, LastOwner)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, slug: str, user_id: int, role: Role) -> Member:
        async with self._uow() as uow:
            membership = await enter(uow, slug, principal, Role.ADMIN)
            orgs, current = await _held_target(uow, membership, user_id)
            if not (may_manage(membership.role, current) and may_grant(membership.role, role)):
                raise RoleTooLow()
            if current is not role:
                if not await orgs.set_role(membership.org_id, user_id, role):
                    raise LastOwner()
                await record_in(
                    uow,
                    membership.org_id,
                    Action.ORG_MEMBER_ROLE_CHANGED,
                    user_id,
                    self._clock.now(),
                    old_role=current.value,
                    new_role=role.value,
                )
            member = await _member(orgs, membership.org_id, user_id)
            await uow.commit()
        return member


async def _member(orgs: OrgRepository, org_id: int, user_id: int) -> Member:
    found = await orgs.member(org_id, user_id)
    if found is None:
        raise MemberNotFound()
    return found


class RemoveMember:
    """Remove a member: admins remove members and admins, owners anyone; every member
    may leave. The last owner cannot go."""

    raises: Raises = (OrgNotFound, MemberNotFound, Forbidden, LastOwner)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, slug: str, user_id: int) -> None:
        leaving = user_id == principal.user_id
        async with self._uow() as uow:
            membership = await enter(uow, slug, principal, Role.MEMBER)
            if not leaving:
                membership.require(Role.ADMIN)
            orgs, current = await _held_target(uow, membership, user_id)
            if not leaving and not may_manage(membership.role, current):
                raise RoleTooLow()
            if not await orgs.remove_member(membership.org_id, user_id):
                raise LastOwner()
            await record_in(
                uow,
                membership.org_id,
                Action.ORG_MEMBER_REMOVED,
                user_id,
                self._clock.now(),
                role=current.value,
                left=leaving,
            )
            await uow.commit()


class InviteMember:
    """Invite an address to join with a role, by mail (the link works once, for that
    address only). Inviting it again replaces its pending invitation; inviting a
    member is refused. Admins invite members and admins; owners invite owners too."""

    raises: Raises = (OrgNotFound, Forbidden, InvalidValue, AlreadyMember)

    def __init__(self, uow: UowFactory, clock: Clock, ttl: timedelta) -> None:
        self._uow = uow
        self._clock = clock
        self._ttl = ttl

    async def __call__(self, principal: Principal, slug: str, email: str, role: Role) -> Invitation:
        email = validate_email(email)
        async with self._uow() as uow:
            membership = await enter(uow, slug, principal, Role.ADMIN)
            if not may_grant(membership.role, role):
                raise RoleTooLow()
            orgs = uow.repository(OrgRepository)
            # Held: an invitation and an acceptance of the same address never cross.
            if not await orgs.hold(membership.org_id):
                raise OrgNotFound()
            if await orgs.is_member_by_email(membership.org_id, email):
                raise AlreadyMember()
            now = self._clock.now()
            invitation = Invitation.issue(
                membership.org_id, email, role, principal.user_id, now, self._ttl
            )
            await uow.repository(InvitationRepository).replace(invitation)
            await queue_message(
                uow,
                Template.ORG_INVITATION,
                email,
                now,
                context={
                    "invitation_id": invitation.id,
                    "org_name": membership.org.name,
                    "inviter": principal.user.username,
                    "role": role.value,
                },
            )
            await record_in(
                uow,
                membership.org_id,
                Action.ORG_INVITATION_SENT,
                None,
                now,
                invitation_id=invitation.id,
                role=role.value,
            )
            await uow.commit()
        return invitation


class ListInvitations:
    """An organization's pending invitations, newest first. Admins and owners."""

    raises: Raises = (OrgNotFound, Forbidden)

    def __init__(self, reader: UowFactory, clock: Clock) -> None:
        self._reader = reader
        self._clock = clock

    async def __call__(self, principal: Principal, slug: str) -> list[Invitation]:
        async with self._reader() as uow:
            membership = await enter(uow, slug, principal, Role.ADMIN)
            return await uow.repository(InvitationRepository).pending(
                membership.org_id, self._clock.now()
            )


class RevokeInvitation:
    """Withdraw a pending invitation: its link stops working. Admins and owners."""

    raises: Raises = (OrgNotFound, Forbidden, InvitationNotFound)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, slug: str, invitation_id: str) -> None:
        async with self._uow() as uow:
            membership = await enter(uow, slug, principal, Role.ADMIN)
            if not await uow.repository(InvitationRepository).revoke(
                membership.org_id, invitation_id
            ):
                raise InvitationNotFound()
            await record_in(
                uow,
                membership.org_id,
                Action.ORG_INVITATION_REVOKED,
                None,
                self._clock.now(),
                invitation_id=invitation_id,
            )
            await uow.commit()


class AcceptInvitation:
    """Join an organization with the mailed link's token. The caller's verified address
    must be the invited one; the link works once."""

    raises: Raises = (
        InvalidInvitationToken,
        InvitationEmailMismatch,
        EmailNotVerified,
        AlreadyMember,
    )

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, token: str) -> Membership:
        hashed = invitation_token_hash(token)
        if hashed is None:
            raise InvalidInvitationToken()
        user = principal.user
        async with self._uow() as uow:
            now = self._clock.now()
            invitations, orgs = uow.repository(InvitationRepository), uow.repository(OrgRepository)
            # The organization first, as an invitation to it takes it: an acceptance and
            # a new invitation of the same address wait for each other, never deadlock.
            org_id = await invitations.org_of(hashed)
            if org_id is None or not await orgs.hold(org_id):
                raise InvalidInvitationToken()
            # Used up here, once; any refusal below rolls it back for the right person.
            invitation = await invitations.redeem(hashed, now)
            if invitation is None:
                raise InvalidInvitationToken()
            if canonical(invitation.email) != canonical(user.email):
                raise InvitationEmailMismatch()
            if not user.is_verified:
                raise EmailNotVerified(
                    "Confirm your email address first: follow the link we sent you, then"
                    " open the invitation again."
                )
            if not await orgs.add_member(
                invitation.org_id, principal.user_id, invitation.role, now
            ):
                raise AlreadyMember()
            await record_in(
                uow,
                invitation.org_id,
                Action.ORG_INVITATION_ACCEPTED,
                principal.user_id,
                now,
                invitation_id=invitation.id,
            )
            await record_in(
                uow,
                invitation.org_id,
                Action.ORG_MEMBER_ADDED,
                principal.user_id,
                now,
                role=invitation.role.value,
            )
            found = await orgs.membership_by_id(invitation.org_id, principal.user_id)
            if found is None:
                raise InvalidInvitationToken()
            await uow.commit()
        return found


class ListOrgAuditEvents:
    """An organization's own audit trail, newest first. Admins and owners."""

    raises: Raises = (OrgNotFound, Forbidden)

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(
        self, principal: Principal, slug: str, action: str | None, request: PageRequest
    ) -> Page[AuditEvent]:
        async with self._reader() as uow:
            membership = await enter(uow, slug, principal, Role.ADMIN)
            where = AuditFilter(action=action, org_id=membership.org_id)
            items, total = await uow.repository(AuditLog).page(where, request)
        return Page(items=items, total=total, page=request.page, size=request.size)
