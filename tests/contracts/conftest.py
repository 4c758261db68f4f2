"""Contract tests: one spec per repository port, run against its fake and against its
SQL adapter on SQLite and on PostgreSQL.

The unit tests trust the fakes of ``tests/fakes.py``; these tests are what earns that
trust. A spec speaks only through the port (``uow.repository(Port)``), so the same test
holds the three to one behaviour. A module whose port's fake is not one of
``tests.fakes.FAKES`` (a new resource's) names it in a module-level ``FAKES`` dict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.database import Database
from adapters.unit_of_work import unit_of_work
from tests.conftest import Postgres, migrated_database
from tests.contracts.builders import UowFactory
from tests.fakes import FakeUnitOfWork, Store


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def new_uow(
    request: pytest.FixtureRequest, postgres: Postgres, sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[UowFactory]:
    """Units of work on one empty store: the fake's, or a migrated database's."""
    if request.param == "fake":
        store = Store()
        fakes = getattr(request.module, "FAKES", {})
        yield lambda: FakeUnitOfWork(store, repositories=fakes)
        return
    async with migrated_database(request.param, postgres, sqlite_template, tmp_path) as url:
        database = Database(url)
        try:
            yield lambda: unit_of_work(database)
        finally:
            await database.dispose()
