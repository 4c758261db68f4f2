"""The database going away: 503 ``service_unavailable`` (never a 500), liveness unaffected,
and recovery without a restart when the database comes back (the HTTP contract: Operations)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import Postgres
from tests.e2e.conftest import (
    LOGIN,
    ME,
    PASSWORD,
    REFRESH,
    SESSIONS,
    USERS,
    Api,
    AppFactory,
    assert_problem,
    bearer,
    sign,
)


def _forged_access_token() -> str:
    now = int(time.time())
    return sign(
        {
            "sub": "1",
            "type": "access",
            "sid": "0" * 32,
            "iat": now,
            "exp": now + 600,
            "jti": "j" * 32,
            "ver": 0,
        }
    )


async def _assert_every_database_call_is_503(api: Api) -> None:
    token = _forged_access_token()
    responses = {
        "ready": await api.client.get("/health/ready"),
        "list": await api.client.get(USERS),
        "register": await api.client.post(
            USERS, json={"email": "ada@example.com", "username": "ada", "password": PASSWORD}
        ),
        "login": await api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD}),
        "me": await api.client.get(ME, headers=bearer(token)),
        "sessions": await api.client.get(SESSIONS, headers=bearer(token)),
        "refresh": await api.client.post(REFRESH, json={"refresh_token": "x.y.z"}),
    }
    for name, response in responses.items():
        if name == "refresh" and response.status_code == 401:
            continue  # a malformed token is refused before the database is asked
        assert response.status_code == 503, (name, response.text)
        assert_problem(response, 503, "service_unavailable")


async def test_an_unreachable_database_gives_503_and_liveness_stays_200(
    app_factory: AppFactory, database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        unreachable = f"sqlite+aiosqlite:///{tmp_path}/missing/dir/app.db"
    else:
        unreachable = "postgresql+asyncpg://nobody@127.0.0.1:1/nothing"  # a closed port
    async with app_factory(database_url=unreachable) as api:
        live = await api.client.get("/health/live")
        assert live.status_code == 200
        assert live.json() == {"status": "ok"}
        await _assert_every_database_call_is_503(api)
        # Requests that need no database still work.
        assert (await api.client.get("/openapi.json")).status_code == 200
        malformed = await api.client.get(USERS, params={"page": 0})
        assert_problem(malformed, 422, "validation_error")


@pytest.fixture
async def outage_database(postgres: Postgres) -> AsyncIterator[tuple[str, str]]:
    """A throwaway migrated PostgreSQL database that a test may take away; returns its
    URL and name. Connections are allowed again afterwards so it can be dropped."""
    url = await postgres.new_database()
    name = make_url(url).database
    assert name
    yield url, name
    await _allow_connections(postgres.admin_url, name, allowed=True)


async def _allow_connections(admin_url: str, name: str, *, allowed: bool) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            flag = "true" if allowed else "false"
            await conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {flag}'))
            if not allowed:
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
    finally:
        await engine.dispose()


@pytest.mark.postgres
# The app runs on a throwaway database of its own, not on the shared one.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_service_recovers_without_restart_when_the_database_comes_back(
    app_factory: AppFactory, postgres: Postgres, outage_database: tuple[str, str]
) -> None:
    url, name = outage_database
    async with app_factory(database_url=url) as api:
        user = await api.register("ada")
        tokens = await api.login("ada")
        assert (await api.client.get("/health/ready")).status_code == 200

        await _allow_connections(postgres.admin_url, name, allowed=False)
        # Pooled connections were killed and new ones are refused.
        for _ in range(2):
            await _assert_every_database_call_is_503(api)
            response = await api.me(tokens["access_token"])
            assert_problem(response, 503, "service_unavailable")
            response = await api.client.post(
                REFRESH, json={"refresh_token": tokens["refresh_token"]}
            )
            assert_problem(response, 503, "service_unavailable")
        assert (await api.client.get("/health/live")).status_code == 200

        await _allow_connections(postgres.admin_url, name, allowed=True)
        ready = await api.client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ok"}
        me = await api.me(tokens["access_token"])
        assert me.status_code == 200, me.text
        assert me.json()["id"] == user["id"]
        # The refresh token survived the outage: the failed attempts rotated nothing.
        response = await api.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
        assert response.status_code == 200, response.text
        await api.register("bob")
        await api.login("bob")
