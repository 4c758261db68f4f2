"""The asyncpg executor and unit of work, against a fake driver: what they send, how they
map the driver's errors, and when they open, commit and roll back transactions. (The
integration suite runs them on a real PostgreSQL.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from adapters import session_repository as sessions_sql
from adapters import user_repository as users_sql
from adapters.database import Database
from adapters.executors import AsyncpgExecutor, ConstraintViolation
from adapters.unit_of_work import AsyncpgUnitOfWork, SqlAlchemyUnitOfWork, unit_of_work
from domain.errors import EmailTaken, ServiceUnavailable
from domain.ports import UserRepository
from tests.fakes import make_user

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FakeTransaction:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn

    async def start(self) -> None:
        self.conn.log.append("BEGIN")

    async def commit(self) -> None:
        self.conn.log.append("COMMIT")

    async def rollback(self) -> None:
        self.conn.log.append("ROLLBACK")


class FakeConnection:
    def __init__(self) -> None:
        self.log: list[Any] = []
        self.result: Any = None
        self.error: BaseException | None = None
        self.closed = False

    async def _answer(self, sql: str, *args: Any) -> Any:
        self.log.append((sql, args))
        if self.error is not None:
            raise self.error
        return self.result

    fetchrow = fetch = fetchval = execute = _answer

    def transaction(self) -> FakeTransaction:
        return FakeTransaction(self)

    def is_closed(self) -> bool:
        return self.closed


class FakePool:
    def __init__(self, conn: FakeConnection, error: BaseException | None = None) -> None:
        self.conn = conn
        self.error = error
        self.released = 0

    async def acquire(self) -> FakeConnection:
        if self.error is not None:
            raise self.error
        return self.conn

    async def release(self, conn: FakeConnection) -> None:
        self.released += 1


def _database(monkeypatch: pytest.MonkeyPatch, pool: FakePool) -> Database:
    database = Database("postgresql+asyncpg://app@db.invalid/app")

    async def driver_pool() -> FakePool:
        return pool

    monkeypatch.setattr(database, "driver_pool", driver_pool)
    return database


def _statements(conn: FakeConnection) -> list[str]:
    return [entry if isinstance(entry, str) else entry[0] for entry in conn.log]


async def test_a_statement_goes_out_compiled_with_its_arguments_in_order() -> None:
    conn = FakeConnection()
    conn.result = None
    await AsyncpgExecutor(conn).one(
        users_sql._GET_USER_WITH_SESSION, {"user_id": 7, "session_id": "s1"}
    )
    sql, args = conn.log[0]
    assert sql.startswith("SELECT users.id")
    assert "$1" in sql
    assert "$2" in sql
    assert args == ("s1", 7)


async def test_values_the_statement_carries_itself_are_sent_too() -> None:
    conn = FakeConnection()
    await AsyncpgExecutor(conn).one(users_sql._GET_USER_BY_LOGIN, {"login": "ada"})
    assert conn.log[0][1][-1] == 1  # the LIMIT 1


async def test_datetimes_are_sent_in_utc_and_naive_ones_refused() -> None:
    conn = FakeConnection()
    executor = AsyncpgExecutor(conn)
    paris = timezone(timedelta(hours=1))
    await executor.scalar(sessions_sql._COUNT_EXPIRED_SESSIONS, {"now": NOW.astimezone(paris)})
    sent = conn.log[0][1][0]
    assert sent == NOW
    assert sent.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive"):
        await executor.scalar(sessions_sql._COUNT_EXPIRED_SESSIONS, {"now": datetime(2030, 1, 1)})


async def test_an_insert_names_only_the_columns_it_is_given() -> None:
    conn = FakeConnection()
    conn.result = 42
    user_id = await AsyncpgExecutor(conn).scalar(
        users_sql._INSERT_USER, users_sql._user_values(make_user())
    )
    assert user_id == 42
    assert "(email, username," in conn.log[0][0]
    assert "(id," not in conn.log[0][0]


@pytest.mark.parametrize(("status", "count"), [("UPDATE 3", 3), ("DELETE 0", 0), ("INSERT 0 1", 1)])
async def test_execute_returns_the_number_of_rows_changed(status: str, count: int) -> None:
    conn = FakeConnection()
    conn.result = status
    assert (
        await AsyncpgExecutor(conn).execute(sessions_sql._REVOKE_SESSION, {"sid": "s", "at": NOW})
        == count
    )


async def test_constraint_violations_become_the_domain_errors() -> None:
    conn = FakeConnection()
    duplicate = asyncpg.UniqueViolationError("duplicate key")
    duplicate.constraint_name = "uq_users_email_key"
    conn.error = duplicate
    users = users_sql.SqlUserRepository(AsyncpgExecutor(conn))
    with pytest.raises(EmailTaken):
        await users.add(make_user())


async def test_a_constraint_violation_carries_the_constraints_name() -> None:
    conn = FakeConnection()
    duplicate = asyncpg.UniqueViolationError("duplicate key")
    duplicate.constraint_name = "pk_sessions"
    conn.error = duplicate
    with pytest.raises(ConstraintViolation) as caught:
        await AsyncpgExecutor(conn).execute(sessions_sql._REVOKE_SESSION, {"sid": "s", "at": NOW})
    assert caught.value.name == "pk_sessions"
    assert not caught.value.foreign_key


async def test_a_unit_opens_its_transaction_at_the_first_statement_and_commits_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = FakeConnection()
    pool = FakePool(conn)
    async with AsyncpgUnitOfWork(_database(monkeypatch, pool)) as uow:
        assert conn.log == []
        await uow.repository(UserRepository).get(1)
        await uow.repository(UserRepository).get(2)
        await uow.commit()
        await uow.repository(UserRepository).get(
            3
        )  # after a commit, in a new transaction that is rolled back
    assert _statements(conn)[0] == "BEGIN"
    assert _statements(conn)[3] == "COMMIT"
    assert _statements(conn)[4:] == ["BEGIN", _statements(conn)[5], "ROLLBACK"]
    assert pool.released == 1


async def test_leaving_without_commit_or_through_an_error_rolls_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = FakeConnection()
    database = _database(monkeypatch, FakePool(conn))

    async def fail_midway() -> None:
        async with AsyncpgUnitOfWork(database) as uow:
            await uow.repository(UserRepository).get(1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await fail_midway()
    assert _statements(conn)[-1] == "ROLLBACK"
    async with AsyncpgUnitOfWork(database) as uow:
        await uow.commit()  # nothing ran: nothing to commit
    assert "COMMIT" not in _statements(conn)


async def test_a_read_only_unit_opens_no_transaction_and_refuses_to_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = FakeConnection()
    async with AsyncpgUnitOfWork(_database(monkeypatch, FakePool(conn)), read_only=True) as uow:
        await uow.repository(UserRepository).get(1)
        with pytest.raises(RuntimeError):
            await uow.commit()
    assert "BEGIN" not in _statements(conn)


async def test_no_connection_is_service_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = FakePool(FakeConnection(), error=ConnectionRefusedError())
    with pytest.raises(ServiceUnavailable):
        async with AsyncpgUnitOfWork(_database(monkeypatch, pool)):
            pass


@pytest.mark.parametrize(
    "error",
    [asyncpg.ConnectionDoesNotExistError("gone"), ConnectionResetError(), TimeoutError()],
)
async def test_a_connection_lost_mid_use_is_service_unavailable(
    monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    conn = FakeConnection()
    conn.error = error
    pool = FakePool(conn)
    with pytest.raises(ServiceUnavailable):
        async with AsyncpgUnitOfWork(_database(monkeypatch, pool), read_only=True) as uow:
            await uow.repository(UserRepository).get(1)
    assert pool.released == 1


async def test_any_error_on_a_closed_connection_is_service_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = FakeConnection()
    conn.error = asyncpg.InternalClientError("another operation is in progress")
    conn.closed = True
    with pytest.raises(ServiceUnavailable):
        async with AsyncpgUnitOfWork(_database(monkeypatch, FakePool(conn)), read_only=True) as uow:
            await uow.repository(UserRepository).get(1)


def test_postgresql_runs_on_asyncpg_and_sqlite_on_sqlalchemy() -> None:
    assert isinstance(unit_of_work(Database("postgresql+asyncpg://a@b/c")), AsyncpgUnitOfWork)
    assert isinstance(unit_of_work(Database("sqlite+aiosqlite:///x.db")), SqlAlchemyUnitOfWork)
