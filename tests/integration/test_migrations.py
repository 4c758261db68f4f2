"""The Alembic migrations on a fresh SQLite file and a fresh PostgreSQL database:
up from nothing, down to nothing, every step reversible, and no drift from
adapters.orm.metadata."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import adapters.repositories  # noqa: F401  (defines every table)
from adapters import migrations
from adapters.orm import metadata
from tests.conftest import Postgres

APP_TABLES = {table.name for table in metadata.sorted_tables}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def fresh_url(
    request: pytest.FixtureRequest, postgres: Postgres, tmp_path: Path
) -> AsyncIterator[str]:
    """The URL of an empty database that no migration has touched."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    else:
        yield await postgres.new_database(migrated=False)


async def upgrade(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(migrations.upgrade, url, revision)


async def downgrade(url: str, revision: str) -> None:
    await asyncio.to_thread(migrations.downgrade, url, revision)


async def on_sync_connection(url: str, fn: Any) -> Any:
    """Run ``fn(sync_connection)`` inside a transaction that is rolled back."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            try:
                return await conn.run_sync(fn)
            finally:
                await conn.rollback()
    finally:
        await engine.dispose()


async def table_names(url: str) -> set[str]:
    return set(await on_sync_connection(url, lambda conn: inspect(conn).get_table_names()))


def revisions_in_order(url: str) -> list[tuple[str, str]]:
    """Every revision from the first to the head, each with the one it revises."""
    script = ScriptDirectory.from_config(migrations.alembic_config(url))
    steps = []
    for rev in script.walk_revisions("base", "heads"):
        down = rev.down_revision
        assert down is None or isinstance(down, str), "merge revisions need a new test"
        steps.append((rev.revision, down or "base"))
    return list(reversed(steps))


def differences(url_is_sqlite: bool, target: MetaData) -> Any:
    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            diff = compare_metadata(context, target)
        unexpected = [
            str(w.message)
            for w in caught
            if not (url_is_sqlite and "expression-based index" in str(w.message))
        ]
        assert unexpected == []
        return list(diff)

    return compare


async def test_upgrade_to_head_from_empty_creates_every_table(fresh_url: str) -> None:
    assert await table_names(fresh_url) == set()
    assert await migrations.current_revisions(fresh_url) == ()

    await upgrade(fresh_url)

    assert await table_names(fresh_url) == APP_TABLES | {"alembic_version"}
    heads = migrations.head_revisions(fresh_url)
    assert heads
    assert await migrations.current_revisions(fresh_url) == heads


async def test_downgrade_to_base_leaves_no_application_table(fresh_url: str) -> None:
    await upgrade(fresh_url)

    await downgrade(fresh_url, "base")

    assert await table_names(fresh_url) - {"alembic_version"} == set()
    assert await migrations.current_revisions(fresh_url) == ()


async def test_every_revision_upgrades_downgrades_and_upgrades_again(fresh_url: str) -> None:
    """The stairway: each step is reversible and can be re-applied after its reversal."""
    steps = revisions_in_order(fresh_url)
    assert steps, "no migrations found"

    for revision, previous in steps:
        await upgrade(fresh_url, revision)
        assert await migrations.current_revisions(fresh_url) == (revision,)
        await downgrade(fresh_url, previous)
        expected = () if previous == "base" else (previous,)
        assert await migrations.current_revisions(fresh_url) == expected
        await upgrade(fresh_url, revision)
        assert await migrations.current_revisions(fresh_url) == (revision,)

    assert await migrations.current_revisions(fresh_url) == migrations.head_revisions(fresh_url)
    assert await table_names(fresh_url) == APP_TABLES | {"alembic_version"}


async def test_migrated_schema_has_no_drift_from_the_orm_metadata(fresh_url: str) -> None:
    await upgrade(fresh_url)
    is_sqlite = fresh_url.startswith("sqlite")

    diff = await on_sync_connection(fresh_url, differences(is_sqlite, metadata))

    assert diff == []


async def test_the_drift_check_notices_a_column_missing_from_the_migrations(
    fresh_url: str,
) -> None:
    """The comparison above is not vacuous: a model change without a migration shows."""
    await upgrade(fresh_url)
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["users"].append_column(Column("nickname", String(50), nullable=True))

    diff = await on_sync_connection(fresh_url, differences(fresh_url.startswith("sqlite"), changed))

    assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", "users", "nickname")]


@pytest.mark.postgres
async def test_the_drift_check_compares_expression_indexes_on_postgresql(
    postgres: Postgres,
) -> None:
    url = await postgres.new_database(migrated=False)
    await upgrade(url)

    def drop_index_then_compare(conn: Connection) -> list[Any]:
        conn.execute(text("DROP INDEX uq_users_username_lower"))  # rolled back afterwards
        diff: list[Any] = differences(False, metadata)(conn)
        return diff

    diff = await on_sync_connection(url, drop_index_then_compare)

    assert [(d[0], d[1].name) for d in diff] == [("add_index", "uq_users_username_lower")]
