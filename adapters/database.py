"""The database engine, created on first use: nothing connects at import or start-up."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url

# Errors that mean "the database cannot be reached", as opposed to a bad statement.
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from adapters.fair_pool import FairPool
from domain.ports import DatabaseProbe

# Seconds a connection is lent before it goes back to SQLAlchemy, which closes it.
RECYCLE_AFTER = 1800
# Seconds a connection may sit idle before it is closed (a proxy or firewall may have
# dropped it silently meanwhile).
IDLE_LIMIT = 300
# Connections of the engine beyond the units of work's: the readiness probe and the job
# lock get theirs even while every unit of work holds one.
SPARE_CONNECTIONS = 2

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    OSError,
    TimeoutError,
)


def is_unavailable(exc: BaseException, *, connecting: bool = False) -> bool:
    """Whether ``exc`` means the database cannot serve us now. While ``connecting``,
    any database error does: a server refusing connections (``ALLOW_CONNECTIONS
    false``, too many clients, starting up or shutting down) raises errors that are
    not ``OperationalError``."""
    if isinstance(exc, DBAPIError) and (connecting or exc.connection_invalidated):
        return True
    return isinstance(exc, UNAVAILABLE_ERRORS)


@dataclass(slots=True, eq=False)
class PooledConnection:
    """A connection lent to a unit of work: SQLAlchemy's, and its asyncpg connection on
    PostgreSQL (for the hot statements)."""

    sql: AsyncConnection
    driver: asyncpg.Connection | None
    opened_at: float = field(default_factory=time.monotonic)


class _FromEngine:
    """The fair pool's connections come from the engine, and are closed for good when
    the fair pool lets one go (it keeps itself those that should stay open)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def open(self) -> PooledConnection:
        conn = await self._database.engine.connect()
        driver = None
        if self._database.is_postgresql:
            driver = (await conn.get_raw_connection()).driver_connection
        return PooledConnection(conn, driver)

    async def close(self, conn: PooledConnection) -> None:
        with contextlib.suppress(Exception):  # broken already: nothing more to close
            await conn.sql.invalidate()  # else SQLAlchemy's pool would keep it
        with contextlib.suppress(Exception):
            await conn.sql.close()

    def reusable(self, conn: PooledConnection) -> bool:
        sql, driver = conn.sql, conn.driver
        if sql.closed or sql.invalidated or sql.in_transaction():
            return False
        if driver is not None and (driver.is_closed() or driver.is_in_transaction()):
            return False
        return time.monotonic() - conn.opened_at < RECYCLE_AFTER


class Database(DatabaseProbe):
    """Owns the engine and the pool that lends its connections, built lazily on first
    use; ``dispose`` closes them.

    On PostgreSQL the pool's connections are in the driver's autocommit mode: the units
    of work open their transactions themselves (``adapters.unit_of_work``), so a read
    costs one round trip and a connection goes back to the pool without a ROLLBACK.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 10,
        pool_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        echo: bool = False,
    ) -> None:
        self.url: URL = make_url(url)
        self._options: dict[str, Any] = {
            "pool_size": pool_size,
            "max_overflow": max_overflow,
            "pool_timeout": pool_timeout,
        }
        self._connect_timeout = connect_timeout
        self._echo = echo
        self._engine: AsyncEngine | None = None
        self._pool: FairPool[PooledConnection] | None = None

    @property
    def pool(self) -> FairPool[PooledConnection]:
        """The units of work's connections (``adapters.fair_pool`` says why)."""
        if self._pool is None:
            self._pool = FairPool(
                _FromEngine(self),
                size=self._options["pool_size"] + self._options["max_overflow"],
                keep_idle=self._options["pool_size"],
                max_idle=IDLE_LIMIT,
                timeout=self._options["pool_timeout"],
            )
        return self._pool

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> AsyncEngine:
        if self.is_sqlite:
            in_memory = self.url.database in (None, "", ":memory:")
            engine = create_async_engine(
                self.url,
                echo=self._echo,
                hide_parameters=True,
                connect_args={"timeout": self._connect_timeout},
                # A file's pool as large as the units of work's (an in-memory database
                # has one connection, shared).
                **({} if in_memory else self._engine_pool()),
            )
            event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
            return engine
        return create_async_engine(
            self.url,
            echo=self._echo,
            # Parameters hold emails and hashes: keep them out of errors and logs.
            hide_parameters=True,
            pool_recycle=1800,
            connect_args={"timeout": self._connect_timeout},
            isolation_level="AUTOCOMMIT",
            # A unit of work never leaves a transaction open (it rolls back, or drops
            # the connection): nothing to reset on the way back.
            pool_reset_on_return=None,
            **self._engine_pool(),
        )

    def _engine_pool(self) -> dict[str, Any]:
        return {
            "pool_size": self._options["pool_size"],
            "max_overflow": self._options["max_overflow"] + SPARE_CONNECTIONS,
            "pool_timeout": self._options["pool_timeout"],
        }

    async def ping(self) -> bool:
        """Whether the database answers a trivial query now."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            if is_unavailable(exc, connecting=True):
                return False
            raise
        return True

    async def dispose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.dispose()


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; the cascades depend on them. WAL lets
    # readers work while one writer commits.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
