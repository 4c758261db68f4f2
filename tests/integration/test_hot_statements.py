"""On PostgreSQL the hot statements run on the driver: they read and write exactly
what SQLAlchemy does with the same statements, in the unit of work's transaction; a
connection the driver saw break is dropped, not handed out again. Every other statement,
including ``IN`` lists and statements built per call, runs through SQLAlchemy, whose
statement cache stays bounded."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import bindparam, select, text

from adapters import hot_statements
from adapters.database import Database
from adapters.executors import Executor
from adapters.orm import users
from adapters.sql_repository import SqlRepository
from adapters.unit_of_work import SqlUnitOfWork
from adapters.user_repository import _GET_USER_WITH_SESSION
from domain.errors import ServiceUnavailable
from domain.model import PageRequest
from domain.ports import SessionRepository, UserRepository
from tests.integration.builders import DAY, NOW, add_session, add_user

pytestmark = pytest.mark.postgres


class ThroughSqlAlchemy(SqlUnitOfWork):
    """The same unit of work with hot statements run through SQLAlchemy: the reference."""

    async def __aenter__(self) -> ThroughSqlAlchemy:
        await super().__aenter__()
        assert self._conn is not None
        before = None if self._read_only else self._begin_on_driver
        self._executor = Executor(self._conn, before_statement=before)
        return self


def _fields(obj: object) -> dict[str, object]:
    return dict(vars(obj))


async def test_every_read_matches_the_sqlalchemy_repositories(pg_database: Database) -> None:
    ada = await add_user(pg_database, "Ada")
    await add_user(pg_database, "bob", is_active=False)
    await add_user(pg_database, "cy")
    assert ada.id is not None
    live = await add_session(pg_database, ada)
    await add_session(pg_database, ada, revoked_at=NOW - DAY, created_at=NOW - 2 * DAY)

    async with (
        ThroughSqlAlchemy(pg_database, read_only=True) as expected,
        SqlUnitOfWork(pg_database, read_only=True) as actual,
    ):
        for reader in ("get", "get_by_login"):
            for key in (ada.id, 999) if reader == "get" else ("ada", "ada@example.com", "x"):
                want = await getattr(expected.repository(UserRepository), reader)(key)
                got = await getattr(actual.repository(UserRepository), reader)(key)
                assert (got and _fields(got)) == (want and _fields(want)), (reader, key)
        for user_id, session_id in ((ada.id, live.id), (ada.id, "nope"), (999, live.id)):
            want_pair = await expected.repository(UserRepository).get_with_session(
                user_id, session_id
            )
            got_pair = await actual.repository(UserRepository).get_with_session(user_id, session_id)
            if want_pair is None:
                assert got_pair is None
            else:
                assert got_pair is not None
                assert _fields(got_pair[0]) == _fields(want_pair[0])
                assert (got_pair[1] and _fields(got_pair[1])) == (
                    want_pair[1] and _fields(want_pair[1])
                )
        for active_only in (True, False):
            for page in (PageRequest(1, 2), PageRequest(2, 2), PageRequest(9, 2)):
                want_page = await expected.repository(UserRepository).list_page(
                    page, active_only=active_only
                )
                got_page = await actual.repository(UserRepository).list_page(
                    page, active_only=active_only
                )
                assert got_page[1] == want_page[1]
                assert [_fields(u) for u in got_page[0]] == [_fields(u) for u in want_page[0]]
        assert await actual.repository(UserRepository).email_taken("ADA@example.com")
        assert not await actual.repository(UserRepository).email_taken(
            "ada@example.com", except_user=ada.id
        )
        assert await actual.repository(UserRepository).username_taken("ADA")
        assert not await actual.repository(UserRepository).username_taken("nobody")
        assert _fields(await actual.repository(SessionRepository).get(live.id)) == _fields(
            await expected.repository(SessionRepository).get(live.id)
        )
        assert await actual.repository(SessionRepository).get("nope") is None
        want_sessions = await expected.repository(SessionRepository).list_for_user(ada.id)
        got_sessions = await actual.repository(SessionRepository).list_for_user(ada.id)
        assert [_fields(s) for s in got_sessions] == [_fields(s) for s in want_sessions]
        assert live.id in {s.id for s in got_sessions}
        assert len(got_sessions) > 1  # the ended one too


async def test_hot_and_plain_statements_share_the_unit_of_work_s_transaction(
    pg_database: Database,
) -> None:
    """A hot write (on the driver) is seen by a plain read (through SQLAlchemy) of the
    same unit of work, and both go with its rollback; through SQLAlchemy alone, the
    same. (The contract specs run every hot statement on the driver.)"""
    ada = await add_user(pg_database, "ada")
    live = await add_session(pg_database, ada)
    later = NOW + DAY
    for unit in (SqlUnitOfWork, ThroughSqlAlchemy):
        async with unit(pg_database) as uow:
            sessions = uow.repository(SessionRepository)
            await sessions.extend(live.id, later, later + DAY)
            found = await sessions.get(live.id)
            assert found is not None
            assert (found.last_used_at, found.expires_at) == (later, later + DAY)
            await uow.rollback()
        async with unit(pg_database) as uow:
            found = await uow.repository(SessionRepository).get(live.id)
            assert found is not None
            assert found.expires_at == live.expires_at  # rolled back on both paths


async def test_a_read_only_unit_refuses_to_commit(pg_database: Database) -> None:
    async with SqlUnitOfWork(pg_database, read_only=True) as uow:
        with pytest.raises(RuntimeError):
            await uow.commit()


async def test_an_unreachable_server_is_service_unavailable() -> None:
    database = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", connect_timeout=2)
    try:
        with pytest.raises(ServiceUnavailable):
            async with SqlUnitOfWork(database):
                pass
    finally:
        await database.dispose()


async def test_a_connection_killed_mid_use_is_service_unavailable_and_the_next_one_works(
    pg_database: Database,
) -> None:
    """Killed under a hot statement (which SQLAlchemy does not see): the unit of work
    drops the connection, so the pool never hands it out again."""
    await add_user(pg_database, "ada")

    async def read_after_its_connection_is_killed() -> None:
        async with SqlUnitOfWork(pg_database, read_only=True) as uow:
            assert uow._conn is not None
            pid = (await uow._conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            async with pg_database.engine.connect() as admin:
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await uow.repository(UserRepository).get_by_login("ada")

    with pytest.raises(ServiceUnavailable):
        await read_after_its_connection_is_killed()
    for _ in range(3):  # whichever connection the pool gives out next
        async with SqlUnitOfWork(pg_database, read_only=True) as uow:
            assert await uow.repository(UserRepository).get_by_login("ada") is not None


class _Lookups(SqlRepository):
    """A repository of the kind a template's user writes: an ``IN`` list and a
    statement built per call."""

    async def by_ids(self, ids: list[int]) -> list[str]:
        rows = await self._db.all(
            select(users.c.username).where(users.c.id.in_(ids)).order_by(users.c.id), {}
        )
        return [row["username"] for row in rows]

    async def named(self, prefix: str, *, active: bool | None, label: str) -> list[Any]:
        query = select(users.c.username.label(label)).where(
            users.c.username.startswith(bindparam("prefix"))
        )
        if active is not None:
            query = query.where(users.c.is_active == active)
        return [row[label] for row in await self._db.all(query, {"prefix": prefix})]


async def test_in_lists_and_statements_built_per_call_run_through_a_repository(
    pg_database: Database,
) -> None:
    names = ["ada", "bob", "cy"]
    ids = [(await add_user(pg_database, name, is_active=name != "bob")).id or 0 for name in names]
    declared = len(hot_statements._declared)
    engine = pg_database.engine.sync_engine
    async with SqlUnitOfWork(pg_database, read_only=True) as uow:
        lookups = _Lookups(uow._executor)
        assert await lookups.by_ids([ids[0], ids[2]]) == ["ada", "cy"]
        assert await lookups.by_ids([]) == []
        assert await lookups.named("b", active=None, label="name") == ["bob"]
        assert await lookups.named("b", active=True, label="name") == []
        for n in range(10_000):  # 10,000 distinct statements
            assert await lookups.named("a", active=True if n % 2 else None, label=f"n{n}") == [
                "ada"
            ]
    cache: Any = engine._compiled_cache
    assert cache is not None
    # SQLAlchemy's LRU cache keeps at most its size and half again before it prunes.
    assert len(cache) <= 1.5 * cache.capacity < 10_000
    assert len(hot_statements._declared) == declared <= hot_statements.MAX_HOT_STATEMENTS


async def test_a_bad_argument_is_a_bug_not_an_outage(pg_database: Database) -> None:
    """asyncpg's DataError is an InterfaceError, like a lost connection; it must not
    answer 503 (nor drop a healthy connection)."""
    with pytest.raises(asyncpg.DataError):
        async with SqlUnitOfWork(pg_database, read_only=True) as uow:
            await uow._executor.one(
                _GET_USER_WITH_SESSION, {"user_id": "not a number", "session_id": "s"}
            )
