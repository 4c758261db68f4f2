"""Migration 0007: the users already there get the comparison key of their email, in
batches; look-alikes registered before it stop the upgrade before anything changes."""

from __future__ import annotations

import pytest
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from adapters import migrations
from adapters.database import Database
from adapters.unit_of_work import unit_of_work
from domain.errors import EmailTaken
from domain.ports import UserRepository
from tests.integration.builders import add_user
from tests.integration.test_migrations import fresh_url, upgrade  # noqa: F401

# More users than one batch of the migration (1000).
USERS = 2100
INSERT_USER = text(
    "INSERT INTO users (email, username, password_hash, created_at)"
    " VALUES (:e, :u, 'x', '2026-01-01 00:00:00')"
)


def full_width(text: str) -> str:
    """``text`` with each printable ASCII character in its full-width form."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


async def insert_users(url: str, emails: list[str]) -> None:
    """Users as the code before migration 0007 wrote them."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                INSERT_USER, [{"e": email, "u": f"u{n}"} for n, email in enumerate(emails)]
            )
    finally:
        await engine.dispose()


def user_columns(conn: Connection) -> list[str]:
    return [column["name"] for column in inspect(conn).get_columns("users")]


async def test_the_users_already_there_get_the_key_of_their_email(
    fresh_url: str,  # noqa: F811
) -> None:
    await upgrade(fresh_url, "0006")
    emails = [f"user{n}@example.com" for n in range(USERS - 1)] + ["İvan@example.com"]
    await insert_users(fresh_url, emails)

    await upgrade(fresh_url)

    database = Database(fresh_url)
    try:
        async with unit_of_work(database) as uow:
            first = await uow.repository(UserRepository).get_by_email(
                full_width("USER0") + "@example.com"
            )
            last = await uow.repository(UserRepository).get_by_email(
                full_width(f"USER{USERS - 2}") + "@example.com"
            )
            ivan = await uow.repository(UserRepository).get_by_login("i\u0307van@example.com")
        assert first is not None
        assert first.username == "u0"
        assert last is not None
        assert last.username == f"u{USERS - 2}"
        assert ivan is not None
        assert ivan.email == "İvan@example.com"
        with pytest.raises(EmailTaken):  # the unique index is there
            await add_user(database, "again", email=full_width("user1") + "@example.com")
    finally:
        await database.dispose()


async def test_look_alikes_already_there_stop_the_upgrade_before_it_changes_anything(
    fresh_url: str,  # noqa: F811
) -> None:
    await upgrade(fresh_url, "0006")
    look_alike = full_width("ada") + "@example.com"
    await insert_users(fresh_url, ["ada@example.com", "bob@example.com", look_alike])

    with pytest.raises(CommandError, match="users 1 and 3 have look-alike emails"):
        await upgrade(fresh_url)

    assert await migrations.current_revisions(fresh_url) == ("0006",)
    engine = create_async_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            assert "email_key" not in await conn.run_sync(user_columns)
            await conn.execute(text("UPDATE users SET email = 'ada2@example.com' WHERE id = 3"))
    finally:
        await engine.dispose()
    await upgrade(fresh_url)
    assert await migrations.current_revisions(fresh_url) == migrations.head_revisions(fresh_url)
