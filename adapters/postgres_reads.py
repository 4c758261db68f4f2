"""Read-only units of work straight on asyncpg, for PostgreSQL.

The use cases that only read (checking an access token on every authenticated request,
listing users or sessions) run the same statements as the SQLAlchemy repositories,
compiled once for asyncpg and executed on the driver's own pool: SQLAlchemy's execution
layer (pool events, execution context, result processing) costs about four times the
query itself on these paths (benchmarks/README.md). Writes always go through
``SqlAlchemyUnitOfWork``; the repositories here refuse them.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from types import TracebackType
from typing import Any, NoReturn

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql import ClauseElement

from adapters import repositories as sql
from adapters.database import Database
from adapters.unit_of_work import SqlAlchemyUnitOfWork
from domain.errors import ServiceUnavailable
from domain.model import PageRequest, Session, User
from domain.ports import (
    RefreshTokenRepository,
    SessionRepository,
    UnitOfWork,
    UserRepository,
)

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
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


class _Query:
    """A repository statement compiled once for asyncpg, run with named parameters."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled: Any = statement.compile(dialect=_DIALECT)
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values the statement carries itself, such as the 1 of ``.limit(1)``.
        self.defaults: dict[str, Any] = dict(compiled.params)

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[name] if name in params else self.defaults[name] for name in self.names]


_GET_USER = _Query(sql._GET_USER)
_GET_USER_BY_LOGIN = _Query(sql._GET_USER_BY_LOGIN)
_GET_USER_WITH_SESSION = _Query(sql._GET_USER_WITH_SESSION)
_EMAIL_TAKEN = _Query(sql._EMAIL_TAKEN)
_USERNAME_TAKEN = _Query(sql._USERNAME_TAKEN)
_COUNT_USERS = _Query(sql._COUNT_USERS)
_COUNT_ACTIVE_USERS = _Query(sql._COUNT_ACTIVE_USERS)
_PAGE_OF_USERS = _Query(sql._PAGE_OF_USERS)
_PAGE_OF_ACTIVE_USERS = _Query(sql._PAGE_OF_ACTIVE_USERS)
_GET_SESSION = _Query(sql._GET_SESSION)
_ACTIVE_SESSIONS = _Query(sql._ACTIVE_SESSIONS)
_SESSION_PREFIX = "s_"


async def _read_only(*_args: object, **_kwargs: object) -> NoReturn:
    raise RuntimeError("a read-only unit of work cannot write")


class _Reader:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def _row(self, query: _Query, **params: Any) -> asyncpg.Record | None:
        return await self._conn.fetchrow(query.sql, *query.args(params))

    async def _rows(self, query: _Query, **params: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._conn.fetch(query.sql, *query.args(params))
        return rows

    async def _value(self, query: _Query, **params: Any) -> Any:
        return await self._conn.fetchval(query.sql, *query.args(params))


class AsyncpgUserReader(_Reader, UserRepository):
    add = update = delete = _read_only

    async def get(self, user_id: int) -> User | None:
        row = await self._row(_GET_USER, user_id=user_id)
        return User(**row) if row else None

    async def get_by_login(self, login: str) -> User | None:
        row = await self._row(_GET_USER_BY_LOGIN, login=login)
        return User(**row) if row else None

    async def get_with_session(
        self, user_id: int, session_id: str
    ) -> tuple[User, Session | None] | None:
        row = await self._row(_GET_USER_WITH_SESSION, user_id=user_id, session_id=session_id)
        if row is None:
            return None
        user: dict[str, Any] = {}
        session: dict[str, Any] = {}
        for key, value in row.items():
            if key.startswith(_SESSION_PREFIX):
                session[key.removeprefix(_SESSION_PREFIX)] = value
            else:
                user[key] = value
        return User(**user), Session(**session) if session["id"] is not None else None

    async def email_taken(self, email: str, *, except_user: int | None = None) -> bool:
        return bool(await self._value(_EMAIL_TAKEN, value=email, except_user=except_user or 0))

    async def username_taken(self, username: str, *, except_user: int | None = None) -> bool:
        return bool(
            await self._value(_USERNAME_TAKEN, value=username, except_user=except_user or 0)
        )

    async def list_page(self, page: PageRequest, *, active_only: bool) -> tuple[list[User], int]:
        total = int(await self._value(_COUNT_ACTIVE_USERS if active_only else _COUNT_USERS))
        if page.offset >= total:
            return [], total
        query = _PAGE_OF_ACTIVE_USERS if active_only else _PAGE_OF_USERS
        rows = await self._rows(query, limit=page.size, offset=page.offset)
        return [User(**row) for row in rows], total


class AsyncpgSessionReader(_Reader, SessionRepository):
    add = extend = revoke = revoke_all = delete_orphans = _read_only

    async def get(self, session_id: str) -> Session | None:
        row = await self._row(_GET_SESSION, session_id=session_id)
        return Session(**row) if row else None

    async def list_active(self, user_id: int, now: datetime) -> list[Session]:
        return [
            Session(**row) for row in await self._rows(_ACTIVE_SESSIONS, user_id=user_id, now=now)
        ]


class _NoRefreshTokens(RefreshTokenRepository):
    add = get = mark_rotated = delete_expired = _read_only


class AsyncpgReadOnlyUnitOfWork(UnitOfWork):
    """A read-only unit of work on one pooled asyncpg connection, in autocommit."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._pool: asyncpg.Pool | None = None
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> AsyncpgReadOnlyUnitOfWork:
        try:
            self._pool = await self._database.driver_pool()
            self._conn = await self._pool.acquire()
        except Exception as exc:
            # Whatever stops a connection (server down, refusing connections, bad
            # credentials) leaves the service unable to answer.
            raise ServiceUnavailable() from exc
        self.users = AsyncpgUserReader(self._conn)
        self.sessions = AsyncpgSessionReader(self._conn)
        self.refresh_tokens = _NoRefreshTokens()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lost = False
        if self._pool is not None and self._conn is not None:
            try:
                lost = self._conn.is_closed()
            except asyncpg.InterfaceError:  # the pool already took a dead one back
                lost = True
            with contextlib.suppress(*DISCONNECTED):  # the pool drops a broken one itself
                await self._pool.release(self._conn)
            self._conn = None
        if exc is not None and (lost or isinstance(exc, DISCONNECTED)):
            raise ServiceUnavailable() from exc

    async def commit(self) -> None:
        raise RuntimeError("commit() in a read-only unit of work")

    async def rollback(self) -> None:
        """Nothing to roll back: this unit of work never writes."""


def read_only_unit_of_work(database: Database) -> UnitOfWork:
    """The fastest read-only unit of work for the database at hand."""
    if database.is_postgresql:
        return AsyncpgReadOnlyUnitOfWork(database)
    return SqlAlchemyUnitOfWork(database, read_only=True)
