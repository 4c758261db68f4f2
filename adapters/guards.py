"""Rules across rows, decided by the database: lock, then write with a guard.

A rule that spans rows ("a user has at most 100 notes", "one active superuser
remains") cannot be checked by reading and then writing: two transactions both read
99 notes, both insert, and the owner has 101. Under PostgreSQL's READ COMMITTED each
statement sees what was committed when it started, so the idiom is two statements:

1. lock the rows every writer of the rule shares (the owner's row, say) with
   ``SELECT … FOR UPDATE``: a concurrent writer waits there until this transaction
   ends, then goes on with a fresh view that includes its outcome;
2. write with the rule inside the statement itself (``INSERT … SELECT … WHERE
   (SELECT count(*) …) < :limit``, ``UPDATE … WHERE EXISTS (another …)``): a row count
   of 0 is the rule refusing, and the use case turns it into its domain error.

SQLite has one writer at a time, so there the guarded statement alone is atomic
(SQLAlchemy leaves ``FOR UPDATE`` out of its SQL). ``Guard`` runs the two steps;
``PerOwnerLimit`` is the common case built on it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Insert, Select, Table, bindparam, func, insert, select
from sqlalchemy.sql import ColumnElement, Executable

from adapters.executors import Executor


class Guard:
    """Runs a guarded statement once ``lock``'s rows are held (until the transaction
    ends). Lock the rows in a stable order (``ORDER BY`` the key) so that two guards
    never deadlock; ``lock`` takes its parameters from the statement's."""

    def __init__(self, lock: Select[Any]) -> None:
        self.lock = lock.with_for_update()

    async def execute(self, db: Executor, statement: Executable, params: dict[str, Any]) -> int:
        """How many rows the guarded statement changed: 0 when its guard refused."""
        await db.all(self.lock, params)
        return await db.execute(statement, params)

    async def scalar(self, db: Executor, statement: Executable, params: dict[str, Any]) -> Any:
        """The guarded statement's first column (an ``INSERT … RETURNING id``): None when
        its guard refused."""
        await db.all(self.lock, params)
        return await db.scalar(statement, params)


class PerOwnerLimit:
    """At most ``limit`` rows of ``table`` per owner, where ``owner`` is the table's
    foreign key to its owner (``notes.owner_id`` → ``users.id``): the owner's row is the
    lock, and the insert counts the owner's rows in its own ``WHERE``.

    ``insert(db, values, limit)`` stores the row (``values`` has every column but the
    generated id) and returns its id, or None when the owner has ``limit`` rows already.
    ``counts`` says which of the owner's rows count (the live ones, say; its parameters
    are among ``values``); every row by default.
    """

    def __init__(
        self, table: Table, owner: Column[Any], counts: ColumnElement[bool] | None = None
    ) -> None:
        (key,) = owner.foreign_keys
        owner_row = key.column
        self._owner = owner.key
        self._guard = Guard(
            select(owner_row).where(owner_row == bindparam(owner.key, type_=owner.type))
        )
        self._inserts: dict[tuple[str, ...], Insert] = {}
        self._table = table
        counted = () if counts is None else (counts,)
        self._count = (
            select(func.count())
            .select_from(table)
            .where(owner == bindparam(owner.key, type_=owner.type), *counted)
            .scalar_subquery()
        )

    def _insert(self, names: tuple[str, ...]) -> Insert:
        # One statement per set of columns: built once, so the statements stay few.
        found = self._inserts.get(names)
        if found is None:
            row = select(
                *(bindparam(name, type_=self._table.c[name].type) for name in names)
            ).where(self._count < bindparam("limit"))
            primary = list(self._table.primary_key)
            found = self._inserts[names] = (
                insert(self._table).from_select(list(names), row).returning(*primary)
            )
        return found

    async def insert(self, db: Executor, values: dict[str, Any], limit: int) -> Any:
        names = tuple(sorted(values))
        return await self._guard.scalar(db, self._insert(names), {**values, "limit": limit})
