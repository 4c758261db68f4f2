"""Units of work: one connection, one transaction, repositories that share them.

``unit_of_work(database)`` gives the right one for the database: on PostgreSQL the
repositories' statements run on asyncpg directly, elsewhere through SQLAlchemy
(``adapters.executors`` says why).
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.database import Database, FairPool, is_unavailable
from adapters.executors import AsyncpgExecutor, Executor, SqlAlchemyExecutor
from adapters.repositories import adapter_for
from domain.errors import ServiceUnavailable
from domain.ports import UnitOfWork

# What asyncpg raises when the server or the connection is gone.
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


class _Repositories(UnitOfWork):
    _read_only: bool

    def _attach(self, executor: Executor) -> None:
        self._executor = executor
        self._repositories: dict[type, object] = {}

    def repository(self, port: type[R]) -> R:
        found = self._repositories.get(port)
        if found is None:
            found = self._repositories[port] = adapter_for(port)(self._executor)
        return found  # type: ignore[return-value]

    def _check_writable(self) -> None:
        if self._read_only:
            raise RuntimeError("commit() in a read-only unit of work")


class SqlAlchemyUnitOfWork(_Repositories):
    """A unit of work over one SQLAlchemy connection.

    With ``read_only=True`` no transaction is opened at all (autocommit): a read costs
    one round trip instead of three (BEGIN, the query, ROLLBACK). The composition root
    gives such units only to use cases that never write; ``commit()`` refuses.
    """

    def __init__(self, database: Database, *, read_only: bool = False) -> None:
        self._database = database
        self._read_only = read_only
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> SqlAlchemyUnitOfWork:
        database = self._database
        engine = database.autocommit_engine if self._read_only else database.engine
        try:
            conn = await engine.connect()
        except Exception as exc:
            if is_unavailable(exc, connecting=True):
                raise ServiceUnavailable() from exc
            raise
        self._conn = conn
        if not self._read_only:
            await conn.begin()
        self._attach(SqlAlchemyExecutor(conn))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.rollback()
        except Exception:
            # The connection may already be gone; the original error matters more.
            if exc is None:
                raise
        finally:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close()
                self._conn = None
        if exc is not None and is_unavailable(exc):
            raise ServiceUnavailable() from exc

    async def commit(self) -> None:
        assert self._conn is not None, "commit() outside 'async with'"
        self._check_writable()
        try:
            await self._conn.commit()
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise

    async def rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.rollback()


class AsyncpgUnitOfWork(_Repositories):
    """A unit of work on one connection of the database's asyncpg pool, in one
    transaction opened by its first statement (none with ``read_only=True``: autocommit,
    one round trip per read)."""

    def __init__(self, database: Database, *, read_only: bool = False) -> None:
        self._database = database
        self._read_only = read_only
        self._pool: FairPool | None = None
        self._conn: asyncpg.Connection | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None

    async def __aenter__(self) -> AsyncpgUnitOfWork:
        try:
            self._pool = await self._database.driver_pool()
            self._conn = await self._pool.acquire()
        except Exception as exc:
            # Whatever stops a connection (server down, refusing connections, bad
            # credentials) leaves the service unable to answer.
            raise ServiceUnavailable() from exc
        self._attach(
            AsyncpgExecutor(self._conn, None if self._read_only else self._begin_if_needed)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(*DISCONNECTED):
            await self.rollback()
        lost = await self._release()
        if exc is not None and (lost or isinstance(exc, DISCONNECTED)):
            raise ServiceUnavailable() from exc

    async def _begin_if_needed(self) -> None:
        # Like SQLAlchemy's autobegin: the first statement (again after a commit) opens
        # the transaction, so nothing runs outside one.
        if self._transaction is None and self._conn is not None:
            transaction = self._conn.transaction()
            await transaction.start()
            self._transaction = transaction

    async def _release(self) -> bool:
        """Give the connection back; whether it had been lost."""
        if self._pool is None or self._conn is None:
            return False
        try:
            lost = bool(self._conn.is_closed())
        except asyncpg.InterfaceError:  # the pool already took a dead one back
            lost = True
        with contextlib.suppress(*DISCONNECTED):  # the pool drops a broken one itself
            await self._pool.release(self._conn)
        self._conn = None
        return lost

    async def commit(self) -> None:
        assert self._conn is not None, "commit() outside 'async with'"
        self._check_writable()
        if self._transaction is None:
            return  # nothing was run: nothing to make durable
        transaction, self._transaction = self._transaction, None
        try:
            await transaction.commit()
        except DISCONNECTED as exc:
            raise ServiceUnavailable() from exc

    async def rollback(self) -> None:
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await transaction.rollback()


def unit_of_work(database: Database, *, read_only: bool = False) -> UnitOfWork:
    """The unit of work for the database at hand."""
    if database.is_postgresql:
        return AsyncpgUnitOfWork(database, read_only=read_only)
    return SqlAlchemyUnitOfWork(database, read_only=read_only)
