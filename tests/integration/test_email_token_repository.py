"""The email token repository's SQL side: what is stored of a token, and, on PostgreSQL,
concurrent redemptions of one token. Its contract (EmailTokenRepository) is specified in
tests/contracts/test_email_token_repository.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from adapters.database import Database
from adapters.email_token_repository import email_tokens
from adapters.unit_of_work import unit_of_work
from domain.email_tokens import EmailToken, EmailTokenRepository, Purpose, token_hash
from domain.model import User
from domain.ports import UnitOfWork
from tests.integration.builders import NOW, UowFactory, add_user

HOUR = timedelta(hours=1)
VERIFY, RESET = Purpose.VERIFY_EMAIL, Purpose.PASSWORD_RESET


def tokens(uow: UnitOfWork) -> EmailTokenRepository:
    return uow.repository(EmailTokenRepository)


def issue(user: User, purpose: Purpose = VERIFY) -> tuple[str, EmailToken]:
    assert user.id is not None
    return EmailToken.issue(purpose, user.id, user.email, NOW, HOUR)


async def add(new_uow: UowFactory, *issued: EmailToken) -> None:
    async with new_uow() as uow:
        for token in issued:
            await tokens(uow).issue(token)
        await uow.commit()


async def test_only_the_hash_of_a_token_is_stored(database: Database, new_uow: UowFactory) -> None:
    ada = await add_user(database, "ada")
    value, stored = issue(ada)
    await add(new_uow, stored)

    async with database.engine.connect() as conn:
        rows = [dict(row) for row in (await conn.execute(select(email_tokens))).mappings()]

    assert [row["id"] for row in rows] == [token_hash(value)]
    assert value not in {str(v) for row in rows for v in row.values()}


@pytest.mark.postgres
async def test_on_postgresql_ten_concurrent_redemptions_of_one_token_let_exactly_one_win(
    pg_database: Database,
) -> None:
    ada = await add_user(pg_database, "ada")
    value, stored = issue(ada, RESET)
    await add(lambda: unit_of_work(pg_database), stored)
    everyone_looked = asyncio.Barrier(10)

    async def attempt() -> EmailToken | None:
        async with unit_of_work(pg_database) as uow:
            # Every transaction sees the token usable before any of them redeems it.
            assert await tokens(uow).find_usable(stored.id, RESET, NOW) is not None
            await everyone_looked.wait()
            redeemed = await tokens(uow).redeem(stored.id, RESET, NOW)
            await uow.commit()
            return redeemed

    results = await asyncio.wait_for(asyncio.gather(*(attempt() for _ in range(10))), timeout=60)

    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert winners[0].user_id == ada.id
    async with unit_of_work(pg_database) as uow:
        assert await tokens(uow).find_usable(token_hash(value), RESET, NOW) is None
