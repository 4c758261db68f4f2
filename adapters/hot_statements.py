"""The few statements of the hottest request paths, run on asyncpg directly on PostgreSQL.

Why: around a statement built once, SQLAlchemy's execution layer (execution context,
cursor adaptation, result building, a greenlet switch) costs more of the CPU than the
statement itself on the driver (benchmarks/README.md, "One data path"). ``hot()``
declares a statement whose SQL SQLAlchemy compiles once, at import, for the asyncpg
dialect; the unit of work's executor then runs that SQL on the connection's driver, in
the same transaction, with SQLAlchemy's own bind and result conversions of each
column's type. On SQLite, and wherever no driver connection is at hand, a hot statement
runs through SQLAlchemy like any other.

``hot()`` refuses, at import, what it could not run exactly as SQLAlchemy would: SQL
settled per execution (``IN`` lists and other expanding or literal parameters), an
``INSERT`` whose columns come from each call's parameters unless they are declared,
a Python-side column default, and result columns that SQLAlchemy would have to
disambiguate. The set is bounded (``MAX_HOT_STATEMENTS``): the rest of the
repositories, and any statement built per call, go through SQLAlchemy and its own
bounded statement cache.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Insert
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import Label

MAX_HOT_STATEMENTS = 16

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
_declared: list[HotStatement] = []


class NotAHotStatement(TypeError):
    """``hot()`` was given a statement it cannot run exactly as SQLAlchemy would."""


class HotStatement:
    """A statement compiled once for asyncpg: its SQL, its parameters in order with
    their conversions, and its result columns with theirs."""

    __slots__ = (
        "_binds",
        "_defaults",
        "_keys",
        "_names",
        "_results",
        "first_key",
        "sql",
        "statement",
    )

    def __init__(self, statement: Executable, columns: Sequence[str] | None) -> None:
        if isinstance(statement, Insert) and columns is None and not _has_values(statement):
            raise NotAHotStatement(
                "this INSERT takes its columns from each call's parameters: declare them "
                "with hot(statement, columns=[...])"
            )
        compiled: Any = statement.compile(  # type: ignore[attr-defined]
            dialect=_DIALECT, column_keys=list(columns) if columns is not None else None
        )
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise NotAHotStatement(
                "its SQL is settled per execution (an IN list or another expanding or "
                "literal parameter): leave it to SQLAlchemy, without hot()"
            )
        if isinstance(statement, Insert) and columns is not None:
            _check_no_python_defaults(statement, columns)
        self.statement = statement
        self.sql: str = str(compiled)
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values the statement carries itself, such as the 1 of ``.limit(1)``; a
        # parameter without one must come with each call (missing: KeyError, where
        # SQLAlchemy says "a value is required", never a silent NULL).
        self._defaults: dict[str, Any] = {
            name: value
            for name, value in compiled.params.items()
            if not compiled.binds[name].required
        }
        self._binds = [
            compiled.binds[name].type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            for name in self._names
        ]
        self._keys, converters = _result_columns(statement)
        # Only the columns whose type converts (datetimes, here): the rest go as they are.
        self._results = [
            (key, convert) for key, convert in zip(self._keys, converters, strict=True) if convert
        ]
        self.first_key = self._keys[0] if self._keys else ""

    def args(self, params: dict[str, Any]) -> list[Any]:
        """The driver's positional arguments for ``params``."""
        defaults = self._defaults
        values = [params[name] if name in params else defaults[name] for name in self._names]
        return [
            convert(value) if convert else value
            for convert, value in zip(self._binds, values, strict=True)
        ]

    def row(self, record: Sequence[Any]) -> dict[str, Any]:
        """A driver's row as SQLAlchemy's mapping of it: by result key, converted."""
        row = dict(zip(self._keys, record, strict=True))
        for key, convert in self._results:
            row[key] = convert(row[key])
        return row


def hot(statement: Executable, *, columns: Sequence[str] | None = None) -> HotStatement:
    """Declare ``statement`` (a module constant of a repository) hot; ``columns`` names
    an ``INSERT``'s columns when they come from the call's parameters."""
    if len(_declared) >= MAX_HOT_STATEMENTS:
        raise NotAHotStatement(
            f"at most {MAX_HOT_STATEMENTS} hot statements: keep hot() for the few that "
            "the benchmark shows on the hottest paths"
        )
    declared = HotStatement(statement, columns)
    _declared.append(declared)
    return declared


def _has_values(statement: Insert) -> bool:
    # Whether its SQL stays the same whichever parameters a call brings.
    def sql(keys: list[str]) -> str:
        with warnings.catch_warnings():  # no keys: "a primary key without a value"
            warnings.simplefilter("ignore")
            return str(statement.compile(dialect=_DIALECT, column_keys=keys))

    table: Any = statement.table
    return sql([]) == sql([column.key for column in table.columns])


def _check_no_python_defaults(statement: Insert, columns: Sequence[str]) -> None:
    table: Any = statement.table
    for column in table.columns:
        if column.key not in columns and column.default is not None:
            raise NotAHotStatement(
                f"column {column.key!r} has a Python-side default that only SQLAlchemy "
                "runs: include it in columns=[...] and pass its value"
            )


def _result_columns(
    statement: Executable,
) -> tuple[tuple[str, ...], list[Callable[[Any], Any] | None]]:
    exported: Any = getattr(statement, "exported_columns", ())
    columns = list(exported)
    keys = tuple(exported.keys()) if columns else ()
    if len(set(keys)) != len(keys):
        raise NotAHotStatement(
            "two result columns share a key (SQLAlchemy would rename one): label them"
        )
    for key, column in zip(keys, columns, strict=True):
        if not isinstance(column, Column | Label) or column.name != key:
            raise NotAHotStatement(
                f"result column {key!r} is not named by its key in the SQL "
                "(SQLAlchemy would label it): label it"
            )
    converters = [
        column.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None) for column in columns
    ]
    return keys, converters
