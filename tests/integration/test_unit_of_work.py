"""SqlUnitOfWork: one transaction, committed only on ``commit()``, and a
database that cannot be reached surfaces as ServiceUnavailable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import asyncpg.transaction
import pytest
from sqlalchemy import text

from adapters.database import Database
from adapters.unit_of_work import SqlUnitOfWork
from domain.errors import ServiceUnavailable
from domain.ports import UserRepository
from tests.integration.builders import NOW, UowFactory, add_user, count_rows, make_user


async def test_commit_makes_writes_visible_to_a_new_unit_of_work(
    database: Database, new_uow: UowFactory
) -> None:
    async with new_uow() as uow:
        user = await uow.repository(UserRepository).add(make_user("ada"))
        await uow.commit()

    async with new_uow() as uow:
        stored = await uow.repository(UserRepository).get(user.id or 0)

    assert stored is not None
    assert stored.username == "ada"


async def test_leaving_without_commit_rolls_back(database: Database, new_uow: UowFactory) -> None:
    async with new_uow() as uow:
        user = await uow.repository(UserRepository).add(make_user("ada"))
        assert await uow.repository(UserRepository).get(user.id or 0) is not None  # visible inside

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).get(user.id or 0) is None
    assert (await count_rows(database))["users"] == 0


async def test_an_exception_inside_rolls_back_and_propagates(
    database: Database, new_uow: UowFactory
) -> None:
    existing = await add_user(database, "bob")

    async def fail_halfway() -> None:
        async with new_uow() as uow:
            await uow.repository(UserRepository).add(make_user("ada"))
            await uow.repository(UserRepository).set_active(existing.id or 0, False)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_halfway()

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).get_by_login("ada") is None
        bob = await uow.repository(UserRepository).get(existing.id or 0)
    assert bob is not None
    assert bob.is_active


async def test_only_what_was_done_before_commit_is_kept(
    database: Database, new_uow: UowFactory
) -> None:
    async with new_uow() as uow:
        await uow.repository(UserRepository).add(make_user("ada"))
        await uow.commit()
        await uow.repository(UserRepository).add(
            make_user("bob")
        )  # after the commit, never committed

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).get_by_login("ada") is not None
        assert await uow.repository(UserRepository).get_by_login("bob") is None


async def test_rollback_after_commit_is_harmless(database: Database, new_uow: UowFactory) -> None:
    async with new_uow() as uow:
        await uow.repository(UserRepository).add(make_user("ada"))
        await uow.commit()
        await uow.rollback()
        await uow.rollback()

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).get_by_login("ada") is not None


async def test_uncommitted_writes_are_invisible_to_other_units_of_work(
    database: Database, new_uow: UowFactory
) -> None:
    async with new_uow() as writer:
        await writer.repository(UserRepository).add(make_user("ada"))
        async with new_uow() as reader:
            assert await reader.repository(UserRepository).get_by_login("ada") is None
        await writer.commit()

    async with new_uow() as reader:
        assert await reader.repository(UserRepository).get_by_login("ada") is not None


async def test_a_unit_of_work_can_be_used_again_after_it_ends(
    database: Database, new_uow: UowFactory
) -> None:
    uow = new_uow()
    async with uow:
        await uow.repository(UserRepository).add(make_user("ada"))
    async with uow:
        await uow.repository(UserRepository).add(make_user("ada"))  # the first one was rolled back
        await uow.commit()

    assert (await count_rows(database))["users"] == 1


async def test_a_read_only_unit_of_work_reads_committed_data_and_refuses_to_commit(
    database: Database,
) -> None:
    ada = await add_user(database, "ada")

    async def commit_read_only() -> None:
        async with SqlUnitOfWork(database, read_only=True) as uow:
            found = await uow.repository(UserRepository).get_by_login("ada")
            assert found is not None
            assert found.id == ada.id
            await uow.commit()

    with pytest.raises(RuntimeError, match="read-only"):
        await commit_read_only()


async def test_a_read_only_unit_of_work_sees_commits_made_while_it_is_open(
    database: Database, new_uow: UowFactory
) -> None:
    async with SqlUnitOfWork(database, read_only=True) as reader:
        assert await reader.repository(UserRepository).get_by_login("ada") is None
        async with new_uow() as writer:
            await writer.repository(UserRepository).add(make_user("ada"))
            await writer.commit()
        assert await reader.repository(UserRepository).get_by_login("ada") is not None


@pytest.mark.parametrize("read_only", [False, True], ids=["read-write", "read-only"])
async def test_unreachable_postgresql_raises_service_unavailable(read_only: bool) -> None:
    # Port 1 refuses connections at once: no timeout is involved.
    database = Database("postgresql+asyncpg://postgres@127.0.0.1:1/x", connect_timeout=2)
    try:
        with pytest.raises(ServiceUnavailable):
            async with SqlUnitOfWork(database, read_only=read_only):
                pass
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda tmp: tmp / "no such directory" / "app.db", id="missing-directory"),
        pytest.param(lambda tmp: tmp, id="a-directory"),
    ],
)
async def test_unopenable_sqlite_file_raises_service_unavailable(
    tmp_path: Path, where: Callable[[Path], Path]
) -> None:
    database = Database(f"sqlite+aiosqlite:///{where(tmp_path)}")
    try:
        with pytest.raises(ServiceUnavailable):
            async with SqlUnitOfWork(database) as uow:
                await uow.repository(UserRepository).get(1)
    finally:
        await database.dispose()


@pytest.mark.postgres
async def test_connections_dropped_by_the_server_raise_service_unavailable_then_recover(
    pg_database: Database,
) -> None:
    """The server drops the connection mid-transaction (a restart, a failover): the
    unit of work raises ServiceUnavailable, never a raw SQLAlchemy error, nothing is
    half-written, and the next unit of work reconnects without an application restart."""
    admin = Database(pg_database.url.render_as_string(hide_password=False))
    kill_others = text(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    async def lose_the_connection_halfway() -> None:
        async with SqlUnitOfWork(pg_database) as uow:
            await uow.repository(UserRepository).add(make_user("ada"))
            async with admin.engine.connect() as conn:
                await conn.execute(kill_others)
            await uow.repository(UserRepository).get_by_login("ada")
            await uow.commit()

    try:
        with pytest.raises(ServiceUnavailable):
            await lose_the_connection_halfway()

        async with SqlUnitOfWork(pg_database) as uow:
            assert (
                await uow.repository(UserRepository).get_by_login("ada") is None
            )  # nothing half-written
            user = await uow.repository(UserRepository).add(make_user("ada", created_at=NOW))
            await uow.commit()
        assert user.id is not None
    finally:
        await admin.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("hot", [True, False], ids=["hot-statement", "through-sqlalchemy"])
async def test_a_cancelled_unit_of_work_stays_cancelled_and_the_pool_recovers(
    pg_database: Database, hot: bool
) -> None:
    """A task cancelled mid-statement (shutdown, a client gone) ends with CancelledError,
    not ServiceUnavailable (which a background loop would catch and go on), and the
    connection it held is not lent again half-used."""
    await add_user(pg_database, "ada")
    started = asyncio.Event()

    async def slow_read() -> None:
        async with SqlUnitOfWork(pg_database) as uow:
            assert uow._conn is not None
            started.set()
            if hot:
                assert uow._driver is not None
                await uow._driver.execute("SELECT pg_sleep(5)")
            else:
                await uow._conn.execute(text("SELECT pg_sleep(5)"))

    task = asyncio.create_task(slow_read())
    await started.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(3):
        async with SqlUnitOfWork(pg_database, read_only=True) as uow:
            assert await uow.repository(UserRepository).get_by_login("ada") is not None


@pytest.mark.postgres
async def test_a_begin_that_does_not_complete_never_leaves_its_connection_in_use(
    pg_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A BEGIN the server ran but whose end the task never saw (cancelled on the way
    back): the connection would carry an open transaction into every later unit of
    work, whose commits would then be savepoints that never persist. It is dropped."""
    start = asyncpg.transaction.Transaction.start

    async def start_then_cancelled(self: asyncpg.transaction.Transaction) -> None:
        await start(self)
        raise asyncio.CancelledError()

    async with SqlUnitOfWork(pg_database) as warm:  # one connection, idle in the pool
        assert warm._driver is not None
        first_driver = warm._driver
    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", start_then_cancelled)
    with pytest.raises(asyncio.CancelledError):
        async with SqlUnitOfWork(pg_database) as uow:
            await uow.repository(UserRepository).add(make_user("ada"))
    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", start)

    async with SqlUnitOfWork(pg_database) as uow:
        assert uow._driver is not first_driver
        assert uow._driver is not None
        assert not uow._driver.is_in_transaction()
        await uow.repository(UserRepository).add(make_user("bob"))
        await uow.commit()
    assert first_driver.is_closed()
    async with SqlUnitOfWork(pg_database, read_only=True) as reader:
        assert await reader.repository(UserRepository).get_by_login("bob") is not None
        assert await reader.repository(UserRepository).get_by_login("ada") is None
