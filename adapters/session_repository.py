"""The session repository: statements built once at import, run through the unit of
work's executor, never committing on its own."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, exists, func, insert, select, update

from adapters.hot_statements import hot
from adapters.orm import refresh_tokens, sessions, users
from adapters.row_batches import InBatch, RowAddress
from adapters.rows import SESSION_COLUMNS, USER_SESSION_IDS
from adapters.sql_repository import SqlRepository
from domain.model import Session
from domain.ports import SessionRepository

# Sessions
# A session is opened only while its user is active and has the session's token version.
_OPEN_SESSION = hot(
    insert(sessions).from_select(
        [c.name for c in SESSION_COLUMNS],
        select(
            *(
                users.c.id if c.name == "user_id" else bindparam(f"p_{c.name}", type_=c.type)
                for c in SESSION_COLUMNS
            )
        ).where(
            users.c.id == bindparam("p_user_id"),
            users.c.is_active,
            users.c.token_version == bindparam("p_token_version"),
        ),
    )
)
_GET_SESSION = select(sessions).where(sessions.c.id == bindparam("session_id"))
_USER_SESSIONS = (
    select(sessions)
    .where(sessions.c.user_id == bindparam("user_id"))
    .order_by(sessions.c.created_at.desc(), sessions.c.id.desc())
)
_EXTEND_SESSION = hot(
    update(sessions)
    .where(sessions.c.id == bindparam("session_id"))
    .values(last_used_at=bindparam("new_last_used_at"), expires_at=bindparam("new_expires_at"))
)
_MARK_AUTHENTICATED = (
    update(sessions)
    .where(
        sessions.c.id == bindparam("sid"),
        sessions.c.revoked_at.is_(None),
        sessions.c.expires_at > bindparam("at"),
    )
    .values(authenticated_at=bindparam("at"))
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
        refresh_tokens.c.session_id.in_(USER_SESSION_IDS),
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
    InBatch(
        sessions,
        select(RowAddress(sessions))
        .where(_EXPIRED_SESSION, ~exists().where(refresh_tokens.c.session_id == sessions.c.id))
        .limit(bindparam("limit")),
    )
)


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

    async def mark_authenticated(self, session_id: str, at: datetime) -> bool:
        return await self._db.execute(_MARK_AUTHENTICATED, {"sid": session_id, "at": at}) == 1

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
