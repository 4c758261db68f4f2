"""Fixtures for the adapter tests against real databases.

``database`` (from tests/conftest.py) runs a test on SQLite and on PostgreSQL;
``pg_database`` runs it on PostgreSQL only, for what SQLite cannot do (concurrent
writers, large volumes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.database import Database
from adapters.unit_of_work import unit_of_work
from tests.conftest import Postgres, empty_tables
from tests.integration.builders import UowFactory


@pytest.fixture
def new_uow(database: Database) -> UowFactory:
    # What production runs: asyncpg on PostgreSQL, SQLAlchemy on SQLite.
    return lambda: unit_of_work(database)


@pytest.fixture
async def pg_database(postgres: Postgres) -> AsyncIterator[Database]:
    """An empty, migrated PostgreSQL database (skipped without PostgreSQL)."""
    db = Database(await postgres.shared_database())
    try:
        yield db
    finally:
        try:
            await empty_tables(db)
        finally:
            await db.dispose()
