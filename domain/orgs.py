"""Organizations: users working together, each member with a role.

Who may do what is written here once (``Role``, ``may_grant``, ``may_manage``); the use
cases ask it through ``Membership`` on the way in, and nowhere else. Nobody who is not
a member learns that an organization exists: every refusal to a non-member is
``OrgNotFound``.
"""

from __future__ import annotations

import abc
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.email_tokens import token_hash
from domain.errors import DomainError, ErrorCategory, Forbidden, InvalidValue, NotFound
from domain.fields import Text
from domain.model import Page, PageRequest

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,38})[a-z0-9]$")
SLUG_RULE = "3 to 40 characters of a-z, 0-9 and -, neither starting nor ending with -"
# An organization's name: its limits reach the table and the request schema from here.
NAME = Text("name", max_length=100)
INVITATION_TOKEN_BYTES = 32
MAX_INPUT_LENGTH = 1024


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}


def may_grant(actor: Role, role: Role) -> bool:
    """Whether ``actor`` may give ``role`` to someone (by invitation or a change):
    admins give member and admin; only owners give owner."""
    return actor is Role.OWNER or (actor is Role.ADMIN and role is not Role.OWNER)


def may_manage(actor: Role, target: Role) -> bool:
    """Whether ``actor`` may change or remove a member whose role is ``target``:
    admins manage members and admins; only owners manage owners."""
    return actor is Role.OWNER or (actor is Role.ADMIN and target is not Role.OWNER)


class RoleTooLow(Forbidden):
    """A member asked for what their role does not allow (still ``forbidden``)."""

    message = "Your role in this organization does not allow this."


class OrgNotFound(NotFound):
    message = "No such organization."


class MemberNotFound(NotFound):
    message = "No such member."


class InvitationNotFound(NotFound):
    message = "No such invitation."


class SlugTaken(DomainError):
    category = ErrorCategory.CONFLICT
    code = "slug_taken"
    message = "An organization with this slug already exists."


class TooManyOrgs(DomainError):
    category = ErrorCategory.CONFLICT
    code = "too_many_orgs"
    message = "You have created as many organizations as a user may."


class LastOwner(DomainError):
    category = ErrorCategory.CONFLICT
    code = "last_owner"
    message = "An organization must keep an owner: make another member an owner first."


class AlreadyMember(DomainError):
    category = ErrorCategory.CONFLICT
    code = "already_member"
    message = "This address is already a member of the organization."


class InvalidInvitationToken(DomainError):
    category = ErrorCategory.REJECTED
    code = "invalid_invitation_token"
    message = "The invitation is invalid, expired or already used."


class InvitationEmailMismatch(DomainError):
    category = ErrorCategory.FORBIDDEN
    code = "invitation_email_mismatch"
    message = "The invitation was sent to another address than yours."


def validate_slug(slug: str) -> str:
    if not SLUG.fullmatch(slug):
        raise InvalidValue("slug", f"must be {SLUG_RULE}")
    return slug


def validate_org_name(name: str) -> str:
    return NAME.validate(name)


@dataclass
class Org:
    slug: str
    name: str
    created_at: datetime
    created_by: int | None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    """The caller's place in an organization: what every use case of one starts from."""

    org: Org
    user_id: int
    role: Role

    @property
    def org_id(self) -> int:
        assert self.org.id is not None, "a stored organization"
        return self.org.id

    def require(self, role: Role) -> None:
        """``RoleTooLow`` unless the caller's role is at least ``role``."""
        if not self.role.at_least(role):
            raise RoleTooLow()


@dataclass(frozen=True)
class Member:
    user_id: int
    username: str
    full_name: str | None
    role: Role
    joined_at: datetime


@dataclass
class Invitation:
    id: str
    org_id: int
    email: str
    role: Role
    invited_by: int | None
    created_at: datetime
    expires_at: datetime
    # The SHA-256 of the link's token, set when the mail goes out (the token exists in
    # the mail alone); None until then.
    token_hash: str | None = None
    accepted_at: datetime | None = None

    @classmethod
    def issue(
        cls, org_id: int, email: str, role: Role, by: int, now: datetime, ttl: timedelta
    ) -> Invitation:
        return cls(
            id=secrets.token_hex(16),
            org_id=org_id,
            email=email,
            role=role,
            invited_by=by,
            created_at=now,
            expires_at=now + ttl,
        )


