"""Passkeys and WebAuthn challenges: their tables and their repositories."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)

from adapters.executors import ConstraintViolation
from adapters.orm import BigId, UTCDateTime, metadata
from adapters.sql_repository import SqlRepository
from domain.errors import PasskeyAlreadyRegistered
from domain.passkeys import (
    Assertion,
    Ceremony,
    Challenge,
    ChallengeRepository,
    Passkey,
    PasskeyRepository,
)

passkeys = Table(
    "passkeys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("credential_id", LargeBinary, nullable=False),
    # The COSE public key: all a passkey keeps, nothing secret.
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", BigInteger, nullable=False),
    Column("name", String(64), nullable=False),
    Column("user_handle", LargeBinary, nullable=False),
    Column("aaguid", String(36), nullable=True),
    Column("backed_up", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
)
# A credential is registered once, whoever tries it again.
Index("uq_passkeys_credential_id", passkeys.c.credential_id, unique=True)
Index("ix_passkeys_user_id", passkeys.c.user_id)

webauthn_challenges = Table(
    "webauthn_challenges",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("ceremony", String(16), nullable=False),
    Column("challenge", LargeBinary, nullable=False),
    Column("user_id", BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("user_handle", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
)
Index("ix_webauthn_challenges_expires_at", webauthn_challenges.c.expires_at)

_OF_USER = (passkeys.c.id == bindparam("passkey_id"), passkeys.c.user_id == bindparam("uid"))
_INSERT = insert(passkeys)
_LIST = (
    select(passkeys)
    .where(passkeys.c.user_id == bindparam("uid"))
    .order_by(passkeys.c.created_at, passkeys.c.id)
)
_GET = select(passkeys).where(*_OF_USER)
_BY_CREDENTIAL = select(passkeys).where(
    passkeys.c.credential_id == bindparam("b_credential_id", type_=LargeBinary)
)
_RENAME = update(passkeys).where(*_OF_USER).values(name=bindparam("b_name")).returning(*passkeys.c)
_DELETE = delete(passkeys).where(*_OF_USER)
_DELETE_ALL = delete(passkeys).where(passkeys.c.user_id == bindparam("uid"))
# Only over the counter the assertion was checked against: of two at once, one wins.
_USE = (
    update(passkeys)
    .where(
        passkeys.c.id == bindparam("passkey_id"),
        passkeys.c.sign_count == bindparam("checked_count"),
    )
    .values(
        sign_count=bindparam("new_count"),
        backed_up=bindparam("b_backed_up"),
        last_used_at=bindparam("at"),
    )
)


def _passkey(row: Mapping[str, Any] | None) -> Passkey | None:
    if row is None:
        return None
    values = dict(row)
    for name in ("credential_id", "public_key", "user_handle"):
        values[name] = bytes(values[name])
    return Passkey(**values)


class SqlPasskeyRepository(SqlRepository, PasskeyRepository):
    async def add(self, passkey: Passkey) -> None:
        try:
            await self._db.execute(_INSERT, vars(passkey))
        except ConstraintViolation as exc:
            if "credential_id" in exc.name:
                raise PasskeyAlreadyRegistered() from None
            raise

    async def list_for_user(self, user_id: int) -> list[Passkey]:
        rows = await self._db.all(_LIST, {"uid": user_id})
        return [p for p in map(_passkey, rows) if p is not None]

    async def get(self, passkey_id: str, user_id: int) -> Passkey | None:
        return _passkey(await self._db.one(_GET, {"passkey_id": passkey_id, "uid": user_id}))

    async def get_by_credential(self, credential_id: bytes) -> Passkey | None:
        return _passkey(await self._db.one(_BY_CREDENTIAL, {"b_credential_id": credential_id}))

    async def rename(self, passkey_id: str, user_id: int, name: str) -> Passkey | None:
        params = {"passkey_id": passkey_id, "uid": user_id, "b_name": name}
        return _passkey(await self._db.one(_RENAME, params))

    async def delete(self, passkey_id: str, user_id: int) -> bool:
        return await self._db.execute(_DELETE, {"passkey_id": passkey_id, "uid": user_id}) == 1

    async def delete_all(self, user_id: int) -> int:
        return await self._db.execute(_DELETE_ALL, {"uid": user_id})

    async def record_use(self, passkey: Passkey, assertion: Assertion, at: datetime) -> bool:
        params = {
            "passkey_id": passkey.id,
            "checked_count": passkey.sign_count,
            "new_count": assertion.sign_count,
            "b_backed_up": assertion.backed_up,
            "at": at,
        }
        return await self._db.execute(_USE, params) == 1


_USABLE = (
    webauthn_challenges.c.id == bindparam("challenge_id"),
    webauthn_challenges.c.ceremony == bindparam("b_ceremony"),
    webauthn_challenges.c.used_at.is_(None),
    webauthn_challenges.c.expires_at > bindparam("now"),
)
_INSERT_CHALLENGE = insert(webauthn_challenges)
_REDEEM = (
    update(webauthn_challenges)
    .where(*_USABLE)
    .values(used_at=bindparam("now"))
    .returning(*webauthn_challenges.c)
)
_DELETE_SPENT = delete(webauthn_challenges).where(
    webauthn_challenges.c.id.in_(
        select(webauthn_challenges.c.id)
        .where(
            or_(
                webauthn_challenges.c.used_at < bindparam("before"),
                webauthn_challenges.c.expires_at < bindparam("before"),
            )
        )
        .limit(bindparam("limit"))
    )
)


class SqlChallengeRepository(SqlRepository, ChallengeRepository):
    async def add(self, challenge: Challenge) -> None:
        await self._db.execute(
            _INSERT_CHALLENGE, {**vars(challenge), "ceremony": challenge.ceremony.value}
        )

    async def redeem(
        self, challenge_id: str, ceremony: Ceremony, now: datetime
    ) -> Challenge | None:
        params = {"challenge_id": challenge_id, "b_ceremony": ceremony.value, "now": now}
        row = await self._db.one(_REDEEM, params)
        if row is None:
            return None
        values = dict(row)
        values["ceremony"] = Ceremony(values["ceremony"])
        values["challenge"] = bytes(values["challenge"])
        if values["user_handle"] is not None:
            values["user_handle"] = bytes(values["user_handle"])
        return Challenge(**values)

    async def delete_spent(self, before: datetime, limit: int) -> int:
        return await self._db.execute(_DELETE_SPENT, {"before": before, "limit": limit})
