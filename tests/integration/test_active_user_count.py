"""The public list's total comes from a count the database keeps (triggers, migration
0005): it must equal a real count after any mix of writes, also concurrent ones."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from adapters import migrations
from adapters.database import Database
from adapters.orm import users
from adapters.unit_of_work import unit_of_work
from domain.model import PageRequest
from domain.ports import UserRepository
from tests.integration.builders import UowFactory, add_user, make_user
from tests.integration.test_migrations import fresh_url, upgrade  # noqa: F401

FIRST_PAGE = PageRequest(page=1, size=20)


async def listed_total(new_uow: UowFactory) -> int:
    async with new_uow() as uow:
        _, total = await uow.repository(UserRepository).list_page(FIRST_PAGE, active_only=True)
    return total


async def counted(database: Database) -> int:
    async with database.engine.connect() as conn:
        query = select(func.count()).select_from(users).where(users.c.is_active)
        return int(await conn.scalar(query) or 0)


async def test_the_total_follows_registrations_deactivations_and_deletions(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    bob = await add_user(database, "bob")
    await add_user(database, "off", is_active=False)
    assert await listed_total(new_uow) == 2

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).set_active(ada.id or 0, False)
        assert not await uow.repository(UserRepository).set_active(
            ada.id or 0, False
        )  # no change: no count
        await uow.commit()
    assert await listed_total(new_uow) == 1
    async with new_uow() as uow:
        assert await uow.repository(UserRepository).delete(bob.id or 0)
        assert await uow.repository(UserRepository).delete(ada.id or 0)  # an inactive one: no count
        await uow.commit()
    assert await listed_total(new_uow) == 0 == await counted(database)


async def test_a_rolled_back_registration_counts_nothing(
    database: Database, new_uow: UowFactory
) -> None:
    async with new_uow() as uow:
        await uow.repository(UserRepository).add(make_user("ada"))
    assert await listed_total(new_uow) == 0


@pytest.mark.postgres
async def test_concurrent_registrations_deactivations_and_deletions_keep_it_exact(
    pg_database: Database,
) -> None:
    new_uow: UowFactory = lambda: unit_of_work(pg_database)  # noqa: E731
    seeded = [await add_user(pg_database, f"seed{n}") for n in range(30)]
    rng = random.Random(7)

    async def register(n: int) -> None:
        async with new_uow() as uow:
            await uow.repository(UserRepository).add(
                make_user(f"new{n}", is_active=rng.random() < 0.8)
            )
            await uow.commit()

    async def flip(user_id: int) -> None:
        async with new_uow() as uow:
            await uow.repository(UserRepository).set_active(user_id, rng.random() < 0.5)
            await uow.commit()

    async def remove(user_id: int) -> None:
        async with new_uow() as uow:
            await uow.repository(UserRepository).delete(user_id)
            await uow.commit()

    work = [register(n) for n in range(60)]
    work += [flip(user.id or 0) for user in seeded[:20]]
    work += [remove(user.id or 0) for user in seeded[20:]]
    rng.shuffle(work)
    await asyncio.gather(*work)

    assert await listed_total(new_uow) == await counted(pg_database)


async def test_the_migration_counts_the_users_already_there(fresh_url: str) -> None:  # noqa: F811
    await upgrade(fresh_url, "0004")
    engine = create_async_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            for n, active in enumerate((True, True, False)):
                await conn.execute(
                    text(
                        "INSERT INTO users (email, username, password_hash, is_active,"
                        " created_at) VALUES (:e, :u, 'x', :a, '2026-01-01 00:00:00')"
                    ),
                    {"e": f"u{n}@example.com", "u": f"u{n}", "a": active},
                )
    finally:
        await engine.dispose()
    await upgrade(fresh_url)

    database = Database(fresh_url)
    try:
        assert await listed_total(lambda: unit_of_work(database)) == 2
        await add_user(database, "ada")
        assert await listed_total(lambda: unit_of_work(database)) == 3
    finally:
        await database.dispose()
    assert migrations.head_revisions(fresh_url)


async def test_one_statement_of_many_rows_counts_each_of_them(
    database: Database, new_uow: UowFactory
) -> None:
    """A bulk insert or delete (one statement, many users) is counted row for row: on
    PostgreSQL the triggers run once per statement, over all of its rows."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    rows = [
        {
            "email": f"bulk{n}@example.com",
            "username": f"bulk{n}",
            "password_hash": "x",
            "is_active": n % 3 != 0,
            "created_at": now,
        }
        for n in range(300)
    ]
    async with database.engine.begin() as conn:
        await conn.execute(insert(users).values(rows))
    assert await listed_total(new_uow) == 200 == await counted(database)
    async with database.engine.begin() as conn:
        await conn.execute(delete(users).where(users.c.username.like("bulk1%")))
    assert await listed_total(new_uow) == await counted(database)
    async with database.engine.begin() as conn:
        await conn.execute(delete(users))
    assert await listed_total(new_uow) == 0 == await counted(database)
