"""The user repository: statements built once at import, run through the unit of
work's executor (``adapters.executors``), never committing on its own."""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
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
from adapters.guards import Guard
from adapters.hot_statements import hot
from adapters.orm import email_key, metadata, refresh_tokens, sessions, users
from adapters.rows import (
    SESSION_COLUMNS,
    SESSION_PREFIX,
    USER_COLUMNS,
    USER_FIELDS,
    USER_SESSION_IDS,
    split,
)
from adapters.sql_repository import SqlRepository
from domain.errors import DomainError, EmailTaken, UsernameTaken
from domain.model import Credentials, PageRequest, ProfileUpdate, Session, User, UserFilter
from domain.ports import UserRepository
from domain.rules import canonical

# How many users are active, kept by triggers of the database (migration 0005) in the
# transaction of every change, spread over a few rows: a sum of 16 rows, not a count of
# the table.
user_counts = Table(
    "user_counts",
    metadata,
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column("value", BigInteger, nullable=False),
)
_COUNT_ACTIVE_USERS = select(func.coalesce(func.sum(user_counts.c.value), 0))

# Users
_SELECT_USERS = select(*USER_COLUMNS)
_GET_USER = _SELECT_USERS.where(users.c.id == bindparam("user_id"))
# Emails are compared by their key (adapters.orm.email_key), usernames lower-cased (the
# canonical form of a valid username): both sides use the unique indexes.
_GET_USER_BY_LOGIN = hot(
    _SELECT_USERS.where(
        (users.c.email_key == bindparam("key"))
        | (func.lower(users.c.username) == bindparam("login"))
    ).limit(1)
)
_GET_USER_BY_EMAIL = hot(_SELECT_USERS.where(users.c.email_key == bindparam("key")))
_GET_USER_WITH_SESSION = hot(
    select(*USER_COLUMNS, *(c.label(f"s_{c.name}") for c in SESSION_COLUMNS))
    .select_from(
        users.outerjoin(
            sessions,
            and_(sessions.c.id == bindparam("session_id"), sessions.c.user_id == users.c.id),
        )
    )
    .where(users.c.id == bindparam("user_id"))
)
_OTHER_USER = users.c.id != bindparam("except_user")
_EMAIL_TAKEN = select(exists().where(users.c.email_key == bindparam("value"), _OTHER_USER))
_USERNAME_TAKEN = select(
    exists().where(func.lower(users.c.username) == func.lower(bindparam("value")), _OTHER_USER)
)
_INSERT_USER = insert(users).returning(users.c.id)
# Parameters of UPDATE statements must not share a name with a column of the table.
_PROFILE_FIELDS = ("email", "username", "full_name", "password_hash", "is_verified")
_STILL_CURRENT = (
    users.c.id == bindparam("uid"),
    users.c.is_active,
    users.c.password_hash == bindparam("if_hash"),
    users.c.token_version == bindparam("if_version"),
)


