"""Migration 0008: the sessions already open count as authenticated when they opened."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.database import Database
from adapters.unit_of_work import unit_of_work
from domain.ports import SessionRepository
from tests.integration.test_migrations import fresh_url, upgrade  # noqa: F401

OPENED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def test_open_sessions_are_authenticated_when_they_were_opened(
    fresh_url: str,  # noqa: F811
) -> None:
    await upgrade(fresh_url, "0007")
    engine = create_async_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            user_id = (
                await conn.execute(
                    text(
                        "INSERT INTO users (email, email_key, username, password_hash,"
                        " created_at) VALUES ('a@example.com', 'k', 'ada', 'x', :at)"
                        " RETURNING id"
                    ),
                    {"at": OPENED.replace(tzinfo=None)},
                )
            ).scalar_one()
            await conn.execute(
                text(
                    "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at)"
                    " VALUES ('s1', :uid, :at, :at, :at)"
                ),
                {"uid": user_id, "at": OPENED.replace(tzinfo=None)},
            )
    finally:
        await engine.dispose()

    await upgrade(fresh_url)

    database = Database(fresh_url)
    try:
        async with unit_of_work(database, read_only=True) as uow:
            session = await uow.repository(SessionRepository).get("s1")
        assert session is not None
        assert session.authenticated_at == session.created_at == OPENED
    finally:
        await database.dispose()
