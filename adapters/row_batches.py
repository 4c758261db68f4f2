"""Deleting a batch of rows by their physical address rather than their key.

``DELETE … WHERE id IN (SELECT id … LIMIT n)`` lets PostgreSQL join the batch back to
the table by hashing, which reads the whole table for every batch: a purge of a table
of a million rows slowed as it went and managed 30,000 to 57,000 rows/s. Addressing the
batch's rows by ``ctid`` (``= ANY(ARRAY(…))``, a TID scan) touches only those rows, at a
cost that does not grow with the table (benchmarks/README.md). SQLite's ``rowid`` is the
same idea, and its ``IN`` already looks rows up one by one.

SQLAlchemy's statement cache is left out for statements built with these
(``inherit_cache = False``): a purge compiles one per batch of thousands of rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, Table
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType


class RowAddress(ColumnElement[Any]):
    """Where a row of ``table`` lies: ``ctid`` on PostgreSQL, ``rowid`` on SQLite."""

    inherit_cache = False
    type = NullType()

    def __init__(self, table: Table) -> None:
        self.table = table


class InBatch(ColumnElement[Any]):
    """The row is one of those ``batch`` (a select of ``RowAddress``) picks."""

    inherit_cache = False
    type = NullType()  # not Boolean: SQLite would compare the whole test with 1

    def __init__(self, table: Table, batch: Select[Any]) -> None:
        self.address = RowAddress(table)
        self.batch = batch


@compiles(RowAddress, "postgresql")
def _ctid(element: RowAddress, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{compiler.preparer.format_table(element.table)}.ctid"


@compiles(RowAddress)
def _rowid(element: RowAddress, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{compiler.preparer.format_table(element.table)}.rowid"


@compiles(InBatch, "postgresql")
def _any_array(element: InBatch, compiler: SQLCompiler, **kw: Any) -> str:
    address = compiler.process(element.address, **kw)
    return f"{address} = ANY(ARRAY({compiler.process(element.batch, **kw)}))"


@compiles(InBatch)
def _in(element: InBatch, compiler: SQLCompiler, **kw: Any) -> str:
    address = compiler.process(element.address, **kw)
    return f"{address} IN ({compiler.process(element.batch, **kw)})"
