"""SQLAlchemy repositories: each works inside the unit of work's connection and
transaction, and never commits on its own.

Statements are built once, at import, with bound parameters: building a statement and
its cache key costs more CPU than running the query, so no request pays for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.orm import refresh_tokens, sessions, users
from domain.errors import DomainError, EmailTaken, UsernameTaken, UserNotFound
from domain.model import PageRequest, RefreshToken, Session, User
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
_UPDATE_USER = (
    update(users)
    .where(users.c.id == bindparam("user_id"))
    .values({name: bindparam(f"new_{name}") for name in _USER_FIELDS})
)
# Parameters of UPDATE statements must not share a name with a column of the table.
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
_INSERT_SESSION = insert(sessions)
_GET_SESSION = select(sessions).where(sessions.c.id == bindparam("session_id"))
_ACTIVE_SESSIONS = (
    select(sessions)
    .where(
        sessions.c.user_id == bindparam("user_id"),
        sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > bindparam("now"),
    )
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
_GET_TOKEN = select(refresh_tokens).where(refresh_tokens.c.id == bindparam("token_id"))
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


def _user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        username=row.username,
        password_hash=row.password_hash,
        full_name=row.full_name,
        is_active=row.is_active,
        is_superuser=row.is_superuser,
        token_version=row.token_version,
        created_at=row.created_at,
    )


def _session(row: Any) -> Session:
    return Session(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        user_agent=row.user_agent,
        revoked_at=row.revoked_at,
        token_version=row.token_version,
    )


def _user_values(user: User) -> dict[str, Any]:
    return {name: getattr(user, name) for name in _USER_FIELDS}


def _conflict(exc: IntegrityError) -> DomainError | None:
    """The domain error behind a unique-index violation, by the index's name."""
    message = str(exc.orig)
    if "uq_users_email_lower" in message:
        return EmailTaken()
    if "uq_users_username_lower" in message:
        return UsernameTaken()
    return None


class SqlAlchemyUserRepository(UserRepository):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, user: User) -> User:
        try:
            result = await self._conn.execute(_INSERT_USER, _user_values(user))
        except IntegrityError as exc:
            raise (_conflict(exc) or exc) from None
        user.id = result.scalar_one()
        return user

    async def get(self, user_id: int) -> User | None:
        row = (await self._conn.execute(_GET_USER, {"user_id": user_id})).first()
        return _user(row) if row else None

    async def get_by_login(self, login: str) -> User | None:
        row = (await self._conn.execute(_GET_USER_BY_LOGIN, {"login": login})).first()
        return _user(row) if row else None

    async def get_with_session(
        self, user_id: int, session_id: str
    ) -> tuple[User, Session | None] | None:
        row = (
            await self._conn.execute(
                _GET_USER_WITH_SESSION, {"user_id": user_id, "session_id": session_id}
            )
        ).first()
        if row is None:
            return None
        session = None
        if row.s_id is not None:
            session = Session(
                id=row.s_id,
                user_id=row.s_user_id,
                created_at=row.s_created_at,
                last_used_at=row.s_last_used_at,
                expires_at=row.s_expires_at,
                user_agent=row.s_user_agent,
                revoked_at=row.s_revoked_at,
                token_version=row.s_token_version,
            )
        return _user(row), session

    async def email_taken(self, email: str, *, except_user: int | None = None) -> bool:
        return await self._exists(_EMAIL_TAKEN, email, except_user)

    async def username_taken(self, username: str, *, except_user: int | None = None) -> bool:
        return await self._exists(_USERNAME_TAKEN, username, except_user)

    async def _exists(self, query: Any, value: str, except_user: int | None) -> bool:
        # Ids start at 1, so 0 excludes nobody.
        params = {"value": value, "except_user": except_user or 0}
        return bool(await self._conn.scalar(query, params))

    async def update(self, user: User) -> None:
        try:
            values = {f"new_{name}": value for name, value in _user_values(user).items()}
            await self._conn.execute(_UPDATE_USER, {"user_id": user.id, **values})
        except IntegrityError as exc:
            raise (_conflict(exc) or exc) from None

    async def delete(self, user_id: int) -> None:
        # Explicit rather than trusting every database's cascade configuration.
        params = {"uid": user_id}
        await self._conn.execute(_DELETE_USER_TOKENS, params)
        await self._conn.execute(_DELETE_USER_SESSIONS, params)
        await self._conn.execute(_DELETE_USER, params)

    async def list_page(self, page: PageRequest, *, active_only: bool) -> tuple[list[User], int]:
        count = _COUNT_ACTIVE_USERS if active_only else _COUNT_USERS
        total = int(await self._conn.scalar(count) or 0)
        if page.offset >= total:  # past the end: no need to walk the index
            return [], total
        query = _PAGE_OF_ACTIVE_USERS if active_only else _PAGE_OF_USERS
        rows = await self._conn.execute(query, {"limit": page.size, "offset": page.offset})
        return [_user(row) for row in rows], total


