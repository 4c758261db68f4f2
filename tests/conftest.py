"""Shared fixtures: throwaway databases (SQLite files and a PostgreSQL database
created and dropped per run), Redis, and the fakes.

PostgreSQL and Redis tests run when TEST_DATABASE_URL / TEST_REDIS_URL point at
reachable servers; otherwise they are skipped with the reason, unless
TEST_REQUIRE_SERVICES=1 (CI), where an unreachable service fails the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

import adapters.repositories  # noqa: F401  (defines every table)
from adapters import migrations
from adapters.database import Database
from adapters.orm import metadata

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
REQUIRE_SERVICES = os.environ.get("TEST_REQUIRE_SERVICES") == "1"
RUN_ID = secrets.token_hex(4)


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (TEST_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


async def _create_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def _drop_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


class Postgres:
    """The PostgreSQL server at TEST_DATABASE_URL, used only to create and drop
    throwaway databases: the database it names is never written to."""

    def __init__(self, admin_url: str, error: str | None) -> None:
        self.admin_url = admin_url
        self.error = error
        self.created: list[str] = []
        self._shared: str | None = None

    def require(self) -> str:
        if self.error:
            _unavailable(self.error)
        return self.admin_url

    async def new_database(self, *, migrated: bool = True) -> str:
        """A new, empty database (migrated to head unless told not to)."""
        admin_url = self.require()
        name = f"test_{RUN_ID}_{len(self.created)}"
        await _create_database(admin_url, name)
        self.created.append(name)
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        if migrated:
            await asyncio.to_thread(migrations.upgrade, url)
        return url

    async def shared_database(self) -> str:
        """One migrated database for the run; its users empty it after each test."""
        if self._shared is None:
            self._shared = await self.new_database()
        return self._shared

    async def drop_all(self) -> None:
        for name in self.created:
            await _drop_database(self.admin_url, name)


async def _check_postgres(url: str) -> str | None:
    if not url:
        return "PostgreSQL tests need TEST_DATABASE_URL"
    engine = create_async_engine(url, connect_args={"timeout": 5})
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"PostgreSQL at TEST_DATABASE_URL is unreachable ({exc.__class__.__name__})"
    finally:
        await engine.dispose()
    return None


@pytest.fixture(scope="session")
async def postgres() -> AsyncIterator[Postgres]:
    server = Postgres(TEST_DATABASE_URL, await _check_postgres(TEST_DATABASE_URL))
    yield server
    await server.drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test that needs a database."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrations.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def empty_tables(database: Database) -> None:
    async with database.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            # Kept by the database's triggers: deleting the users counts them down.
            if table.name != "user_counts":
                await conn.execute(table.delete())


@contextlib.asynccontextmanager
async def migrated_database(
    kind: str, postgres: Postgres, sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[str]:
    """The URL of an empty, migrated database of ``kind`` (``sqlite`` or ``postgresql``),
    emptied again afterwards."""
    if kind == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = await postgres.shared_database()
    yield url
    cleanup = Database(url)
    try:
        await empty_tables(cleanup)
    finally:
        await cleanup.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(
    request: pytest.FixtureRequest, postgres: Postgres, sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[str]:
    """The URL of an empty, migrated database: each test runs once per backend."""
    async with migrated_database(request.param, postgres, sqlite_template, tmp_path) as url:
        yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
async def redis_url() -> str:
    if not TEST_REDIS_URL:
        _unavailable("Redis tests need TEST_REDIS_URL")
    client = aioredis.from_url(TEST_REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as exc:
        _unavailable(f"Redis at TEST_REDIS_URL is unreachable: {exc.__class__.__name__}")
    finally:
        await client.aclose()
    return TEST_REDIS_URL
