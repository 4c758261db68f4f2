"""Organizations, their members and their invitations: the tables and the repositories."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from adapters.executors import ConstraintViolation
from adapters.guards import PerOwnerLimit
from adapters.hot_statements import hot
from adapters.orm import BigId, UTCDateTime, email_key, metadata, users
from adapters.sql_repository import SqlRepository
from domain.model import Page, PageRequest
from domain.orgs import (
    Invitation,
    InvitationRepository,
    Member,
    Membership,
    Org,
    OrgRepository,
    Role,
    SlugTaken,
)

orgs = Table(
    "orgs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("slug", String(40), nullable=False),
    Column("name", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Who created it: what ORGS_PER_USER counts (kept by no one once they are gone).
    Column("created_by", BigId, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
)
Index("uq_orgs_slug", orgs.c.slug, unique=True)
Index("ix_orgs_created_by", orgs.c.created_by)

org_members = Table(
    "org_members",
    metadata,
    Column("org_id", BigId, ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("joined_at", UTCDateTime, nullable=False),
)
Index("ix_org_members_user_id", org_members.c.user_id)

org_invitations = Table(
    "org_invitations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("org_id", BigId, ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    # The address as uniqueness compares it: one pending invitation per address.
    Column("email_key", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("invited_by", BigId, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("token_hash", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("accepted_at", UTCDateTime, nullable=True),
)
Index(
    "uq_org_invitations_org_id_email_key",
    org_invitations.c.org_id,
    org_invitations.c.email_key,
    unique=True,
)
Index("uq_org_invitations_token_hash", org_invitations.c.token_hash, unique=True)
Index("ix_org_invitations_expires_at", org_invitations.c.expires_at)

ORG_COLUMNS = tuple(orgs.c)
_ORG_PREFIX = "o_"
_WITH_ROLE = (*(c.label(f"{_ORG_PREFIX}{c.name}") for c in ORG_COLUMNS), org_members.c.role)
_MINE = and_(org_members.c.org_id == orgs.c.id, org_members.c.user_id == bindparam("uid"))
# Every request into an organization starts here: hot.
_MEMBERSHIP = hot(
    select(*_WITH_ROLE)
    .select_from(orgs.join(org_members, _MINE))
    .where(orgs.c.slug == bindparam("slug"))
)
_MEMBERSHIP_BY_ID = (
    select(*_WITH_ROLE)
    .select_from(orgs.join(org_members, _MINE))
    .where(orgs.c.id == bindparam("oid"))
)
_MY_ORGS = select(*_WITH_ROLE).select_from(orgs.join(org_members, _MINE))
# The two lists a member reads most (benchmarks/README.md, "Organizations"): hot.
_MY_ORG_COUNT = hot(
    select(func.count().label("total")).where(org_members.c.user_id == bindparam("uid"))
)
_MY_ORG_PAGE = hot(
    _MY_ORGS.order_by(orgs.c.slug).limit(bindparam("limit")).offset(bindparam("offset"))
)
_LIMIT = PerOwnerLimit(orgs, orgs.c.created_by)
_ADD_MEMBER = insert(org_members)
# A member once (under the organization's lock: a failed INSERT would end the
# transaction on PostgreSQL).
_JOIN = insert(org_members).from_select(
    ["org_id", "user_id", "role", "joined_at"],
    select(
        bindparam("oid", type_=BigId),
        bindparam("uid", type_=BigId),
        bindparam("new_role", type_=String),
        bindparam("at", type_=UTCDateTime),
    ).where(
        ~exists().where(
            org_members.c.org_id == bindparam("oid"),
            org_members.c.user_id == bindparam("uid"),
        )
    ),
)
_RENAME = (
    update(orgs)
    .where(orgs.c.id == bindparam("oid"))
    .values(name=bindparam("new_name"))
    .returning(*orgs.c)
)
_DELETE = delete(orgs).where(orgs.c.id == bindparam("oid"))
_HOLD = select(orgs.c.id).where(orgs.c.id == bindparam("oid")).with_for_update()

_IN_ORG = org_members.c.org_id == bindparam("oid")
_MEMBER_COLUMNS = (
    org_members.c.user_id,
    users.c.username,
    users.c.full_name,
    org_members.c.role,
    org_members.c.joined_at,
)
_MEMBERS_OF = select(*_MEMBER_COLUMNS).select_from(
    org_members.join(users, users.c.id == org_members.c.user_id)
)
_MEMBER_COUNT = hot(select(func.count().label("total")).where(_IN_ORG))
_MEMBER_PAGE = hot(
    _MEMBERS_OF.where(_IN_ORG)
    .order_by(org_members.c.user_id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_THE_MEMBER = (_IN_ORG, org_members.c.user_id == bindparam("uid"))
_MEMBER = _MEMBERS_OF.where(*_THE_MEMBER)
_ROLE = select(org_members.c.role).where(*_THE_MEMBER)
_OTHER = org_members.alias("other")
# Another owner stays: what every change to an owner needs (under the organization's lock).
_ANOTHER_OWNER = exists().where(
    _OTHER.c.org_id == bindparam("oid"),
    _OTHER.c.role == Role.OWNER.value,
    _OTHER.c.user_id != bindparam("uid"),
)
_KEEPS_AN_OWNER = or_(org_members.c.role != Role.OWNER.value, _ANOTHER_OWNER)
_SET_ROLE = (
    update(org_members)
    .where(*_THE_MEMBER, or_(bindparam("new_role") == Role.OWNER.value, _KEEPS_AN_OWNER))
    .values(role=bindparam("new_role"))
)
_REMOVE = delete(org_members).where(*_THE_MEMBER, _KEEPS_AN_OWNER)
_MEMBER_BY_EMAIL = select(
    exists().where(
        _IN_ORG,
        org_members.c.user_id == users.c.id,
        users.c.email_key == bindparam("key"),
    )
)

# Deleting a user: their organizations, held in a stable order.
_HOLD_THEIRS = (
    select(orgs.c.id)
    .where(
        orgs.c.id.in_(select(org_members.c.org_id).where(org_members.c.user_id == bindparam("uid")))
    )
    .order_by(orgs.c.id)
    .with_for_update()
)
_MINE_M = org_members.alias("mine")
_SOMEONE_ELSE = exists().where(
    _OTHER.c.org_id == _MINE_M.c.org_id, _OTHER.c.user_id != bindparam("uid")
)
_ANOTHER_OWNER_OF_MINE = exists().where(
    _OTHER.c.org_id == _MINE_M.c.org_id,
    _OTHER.c.user_id != bindparam("uid"),
    _OTHER.c.role == Role.OWNER.value,
)
_LAST_OWNER_WITH_OTHERS = select(
    exists().where(
        _MINE_M.c.user_id == bindparam("uid"),
        _MINE_M.c.role == Role.OWNER.value,
        ~_ANOTHER_OWNER_OF_MINE,
        _SOMEONE_ELSE,
    )
)
_DELETE_ALONE = delete(orgs).where(
    orgs.c.id.in_(
        select(_MINE_M.c.org_id).where(_MINE_M.c.user_id == bindparam("uid"), ~_SOMEONE_ELSE)
    )
)


# Rows to entities: by position and by a dict lookup for the role, since a list of
# organizations builds one of each per row (the dict-built form cost 2.6 µs a row;
# benchmarks/README.md, "Personal access tokens and organizations").
_ORG_FIELDS = ("slug", "name", "created_at", "created_by", "id")
_ORG_KEYS = {prefix: tuple(prefix + name for name in _ORG_FIELDS) for prefix in ("", _ORG_PREFIX)}
_ROLES = {role.value: role for role in Role}


def _org(row: Mapping[str, Any], prefix: str = "") -> Org:
    return Org(*(row[key] for key in _ORG_KEYS[prefix]))


def _membership(row: Mapping[str, Any], user_id: int) -> Membership:
    return Membership(_org(row, _ORG_PREFIX), user_id, _ROLES[row["role"]])


def _member(row: Mapping[str, Any]) -> Member:
    values = dict(row)
    values["role"] = Role(values["role"])
    return Member(**values)


class SqlOrgRepository(SqlRepository, OrgRepository):
    async def create(self, org: Org, owner: int, limit: int) -> Org | None:
        values = {name: value for name, value in vars(org).items() if name != "id"}
        try:
            org_id = await _LIMIT.insert(self._db, values, limit)
        except ConstraintViolation as exc:
            if "slug" in exc.name:
                raise SlugTaken() from None
            raise
        if org_id is None:
            return None
        await self._db.execute(
            _ADD_MEMBER,
            {
                "org_id": org_id,
                "user_id": owner,
                "role": Role.OWNER.value,
                "joined_at": org.created_at,
            },
        )
        return Org(**{**values, "id": org_id})

    async def membership(self, slug: str, user_id: int) -> Membership | None:
        row = await self._db.one(_MEMBERSHIP, {"slug": slug, "uid": user_id})
        return _membership(row, user_id) if row is not None else None

    async def membership_by_id(self, org_id: int, user_id: int) -> Membership | None:
        row = await self._db.one(_MEMBERSHIP_BY_ID, {"oid": org_id, "uid": user_id})
        return _membership(row, user_id) if row is not None else None

    async def list_for_user(self, user_id: int, page: PageRequest) -> Page[Membership]:
        total = int(await self._db.scalar(_MY_ORG_COUNT, {"uid": user_id}) or 0)
        rows = []
        if page.offset < total:
            params = {"uid": user_id, "limit": page.size, "offset": page.offset}
            rows = list(await self._db.all(_MY_ORG_PAGE, params))
        items = [_membership(row, user_id) for row in rows]
        return Page(items=items, total=total, page=page.page, size=page.size)

    async def rename(self, org_id: int, name: str) -> Org | None:
        row = await self._db.one(_RENAME, {"oid": org_id, "new_name": name})
        return _org(row) if row is not None else None

    async def delete(self, org_id: int) -> bool:
        return await self._db.execute(_DELETE, {"oid": org_id}) == 1

    async def hold(self, org_id: int) -> bool:
        return bool(await self._db.all(_HOLD, {"oid": org_id}))

    async def members(self, org_id: int, page: PageRequest) -> Page[Member]:
        total = int(await self._db.scalar(_MEMBER_COUNT, {"oid": org_id}) or 0)
        rows = []
        if page.offset < total:
            params = {"oid": org_id, "limit": page.size, "offset": page.offset}
            rows = list(await self._db.all(_MEMBER_PAGE, params))
        return Page(items=[_member(r) for r in rows], total=total, page=page.page, size=page.size)

    async def member(self, org_id: int, user_id: int) -> Member | None:
        row = await self._db.one(_MEMBER, {"oid": org_id, "uid": user_id})
        return _member(row) if row is not None else None

    async def role_of(self, org_id: int, user_id: int) -> Role | None:
        found = await self._db.scalar(_ROLE, {"oid": org_id, "uid": user_id})
        return Role(found) if found is not None else None

    async def add_member(self, org_id: int, user_id: int, role: Role, at: datetime) -> bool:
        params = {"oid": org_id, "uid": user_id, "new_role": role.value, "at": at}
        return await self._db.execute(_JOIN, params) == 1

    async def set_role(self, org_id: int, user_id: int, role: Role) -> bool:
        params = {"oid": org_id, "uid": user_id, "new_role": role.value}
        return await self._db.execute(_SET_ROLE, params) == 1

    async def remove_member(self, org_id: int, user_id: int) -> bool:
        return await self._db.execute(_REMOVE, {"oid": org_id, "uid": user_id}) == 1

    async def is_member_by_email(self, org_id: int, email: str) -> bool:
        return bool(
            await self._db.scalar(_MEMBER_BY_EMAIL, {"oid": org_id, "key": email_key(email)})
        )

    async def release_user(self, user_id: int) -> bool:
        await self._db.all(_HOLD_THEIRS, {"uid": user_id})
        if await self._db.scalar(_LAST_OWNER_WITH_OTHERS, {"uid": user_id}):
            return False
        await self._db.execute(_DELETE_ALONE, {"uid": user_id})
        return True


_INVITATION_COLUMNS = [c for c in org_invitations.c if c.name != "email_key"]
_REPLACE = delete(org_invitations).where(
    org_invitations.c.org_id == bindparam("oid"),
    org_invitations.c.email_key == bindparam("key"),
)
_INSERT_INVITATION = insert(org_invitations)
_PENDING = and_(
    org_invitations.c.accepted_at.is_(None), org_invitations.c.expires_at > bindparam("now")
)
_LIST_PENDING = (
    select(*_INVITATION_COLUMNS)
    .where(org_invitations.c.org_id == bindparam("oid"), _PENDING)
    .order_by(org_invitations.c.created_at.desc(), org_invitations.c.id)
)
_GET_INVITATION = select(*_INVITATION_COLUMNS).where(
    org_invitations.c.id == bindparam("invitation_id")
)
_REVOKE = delete(org_invitations).where(
    org_invitations.c.id == bindparam("invitation_id"),
    org_invitations.c.org_id == bindparam("oid"),
    org_invitations.c.accepted_at.is_(None),
)
_SET_TOKEN = (
    update(org_invitations)
    .where(org_invitations.c.id == bindparam("invitation_id"), _PENDING)
    .values(token_hash=bindparam("new_hash"))
)
# Once: of two redemptions at once, the second finds it accepted.
_REDEEM = (
    update(org_invitations)
    .where(org_invitations.c.token_hash == bindparam("hash"), _PENDING)
    .values(accepted_at=bindparam("now"))
    .returning(*_INVITATION_COLUMNS)
)
_ORG_OF = select(org_invitations.c.org_id).where(org_invitations.c.token_hash == bindparam("hash"))
_DELETE_SPENT = delete(org_invitations).where(
    org_invitations.c.id.in_(
        select(org_invitations.c.id)
        .where(
            or_(
                org_invitations.c.accepted_at.is_not(None),
                org_invitations.c.expires_at <= bindparam("now"),
            )
        )
        .limit(bindparam("limit"))
    )
)


def _invitation(row: Mapping[str, Any]) -> Invitation:
    values = dict(row)
    values["role"] = Role(values["role"])
    return Invitation(**values)


class SqlInvitationRepository(SqlRepository, InvitationRepository):
    async def replace(self, invitation: Invitation) -> None:
        key = email_key(invitation.email)
        await self._db.execute(_REPLACE, {"oid": invitation.org_id, "key": key})
        values = {**vars(invitation), "role": invitation.role.value, "email_key": key}
        await self._db.execute(_INSERT_INVITATION, values)

    async def pending(self, org_id: int, now: datetime) -> list[Invitation]:
        rows = await self._db.all(_LIST_PENDING, {"oid": org_id, "now": now})
        return [_invitation(row) for row in rows]

    async def get(self, invitation_id: str) -> Invitation | None:
        row = await self._db.one(_GET_INVITATION, {"invitation_id": invitation_id})
        return _invitation(row) if row is not None else None

    async def revoke(self, org_id: int, invitation_id: str) -> bool:
        params = {"invitation_id": invitation_id, "oid": org_id}
        return await self._db.execute(_REVOKE, params) == 1

    async def set_token(self, invitation_id: str, token_hash: str, now: datetime) -> bool:
        params = {"invitation_id": invitation_id, "new_hash": token_hash, "now": now}
        return await self._db.execute(_SET_TOKEN, params) == 1

    async def org_of(self, token_hash: str) -> int | None:
        found = await self._db.scalar(_ORG_OF, {"hash": token_hash})
        return int(found) if found is not None else None

    async def redeem(self, token_hash: str, now: datetime) -> Invitation | None:
        row = await self._db.one(_REDEEM, {"hash": token_hash, "now": now})
        return _invitation(row) if row is not None else None

    async def delete_spent(self, now: datetime, limit: int) -> int:
        return await self._db.execute(_DELETE_SPENT, {"now": now, "limit": limit})
