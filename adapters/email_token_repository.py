"""Mailed single-use tokens: their table and their repository."""

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
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)

from adapters.orm import BigId, UTCDateTime, metadata, users
from adapters.registry import SqlRepository
from domain.email_tokens import EmailToken, EmailTokenRepository, Purpose

email_tokens = Table(
    "email_tokens",
    metadata,
    # The token's SHA-256: the token itself is never stored.
    Column("id", String(64), primary_key=True),
    Column("purpose", String(32), nullable=False),
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # The address the token was sent to: a verification is for that address only.
    Column("email", String(320), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
)
Index("ix_email_tokens_user_id_purpose", email_tokens.c.user_id, email_tokens.c.purpose)
Index("ix_email_tokens_expires_at", email_tokens.c.expires_at)

_USABLE = (
    email_tokens.c.id == bindparam("token_id"),
    email_tokens.c.purpose == bindparam("p_purpose"),
    email_tokens.c.used_at.is_(None),
    email_tokens.c.expires_at > bindparam("now"),
)
_INSERT = insert(email_tokens)
# Held until the transaction ends: the next issue for this user waits, then sees this
# one's token (each statement reads what is committed when it starts) and ends it.
_LOCK_USER = select(users.c.id).where(users.c.id == bindparam("uid")).with_for_update()
_FIND_USABLE = select(email_tokens).where(*_USABLE)
# One statement: of concurrent redemptions, the database lets exactly one match.
_REDEEM = (
    update(email_tokens).where(*_USABLE).values(used_at=bindparam("at")).returning(*email_tokens.c)
)
_END_ALL = (
    update(email_tokens)
    .where(
        email_tokens.c.user_id == bindparam("uid"),
        email_tokens.c.purpose == bindparam("p_purpose"),
        email_tokens.c.used_at.is_(None),
    )
    .values(used_at=bindparam("at"))
)
_DELETE_SPENT = delete(email_tokens).where(
    email_tokens.c.id.in_(
        select(email_tokens.c.id)
        .where(
            or_(
                email_tokens.c.used_at < bindparam("before"),
                email_tokens.c.expires_at < bindparam("before"),
            )
        )
        .limit(bindparam("limit"))
    )
)


def _token(row: Mapping[str, Any] | None) -> EmailToken | None:
    if row is None:
        return None
    values = dict(row)
    values["purpose"] = Purpose(values["purpose"])
    return EmailToken(**values)


class SqlEmailTokenRepository(SqlRepository, EmailTokenRepository):
    async def issue(self, token: EmailToken) -> None:
        await self._db.one(_LOCK_USER, {"uid": token.user_id})
        await self.end_all(token.user_id, token.purpose, token.created_at)
        await self._db.execute(_INSERT, {**vars(token), "purpose": token.purpose.value})

    async def find_usable(
        self, token_id: str, purpose: Purpose, now: datetime
    ) -> EmailToken | None:
        params = {"token_id": token_id, "p_purpose": purpose.value, "now": now}
        row = await self._db.one(_FIND_USABLE, params)
        return _token(row)

    async def redeem(self, token_id: str, purpose: Purpose, now: datetime) -> EmailToken | None:
        params = {"token_id": token_id, "p_purpose": purpose.value, "now": now, "at": now}
        row = await self._db.one(_REDEEM, params)
        return _token(row)

    async def end_all(self, user_id: int, purpose: Purpose, at: datetime) -> int:
        params = {"uid": user_id, "p_purpose": purpose.value, "at": at}
        return await self._db.execute(_END_ALL, params)

    async def delete_spent(self, before: datetime, limit: int) -> int:
        return await self._db.execute(_DELETE_SPENT, {"before": before, "limit": limit})
