"""Personal access tokens under concurrency, on PostgreSQL (SQLite has one writer): the
limit of live tokens holds when creations race, and a token made while its owner's
sessions are being ended is never born alive.

Each race is made real (tests/integration/test_races.py): the second transaction is
seen waiting on the first one's lock before the first commits.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from adapters.database import Database
from adapters.unit_of_work import unit_of_work
from application.access_tokens import CreateAccessToken
from domain.access_tokens import MAX_LIVE_TOKENS, AccessToken, AccessTokenRepository, TooManyTokens
from domain.model import Principal, User
from domain.ports import UnitOfWork, UserRepository
from domain.scopes import Scope
from tests.fakes import FakeClock
from tests.integration.builders import NOW, add_user
from tests.integration.test_races import race

pytestmark = pytest.mark.postgres
READ = frozenset({Scope.PROFILE_READ})


def tokens(uow: UnitOfWork) -> AccessTokenRepository:
    return uow.repository(AccessTokenRepository)


async def user_with_tokens(database: Database, count: int) -> User:
    user = await add_user(database, "ada")
    async with unit_of_work(database) as uow:
        for _ in range(count):
            _, stored = AccessToken.issue(user, "ci", READ, 30, NOW)
            assert await tokens(uow).add(stored, MAX_LIVE_TOKENS)
        await uow.commit()
    return user


async def live(database: Database, user: User) -> int:
    assert user.id is not None
    async with unit_of_work(database) as uow:
        return len(await tokens(uow).list_live(user.id, NOW))


async def test_two_creations_of_the_last_free_token_at_once_make_one(
    pg_database: Database,
) -> None:
    ada = await user_with_tokens(pg_database, MAX_LIVE_TOKENS - 1)

    async def add_one(uow: UnitOfWork) -> bool:
        _, stored = AccessToken.issue(ada, "ci", READ, 30, NOW)
        return await tokens(uow).add(stored, MAX_LIVE_TOKENS)

    outcome = await race(pg_database, add_one, add_one)

    assert outcome.second_waited
    assert (outcome.first, outcome.second) == (True, False)
    assert await live(pg_database, ada) == MAX_LIVE_TOKENS


async def test_many_creations_at_once_never_pass_the_limit(pg_database: Database) -> None:
    ada = await user_with_tokens(pg_database, MAX_LIVE_TOKENS - 3)
    create = CreateAccessToken(lambda: unit_of_work(pg_database), FakeClock(NOW))
    principal = Principal(user=ada, session_id="s")

    results = await asyncio.gather(
        *(create(principal, f"t{n}", READ, 30) for n in range(10)), return_exceptions=True
    )

    made = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, TooManyTokens)]
    assert (len(made), len(refused)) == (3, 7), results
    assert await live(pg_database, ada) == MAX_LIVE_TOKENS


async def test_a_token_made_while_the_sessions_end_is_refused_or_ended(
    pg_database: Database,
) -> None:
    ada = await add_user(pg_database, "ada")
    assert ada.id is not None
    uid = ada.id

    async def end_sessions(uow: UnitOfWork) -> bool:
        return await uow.repository(UserRepository).revoke_tokens(uid)

    async def create(uow: UnitOfWork) -> AccessToken | None:
        _, stored = AccessToken.issue(ada, "ci", READ, 30, NOW)
        await tokens(uow).add(stored, MAX_LIVE_TOKENS)
        # What CreateAccessToken checks once the owner's row is held.
        owner = await uow.repository(UserRepository).get(uid)
        assert owner is not None
        return stored if stored.admits(owner, NOW + timedelta(seconds=1)) else None

    outcome = await race(pg_database, end_sessions, create)

    assert outcome.second_waited
    assert outcome.first is True
    assert outcome.second is None  # it saw the bump: the use case refuses it
