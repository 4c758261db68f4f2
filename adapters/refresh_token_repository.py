"""The refresh token repository: statements built once at import, run through the unit
of work's executor, never committing on its own."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select, update

from adapters.hot_statements import hot
from adapters.orm import refresh_tokens, sessions, users
from adapters.row_batches import InBatch, RowAddress
from adapters.rows import SESSION_COLUMNS, SESSION_PREFIX, TOKEN_PREFIX, USER_COLUMNS, split
from adapters.sql_repository import SqlRepository
from domain.model import RefreshToken, Session, User
from domain.ports import RefreshTokenRepository

# Refresh tokens
_INSERT_TOKEN = hot(insert(refresh_tokens), columns=[c.key for c in refresh_tokens.c])
# A refresh reads its token, session and user at once.
_GET_TOKEN_WITH_OWNER = hot(
    select(
        *(c.label(f"t_{c.name}") for c in refresh_tokens.c),
        *(c.label(f"s_{c.name}") for c in SESSION_COLUMNS),
        *USER_COLUMNS,
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
_ROTATE_TOKEN = hot(
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
    InBatch(
        refresh_tokens,
        select(RowAddress(refresh_tokens)).where(_EXPIRED_TOKEN).limit(bindparam("limit")),
    )
)


class SqlRefreshTokenRepository(SqlRepository, RefreshTokenRepository):
    async def add(self, token: RefreshToken) -> None:
        await self._db.execute(_INSERT_TOKEN, dict(vars(token)))

    async def get_with_owner(self, token_id: str) -> tuple[RefreshToken, Session, User] | None:
        row = await self._db.one(_GET_TOKEN_WITH_OWNER, {"token_id": token_id})
        if row is None:
            return None
        token, session, user = split(row, TOKEN_PREFIX, SESSION_PREFIX)
        return RefreshToken(**token), Session(**session), User(**user)

    async def mark_rotated(self, token_id: str, at: datetime) -> bool:
        return await self._db.execute(_ROTATE_TOKEN, {"token_id": token_id, "at": at}) == 1

    async def delete_expired(self, now: datetime, limit: int, *, dry_run: bool = False) -> int:
        if dry_run:
            return int(await self._db.scalar(_COUNT_EXPIRED_TOKENS, {"now": now}) or 0)
        return await self._db.execute(_DELETE_EXPIRED_TOKENS, {"now": now, "limit": limit})
