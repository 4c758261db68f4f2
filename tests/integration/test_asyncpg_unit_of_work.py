"""On PostgreSQL, the asyncpg unit of work reads exactly what SQLAlchemy reads from the
same statements, and turns an unreachable server or a killed connection into
ServiceUnavailable. (The repository suites run on it too: it is what PostgreSQL uses.)"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from adapters.database import Database
from adapters.unit_of_work import AsyncpgUnitOfWork, SqlAlchemyUnitOfWork, unit_of_work
from domain.errors import ServiceUnavailable
from domain.model import PageRequest
from domain.ports import SessionRepository, UserRepository
from tests.integration.builders import DAY, NOW, add_session, add_user

pytestmark = pytest.mark.postgres


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
        SqlAlchemyUnitOfWork(pg_database, read_only=True) as expected,
        AsyncpgUnitOfWork(pg_database, read_only=True) as actual,
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


async def test_a_read_only_unit_refuses_to_commit(pg_database: Database) -> None:
    async with AsyncpgUnitOfWork(pg_database, read_only=True) as uow:
        with pytest.raises(RuntimeError):
            await uow.commit()


async def test_postgresql_gets_the_asyncpg_unit_and_sqlite_the_sqlalchemy_one(
    pg_database: Database,
) -> None:
    assert isinstance(unit_of_work(pg_database), AsyncpgUnitOfWork)
    sqlite = Database("sqlite+aiosqlite:///:memory:")
    assert isinstance(unit_of_work(sqlite, read_only=True), SqlAlchemyUnitOfWork)


async def test_an_unreachable_server_is_service_unavailable() -> None:
    database = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", connect_timeout=2)
    try:
        with pytest.raises(ServiceUnavailable):
            async with AsyncpgUnitOfWork(database):
                pass
    finally:
        await database.dispose()


async def test_a_connection_killed_mid_use_is_service_unavailable_and_the_next_one_works(
    pg_database: Database,
) -> None:
    await add_user(pg_database, "ada")

    async def read_after_its_connection_is_killed() -> None:
        async with AsyncpgUnitOfWork(pg_database, read_only=True) as uow:
            conn = uow._conn
            assert conn is not None
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            async with SqlAlchemyUnitOfWork(pg_database) as admin:
                await admin._conn.execute(  # type: ignore[union-attr]
                    text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}
                )
            await uow.repository(UserRepository).get_by_login("ada")

    with pytest.raises(ServiceUnavailable):
        await read_after_its_connection_is_killed()
    async with AsyncpgUnitOfWork(pg_database, read_only=True) as uow:
        assert await uow.repository(UserRepository).get_by_login("ada") is not None
