"""Second factors and login-step tokens: their tables and their repositories."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)

from adapters.guards import Guard
from adapters.orm import BigId, UTCDateTime, metadata, users
from adapters.passkey_repository import passkeys
from adapters.sql_repository import SqlRepository
from domain.mfa import (
    MAX_FAILURES,
    MfaStatus,
    MfaToken,
    MfaTokenRepository,
    SecondFactorRepository,
    TotpFactor,
)

totp_factors = Table(
    "totp_factors",
    metadata,
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # The base32 secret, sealed under SECRET_KEY (adapters/totp.py): never in clear.
    Column("sealed_secret", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Null while pending: a set-up not yet confirmed by a code.
    Column("enabled_at", UTCDateTime, nullable=True),
    # The newest time step whose code was accepted: no code of it or before works again.
    Column("last_step", BigInteger, nullable=True),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # The code's SHA-256 (domain.mfa.recovery_code_hash): the code itself is never stored.
    Column("code_hash", String(64), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
)

mfa_tokens = Table(
    "mfa_tokens",
    metadata,
    # The token's SHA-256: the token itself is never stored.
    Column("id", String(64), primary_key=True),
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("failures", Integer, nullable=False, server_default=text("0")),
    Column("used_at", UTCDateTime, nullable=True),
)
Index("ix_mfa_tokens_user_id", mfa_tokens.c.user_id)
Index("ix_mfa_tokens_expires_at", mfa_tokens.c.expires_at)

_UID = bindparam("uid", type_=BigId)
# Changes to a user's set of factors hold the user's row: two set-ups, or a set-up and a
# removal, never interleave (adapters/guards.py).
_USER_LOCK = Guard(select(users.c.id).where(users.c.id == _UID))

_ENABLED = (totp_factors.c.user_id == _UID, totp_factors.c.enabled_at.is_not(None))
_UNUSED_CODES = (recovery_codes.c.user_id == _UID, recovery_codes.c.used_at.is_(None))
_STATUS = select(
    exists().where(*_ENABLED).label("totp"),
    select(func.count()).where(*_UNUSED_CODES).scalar_subquery().label("recovery_codes_left"),
    select(func.count()).where(passkeys.c.user_id == _UID).scalar_subquery().label("passkeys"),
)
_GET_TOTP = select(totp_factors).where(totp_factors.c.user_id == _UID)
_DELETE_PENDING = delete(totp_factors).where(
    totp_factors.c.user_id == _UID, totp_factors.c.enabled_at.is_(None)
)
# Stored only while no enabled factor is (the user's row is held: nothing comes between).
_ADD_PENDING = insert(totp_factors).from_select(
    ["user_id", "sealed_secret", "created_at"],
    select(_UID, bindparam("sealed", type_=LargeBinary), bindparam("at", type_=UTCDateTime)).where(
        ~exists().where(totp_factors.c.user_id == _UID)
    ),
)
_ENABLE = (
    update(totp_factors)
    .where(
        totp_factors.c.user_id == _UID,
        totp_factors.c.enabled_at.is_(None),
        totp_factors.c.sealed_secret == bindparam("sealed", type_=LargeBinary),
    )
    .values(enabled_at=bindparam("at"), last_step=bindparam("step"))
)
# One statement: of concurrent uses of one code, the database lets exactly one match.
_USE_STEP = (
    update(totp_factors)
    .where(
        *_ENABLED,
        or_(totp_factors.c.last_step.is_(None), totp_factors.c.last_step < bindparam("step")),
    )
    .values(last_step=bindparam("step"))
)
_DELETE_ENABLED = delete(totp_factors).where(*_ENABLED)
_DELETE_CODES = delete(recovery_codes).where(recovery_codes.c.user_id == _UID)
_USE_CODE = (
    update(recovery_codes)
    .where(*_UNUSED_CODES, recovery_codes.c.code_hash == bindparam("b_code_hash"))
    .values(used_at=bindparam("at"))
)


def _totp(row: Mapping[str, Any] | None) -> TotpFactor | None:
    if row is None:
        return None
    return TotpFactor(**{**row, "sealed_secret": bytes(row["sealed_secret"])})


class SqlSecondFactorRepository(SqlRepository, SecondFactorRepository):
    async def hold(self, user_id: int) -> None:
        await self._db.all(_USER_LOCK.lock, {"uid": user_id})

    async def status(self, user_id: int) -> MfaStatus:
        row = await self._db.one(_STATUS, {"uid": user_id})
        assert row is not None
        return MfaStatus(
            totp=bool(row["totp"]),
            passkeys=int(row["passkeys"]),
            recovery_codes_left=int(row["recovery_codes_left"]),
        )

    async def get_totp(self, user_id: int) -> TotpFactor | None:
        return _totp(await self._db.one(_GET_TOTP, {"uid": user_id}))

    async def set_pending_totp(self, user_id: int, sealed_secret: bytes, at: datetime) -> bool:
        params = {"uid": user_id, "sealed": sealed_secret, "at": at}
        await _USER_LOCK.execute(self._db, _DELETE_PENDING, params)
        return await self._db.execute(_ADD_PENDING, params) == 1

    async def enable_totp(
        self, user_id: int, sealed_secret: bytes, step: int, at: datetime
    ) -> bool:
        params = {"uid": user_id, "sealed": sealed_secret, "step": step, "at": at}
        return await self._db.execute(_ENABLE, params) == 1

    async def use_totp_step(self, user_id: int, step: int) -> bool:
        return await self._db.execute(_USE_STEP, {"uid": user_id, "step": step}) == 1

    async def disable_totp(self, user_id: int) -> bool:
        params = {"uid": user_id}
        removed = await _USER_LOCK.execute(self._db, _DELETE_ENABLED, params)
        await self._db.execute(_DELETE_PENDING, params)
        return removed == 1

    async def replace_recovery_codes(
        self, user_id: int, code_hashes: list[str], at: datetime
    ) -> None:
        await _USER_LOCK.execute(self._db, _DELETE_CODES, {"uid": user_id})
        if code_hashes:
            rows = [{"user_id": user_id, "code_hash": h, "created_at": at} for h in code_hashes]
            await self._db.execute(insert(recovery_codes).values(rows), {})

    async def use_recovery_code(self, user_id: int, code_hash: str, at: datetime) -> bool:
        params = {"uid": user_id, "b_code_hash": code_hash, "at": at}
        return await self._db.execute(_USE_CODE, params) == 1

    async def delete_recovery_codes(self, user_id: int) -> None:
        await self._db.execute(_DELETE_CODES, {"uid": user_id})


_TOKEN_USABLE = (
    mfa_tokens.c.id == bindparam("token_id"),
    mfa_tokens.c.used_at.is_(None),
    mfa_tokens.c.expires_at > bindparam("now"),
    mfa_tokens.c.failures < literal(MAX_FAILURES),
)
_INSERT_TOKEN = insert(mfa_tokens)
_FIND_TOKEN = select(mfa_tokens).where(*_TOKEN_USABLE)
_REDEEM_TOKEN = (
    update(mfa_tokens)
    .where(*_TOKEN_USABLE)
    .values(used_at=bindparam("now"))
    .returning(*mfa_tokens.c)
)
_FAIL_TOKEN = (
    update(mfa_tokens)
    .where(mfa_tokens.c.id == bindparam("token_id"), mfa_tokens.c.used_at.is_(None))
    .values(failures=mfa_tokens.c.failures + 1)
)
_END_TOKENS = (
    update(mfa_tokens)
    .where(mfa_tokens.c.user_id == _UID, mfa_tokens.c.used_at.is_(None))
    .values(used_at=bindparam("at"))
)
_DELETE_SPENT = delete(mfa_tokens).where(
    mfa_tokens.c.id.in_(
        select(mfa_tokens.c.id)
        .where(
            or_(
                mfa_tokens.c.used_at < bindparam("before"),
                mfa_tokens.c.expires_at < bindparam("before"),
            )
        )
        .limit(bindparam("limit"))
    )
)


def _token(row: Mapping[str, Any] | None) -> MfaToken | None:
    return MfaToken(**row) if row is not None else None


class SqlMfaTokenRepository(SqlRepository, MfaTokenRepository):
    async def add(self, token: MfaToken) -> None:
        await self._db.execute(_INSERT_TOKEN, vars(token))

    async def find_usable(self, token_id: str, now: datetime) -> MfaToken | None:
        return _token(await self._db.one(_FIND_TOKEN, {"token_id": token_id, "now": now}))

    async def redeem(self, token_id: str, now: datetime) -> MfaToken | None:
        return _token(await self._db.one(_REDEEM_TOKEN, {"token_id": token_id, "now": now}))

    async def fail(self, token_id: str) -> None:
        await self._db.execute(_FAIL_TOKEN, {"token_id": token_id})

    async def end_all(self, user_id: int, at: datetime) -> int:
        return await self._db.execute(_END_TOKENS, {"uid": user_id, "at": at})

    async def delete_spent(self, before: datetime, limit: int) -> int:
        return await self._db.execute(_DELETE_SPENT, {"before": before, "limit": limit})
