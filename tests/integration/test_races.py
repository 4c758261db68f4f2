"""Races that only the database can settle, on PostgreSQL (SQLite has one writer).

Each race is made real rather than sequential: the first transaction writes and
stays open; the second writes the same thing on its own connection and is seen
waiting on the first one's lock (pg_stat_activity) before the first commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select, text

from adapters.database import Database
from adapters.orm import email_key, users
from adapters.unit_of_work import unit_of_work
from domain.errors import EmailTaken, UsernameTaken
from domain.model import Credentials, ProfileUpdate
from domain.ports import RefreshTokenRepository, SessionRepository, UnitOfWork, UserRepository
from tests.integration.builders import (
    DAY,
    NOW,
    add_session,
    add_token,
    add_user,
    make_user,
    stored_token,
)

pytestmark = pytest.mark.postgres

Write = Callable[[UnitOfWork], Awaitable[Any]]

WAITING_ON_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


@dataclass
class Outcome:
    first: Any  # what the write returned, or the exception it raised
    second: Any
    second_waited: bool  # the second write blocked on the first transaction


async def race(
    database: Database, first: Write, second: Write, *, first_commits: bool = True
) -> Outcome:
    """Run ``first`` and ``second`` in two concurrent transactions; the first ends
    (commit, or rollback) only once the second is blocked behind it."""
    first_wrote = asyncio.Event()
    release = asyncio.Event()

    async def run_first() -> Any:
        try:
            async with unit_of_work(database) as uow:
                result = await first(uow)
                first_wrote.set()
                await release.wait()
                if first_commits:
                    await uow.commit()
                return result
        finally:
            first_wrote.set()

    async def run_second() -> Any:
        await first_wrote.wait()
        async with unit_of_work(database) as uow:
            result = await second(uow)
            await uow.commit()
            return result

    second_task = asyncio.ensure_future(run_second())

    async def watch() -> bool:
        """Release the first transaction once the second waits on its lock."""
        await first_wrote.wait()
        try:
            async with database.engine.connect() as conn:
                # Each poll in its own transaction, so that no snapshot of the
                # activity view cached for a transaction can hide the wait.
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                while not second_task.done():
                    if await conn.scalar(WAITING_ON_A_LOCK):
                        return True
                    await asyncio.sleep(0.005)
            return False
        finally:
            release.set()

    first_result, second_result, waited = await asyncio.wait_for(
        asyncio.gather(run_first(), second_task, watch(), return_exceptions=True), timeout=30
    )
    return Outcome(first_result, second_result, second_waited=waited is True)


async def count_users(database: Database, email: str) -> int:
    async with database.engine.connect() as conn:
        query = select(func.count()).where(func.lower(users.c.email) == email.lower())
        return int(await conn.scalar(query) or 0)


async def test_concurrent_registrations_of_one_email_in_two_cases_commit_exactly_one(
    pg_database: Database,
) -> None:
    outcome = await race(
        pg_database,
        lambda uow: uow.repository(UserRepository).add(make_user("ada", email="ada@example.com")),
        lambda uow: uow.repository(UserRepository).add(
            make_user("lovelace", email="ADA@Example.com")
        ),
    )

    assert outcome.second_waited
    assert outcome.first.username == "ada"
    assert isinstance(outcome.second, EmailTaken)
    assert await count_users(pg_database, "ada@example.com") == 1


async def test_concurrent_registrations_of_one_username_in_two_cases_commit_exactly_one(
    pg_database: Database,
) -> None:
    outcome = await race(
        pg_database,
        lambda uow: uow.repository(UserRepository).add(make_user("Ada", email="one@example.com")),
        lambda uow: uow.repository(UserRepository).add(make_user("aDA", email="two@example.com")),
    )

    assert outcome.second_waited
    assert outcome.first.email == "one@example.com"
    assert isinstance(outcome.second, UsernameTaken)
    assert await count_users(pg_database, "one@example.com") == 1
    assert await count_users(pg_database, "two@example.com") == 0


async def test_a_concurrent_email_change_to_a_registering_email_commits_exactly_one(
    pg_database: Database,
) -> None:
    bob = await add_user(pg_database, "bob")

    async def change_email(uow: UnitOfWork) -> None:
        await uow.repository(UserRepository).update_profile(
            bob.id or 0, ProfileUpdate(email="ada@example.com"), if_current=Credentials.of(bob)
        )

    outcome = await race(
        pg_database,
        lambda uow: uow.repository(UserRepository).add(make_user("ada", email="ada@example.com")),
        change_email,
    )

    assert outcome.second_waited
    assert isinstance(outcome.second, EmailTaken)
    assert await count_users(pg_database, "ada@example.com") == 1
    assert await count_users(pg_database, "bob@example.com") == 1


async def test_a_registration_waiting_on_one_that_rolls_back_succeeds(
    pg_database: Database,
) -> None:
    outcome = await race(
        pg_database,
        lambda uow: uow.repository(UserRepository).add(make_user("ada", email="ada@example.com")),
        lambda uow: uow.repository(UserRepository).add(make_user("ADA", email="ADA@example.com")),
        first_commits=False,
    )

    assert outcome.second_waited
    assert outcome.second.username == "ADA"
    assert await count_users(pg_database, "ada@example.com") == 1


async def test_concurrent_rotations_of_one_token_let_exactly_one_win(
    pg_database: Database,
) -> None:
    session = await add_session(pg_database, await add_user(pg_database, "ada"))
    token = await add_token(pg_database, session)

    outcome = await race(
        pg_database,
        lambda uow: uow.repository(RefreshTokenRepository).mark_rotated(token.id, NOW),
        lambda uow: uow.repository(RefreshTokenRepository).mark_rotated(token.id, NOW + DAY),
    )

    assert outcome.second_waited
    assert (outcome.first, outcome.second) == (True, False)
    async with unit_of_work(pg_database) as uow:
        stored = await stored_token(uow, token.id)
    assert stored is not None
    assert stored.rotated_at == NOW


async def test_a_rotation_racing_a_revocation_fails_once_the_revocation_commits(
    pg_database: Database,
) -> None:
    session = await add_session(pg_database, await add_user(pg_database, "ada"))
    token = await add_token(pg_database, session)

    outcome = await race(
        pg_database,
        lambda uow: uow.repository(SessionRepository).revoke(session.id, NOW),
        lambda uow: uow.repository(RefreshTokenRepository).mark_rotated(token.id, NOW),
    )

    assert outcome.second_waited
    assert outcome.second is False


async def test_a_rotation_waiting_on_one_that_rolls_back_wins(pg_database: Database) -> None:
    session = await add_session(pg_database, await add_user(pg_database, "ada"))
    token = await add_token(pg_database, session)

    outcome = await race(
        pg_database,
        lambda uow: uow.repository(RefreshTokenRepository).mark_rotated(token.id, NOW),
        lambda uow: uow.repository(RefreshTokenRepository).mark_rotated(token.id, NOW + DAY),
        first_commits=False,
    )

    assert outcome.second_waited
    assert (outcome.first, outcome.second) == (True, True)
    async with unit_of_work(pg_database) as uow:
        stored = await stored_token(uow, token.id)
    assert stored is not None
    assert stored.rotated_at == NOW + DAY


# Look-alike emails: the unique index on the email's comparison key settles a race that
# no prior read can.
FULL_WIDTH_ADA = "".join(chr(ord(c) + 0xFEE0) for c in "ADA") + "@example.com"


async def count_look_alikes(database: Database, email: str) -> int:
    async with database.engine.connect() as conn:
        query = select(func.count()).where(users.c.email_key == email_key(email))
        return int(await conn.scalar(query) or 0)


async def test_concurrent_registrations_of_look_alike_emails_commit_exactly_one(
    pg_database: Database,
) -> None:
    outcome = await race(
        pg_database,
        lambda uow: uow.repository(UserRepository).add(make_user("ada", email="ada@example.com")),
        lambda uow: uow.repository(UserRepository).add(make_user("lovelace", email=FULL_WIDTH_ADA)),
    )

    assert outcome.second_waited
    assert outcome.first.username == "ada"
    assert isinstance(outcome.second, EmailTaken)
    assert await count_look_alikes(pg_database, "ada@example.com") == 1


async def test_a_concurrent_email_change_to_a_look_alike_of_a_registering_one_commits_one(
    pg_database: Database,
) -> None:
    bob = await add_user(pg_database, "bob")

    async def change_email(uow: UnitOfWork) -> None:
        await uow.repository(UserRepository).update_profile(
            bob.id or 0, ProfileUpdate(email=FULL_WIDTH_ADA), if_current=Credentials.of(bob)
        )

    outcome = await race(
        pg_database,
        lambda uow: uow.repository(UserRepository).add(make_user("ada", email="ada@example.com")),
        change_email,
    )

    assert outcome.second_waited
    assert isinstance(outcome.second, EmailTaken)
    assert await count_look_alikes(pg_database, "ada@example.com") == 1
    assert await count_users(pg_database, "bob@example.com") == 1
