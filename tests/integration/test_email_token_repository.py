"""The email token repository against the EmailTokenRepository contract
(domain/email_tokens.py), on SQLite and PostgreSQL; and, on PostgreSQL, concurrent
redemptions of one token."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from adapters.database import Database
from adapters.email_token_repository import email_tokens
from adapters.unit_of_work import unit_of_work
from domain.email_tokens import EmailToken, EmailTokenRepository, Purpose, token_hash
from domain.model import User
from domain.ports import UnitOfWork
from tests.integration.builders import DAY, NOW, UowFactory, add_user

HOUR = timedelta(hours=1)
VERIFY, RESET = Purpose.VERIFY_EMAIL, Purpose.PASSWORD_RESET


def tokens(uow: UnitOfWork) -> EmailTokenRepository:
    return uow.repository(EmailTokenRepository)


def issue(
    user: User, purpose: Purpose = VERIFY, *, at: timedelta = timedelta(0), ttl: timedelta = HOUR
) -> tuple[str, EmailToken]:
    assert user.id is not None
    return EmailToken.issue(purpose, user.id, user.email, NOW + at, ttl)


async def add(new_uow: UowFactory, *issued: EmailToken) -> None:
    async with new_uow() as uow:
        for token in issued:
            await tokens(uow).issue(token)
        await uow.commit()


async def insert_raw(database: Database, *stored: EmailToken) -> None:
    """Tokens put in as they are, bypassing the repository."""
    async with database.engine.begin() as conn:
        for token in stored:
            await conn.execute(
                email_tokens.insert().values({**vars(token), "purpose": token.purpose.value})
            )


async def redeem(
    new_uow: UowFactory, value: str, purpose: Purpose = VERIFY, at: timedelta = timedelta(0)
) -> EmailToken | None:
    async with new_uow() as uow:
        redeemed = await tokens(uow).redeem(token_hash(value), purpose, NOW + at)
        await uow.commit()
    return redeemed


async def usable(
    new_uow: UowFactory, value: str, purpose: Purpose = VERIFY, at: timedelta = timedelta(0)
) -> EmailToken | None:
    async with new_uow() as uow:
        return await tokens(uow).find_usable(token_hash(value), purpose, NOW + at)


async def count_tokens(database: Database) -> int:
    async with database.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(email_tokens)) or 0)


async def test_only_the_hash_is_stored_and_find_usable_returns_every_field(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    value, stored = issue(ada)
    await add(new_uow, stored)

    found = await usable(new_uow, value)

    assert stored.id == token_hash(value) != value
    assert found is not None
    assert vars(found) == vars(stored)
    assert found.purpose is VERIFY
    async with database.engine.connect() as conn:
        assert list(await conn.scalars(select(email_tokens.c.id))) == [token_hash(value)]


async def test_a_token_redeems_once_then_never_again(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    value, stored = issue(ada, RESET)
    await add(new_uow, stored)

    first = await redeem(new_uow, value, RESET, at=timedelta(minutes=5))
    second = await redeem(new_uow, value, RESET, at=timedelta(minutes=6))

    assert first is not None
    assert (first.id, first.user_id, first.email) == (stored.id, ada.id, ada.email)
    assert first.used_at == NOW + timedelta(minutes=5)
    assert second is None
    assert await usable(new_uow, value, RESET) is None


async def test_redeeming_twice_in_one_transaction_succeeds_once(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    _, stored = issue(ada)
    await add(new_uow, stored)

    async with new_uow() as uow:
        first = await tokens(uow).redeem(stored.id, VERIFY, NOW)
        second = await tokens(uow).redeem(stored.id, VERIFY, NOW)
        await uow.commit()

    assert first is not None
    assert second is None


async def test_a_redemption_rolled_back_leaves_the_token_usable(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    value, stored = issue(ada)
    await add(new_uow, stored)

    async with new_uow() as uow:
        assert await tokens(uow).redeem(stored.id, VERIFY, NOW) is not None
        await uow.rollback()

    assert await redeem(new_uow, value) is not None


async def test_an_expired_token_neither_redeems_nor_is_usable(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    value, stored = issue(ada, ttl=HOUR)
    await add(new_uow, stored)

    assert await usable(new_uow, value, at=HOUR - timedelta(seconds=1)) is not None
    # At its expiry instant it is over already.
    assert await usable(new_uow, value, at=HOUR) is None
    assert await redeem(new_uow, value, at=HOUR) is None
    assert await redeem(new_uow, value, at=DAY) is None
    async with new_uow() as uow:
        assert await tokens(uow).redeem(stored.id, VERIFY, NOW) is not None  # it was never used


async def test_a_token_of_another_purpose_or_an_unknown_one_is_none(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    value, stored = issue(ada, VERIFY)
    await add(new_uow, stored)

    assert await usable(new_uow, value, RESET) is None
    assert await redeem(new_uow, value, RESET) is None
    assert await redeem(new_uow, "an-unknown-token") is None
    assert await usable(new_uow, "an-unknown-token") is None
    # The failed attempts left it as it was.
    assert await redeem(new_uow, value, VERIFY) is not None


async def test_end_all_ends_only_the_unused_tokens_of_that_user_and_purpose(
    database: Database, new_uow: UowFactory
) -> None:
    ada, bob = await add_user(database, "ada"), await add_user(database, "bob")
    ada_verify = [issue(ada, VERIFY, at=timedelta(minutes=n)) for n in range(3)]
    ada_reset = issue(ada, RESET)
    bob_verify = issue(bob, VERIFY)
    await insert_raw(database, *(t for _, t in ada_verify), ada_reset[1], bob_verify[1])
    used = await redeem(new_uow, ada_verify[0][0], at=timedelta(minutes=10))
    assert used is not None

    async with new_uow() as uow:
        ended = await tokens(uow).end_all(ada.id or 0, VERIFY, NOW + timedelta(minutes=20))
        await uow.commit()
    async with new_uow() as uow:
        again = await tokens(uow).end_all(ada.id or 0, VERIFY, NOW + timedelta(minutes=30))
        await uow.commit()

    assert (ended, again) == (2, 0)
    for value, _ in ada_verify:
        assert await usable(new_uow, value) is None
    assert await usable(new_uow, ada_reset[0], RESET) is not None
    assert await usable(new_uow, bob_verify[0]) is not None
    # The one used before keeps the time it was used at.
    async with database.engine.connect() as conn:
        query = select(email_tokens.c.id, email_tokens.c.used_at).where(
            email_tokens.c.user_id == ada.id, email_tokens.c.purpose == VERIFY.value
        )
        used_at = {row.id: row.used_at for row in await conn.execute(query)}
    assert used_at[ada_verify[0][1].id] == NOW + timedelta(minutes=10)


async def test_delete_spent_deletes_used_and_expired_tokens_up_to_the_limit(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    expired = [issue(ada, RESET, at=-DAY, ttl=HOUR) for _ in range(2)]
    used = issue(ada, VERIFY, at=-DAY, ttl=7 * DAY)
    live = issue(ada, VERIFY, ttl=DAY)
    used_just_now = issue(ada, RESET, ttl=DAY)
    await insert_raw(database, *(t for _, t in expired), used[1], live[1], used_just_now[1])
    assert await redeem(new_uow, used[0], VERIFY, at=-HOUR) is not None
    assert await redeem(new_uow, used_just_now[0], RESET, at=timedelta(0)) is not None

    async with new_uow() as uow:
        first = await tokens(uow).delete_spent(NOW, 2)
        second = await tokens(uow).delete_spent(NOW, 2)
        third = await tokens(uow).delete_spent(NOW, 2)
        await uow.commit()

    # Used at NOW is not used *before* NOW: it stays, as does the live one.
    assert (first, second, third) == (2, 1, 0)
    async with database.engine.connect() as conn:
        left = set(await conn.scalars(select(email_tokens.c.id)))
    assert left == {live[1].id, used_just_now[1].id}


async def test_issuing_keeps_the_older_tokens_until_the_new_one_is_sent(
    database: Database, new_uow: UowFactory
) -> None:
    ada, bob = await add_user(database, "ada"), await add_user(database, "bob")
    first, reset = issue(ada, VERIFY), issue(ada, RESET)
    second = issue(ada, VERIFY, at=timedelta(minutes=1))
    later = issue(ada, VERIFY, at=timedelta(minutes=2))  # issued, not yet sent
    bobs = issue(bob, VERIFY)
    await add(new_uow, first[1], reset[1], second[1], later[1], bobs[1])
    # A failed send would stop here: every link mailed so far still works.
    assert await usable(new_uow, first[0]) is not None

    async with new_uow() as uow:
        ended = await tokens(uow).supersede(second[1], NOW + timedelta(minutes=3))
        await uow.commit()

    assert ended == 1
    assert await usable(new_uow, first[0]) is None
    assert await usable(new_uow, second[0]) is not None
    # Issued after the one sent, of another purpose, or another user's: untouched.
    assert await usable(new_uow, later[0]) is not None
    assert await usable(new_uow, reset[0], RESET) is not None
    assert await usable(new_uow, bobs[0]) is not None


async def test_a_token_sent_supersedes_one_issued_at_the_same_instant(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    one, other = issue(ada, RESET), issue(ada, RESET)
    await add(new_uow, one[1], other[1])

    async with new_uow() as uow:
        assert await tokens(uow).supersede(other[1], NOW) == 1
        await uow.commit()

    assert await usable(new_uow, one[0], RESET) is None
    assert await usable(new_uow, other[0], RESET) is not None


async def test_end_all_without_a_purpose_ends_every_unused_token_of_the_user(
    database: Database, new_uow: UowFactory
) -> None:
    ada, bob = await add_user(database, "ada"), await add_user(database, "bob")
    verify, reset, bobs = issue(ada, VERIFY), issue(ada, RESET), issue(bob, RESET)
    await add(new_uow, verify[1], reset[1], bobs[1])

    async with new_uow() as uow:
        assert await tokens(uow).end_all(ada.id or 0, None, NOW) == 2
        await uow.commit()

    assert await usable(new_uow, verify[0]) is None
    assert await usable(new_uow, reset[0], RESET) is None
    assert await usable(new_uow, bobs[0], RESET) is not None


async def test_deleting_the_user_deletes_its_tokens(
    database: Database, new_uow: UowFactory
) -> None:
    ada, bob = await add_user(database, "ada"), await add_user(database, "bob")
    await add(new_uow, issue(ada, VERIFY)[1], issue(ada, RESET)[1], issue(bob, VERIFY)[1])

    async with new_uow() as uow:
        await uow.users.delete(ada.id or 0)
        await uow.commit()

    assert await count_tokens(database) == 1
    async with database.engine.connect() as conn:
        assert list(await conn.scalars(select(email_tokens.c.user_id))) == [bob.id]


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
