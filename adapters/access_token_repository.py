"""Personal access tokens: their table and their repository."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    delete,
    or_,
    select,
    update,
)

from adapters.executors import ConstraintViolation
from adapters.guards import PerOwnerLimit
from adapters.hot_statements import hot
from adapters.orm import BigId, UTCDateTime, metadata, users
from adapters.rows import TOKEN_PREFIX, USER_COLUMNS, split
from adapters.sql_repository import SqlRepository
from domain.access_tokens import AccessToken, AccessTokenRepository
from domain.errors import InvalidToken
from domain.model import User
from domain.scopes import Scope

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    # Space-separated, as OAuth writes scopes.
    Column("scopes", String(255), nullable=False),
    # SHA-256 of the token, hex: what a request is looked up by, never the token.
    Column("token_hash", String(64), nullable=False),
    Column("token_version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
)
Index("uq_access_tokens_token_hash", access_tokens.c.token_hash, unique=True)
Index("ix_access_tokens_user_id", access_tokens.c.user_id)
Index("ix_access_tokens_expires_at", access_tokens.c.expires_at)

_OWNER_VERSION = (
    select(users.c.token_version).where(users.c.id == access_tokens.c.user_id).scalar_subquery()
)
# Live: not expired, and made since the owner's sessions were last ended.
_LIVE = and_(
    access_tokens.c.expires_at > bindparam("now"),
    access_tokens.c.token_version == _OWNER_VERSION,
)
# The limit counts the owner's live tokens; the new token carries the owner's version
# as its creator saw it, and its creation time is "now".
_LIMIT = PerOwnerLimit(
    access_tokens,
    access_tokens.c.user_id,
    counts=and_(
        access_tokens.c.token_version == bindparam("token_version"),
        access_tokens.c.expires_at > bindparam("created_at"),
    ),
)
_LIST_LIVE = (
    select(access_tokens)
    .where(access_tokens.c.user_id == bindparam("uid"), _LIVE)
    .order_by(access_tokens.c.created_at.desc(), access_tokens.c.id)
)
# Every request with a token: the token and its owner in one statement.
_GET_WITH_OWNER = hot(
    select(*(c.label(f"{TOKEN_PREFIX}{c.name}") for c in access_tokens.c), *USER_COLUMNS)
    .select_from(access_tokens.join(users, users.c.id == access_tokens.c.user_id))
    .where(access_tokens.c.token_hash == bindparam("token_hash"))
)
# Never backwards: of two requests in one minute, the second changes nothing.
_RECORD_USE = hot(
    update(access_tokens)
    .where(
        access_tokens.c.id == bindparam("token_id"),
        or_(
            access_tokens.c.last_used_at.is_(None),
            access_tokens.c.last_used_at < bindparam("at"),
        ),
    )
    .values(last_used_at=bindparam("at"))
)
_DELETE = (
    delete(access_tokens)
    .where(access_tokens.c.id == bindparam("token_id"), access_tokens.c.user_id == bindparam("uid"))
    .returning(*access_tokens.c)
)
_DELETE_SPENT = delete(access_tokens).where(
    access_tokens.c.id.in_(
        select(access_tokens.c.id)
        .where(
            or_(
                access_tokens.c.expires_at <= bindparam("now"),
                access_tokens.c.token_version != _OWNER_VERSION,
            )
        )
        .limit(bindparam("limit"))
    )
)


def _token(row: Mapping[str, Any]) -> AccessToken:
    values = dict(row)
    values["scopes"] = frozenset(Scope(name) for name in values["scopes"].split())
    return AccessToken(**values)


def _row(token: AccessToken) -> dict[str, Any]:
    values = dict(vars(token))
    values["scopes"] = " ".join(sorted(token.scopes))
    return values


class SqlAccessTokenRepository(SqlRepository, AccessTokenRepository):
    async def add(self, token: AccessToken, limit: int) -> bool:
        try:
            return await _LIMIT.insert(self._db, _row(token), limit) is not None
        except ConstraintViolation as exc:
            if exc.foreign_key:
                raise InvalidToken() from None  # the owner is gone
            raise

    async def list_live(self, user_id: int, now: datetime) -> list[AccessToken]:
        rows = await self._db.all(_LIST_LIVE, {"uid": user_id, "now": now})
        return [_token(row) for row in rows]

    async def get_with_owner(self, token_hash: str) -> tuple[AccessToken, User] | None:
        row = await self._db.one(_GET_WITH_OWNER, {"token_hash": token_hash})
        if row is None:
            return None
        token, user = split(row, TOKEN_PREFIX)
        return _token(token), User(**user)

    async def record_use(self, token_id: str, at: datetime) -> None:
        await self._db.execute(_RECORD_USE, {"token_id": token_id, "at": at})

    async def delete(self, token_id: str, user_id: int) -> AccessToken | None:
        row = await self._db.one(_DELETE, {"token_id": token_id, "uid": user_id})
        return _token(row) if row is not None else None

    async def delete_spent(self, now: datetime, limit: int) -> int:
        return await self._db.execute(_DELETE_SPENT, {"now": now, "limit": limit})
