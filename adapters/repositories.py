"""SQLAlchemy repositories: each works inside the unit of work's connection and
transaction, and never commits on its own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.orm import refresh_tokens, sessions, users
from domain.errors import DomainError, EmailTaken, UsernameTaken
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
    )


def _user_values(user: User) -> dict[str, Any]:
    return {
        "email": user.email,
        "username": user.username,
        "password_hash": user.password_hash,
        "full_name": user.full_name,
        "is_active": user.is_active,
        "is_superuser": user.is_superuser,
        "token_version": user.token_version,
        "created_at": user.created_at,
    }


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
            result = await self._conn.execute(
                insert(users).values(**_user_values(user)).returning(users.c.id)
            )
        except IntegrityError as exc:
            raise (_conflict(exc) or exc) from None
        user.id = result.scalar_one()
        return user

    async def get(self, user_id: int) -> User | None:
        row = (
            await self._conn.execute(select(*_USER_COLUMNS).where(users.c.id == user_id))
        ).first()
        return _user(row) if row else None

    async def get_by_login(self, login: str) -> User | None:
        # Emails are stored lower-cased, so the email side can use a plain equality
        # on the lower() index as well.
        query = select(*_USER_COLUMNS).where(
            (func.lower(users.c.email) == login) | (func.lower(users.c.username) == login)
        )
        row = (await self._conn.execute(query.limit(1))).first()
        return _user(row) if row else None

    async def get_with_session(
        self, user_id: int, session_id: str
    ) -> tuple[User, Session | None] | None:
        query = (
            select(*_USER_COLUMNS, *(c.label(f"s_{c.name}") for c in _SESSION_COLUMNS))
            .select_from(
                users.outerjoin(
                    sessions,
                    and_(sessions.c.id == session_id, sessions.c.user_id == users.c.id),
                )
            )
            .where(users.c.id == user_id)
        )
        row = (await self._conn.execute(query)).first()
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
            )
        return _user(row), session

    async def email_taken(self, email: str, *, except_user: int | None = None) -> bool:
        return await self._exists(func.lower(users.c.email) == email.lower(), except_user)

    async def username_taken(self, username: str, *, except_user: int | None = None) -> bool:
        return await self._exists(func.lower(users.c.username) == username.lower(), except_user)

    async def _exists(self, condition: Any, except_user: int | None) -> bool:
        if except_user is not None:
            condition = condition & (users.c.id != except_user)
        return bool(await self._conn.scalar(select(exists().where(condition))))

    async def update(self, user: User) -> None:
        try:
            await self._conn.execute(
                update(users).where(users.c.id == user.id).values(**_user_values(user))
            )
        except IntegrityError as exc:
            raise (_conflict(exc) or exc) from None

    async def delete(self, user_id: int) -> None:
        # Explicit rather than trusting every database's cascade configuration.
        session_ids = select(sessions.c.id).where(sessions.c.user_id == user_id)
        await self._conn.execute(
            delete(refresh_tokens).where(refresh_tokens.c.session_id.in_(session_ids))
        )
        await self._conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
        await self._conn.execute(delete(users).where(users.c.id == user_id))

    async def list_page(self, page: PageRequest, *, active_only: bool) -> tuple[list[User], int]:
        query = select(*_USER_COLUMNS)
        count = select(func.count()).select_from(users)
        if active_only:
            query = query.where(users.c.is_active)
            count = count.where(users.c.is_active)
        query = query.order_by(users.c.id).limit(page.size).offset(page.offset)
        rows = (await self._conn.execute(query)).all()
        total = int(await self._conn.scalar(count) or 0)
        return [_user(row) for row in rows], total


class SqlAlchemySessionRepository(SessionRepository):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, session: Session) -> None:
        await self._conn.execute(
            insert(sessions).values(
                id=session.id,
                user_id=session.user_id,
                created_at=session.created_at,
                last_used_at=session.last_used_at,
                expires_at=session.expires_at,
                user_agent=session.user_agent,
                revoked_at=session.revoked_at,
            )
        )

    async def get(self, session_id: str) -> Session | None:
        row = (
            await self._conn.execute(select(sessions).where(sessions.c.id == session_id))
        ).first()
        return _session(row) if row else None

    async def list_active(self, user_id: int, now: datetime) -> list[Session]:
        rows = await self._conn.execute(
            select(sessions)
            .where(
                sessions.c.user_id == user_id,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > now,
            )
            .order_by(sessions.c.created_at.desc(), sessions.c.id.desc())
        )
        return [_session(row) for row in rows]

    async def extend(self, session_id: str, used_at: datetime, expires_at: datetime) -> None:
        await self._conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id)
            .values(last_used_at=used_at, expires_at=expires_at)
        )

    async def revoke(self, session_id: str, at: datetime) -> None:
        await self._conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        await self._conn.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.session_id == session_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def revoke_all(self, user_id: int, at: datetime) -> None:
        await self._conn.execute(
            update(refresh_tokens)
            .where(
                # Every session of the user, revoked or not: a token issued by a refresh
                # that raced an earlier revocation must not stay valid.
                refresh_tokens.c.session_id.in_(
                    select(sessions.c.id).where(sessions.c.user_id == user_id)
                ),
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=at)
        )
        await self._conn.execute(
            update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def delete_orphans(self, now: datetime, limit: int, *, dry_run: bool = False) -> int:
        expired = sessions.c.expires_at < now
        if dry_run:
            return int(
                await self._conn.scalar(select(func.count()).select_from(sessions).where(expired))
                or 0
            )
        orphans = (
            select(sessions.c.id)
            .where(expired, ~exists().where(refresh_tokens.c.session_id == sessions.c.id))
            .limit(limit)
        )
        result = await self._conn.execute(delete(sessions).where(sessions.c.id.in_(orphans)))
        return int(result.rowcount)


class SqlAlchemyRefreshTokenRepository(RefreshTokenRepository):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, token: RefreshToken) -> None:
        await self._conn.execute(
            insert(refresh_tokens).values(
                id=token.id,
                session_id=token.session_id,
                user_id=token.user_id,
                created_at=token.created_at,
                expires_at=token.expires_at,
                rotated_at=token.rotated_at,
                revoked_at=token.revoked_at,
            )
        )

    async def get(self, token_id: str) -> RefreshToken | None:
        row = (
            await self._conn.execute(select(refresh_tokens).where(refresh_tokens.c.id == token_id))
        ).first()
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
        # A conditional update: the database decides which of two racing rotations
        # wins (the loser's WHERE no longer matches once the winner commits).
        result = await self._conn.execute(
            update(refresh_tokens)
            .where(
                refresh_tokens.c.id == token_id,
                refresh_tokens.c.rotated_at.is_(None),
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(rotated_at=at)
        )
        return bool(result.rowcount == 1)

    async def delete_expired(self, now: datetime, limit: int, *, dry_run: bool = False) -> int:
        expired = refresh_tokens.c.expires_at < now
        if dry_run:
            return int(
                await self._conn.scalar(
                    select(func.count()).select_from(refresh_tokens).where(expired)
                )
                or 0
            )
        batch = select(refresh_tokens.c.id).where(expired).limit(limit)
        result = await self._conn.execute(
            delete(refresh_tokens).where(refresh_tokens.c.id.in_(batch))
        )
        return int(result.rowcount)
