"""The database engine, created on first use: nothing connects at import or start-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url

# Errors that mean "the database cannot be reached", as opposed to a bad statement.
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from domain.ports import DatabaseProbe

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


class Database(DatabaseProbe):
    """Owns the engines, built lazily on first use; ``dispose`` closes their pools.

    Two pools: ``engine`` for units of work (one transaction each) and
    ``autocommit_engine`` for those that only read. The readers' connections are opened
    in autocommit mode once, so a read costs one round trip and its connection goes
    back to the pool without a ROLLBACK or an isolation-level switch.
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
        self._autocommit_engine: AsyncEngine | None = None
        self._driver_pool: asyncpg.Pool | None = None
        self._fair_pool: FairPool | None = None
        self._driver_pool_lock = asyncio.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    async def driver_pool(self) -> FairPool:
        """The asyncpg pool the units of work run on for PostgreSQL; created on first
        use, and retried after a failure."""
        if self._fair_pool is None:
            async with self._driver_pool_lock:
                if self._fair_pool is None:
                    url = self.url.set(drivername="postgresql")
                    self._driver_pool = await asyncpg.create_pool(
                        url.render_as_string(hide_password=False),
                        min_size=1,
                        max_size=self._options["pool_size"] + self._options["max_overflow"],
                        timeout=self._connect_timeout,
                        max_inactive_connection_lifetime=300,
                        # Units of work leave no session state behind (no SET, LISTEN,
                        # temporary table or lock): no reset round trip per use.
                        reset=_end_open_transaction,
                    )
                    self._fair_pool = FairPool(
                        self._driver_pool,
                        size=self._options["pool_size"] + self._options["max_overflow"],
                        timeout=self._options["pool_timeout"],
                    )
        return self._fair_pool

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    @property
    def autocommit_engine(self) -> AsyncEngine:
        if self._autocommit_engine is None:
            self._autocommit_engine = self._create_engine(
                isolation_level="AUTOCOMMIT", pool_reset_on_return=None
            )
        return self._autocommit_engine

    def _create_engine(self, **options: Any) -> AsyncEngine:
        if self.is_sqlite:
            engine = create_async_engine(
                self.url,
                echo=self._echo,
                hide_parameters=True,
                connect_args={"timeout": self._connect_timeout},
                **options,
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
            **self._options,
            **options,
        )

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
        for engine in (self._engine, self._autocommit_engine):
            if engine is not None:
                await engine.dispose()
        self._engine = self._autocommit_engine = None
        if self._driver_pool is not None:
            pool, self._driver_pool = self._driver_pool, None
            if self._fair_pool is not None:
                fair, self._fair_pool = self._fair_pool, None
                with contextlib.suppress(Exception):
                    await fair.close()
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except TimeoutError:
                pool.terminate()


class FairPool:
    """The units of work's connections, handed out first come, first served.

    asyncpg's pool gives a released connection to whichever coroutine asks next, not to
    the one that has waited longest, and hands it back through a task of its own: under
    load a request could lose the race again and again (p99 of 150 ms and stalls of
    0.5 s on ``/users/me``: benchmarks/README.md). Here a released connection goes
    straight to the oldest waiter. The connections come from asyncpg's pool, which
    opens them, and go back to it when broken or at ``close``. A request that waits
    ``timeout`` seconds gives up (the unit of work answers 503).
    """

    def __init__(self, pool: asyncpg.Pool, *, size: int, timeout: float) -> None:
        self._pool = pool
        self._size = size
        self._timeout = timeout
        self._idle: list[asyncpg.Connection] = []
        self._held = 0  # taken from asyncpg's pool: idle here or in use
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()

    async def acquire(self) -> asyncpg.Connection:
        while True:
            while self._idle:
                conn = self._idle.pop()  # the most recently used: warm
                if not conn.is_closed():
                    return conn
                await self._drop(conn)
            if self._held < self._size:
                self._held += 1
                try:
                    return await self._pool.acquire()
                except BaseException:
                    self._held -= 1
                    self._wake_next()
                    raise
            handed = await self._wait()
            if handed is not None:
                return handed
            # None: a connection was dropped, so one may be opened: go round again.

    async def _wait(self) -> asyncpg.Connection | None:
        waiter: asyncio.Future[asyncpg.Connection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._timeout):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed over just as the wait ended: pass it on, not lost.
                handed = waiter.result()
                if handed is not None:
                    self._hand_over(handed)
                else:
                    self._wake_next()
            else:
                waiter.cancel()  # skipped when its turn comes
            raise

    async def release(self, conn: asyncpg.Connection) -> None:
        if conn.is_closed() or conn.is_in_transaction():
            await self._drop(conn)  # asyncpg's pool resets or discards it
            return
        self._hand_over(conn)

    async def close(self) -> None:
        """Give the idle connections back to asyncpg's pool, which can then close."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._drop(conn)

    async def _drop(self, conn: asyncpg.Connection) -> None:
        self._held -= 1
        try:
            await self._pool.release(conn)
        finally:
            self._wake_next()

    def _hand_over(self, conn: asyncpg.Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


async def _end_open_transaction(conn: asyncpg.Connection) -> None:
    if conn.is_in_transaction():  # only after a failure; never on the normal path
        await conn.execute("ROLLBACK")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; the cascades depend on them. WAL lets
    # readers work while one writer commits.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