def _new_values(fields: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {name: bindparam(f"new_{name}") for name in fields}
    if "email" in fields:  # the key changes with the email, in the same statement
        values["email_key"] = bindparam("new_email_key")
    return values


# One statement per set of fields, built here: the executors cache statements by identity.
_UPDATE_PROFILE = {
    fields: update(users).where(*_STILL_CURRENT).values(_new_values(fields))
    for count in range(1, len(_PROFILE_FIELDS) + 1)
    for fields in itertools.combinations(_PROFILE_FIELDS, count)
}
_UPDATE_DETAILS = {
    fields: update(users).where(users.c.id == bindparam("uid")).values(_new_values(fields))
    for count in range(1, len(_PROFILE_FIELDS) + 1)
    for fields in itertools.combinations(_PROFILE_FIELDS, count)
}
_SET_PASSWORD_HASH = (
    update(users).where(users.c.id == bindparam("uid")).values(password_hash=bindparam("new"))
)
_REHASH_PASSWORD = _SET_PASSWORD_HASH.where(users.c.password_hash == bindparam("if_hash"))
_MARK_VERIFIED = (
    update(users)
    .where(
        users.c.id == bindparam("uid"), users.c.is_active, users.c.email == bindparam("if_email")
    )
    .values(is_verified=True)
)
_SET_VERIFIED = (
    update(users).where(users.c.id == bindparam("uid")).values(is_verified=bindparam("flag"))
)
# The last active superuser (adapters/guards.py): every active superuser's row is held
# while a guarded write checks that another one remains.
_SUPERUSERS_GUARD = Guard(
    select(users.c.id).where(users.c.is_superuser, users.c.is_active).order_by(users.c.id)
)
_others = users.alias("others")
_ANOTHER_SUPERUSER = exists().where(
    _others.c.id != bindparam("uid"), _others.c.is_superuser, _others.c.is_active
)
_ACTIVATE = (
    update(users).where(users.c.id == bindparam("uid"), ~users.c.is_active).values(is_active=True)
)
_DEACTIVATE = (
    update(users)
    .where(
        users.c.id == bindparam("uid"),
        users.c.is_active,
        or_(~users.c.is_superuser, _ANOTHER_SUPERUSER),
    )
    .values(is_active=False)
)
_GRANT_SUPERUSER = (
    update(users)
    .where(users.c.id == bindparam("uid"), ~users.c.is_superuser)
    .values(is_superuser=True)
)
_REVOKE_SUPERUSER = (
    update(users)
    .where(
        users.c.id == bindparam("uid"),
        users.c.is_superuser,
        or_(~users.c.is_active, _ANOTHER_SUPERUSER),
    )
    .values(is_superuser=False)
)
_REVOKE_TOKENS = (
    update(users)
    .where(users.c.id == bindparam("uid"))
    .values(token_version=users.c.token_version + 1)
)
_DELETE_USER_TOKENS = delete(refresh_tokens).where(
    refresh_tokens.c.session_id.in_(USER_SESSION_IDS)
)
_DELETE_USER_SESSIONS = delete(sessions).where(sessions.c.user_id == bindparam("uid"))
_DELETE_USER = delete(users).where(
    users.c.id == bindparam("uid"),
    or_(~users.c.is_superuser, ~users.c.is_active, _ANOTHER_SUPERUSER),
)
_COUNT_USERS = select(func.count()).select_from(users)
_PAGE_OF_USERS = (
    _SELECT_USERS.order_by(users.c.id).limit(bindparam("limit")).offset(bindparam("offset"))
)
_PAGE_OF_ACTIVE_USERS = (
    _SELECT_USERS.where(users.c.is_active)
    .order_by(users.c.id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


@lru_cache(maxsize=16)  # one pair of statements per set of filters: bounded
def _search(q: bool, active: bool, superuser: bool, verified: bool) -> tuple[Any, Any]:
    conditions = []
    if q:
        pattern: Any = bindparam("q_pattern")
        conditions.append(
            or_(
                func.lower(users.c.email).like(pattern, escape="\\"),
                func.lower(users.c.username).like(pattern, escape="\\"),
            )
        )
    for wanted, column in (
        (active, users.c.is_active),
        (superuser, users.c.is_superuser),
        (verified, users.c.is_verified),
    ):
        if wanted:
            conditions.append(column == bindparam(f"want_{column.name}"))
    count = select(func.count()).select_from(users).where(*conditions)
    page = (
        _SELECT_USERS.where(*conditions)
        .order_by(users.c.id)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return count, page


def _like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` as a substring, its wildcards taken literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _user_values(user: User) -> dict[str, Any]:
    values = {name: getattr(user, name) for name in USER_FIELDS}
    values["email_key"] = email_key(user.email)
    return values


def _new_params(values: dict[str, object]) -> dict[str, object]:
    """The ``new_*`` parameters of an update of ``values`` (see ``_new_values``)."""
    params = {f"new_{name}": value for name, value in values.items()}
    if "email" in values:
        params["new_email_key"] = email_key(str(values["email"]))
    return params


def _conflict(exc: ConstraintViolation) -> DomainError | None:
    """The domain error behind a unique-index violation, by the index's name (SQLite
    names a plain column's index by the column: "users.email_key")."""
    if "email_key" in exc.name:
        return EmailTaken()
    if "uq_users_username_lower" in exc.name:
        return UsernameTaken()
    return None


class SqlUserRepository(SqlRepository, UserRepository):
    async def add(self, user: User) -> User:
        try:
            user.id = await self._db.scalar(_INSERT_USER, _user_values(user))
        except ConstraintViolation as exc:
            raise (_conflict(exc) or exc) from None
        return user

    async def get(self, user_id: int) -> User | None:
        row = await self._db.one(_GET_USER, {"user_id": user_id})
        return User(**row) if row else None

    async def get_by_login(self, login: str) -> User | None:
        login = canonical(login)
        row = await self._db.one(_GET_USER_BY_LOGIN, {"key": email_key(login), "login": login})
        return User(**row) if row else None

    async def get_by_email(self, email: str) -> User | None:
        row = await self._db.one(_GET_USER_BY_EMAIL, {"key": email_key(email)})
        return User(**row) if row else None

    async def get_with_session(
        self, user_id: int, session_id: str
    ) -> tuple[User, Session | None] | None:
        row = await self._db.one(
            _GET_USER_WITH_SESSION, {"user_id": user_id, "session_id": session_id}
        )
        if row is None:
            return None
        session, user = split(row, SESSION_PREFIX)
        return User(**user), Session(**session) if session["id"] is not None else None

    async def email_taken(self, email: str, *, except_user: int | None = None) -> bool:
        return await self._exists(_EMAIL_TAKEN, email_key(email), except_user)

    async def username_taken(self, username: str, *, except_user: int | None = None) -> bool:
        return await self._exists(_USERNAME_TAKEN, username, except_user)

    async def _exists(self, query: Any, value: str, except_user: int | None) -> bool:
        # Ids start at 1, so 0 excludes nobody.
        params = {"value": value, "except_user": except_user or 0}
        return bool(await self._db.scalar(query, params))

    async def update_profile(
        self, user_id: int, changes: ProfileUpdate, *, if_current: Credentials
    ) -> bool:
        values: dict[str, object] = dict(changes.fields())
        if changes.unverifies:
            values["is_verified"] = False
        if not values:
            return True
        statement = _UPDATE_PROFILE[tuple(name for name in _PROFILE_FIELDS if name in values)]
        params = {
            "uid": user_id,
            "if_hash": if_current.password_hash,
            "if_version": if_current.token_version,
            **_new_params(values),
        }
        try:
            return await self._db.execute(statement, params) == 1
        except ConstraintViolation as exc:
            raise (_conflict(exc) or exc) from None

    async def set_password_hash(
        self, user_id: int, new_hash: str, *, if_hash: str | None = None
    ) -> bool:
        params = {"uid": user_id, "new": new_hash}
        if if_hash is None:
            return await self._db.execute(_SET_PASSWORD_HASH, params) == 1
        return await self._db.execute(_REHASH_PASSWORD, {**params, "if_hash": if_hash}) == 1

    async def mark_verified(self, user_id: int, *, if_email: str) -> bool:
        params = {"uid": user_id, "if_email": if_email}
        return await self._db.execute(_MARK_VERIFIED, params) == 1

    async def update_details(self, user_id: int, changes: ProfileUpdate) -> bool:
        values: dict[str, object] = dict(changes.fields())
        if changes.unverifies:
            values["is_verified"] = False
        if not values:
            return await self.get(user_id) is not None
        statement = _UPDATE_DETAILS[tuple(name for name in _PROFILE_FIELDS if name in values)]
        params = {"uid": user_id, **_new_params(values)}
        try:
            return await self._db.execute(statement, params) == 1
        except ConstraintViolation as exc:
            raise (_conflict(exc) or exc) from None

    async def set_verified(self, user_id: int, verified: bool) -> bool:
        return await self._db.execute(_SET_VERIFIED, {"uid": user_id, "flag": verified}) == 1

    async def set_active(self, user_id: int, active: bool) -> bool:
        if active:
            return await self._db.execute(_ACTIVATE, {"uid": user_id}) == 1
        return await self._guarded(_DEACTIVATE, user_id)

    async def set_superuser(self, user_id: int, superuser: bool) -> bool:
        if superuser:
            return await self._db.execute(_GRANT_SUPERUSER, {"uid": user_id}) == 1
        return await self._guarded(_REVOKE_SUPERUSER, user_id)

    async def _guarded(self, statement: Any, user_id: int) -> bool:
        return await _SUPERUSERS_GUARD.execute(self._db, statement, {"uid": user_id}) == 1

    async def revoke_tokens(self, user_id: int) -> bool:
        return await self._db.execute(_REVOKE_TOKENS, {"uid": user_id}) == 1

    async def delete(self, user_id: int) -> bool:
        # Explicit rather than trusting every database's cascade configuration; all of
        # it rolls back with the transaction if the guard refuses.
        params = {"uid": user_id}
        await self._db.execute(_DELETE_USER_TOKENS, params)
        await self._db.execute(_DELETE_USER_SESSIONS, params)
        return await self._guarded(_DELETE_USER, user_id)

    async def list_page(self, page: PageRequest, *, active_only: bool) -> tuple[list[User], int]:
        count = _COUNT_ACTIVE_USERS if active_only else _COUNT_USERS
        total = int(await self._db.scalar(count, {}) or 0)
        if page.offset >= total:  # past the end: no need to walk the index
            return [], total
        query = _PAGE_OF_ACTIVE_USERS if active_only else _PAGE_OF_USERS
        rows = await self._db.all(query, {"limit": page.size, "offset": page.offset})
        return [User(**row) for row in rows], total

    async def search_page(self, where: UserFilter, page: PageRequest) -> tuple[list[User], int]:
        count, query = _search(
            where.q is not None,
            where.is_active is not None,
            where.is_superuser is not None,
            where.is_verified is not None,
        )
        params: dict[str, Any] = {
            "want_is_active": where.is_active,
            "want_is_superuser": where.is_superuser,
            "want_is_verified": where.is_verified,
        }
        if where.q is not None:
            params["q_pattern"] = _like_pattern(where.q)
        total = int(await self._db.scalar(count, params) or 0)
        if page.offset >= total:
            return [], total
        rows = await self._db.all(query, {**params, "limit": page.size, "offset": page.offset})
        return [User(**row) for row in rows], total