class SqlAlchemySessionRepository(SessionRepository):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, session: Session) -> None:
        try:
            await self._conn.execute(
                _INSERT_SESSION,
                {
                    "id": session.id,
                    "user_id": session.user_id,
                    "created_at": session.created_at,
                    "last_used_at": session.last_used_at,
                    "expires_at": session.expires_at,
                    "user_agent": session.user_agent,
                    "revoked_at": session.revoked_at,
                    "token_version": session.token_version,
                },
            )
        except IntegrityError:
            # The only constraint a new session can break: its user is gone.
            raise UserNotFound() from None

    async def get(self, session_id: str) -> Session | None:
        row = (await self._conn.execute(_GET_SESSION, {"session_id": session_id})).first()
        return _session(row) if row else None

    async def list_active(self, user_id: int, now: datetime) -> list[Session]:
        rows = await self._conn.execute(_ACTIVE_SESSIONS, {"user_id": user_id, "now": now})
        return [_session(row) for row in rows]

    async def extend(self, session_id: str, used_at: datetime, expires_at: datetime) -> None:
        await self._conn.execute(
            _EXTEND_SESSION,
            {"session_id": session_id, "new_last_used_at": used_at, "new_expires_at": expires_at},
        )

    async def revoke(self, session_id: str, at: datetime) -> None:
        params = {"sid": session_id, "at": at}
        await self._conn.execute(_REVOKE_SESSION, params)
        await self._conn.execute(_REVOKE_SESSION_TOKENS, params)

    async def revoke_all(self, user_id: int, at: datetime) -> None:
        params = {"uid": user_id, "at": at}
        await self._conn.execute(_REVOKE_USER_TOKENS, params)
        await self._conn.execute(_REVOKE_USER_SESSIONS, params)

    async def delete_orphans(self, now: datetime, limit: int, *, dry_run: bool = False) -> int:
        if dry_run:
            return int(await self._conn.scalar(_COUNT_EXPIRED_SESSIONS, {"now": now}) or 0)
        result = await self._conn.execute(_DELETE_ORPHAN_SESSIONS, {"now": now, "limit": limit})
        return int(result.rowcount)


class SqlAlchemyRefreshTokenRepository(RefreshTokenRepository):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, token: RefreshToken) -> None:
        await self._conn.execute(
            _INSERT_TOKEN,
            {
                "id": token.id,
                "session_id": token.session_id,
                "user_id": token.user_id,
                "created_at": token.created_at,
                "expires_at": token.expires_at,
                "rotated_at": token.rotated_at,
                "revoked_at": token.revoked_at,
            },
        )

    async def get(self, token_id: str) -> RefreshToken | None:
        row = (await self._conn.execute(_GET_TOKEN, {"token_id": token_id})).first()
        if row is None:
            return None
        return RefreshToken(
            id=row.id,
            session_id=row.session_id,
            user_id=row.user_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
            rotated_at=row.rotated_at,
            revoked_at=row.revoked_at,
        )

    async def mark_rotated(self, token_id: str, at: datetime) -> bool:
        result = await self._conn.execute(_ROTATE_TOKEN, {"token_id": token_id, "at": at})
        return bool(result.rowcount == 1)

    async def delete_expired(self, now: datetime, limit: int, *, dry_run: bool = False) -> int:
        if dry_run:
            return int(await self._conn.scalar(_COUNT_EXPIRED_TOKENS, {"now": now}) or 0)
        result = await self._conn.execute(_DELETE_EXPIRED_TOKENS, {"now": now, "limit": limit})
        return int(result.rowcount)
