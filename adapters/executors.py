"""How the repositories' statements reach the database.

The repositories build SQLAlchemy Core statements once and hand them, with their
parameters, to an executor: ``SqlAlchemyExecutor`` runs them through SQLAlchemy (SQLite),
``AsyncpgExecutor`` compiles each once for asyncpg and runs it on the driver directly
(PostgreSQL). On PostgreSQL, SQLAlchemy's execution layer costs several times the query
itself on the hot paths (benchmarks/README.md), so it is left out there; the statements,
the schema and the migrations stay one and the same.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable, Insert

Row = Mapping[str, Any]


class ConstraintViolation(Exception):
    """A statement broke a constraint; ``name`` is the constraint's (or index's) name."""

    def __init__(self, name: str, *, foreign_key: bool = False) -> None:
        super().__init__(name)
        self.name = name
        self.foreign_key = foreign_key


class Executor(abc.ABC):
    @abc.abstractmethod
    async def one(self, statement: Executable, params: dict[str, Any]) -> Row | None:
        """The first row, or None."""

    @abc.abstractmethod
    async def all(self, statement: Executable, params: dict[str, Any]) -> Sequence[Row]:
        """Every row."""

    @abc.abstractmethod
    async def scalar(self, statement: Executable, params: dict[str, Any]) -> Any:
        """The first column of the first row, or None."""

    @abc.abstractmethod
    async def execute(self, statement: Executable, params: dict[str, Any]) -> int:
        """Run a statement that returns no rows; how many rows it changed."""


class SqlAlchemyExecutor(Executor):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def one(self, statement: Executable, params: dict[str, Any]) -> Row | None:
        result = await self._run(statement, params)
        row: Row | None = result.mappings().first()
        return row

    async def all(self, statement: Executable, params: dict[str, Any]) -> Sequence[Row]:
        result = await self._run(statement, params)
        rows: Sequence[Row] = result.mappings().all()
        return rows

    async def scalar(self, statement: Executable, params: dict[str, Any]) -> Any:
        result = await self._run(statement, params)
        return result.scalar()

    async def execute(self, statement: Executable, params: dict[str, Any]) -> int:
        result = await self._run(statement, params)
        return int(result.rowcount)

    async def _run(self, statement: Executable, params: dict[str, Any]) -> Any:
        try:
            return await self._conn.execute(statement, params)
        except IntegrityError as exc:
            message = str(exc.orig)
            raise ConstraintViolation(
                message, foreign_key="FOREIGN KEY" in message.upper()
            ) from None


_ASYNCPG = asyncpg_dialect()  # type: ignore[no-untyped-call]


class _Compiled:
    """A statement compiled once for asyncpg: its SQL and its parameters' order."""

    def __init__(self, statement: Executable, column_keys: list[str] | None) -> None:
        compiled: Any = statement.compile(  # type: ignore[attr-defined]
            dialect=_ASYNCPG, column_keys=column_keys
        )
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values the statement carries itself, such as the 1 of ``.limit(1)``.
        self.defaults: dict[str, Any] = dict(compiled.params)
        # The column types' own conversions (e.g. UTCDateTime refusing naive datetimes).
        self.processors = [
            compiled.binds[name].type.bind_processor(_ASYNCPG) for name in self.names
        ]

    def args(self, params: dict[str, Any]) -> list[Any]:
        values = [params[name] if name in params else self.defaults[name] for name in self.names]
        return [
            process(value) if process else value
            for process, value in zip(self.processors, values, strict=True)
        ]


# The repositories' statements are module constants: this cache is bounded by them.
_compiled: dict[tuple[int, tuple[str, ...]], tuple[Executable, _Compiled]] = {}


def _compile(statement: Executable, params: dict[str, Any]) -> _Compiled:
    # An INSERT without explicit values takes its columns from the parameters given.
    columns = tuple(params) if isinstance(statement, Insert) else ()
    key = (id(statement), columns)
    found = _compiled.get(key)
    if found is None or found[0] is not statement:
        found = (statement, _Compiled(statement, list(columns) or None))
        _compiled[key] = found
    return found[1]


class AsyncpgExecutor(Executor):
    """Runs statements on one asyncpg connection; ``before_statement`` (the unit of
    work's) opens a transaction when one is needed."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        before_statement: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._conn = conn
        self._before = before_statement

    async def one(self, statement: Executable, params: dict[str, Any]) -> Row | None:
        query = _compile(statement, params)
        row: Row | None = await self._call(self._conn.fetchrow, query.sql, query.args(params))
        return row

    async def all(self, statement: Executable, params: dict[str, Any]) -> Sequence[Row]:
        query = _compile(statement, params)
        rows: Sequence[Row] = await self._call(self._conn.fetch, query.sql, query.args(params))
        return rows

    async def scalar(self, statement: Executable, params: dict[str, Any]) -> Any:
        query = _compile(statement, params)
        return await self._call(self._conn.fetchval, query.sql, query.args(params))

    async def execute(self, statement: Executable, params: dict[str, Any]) -> int:
        query = _compile(statement, params)
        status: str = await self._call(self._conn.execute, query.sql, query.args(params))
        # "UPDATE 3", "DELETE 0", "INSERT 0 1": the count is the last word.
        return int(status.rsplit(" ", 1)[-1])

    async def _call(self, method: Any, sql: str, args: list[Any]) -> Any:
        if self._before is not None:
            await self._before()
        try:
            return await method(sql, *args)
        except asyncpg.UniqueViolationError as exc:
            raise ConstraintViolation(exc.constraint_name or str(exc)) from None
        except asyncpg.ForeignKeyViolationError as exc:
            raise ConstraintViolation(exc.constraint_name or str(exc), foreign_key=True) from None
