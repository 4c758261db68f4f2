"""The repositories of users, sessions and refresh tokens (``adapters.registry``: each
works inside its unit of work's connection and transaction, never committing).

Statements are SQLAlchemy Core, built once at import with bound parameters (building a
statement costs more CPU than running it), and run through an executor
(``adapters.executors``): SQLAlchemy's on SQLite, the asyncpg driver's on PostgreSQL.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, insert, select, update

from adapters.executors import ConstraintViolation, Row
from adapters.orm import refresh_tokens, sessions, users
from adapters.registry import SqlRepository
from domain.errors import DomainError, EmailTaken, UsernameTaken
from domain.model import Credentials, PageRequest, ProfileUpdate, RefreshToken, Session, User
from domain.ports import RefreshTokenRepository, SessionRepository, UserRepository

_USER_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.username,
    users.c.password_hash,
    users.c.full_name,
    users.c.is_active,
    users.c.is_superuser,
    users.c.token_version,
    users.c.created_at,
)
_SESSION_COLUMNS = tuple(sessions.c)
_USER_FIELDS = [c.name for c in _USER_COLUMNS if c.name != "id"]

# Users
_SELECT_USERS = select(*_USER_COLUMNS)
_GET_USER = _SELECT_USERS.where(users.c.id == bindparam("user_id"))
# Emails are stored lower-cased and usernames compared lower-cased: both sides use the
# lower() unique indexes.
_GET_USER_BY_LOGIN = _SELECT_USERS.where(
    (func.lower(users.c.email) == bindparam("login"))
    | (func.lower(users.c.username) == bindparam("login"))
).limit(1)
_GET_USER_WITH_SESSION = (
    select(*_USER_COLUMNS, *(c.label(f"s_{c.name}") for c in _SESSION_COLUMNS))
    .select_from(
        users.outerjoin(
            sessions,
            and_(sessions.c.id == bindparam("session_id"), sessions.c.user_id == users.c.id),
        )
    )
    .where(users.c.id == bindparam("user_id"))
)
_OTHER_USER = users.c.id != bindparam("except_user")
_EMAIL_TAKEN = select(
    exists().where(func.lower(users.c.email) == func.lower(bindparam("value")), _OTHER_USER)
)
_USERNAME_TAKEN = select(
    exists().where(func.lower(users.c.username) == func.lower(bindparam("value")), _OTHER_USER)
)
_INSERT_USER = insert(users).returning(users.c.id)
# Parameters of UPDATE statements must not share a name with a column of the table.
_PROFILE_FIELDS = ("email", "username", "full_name", "password_hash")
_STILL_CURRENT = (
    users.c.id == bindparam("uid"),
    users.c.is_active,
    users.c.password_hash == bindparam("if_hash"),
    users.c.token_version == bindparam("if_version"),
)
# One statement per set of fields, built here: the executors cache statements by identity.
_UPDATE_PROFILE = {
    fields: update(users)
    .where(*_STILL_CURRENT)
    .values({name: bindparam(f"new_{name}") for name in fields})
    for count in range(1, len(_PROFILE_FIELDS) + 1)
    for fields in itertools.combinations(_PROFILE_FIELDS, count)
}
_SET_PASSWORD_HASH = (
    update(users).where(users.c.id == bindparam("uid")).values(password_hash=bindparam("new"))
)
_REHASH_PASSWORD = _SET_PASSWORD_HASH.where(users.c.password_hash == bindparam("if_hash"))
_SET_ACTIVE = (
    update(users)
    .where(users.c.id == bindparam("uid"), users.c.is_active != bindparam("active"))
    .values(is_active=bindparam("active"))
)
_REVOKE_TOKENS = (
    update(users)
    .where(users.c.id == bindparam("uid"))
    .values(token_version=users.c.token_version + 1)
)
_USER_SESSION_IDS = select(sessions.c.id).where(sessions.c.user_id == bindparam("uid"))
_DELETE_USER_TOKENS = delete(refresh_tokens).where(
    refresh_tokens.c.session_id.in_(_USER_SESSION_IDS)
)
_DELETE_USER_SESSIONS = delete(sessions).where(sessions.c.user_id == bindparam("uid"))
_DELETE_USER = delete(users).where(users.c.id == bindparam("uid"))
_COUNT_USERS = select(func.count()).select_from(users)
_COUNT_ACTIVE_USERS = _COUNT_USERS.where(users.c.is_active)
_PAGE_OF_USERS = (
    _SELECT_USERS.order_by(users.c.id).limit(bindparam("limit")).offset(bindparam("offset"))
)
_PAGE_OF_ACTIVE_USERS = (
    _SELECT_USERS.where(users.c.is_active)
    .order_by(users.c.id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)

# Sessions
# A session is opened only while its user is active and has the session's token version.
_OPEN_SESSION = insert(sessions).from_select(
    [c.name for c in _SESSION_COLUMNS],
    select(
        *(
            users.c.id if c.name == "user_id" else bindparam(f"p_{c.name}", type_=c.type)
            for c in _SESSION_COLUMNS
        )
    ).where(
        users.c.id == bindparam("p_user_id"),
        users.c.is_active,
        users.c.token_version == bindparam("p_token_version"),
    ),
)
_GET_SESSION = select(sessions).where(sessions.c.id == bindparam("session_id"))
_USER_SESSIONS = (
    select(sessions)
    .where(sessions.c.user_id == bindparam("user_id"))
    .order_by(sessions.c.created_at.desc(), sessions.c.id.desc())
)
_EXTEND_SESSION = (
    update(sessions)
    .where(sessions.c.id == bindparam("session_id"))
    .values(last_used_at=bindparam("new_last_used_at"), expires_at=bindparam("new_expires_at"))
)
_REVOKE_SESSION = (
    update(sessions)
    .where(sessions.c.id == bindparam("sid"), sessions.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("at"))
)
_REVOKE_SESSION_TOKENS = (
    update(refresh_tokens)
    .where(
        refresh_tokens.c.session_id == bindparam("sid"),
        refresh_tokens.c.revoked_at.is_(None),
    )
    .values(revoked_at=bindparam("at"))
)
_REVOKE_USER_TOKENS = (
    update(refresh_tokens)
    .where(
        # Every session of the user, revoked or not: a token issued by a refresh that
        # raced an earlier revocation must not stay valid.
        refresh_tokens.c.session_id.in_(_USER_SESSION_IDS),
        refresh_tokens.c.revoked_at.is_(None),
    )
    .values(revoked_at=bindparam("at"))
)
_REVOKE_USER_SESSIONS = (
    update(sessions)
    .where(sessions.c.user_id == bindparam("uid"), sessions.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("at"))
)
_EXPIRED_SESSION = sessions.c.expires_at < bindparam("now")
_COUNT_EXPIRED_SESSIONS = select(func.count()).select_from(sessions).where(_EXPIRED_SESSION)
_DELETE_ORPHAN_SESSIONS = delete(sessions).where(
    sessions.c.id.in_(
        select(sessions.c.id)
        .where(_EXPIRED_SESSION, ~exists().where(refresh_tokens.c.session_id == sessions.c.id))
        .limit(bindparam("limit"))
    )
)

# Refresh tokens
_INSERT_TOKEN = insert(refresh_tokens)
# A refresh reads its token, session and user at once.
_GET_TOKEN_WITH_OWNER = (
    select(
        *(c.label(f"t_{c.name}") for c in refresh_tokens.c),
        *(c.label(f"s_{c.name}") for c in _SESSION_COLUMNS),
        *_USER_COLUMNS,
    )
    .select_from(
        refresh_tokens.join(sessions, sessions.c.id == refresh_tokens.c.session_id).join(
            users, users.c.id == sessions.c.user_id
        )
    )
    .where(refresh_tokens.c.id == bindparam("token_id"))
)
# A conditional update: the database decides which of two racing rotations wins (the
# loser's WHERE no longer matches once the winner commits).
_ROTATE_TOKEN = (
    update(refresh_tokens)
    .where(
        refresh_tokens.c.id == bindparam("token_id"),
        refresh_tokens.c.rotated_at.is_(None),
        refresh_tokens.c.revoked_at.is_(None),
    )
    .values(rotated_at=bindparam("at"))
)
_EXPIRED_TOKEN = refresh_tokens.c.expires_at < bindparam("now")
_COUNT_EXPIRED_TOKENS = select(func.count()).select_from(refresh_tokens).where(_EXPIRED_TOKEN)
_DELETE_EXPIRED_TOKENS = delete(refresh_tokens).where(
    refresh_tokens.c.id.in_(
        select(refresh_tokens.c.id).where(_EXPIRED_TOKEN).limit(bindparam("limit"))
    )
)


_SESSION_PREFIX = "s_"
_TOKEN_PREFIX = "t_"  # noqa: S105 - a column label prefix


def _split(row: Row, *prefixes: str) -> list[dict[str, Any]]:
    """A joined row's columns, by the label prefix of their table (unprefixed last)."""
    parts: list[dict[str, Any]] = [{} for _ in range(len(prefixes) + 1)]
    for key, value in row.items():
        for index, prefix in enumerate(prefixes):
            if key.startswith(prefix):
                parts[index][key.removeprefix(prefix)] = value
                break
        else:
            parts[-1][key] = value
    return parts


