"""The unit of work over one SQLAlchemy connection and one transaction."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.database import Database, is_unavailable
from adapters.repositories import (
    SqlAlchemyRefreshTokenRepository,
    SqlAlchemySessionRepository,
    SqlAlchemyUserRepository,
)
from domain.errors import ServiceUnavailable
from domain.ports import UnitOfWork


class SqlAlchemyUnitOfWork(UnitOfWork):
    """With ``read_only=True`` no transaction is opened at all (autocommit): a read
    costs one round trip instead of three (BEGIN, the query, ROLLBACK). The composition
    root gives such units only to use cases that never write; ``commit()`` refuses."""

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
        self.users = SqlAlchemyUserRepository(conn)
        self.sessions = SqlAlchemySessionRepository(conn)
        self.refresh_tokens = SqlAlchemyRefreshTokenRepository(conn)
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
                await self._conn.close()
                self._conn = None
        if exc is not None and is_unavailable(exc):
            raise ServiceUnavailable() from exc

    async def commit(self) -> None:
        assert self._conn is not None, "commit() outside 'async with'"
        if self._read_only:
            raise RuntimeError("commit() in a read-only unit of work")
        try:
            await self._conn.commit()
        except Exception as exc:
            if is_unavailable(exc):
                raise ServiceUnavailable() from exc
            raise

    async def rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.rollback()
