"""The unit of work: one SQLAlchemy connection, one transaction, repositories that share
them.

The transaction is opened by the first statement (again after a commit), like
SQLAlchemy's autobegin, and none at all with ``read_only=True``: a read then costs one
round trip instead of three (BEGIN, the query, ROLLBACK). On PostgreSQL the connection
is in the driver's autocommit mode and the unit of work opens the transaction on the
driver itself, so that the hot statements (``adapters.hot_statements``), which run on
the driver, and everything SQLAlchemy runs share it. On SQLite SQLAlchemy opens it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from types import TracebackType
from typing import TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.database import Database, PooledConnection, is_unavailable
from adapters.executors import Executor
from adapters.repositories import adapter_for
from domain.errors import ServiceUnavailable
from domain.ports import UnitOfWork

# What asyncpg raises when the server or the connection is gone (its DataError, a bad
# argument, is an InterfaceError too, but a bug: see _disconnected).
DISCONNECTED: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    OSError,
    TimeoutError,
)

R = TypeVar("R")


def _disconnected(exc: BaseException | None) -> bool:
    return isinstance(exc, DISCONNECTED) and not isinstance(exc, asyncpg.DataError)


class SqlUnitOfWork(UnitOfWork):
    """A unit of work over one connection of the database's engine. With
    ``read_only=True`` nothing runs in a transaction and ``commit()`` refuses; the
    composition root gives such units only to use cases that never write."""

    def __init__(self, database: Database, *, read_only: bool = False) -> None:
        self._database = database
        self._read_only = read_only
        self._pooled: PooledConnection | None = None
        self._conn: AsyncConnection | None = None
        self._driver: asyncpg.Connection | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None
        # The driver's transaction state is unknown (a BEGIN, COMMIT or ROLLBACK that
        # failed or was cancelled half-way): the connection must not be lent again.
        self._unsure = False
        self._repositories: dict[type, object] = {}

    async def __aenter__(self) -> SqlUnitOfWork:
        try:
            self._pooled = await self._database.pool.acquire()
        except Exception as exc:
            if is_unavailable(exc, connecting=True):
                raise ServiceUnavailable() from exc
            raise
        self._conn = conn = self._pooled.sql
        self._driver = self._pooled.driver
        on_postgresql = self._driver is not None
        if self._read_only:
            before = None
        else:
            before = self._begin_on_driver if on_postgresql else self._begin
        self._executor = Executor(conn, before_statement=before, driver=self._driver)
        self._repositories = {}
        self._unsure = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lost = False
        try:
            await self.rollback()
        except Exception as error:
            lost = True  # the connection is gone; the original error matters more
            if exc is None:
                if is_unavailable(error) or _disconnected(error):
                    raise ServiceUnavailable() from error
                raise
        finally:
            lost = await self._close(lost or _disconnected(exc))
        # A cancellation stays one, whatever it did to the connection.
        if isinstance(exc, Exception) and (lost or is_unavailable(exc) or _disconnected(exc)):
            raise ServiceUnavailable() from exc

    def repository(self, port: type[R]) -> R:
        found = self._repositories.get(port)
        if found is None:
            found = self._repositories[port] = adapter_for(port)(self._executor)
        return found  # type: ignore[return-value]

    async def commit(self) -> None:
        assert self._conn is not None, "commit() outside 'async with'"
        if self._read_only:
            raise RuntimeError("commit() in a read-only unit of work")
        try:
            if self._transaction is not None:
                transaction, self._transaction = self._transaction, None
                await self._settle(transaction.commit())
            elif self._conn.in_transaction():
                await self._conn.commit()
        except Exception as exc:
            if is_unavailable(exc) or _disconnected(exc):
                raise ServiceUnavailable() from exc
            raise

    async def rollback(self) -> None:
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await self._settle(transaction.rollback())
        elif self._conn is not None and self._conn.in_transaction():
            await self._conn.rollback()

    async def _begin_on_driver(self) -> None:
        if self._transaction is None:
            assert self._driver is not None
            transaction = self._driver.transaction()
            await self._settle(transaction.start())
            self._transaction = transaction

    async def _settle(self, step: Awaitable[None]) -> None:
        """Run a BEGIN, COMMIT or ROLLBACK on the driver; if it does not complete (an
        error, a cancellation), whether the server ran it is unknown."""
        try:
            await step
        except BaseException:
            self._unsure = True
            raise

    async def _begin(self) -> None:
        assert self._conn is not None
        if not self._conn.in_transaction():
            await self._conn.begin()

    async def _close(self, broken: bool) -> bool:
        """Give the connection back (invalidated if it broke); whether it had been lost."""
        pooled, self._pooled = self._pooled, None
        conn, self._conn, driver, self._driver = self._conn, None, self._driver, None
        if pooled is None or conn is None:
            return False
        lost = broken or (driver is not None and driver.is_closed())
        unsure = self._unsure or (driver is not None and driver.is_in_transaction())
        try:
            if lost or unsure:
                # Neither pool may lend again a connection the driver saw break, or
                # one whose transaction state is unknown.
                await conn.invalidate()
            elif conn.in_transaction():
                await conn.rollback()  # SQLAlchemy's own bookkeeping (SQLite: the real one)
        except Exception:
            lost = True
        finally:
            await self._database.pool.release(pooled)
        return lost


def unit_of_work(database: Database, *, read_only: bool = False) -> UnitOfWork:
    """A unit of work on ``database``."""
    return SqlUnitOfWork(database, read_only=read_only)