def _user_values(user: User) -> dict[str, Any]:
    return {name: getattr(user, name) for name in _USER_FIELDS}


def _conflict(exc: ConstraintViolation) -> DomainError | None:
    """The domain error behind a unique-index violation, by the index's name."""
    if "uq_users_email_lower" in exc.name:
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
        row = await self._db.one(_GET_USER_BY_LOGIN, {"login": login})
        return User(**row) if row else None

    async def get_with_session(
        self, user_id: int, session_id: str
    ) -> tuple[User, Session | None] | None:
        row = await self._db.one(
            _GET_USER_WITH_SESSION, {"user_id": user_id, "session_id": session_id}
        )
        if row is None:
            return None
        session, user = _split(row, _SESSION_PREFIX)
        return User(**user), Session(**session) if session["id"] is not None else None

    async def email_taken(self, email: str, *, except_user: int | None = None) -> bool:
        return await self._exists(_EMAIL_TAKEN, email, except_user)

    async def username_taken(self, username: str, *, except_user: int | None = None) -> bool:
        return await self._exists(_USERNAME_TAKEN, username, except_user)

    async def _exists(self, query: Any, value: str, except_user: int | None) -> bool:
        # Ids start at 1, so 0 excludes nobody.
        params = {"value": value, "except_user": except_user or 0}
        return bool(await self._db.scalar(query, params))

    async def update_profile(
        self, user_id: int, changes: ProfileUpdate, *, if_current: Credentials
    ) -> bool:
        values = changes.fields()
        if not values:
            return True
        statement = _UPDATE_PROFILE[tuple(name for name in _PROFILE_FIELDS if name in values)]
        params = {
            "uid": user_id,
            "if_hash": if_current.password_hash,
            "if_version": if_current.token_version,
            **{f"new_{name}": value for name, value in values.items()},
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

    async def set_active(self, user_id: int, active: bool) -> bool:
        return await self._db.execute(_SET_ACTIVE, {"uid": user_id, "active": active}) == 1

    async def revoke_tokens(self, user_id: int) -> bool:
        return await self._db.execute(_REVOKE_TOKENS, {"uid": user_id}) == 1

    async def delete(self, user_id: int) -> None:
        # Explicit rather than trusting every database's cascade configuration.
        params = {"uid": user_id}
        await self._db.execute(_DELETE_USER_TOKENS, params)
        await self._db.execute(_DELETE_USER_SESSIONS, params)
        await self._db.execute(_DELETE_USER, params)

    async def list_page(self, page: PageRequest, *, active_only: bool) -> tuple[list[User], int]:
        count = _COUNT_ACTIVE_USERS if active_only else _COUNT_USERS
        total = int(await self._db.scalar(count, {}) or 0)
        if page.offset >= total:  # past the end: no need to walk the index
            return [], total
        query = _PAGE_OF_ACTIVE_USERS if active_only else _PAGE_OF_USERS
        rows = await self._db.all(query, {"limit": page.size, "offset": page.offset})
        return [User(**row) for row in rows], total


class SqlSessionRepository(SqlRepository, SessionRepository):
    async def add(self, session: Session) -> bool:
        params = {f"p_{name}": value for name, value in vars(session).items()}
        return await self._db.execute(_OPEN_SESSION, params) == 1

    async def get(self, session_id: str) -> Session | None:
        row = await self._db.one(_GET_SESSION, {"session_id": session_id})
        return Session(**row) if row else None

    async def list_for_user(self, user_id: int) -> list[Session]:
        rows = await self._db.all(_USER_SESSIONS, {"user_id": user_id})
        return [Session(**row) for row in rows]

    async def extend(self, session_id: str, used_at: datetime, expires_at: datetime) -> None:
        await self._db.execute(
            _EXTEND_SESSION,
            {"session_id": session_id, "new_last_used_at": used_at, "new_expires_at": expires_at},
        )

    async def revoke(self, session_id: str, at: datetime) -> None:
        params = {"sid": session_id, "at": at}
        await self._db.execute(_REVOKE_SESSION, params)
        await self._db.execute(_REVOKE_SESSION_TOKENS, params)

    async def revoke_all(self, user_id: int, at: datetime) -> None:
        params = {"uid": user_id, "at": at}
        await self._db.execute(_REVOKE_USER_TOKENS, params)
        await self._db.execute(_REVOKE_USER_SESSIONS, params)

    async def delete_orphans(self, now: datetime, limit: int, *, dry_run: bool = False) -> int:
        if dry_run:
            return int(await self._db.scalar(_COUNT_EXPIRED_SESSIONS, {"now": now}) or 0)
        return await self._db.execute(_DELETE_ORPHAN_SESSIONS, {"now": now, "limit": limit})


class SqlRefreshTokenRepository(SqlRepository, RefreshTokenRepository):
    async def add(self, token: RefreshToken) -> None:
        await self._db.execute(_INSERT_TOKEN, dict(vars(token)))

    async def get_with_owner(self, token_id: str) -> tuple[RefreshToken, Session, User] | None:
        row = await self._db.one(_GET_TOKEN_WITH_OWNER, {"token_id": token_id})
        if row is None:
            return None
        token, session, user = _split(row, _TOKEN_PREFIX, _SESSION_PREFIX)
        return RefreshToken(**token), Session(**session), User(**user)

    async def mark_rotated(self, token_id: str, at: datetime) -> bool:
        return await self._db.execute(_ROTATE_TOKEN, {"token_id": token_id, "at": at}) == 1

    async def delete_expired(self, now: datetime, limit: int, *, dry_run: bool = False) -> int:
        if dry_run:
            return int(await self._db.scalar(_COUNT_EXPIRED_TOKENS, {"now": now}) or 0)
        return await self._db.execute(_DELETE_EXPIRED_TOKENS, {"now": now, "limit": limit})
