"""The signing keys' table and repository."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    insert,
    select,
    update,
)

from adapters.executors import ConstraintViolation, Row
from adapters.orm import UTCDateTime, metadata
from adapters.sql_repository import SqlRepository
from domain.signing_keys import Retirement, SigningKey, SigningKeyRepository

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    # JSON text rather than a JSON column: asyncpg and SQLite hand back the same str.
    Column("public_jwk", Text, nullable=False),
    Column("sealed_private", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("activates_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime, nullable=True),
    Column("delete_after", UTCDateTime, nullable=True),
    # The algorithm, on the one key that was stored as the first of its algorithm and
    # has not retired; NULL everywhere else (NULLs never collide in a unique index).
    Column("first_of", String(16), nullable=True),
)
FIRST_OF_INDEX = "uq_signing_keys_first_of"
Index(FIRST_OF_INDEX, signing_keys.c.first_of, unique=True)

_FIELDS = (
    "kid",
    "algorithm",
    "public_jwk",
    "sealed_private",
    "created_at",
    "activates_at",
    "retired_at",
    "delete_after",
)
_LIST = select(*(signing_keys.c[name] for name in _FIELDS)).order_by(
    signing_keys.c.activates_at, signing_keys.c.created_at, signing_keys.c.kid
)
_INSERT = insert(signing_keys)
_RETIRE = (
    update(signing_keys)
    .where(signing_keys.c.kid == bindparam("key_id"), signing_keys.c.retired_at.is_(None))
    .values(retired_at=bindparam("at"), delete_after=bindparam("until"), first_of=None)
)
_DELETE = delete(signing_keys).where(signing_keys.c.kid == bindparam("key_id"))
_DELETE_EXPIRED = delete(signing_keys).where(
    and_(signing_keys.c.delete_after.is_not(None), signing_keys.c.delete_after <= bindparam("now"))
)


def _values(key: SigningKey, first_of: str | None = None) -> dict[str, Any]:
    return {
        "kid": key.kid,
        "algorithm": key.algorithm,
        "public_jwk": json.dumps(dict(key.public_jwk), sort_keys=True),
        "sealed_private": key.sealed_private,
        "created_at": key.created_at,
        "activates_at": key.activates_at,
        "retired_at": key.retired_at,
        "delete_after": key.delete_after,
        "first_of": first_of,
    }


def _key(row: Row) -> SigningKey:
    values = dict(row)
    values["public_jwk"] = json.loads(values["public_jwk"])
    values["sealed_private"] = bytes(values["sealed_private"])
    return SigningKey(**values)


def _is_first_of(exc: ConstraintViolation) -> bool:
    # asyncpg names the index; SQLite names the column.
    return FIRST_OF_INDEX in exc.name or "signing_keys.first_of" in exc.name


class SqlSigningKeyRepository(SqlRepository, SigningKeyRepository):
    async def list_all(self) -> list[SigningKey]:
        return [_key(row) for row in await self._db.all(_LIST, {})]

    async def add(self, key: SigningKey) -> None:
        await self._db.execute(_INSERT, _values(key))

    async def add_first(self, key: SigningKey) -> bool:
        try:
            await self._db.execute(_INSERT, _values(key, first_of=key.algorithm))
        except ConstraintViolation as exc:
            if _is_first_of(exc):
                return False
            raise
        return True

    async def retire(self, retirement: Retirement) -> bool:
        params = {"key_id": retirement.kid, "at": retirement.at, "until": retirement.delete_after}
        return await self._db.execute(_RETIRE, params) == 1

    async def delete_expired(self, now: datetime) -> int:
        return await self._db.execute(_DELETE_EXPIRED, {"now": now})

    async def delete(self, kid: str) -> bool:
        # The row lock makes a concurrent delete of the same key wait, then find none.
        return await self._db.execute(_DELETE, {"key_id": kid}) == 1
