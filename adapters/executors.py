"""How the repositories' statements reach the database: SQLAlchemy Core on the unit of
work's ``AsyncConnection``, with SQLAlchemy's full semantics on every database.

A handful of statements on the hottest request paths are declared ``hot``
(``adapters.hot_statements``): on PostgreSQL those run on the connection's asyncpg
driver with SQL that SQLAlchemy compiled once at import, in the same transaction.
Everything else, and everything on SQLite, goes through ``AsyncConnection.execute``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from adapters.hot_statements import HotStatement

Row = Mapping[str, Any]
Statement = Executable | HotStatement


class ConstraintViolation(Exception):
    """A statement broke a constraint; ``name`` is the constraint's (or index's) name."""

    def __init__(self, name: str, *, foreign_key: bool = False) -> None:
        super().__init__(name)
        self.name = name
        self.foreign_key = foreign_key


def _violation(error: BaseException) -> ConstraintViolation:
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return ConstraintViolation(
            error.constraint_name or str(error),
            foreign_key=isinstance(error, asyncpg.ForeignKeyViolationError),
        )
    # SQLite names the constraint only in its message.
    message = str(error)
    return ConstraintViolation(message, foreign_key="FOREIGN KEY" in message.upper())


class Executor:
    """Runs statements on one connection for its unit of work.

    ``before_statement`` (the unit of work's) opens the transaction when one is needed;
    ``driver`` is the connection's asyncpg connection, for hot statements on
    PostgreSQL (None elsewhere: they then run through SQLAlchemy like the rest).
    """

    def __init__(
        self,
        conn: AsyncConnection,
        *,
        before_statement: Callable[[], Awaitable[None]] | None = None,
        driver: asyncpg.Connection | None = None,
    ) -> None:
        self._conn = conn
        self._before = before_statement
        self._driver = driver

    async def one(self, statement: Statement, params: dict[str, Any]) -> Row | None:
        """The first row, or None."""
        if isinstance(statement, HotStatement):
            if self._driver is not None:
                record = await self._on_driver("fetchrow", statement, params)
                return None if record is None else statement.row(record)
            statement = statement.statement
        row: Row | None = (await self._run(statement, params)).mappings().first()
        return row

    async def all(self, statement: Statement, params: dict[str, Any]) -> Sequence[Row]:
        """Every row."""
        if isinstance(statement, HotStatement):
            if self._driver is not None:
                records = await self._on_driver("fetch", statement, params)
                return [statement.row(record) for record in records]
            statement = statement.statement
        rows: Sequence[Row] = (await self._run(statement, params)).mappings().all()
        return rows

    async def scalar(self, statement: Statement, params: dict[str, Any]) -> Any:
        """The first column of the first row, or None."""
        if isinstance(statement, HotStatement):
            if self._driver is not None:
                record = await self._on_driver("fetchrow", statement, params)
                return None if record is None else statement.row(record)[statement.first_key]
            statement = statement.statement
        return (await self._run(statement, params)).scalar()

    async def execute(self, statement: Statement, params: dict[str, Any]) -> int:
        """Run a statement that returns no rows; how many rows it changed."""
        if isinstance(statement, HotStatement):
            if self._driver is not None:
                status: str = await self._on_driver("execute", statement, params)
                # "UPDATE 3", "DELETE 0", "INSERT 0 1": the count is the last word.
                return int(status.rsplit(" ", 1)[-1])
            statement = statement.statement
        return int((await self._run(statement, params)).rowcount)

    async def _run(self, statement: Executable, params: dict[str, Any]) -> Any:
        if self._before is not None:
            await self._before()
        try:
            return await self._conn.execute(statement, params)
        except IntegrityError as exc:
            # The driver's own error (asyncpg's names the constraint) is the cause of the
            # DBAPI error SQLAlchemy wraps.
            raise _violation(exc.orig.__cause__ or exc.orig if exc.orig else exc) from None

    async def _on_driver(self, method: str, statement: HotStatement, params: dict[str, Any]) -> Any:
        assert self._driver is not None
        if self._before is not None:
            await self._before()
        try:
            return await getattr(self._driver, method)(statement.sql, *statement.args(params))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise _violation(exc) from None