def new_invitation_token() -> tuple[str, str]:
    """A fresh link token and its stored form."""
    token = secrets.token_urlsafe(INVITATION_TOKEN_BYTES)
    return token, token_hash(token)


def invitation_token_hash(token: str) -> str | None:
    """The stored form of a presented token, or None for one that cannot be ours."""
    if not token or len(token) > MAX_INPUT_LENGTH:
        return None
    return token_hash(token)


class OrgRepository(abc.ABC):
    @abc.abstractmethod
    async def create(self, org: Org, owner: int, limit: int) -> Org | None:
        """Store ``org`` with ``owner`` as its owner, unless ``org.created_by`` has
        created ``limit`` organizations already (None): decided by the database, also
        when several are created at once. ``SlugTaken`` when the slug is."""

    @abc.abstractmethod
    async def membership(self, slug: str, user_id: int) -> Membership | None:
        """The organization and the user's role in it, in one statement; None when
        either is missing."""

    @abc.abstractmethod
    async def membership_by_id(self, org_id: int, user_id: int) -> Membership | None: ...

    @abc.abstractmethod
    async def list_for_user(self, user_id: int, page: PageRequest) -> Page[Membership]:
        """The user's organizations, ordered by slug."""

    @abc.abstractmethod
    async def rename(self, org_id: int, name: str) -> Org | None: ...

    @abc.abstractmethod
    async def delete(self, org_id: int) -> bool:
        """Remove the organization with its memberships and invitations."""

    @abc.abstractmethod
    async def hold(self, org_id: int) -> bool:
        """Lock the organization's row until the transaction ends: every change to its
        owners takes it first. False if it is gone."""

    @abc.abstractmethod
    async def members(self, org_id: int, page: PageRequest) -> Page[Member]:
        """Ordered by user id."""

    @abc.abstractmethod
    async def member(self, org_id: int, user_id: int) -> Member | None: ...

    @abc.abstractmethod
    async def role_of(self, org_id: int, user_id: int) -> Role | None: ...

    @abc.abstractmethod
    async def add_member(self, org_id: int, user_id: int, role: Role, at: datetime) -> bool:
        """False if the user is a member already. Call under ``hold``."""

    @abc.abstractmethod
    async def set_role(self, org_id: int, user_id: int, role: Role) -> bool:
        """Change a member's role, unless that leaves the organization without an owner
        (False). Call under ``hold``."""

    @abc.abstractmethod
    async def remove_member(self, org_id: int, user_id: int) -> bool:
        """Remove a member, unless they are its last owner (False). Call under ``hold``."""

    @abc.abstractmethod
    async def is_member_by_email(self, org_id: int, email: str) -> bool: ...

    @abc.abstractmethod
    async def release_user(self, user_id: int) -> bool:
        """Before a user is deleted: hold every organization they belong to, delete
        those they are the only member of, and answer False (changing nothing) if they
        are the last owner of one that has other members."""


class InvitationRepository(abc.ABC):
    @abc.abstractmethod
    async def replace(self, invitation: Invitation) -> None:
        """Store ``invitation``, replacing a pending one to the same address in the same
        organization. Call under ``OrgRepository.hold``."""

    @abc.abstractmethod
    async def pending(self, org_id: int, now: datetime) -> list[Invitation]:
        """Not accepted, not expired; newest first."""

    @abc.abstractmethod
    async def get(self, invitation_id: str) -> Invitation | None: ...

    @abc.abstractmethod
    async def revoke(self, org_id: int, invitation_id: str) -> bool: ...

    @abc.abstractmethod
    async def set_token(self, invitation_id: str, token_hash: str, now: datetime) -> bool:
        """Give a pending invitation its link's token (a new mail's replaces the old);
        False if it is no longer pending."""

    @abc.abstractmethod
    async def org_of(self, token_hash: str) -> int | None:
        """The organization of the invitation with this token, whatever its state: what
        an acceptance holds before it redeems (the order every writer of an
        organization's invitations and members takes its locks in)."""

    @abc.abstractmethod
    async def redeem(self, token_hash: str, now: datetime) -> Invitation | None:
        """Mark the pending invitation of this token accepted, once: of two at once, one
        gets it."""

    @abc.abstractmethod
    async def delete_spent(self, now: datetime, limit: int) -> int:
        """Remove up to ``limit`` accepted or expired invitations."""
