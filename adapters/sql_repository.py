"""The base of the SQL repositories."""

from __future__ import annotations

from adapters.executors import Executor


class SqlRepository:
    """A repository works inside its unit of work's connection and transaction, through
    the executor it is handed, and never commits on its own. Subclass it and the port
    it implements, then add the pair to ``adapters/repositories.py``."""

    def __init__(self, db: Executor) -> None:
        self._db = db
