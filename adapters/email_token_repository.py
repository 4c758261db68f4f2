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

from adapters.orm import BigId, UTCDateTime, metadata
from adapters.sql_repository import SqlRepository
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
_FIND_USABLE = select(email_tokens).where(*_USABLE)
# One statement: of concurrent redemptions, the database lets exactly one match.
_REDEEM = (
    update(email_tokens).where(*_USABLE).values(used_at=bindparam("at")).returning(*email_tokens.c)
)
_UNUSED_OF_USER = (
    email_tokens.c.user_id == bindparam("uid"),
    email_tokens.c.used_at.is_(None),
)
_END = update(email_tokens).values(used_at=bindparam("at"))
_END_ALL = _END.where(*_UNUSED_OF_USER)
_END_ALL_OF_PURPOSE = _END_ALL.where(email_tokens.c.purpose == bindparam("p_purpose"))
# Issued before the token that was just sent, or at the same instant (a clock may not
# tell two issues apart; the one sent last is the one that stays).
_SUPERSEDE = _END_ALL_OF_PURPOSE.where(
    email_tokens.c.created_at <= bindparam("created"),
    email_tokens.c.id != bindparam("token_id"),
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
        await self._db.execute(_INSERT, {**vars(token), "purpose": token.purpose.value})

    async def supersede(self, token: EmailToken, at: datetime) -> int:
        params = {
            "uid": token.user_id,
            "p_purpose": token.purpose.value,
            "created": token.created_at,
            "token_id": token.id,
            "at": at,
        }
        return await self._db.execute(_SUPERSEDE, params)

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

    async def end_all(self, user_id: int, purpose: Purpose | None, at: datetime) -> int:
        if purpose is None:
            return await self._db.execute(_END_ALL, {"uid": user_id, "at": at})
        params = {"uid": user_id, "p_purpose": purpose.value, "at": at}
        return await self._db.execute(_END_ALL_OF_PURPOSE, params)

    async def delete_spent(self, before: datetime, limit: int) -> int:
        return await self._db.execute(_DELETE_SPENT, {"before": before, "limit": limit})
