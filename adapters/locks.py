"""A lock shared by every process on one database, so that replicas of the job
runner never run the same job at the same time."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.database import Database, is_unavailable
from domain.errors import ServiceUnavailable


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL advisory locks take a bigint)."""
    digest = hashlib.sha256(f"backend-template:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class DatabaseJobLock:
    """On PostgreSQL, a session-level advisory lock (``pg_try_advisory_lock``) held on
    a connection of its own for as long as the job runs. The connection stays outside
    any transaction meanwhile, so it holds back neither vacuum nor the job's own
    batches. If the process dies, the server ends the session and frees the lock.

    On SQLite the database is one file on one host, so the lock always succeeds.
    """

    def __init__(self, database: Database) -> None:
        self._database = database

    @asynccontextmanager
    async def acquire(self, name: str) -> AsyncIterator[bool]:
        """Try to take the lock ``name`` without waiting; yield whether it was taken.

        Raises ``ServiceUnavailable`` when the database cannot be reached.
        """
        if self._database.is_sqlite:
            yield True
            return
        key = lock_key(name)
        try:
            conn = await self._database.engine.connect()
            try:
                # Autocommit: the lock belongs to the session, not to a transaction.
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                query = text("SELECT pg_try_advisory_lock(:key)")
                acquired = bool(await conn.scalar(query, {"key": key}))
            except BaseException:
                await _discard(conn)
                raise
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise
        try:
            yield acquired
        finally:
            await _release(conn, key if acquired else None)


async def _release(conn: AsyncConnection, key: int | None) -> None:
    try:
        if key is not None:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        await conn.close()
    except BaseException as exc:
        # A connection that may still hold the lock never goes back to the pool:
        # closing it for good ends the session, and that frees the lock. The job is
        # over by now, so only a cancellation is worth passing on.
        await _discard(conn)
        if not isinstance(exc, Exception):
            raise


async def _discard(conn: AsyncConnection) -> None:
    with suppress(Exception):
        await conn.invalidate()
    with suppress(Exception):
        await conn.close()
