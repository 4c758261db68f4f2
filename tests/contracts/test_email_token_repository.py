"""The EmailTokenRepository contract (EmailTokenRepository, domain/email_tokens.py): what
the fake and the SQL adapter on SQLite and PostgreSQL alike must do. What is stored of a
token, and concurrent redemptions on several connections, are tested in
tests/integration/test_email_token_repository.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.email_tokens import EmailToken, EmailTokenRepository, Purpose, token_hash
from domain.model import User
from domain.ports import UnitOfWork, UserRepository
from tests.contracts.builders import DAY, NOW, UowFactory, add_user

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
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


async def delete_spent(new_uow: UowFactory, before: timedelta, limit: int = 100) -> int:
    async with new_uow() as uow:
        deleted = await tokens(uow).delete_spent(NOW + before, limit)
        await uow.commit()
    return deleted


async def test_find_usable_returns_every_field_of_the_issued_token(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    value, stored = issue(ada)
    await add(new_uow, stored)

    found = await usable(new_uow, value)

    assert stored.id == token_hash(value) != value
    assert found is not None
    assert vars(found) == vars(stored)
    assert found.purpose is VERIFY


async def test_a_token_redeems_once_then_never_again(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    value, stored = issue(ada, RESET)
    await add(new_uow, stored)

    first = await redeem(new_uow, value, RESET, at=5 * MINUTE)
    second = await redeem(new_uow, value, RESET, at=6 * MINUTE)

    assert first is not None
    assert (first.id, first.user_id, first.email) == (stored.id, ada.id, ada.email)
    assert first.used_at == NOW + 5 * MINUTE
    assert second is None
    assert await usable(new_uow, value, RESET) is None


async def test_redeeming_twice_in_one_transaction_succeeds_once(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    _, stored = issue(ada)
    await add(new_uow, stored)

    async with new_uow() as uow:
        first = await tokens(uow).redeem(stored.id, VERIFY, NOW)
        second = await tokens(uow).redeem(stored.id, VERIFY, NOW)
        await uow.commit()

    assert first is not None
    assert second is None


async def test_a_redemption_rolled_back_leaves_the_token_usable(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    value, stored = issue(ada)
    await add(new_uow, stored)

    async with new_uow() as uow:
        assert await tokens(uow).redeem(stored.id, VERIFY, NOW) is not None
        await uow.rollback()

    assert await redeem(new_uow, value) is not None


async def test_an_expired_token_neither_redeems_nor_is_usable(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    value, stored = issue(ada, ttl=HOUR)
    await add(new_uow, stored)

    assert await usable(new_uow, value, at=HOUR - timedelta(seconds=1)) is not None
    # At its expiry instant it is over already.
    assert await usable(new_uow, value, at=HOUR) is None
    assert await redeem(new_uow, value, at=HOUR) is None
    assert await redeem(new_uow, value, at=DAY) is None
    async with new_uow() as uow:
        assert await tokens(uow).redeem(stored.id, VERIFY, NOW) is not None  # it was never used


async def test_a_token_of_another_purpose_or_an_unknown_one_is_none(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    value, stored = issue(ada, VERIFY)
    await add(new_uow, stored)

    assert await usable(new_uow, value, RESET) is None
    assert await redeem(new_uow, value, RESET) is None
    assert await redeem(new_uow, "an-unknown-token") is None
    assert await usable(new_uow, "an-unknown-token") is None
    # The failed attempts left it as it was.
    assert await redeem(new_uow, value, VERIFY) is not None


async def test_issuing_keeps_the_older_tokens_until_the_new_one_is_sent(
    new_uow: UowFactory,
) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    first, reset = issue(ada, VERIFY), issue(ada, RESET)
    second = issue(ada, VERIFY, at=MINUTE)
    later = issue(ada, VERIFY, at=2 * MINUTE)  # issued, not yet sent
    bobs = issue(bob, VERIFY)
    await add(new_uow, first[1], reset[1], second[1], later[1], bobs[1])
    # A failed send would stop here: every link mailed so far still works.
    assert await usable(new_uow, first[0]) is not None

    async with new_uow() as uow:
        ended = await tokens(uow).supersede(second[1], NOW + 3 * MINUTE)
        await uow.commit()

    assert ended == 1
    assert await usable(new_uow, first[0]) is None
    assert await redeem(new_uow, first[0]) is None
    assert await usable(new_uow, second[0]) is not None
    # Issued after the one sent, of another purpose, or another user's: untouched.
    assert await usable(new_uow, later[0]) is not None
    assert await usable(new_uow, reset[0], RESET) is not None
    assert await usable(new_uow, bobs[0]) is not None


async def test_a_token_sent_supersedes_one_issued_at_the_same_instant(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    one, other = issue(ada, RESET), issue(ada, RESET)
    await add(new_uow, one[1], other[1])

    async with new_uow() as uow:
        assert await tokens(uow).supersede(other[1], NOW) == 1
        await uow.commit()

    assert await usable(new_uow, one[0], RESET) is None
    assert await usable(new_uow, other[0], RESET) is not None


@pytest.mark.parametrize("newer_sent_first", [True, False], ids=["newer-first", "older-first"])
async def test_however_two_sends_interleave_the_newest_token_sent_stays_usable(
    new_uow: UowFactory, newer_sent_first: bool
) -> None:
    ada = await add_user(new_uow, "ada")
    older, newer = issue(ada), issue(ada, at=MINUTE)
    await add(new_uow, older[1], newer[1])
    sends = [newer[1], older[1]] if newer_sent_first else [older[1], newer[1]]

    for n, sent in enumerate(sends):
        async with new_uow() as uow:
            await tokens(uow).supersede(sent, NOW + (2 + n) * MINUTE)
            await uow.commit()

    assert await usable(new_uow, older[0]) is None
    assert await usable(new_uow, newer[0]) is not None


async def test_end_all_ends_only_the_unused_tokens_of_that_user_and_purpose(
    new_uow: UowFactory,
) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    ada_verify = [issue(ada, VERIFY, at=n * MINUTE) for n in range(3)]
    ada_reset = issue(ada, RESET)
    bob_verify = issue(bob, VERIFY)
    await add(new_uow, *(t for _, t in ada_verify), ada_reset[1], bob_verify[1])
    used = await redeem(new_uow, ada_verify[0][0], at=10 * MINUTE)
    assert used is not None

    async with new_uow() as uow:
        ended = await tokens(uow).end_all(ada.id or 0, VERIFY, NOW + 20 * MINUTE)
        await uow.commit()
    async with new_uow() as uow:
        again = await tokens(uow).end_all(ada.id or 0, VERIFY, NOW + 30 * MINUTE)
        await uow.commit()

    assert (ended, again) == (2, 0)
    for value, _ in ada_verify:
        assert await usable(new_uow, value) is None
    assert await usable(new_uow, ada_reset[0], RESET) is not None
    assert await usable(new_uow, bob_verify[0]) is not None
    # The one used before keeps the time it was used at: spent before NOW + 15 minutes,
    # where the two ended at NOW + 20 minutes are not.
    assert await delete_spent(new_uow, 15 * MINUTE) == 1
    assert await delete_spent(new_uow, 21 * MINUTE) == 2


async def test_end_all_without_a_purpose_ends_every_unused_token_of_the_user(
    new_uow: UowFactory,
) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    verify, reset, bobs = issue(ada, VERIFY), issue(ada, RESET), issue(bob, RESET)
    await add(new_uow, verify[1], reset[1], bobs[1])

    async with new_uow() as uow:
        assert await tokens(uow).end_all(ada.id or 0, None, NOW) == 2
        await uow.commit()

    assert await usable(new_uow, verify[0]) is None
    assert await usable(new_uow, reset[0], RESET) is None
    assert await usable(new_uow, bobs[0], RESET) is not None


async def test_delete_spent_deletes_used_and_expired_tokens_up_to_the_limit(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    expired = [issue(ada, RESET, at=-DAY, ttl=HOUR) for _ in range(2)]
    used = issue(ada, VERIFY, at=-DAY, ttl=7 * DAY)
    live = issue(ada, VERIFY, ttl=DAY)
    used_just_now = issue(ada, RESET, ttl=DAY)
    await add(new_uow, *(t for _, t in expired), used[1], live[1], used_just_now[1])
    assert await redeem(new_uow, used[0], VERIFY, at=-HOUR) is not None
    assert await redeem(new_uow, used_just_now[0], RESET, at=timedelta(0)) is not None

    async with new_uow() as uow:
        first = await tokens(uow).delete_spent(NOW, 2)
        second = await tokens(uow).delete_spent(NOW, 2)
        third = await tokens(uow).delete_spent(NOW, 2)
        await uow.commit()

    # Used at NOW is not used *before* NOW: it stays, as does the live one.
    assert (first, second, third) == (2, 1, 0)
    assert await usable(new_uow, live[0]) is not None
    assert await delete_spent(new_uow, timedelta(seconds=1)) == 1
    assert await usable(new_uow, live[0]) is not None


async def test_deleting_the_user_deletes_its_tokens(new_uow: UowFactory) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    adas = [issue(ada, VERIFY), issue(ada, RESET)]
    bobs = issue(bob, VERIFY)
    await add(new_uow, *(t for _, t in adas), bobs[1])

    async with new_uow() as uow:
        await uow.repository(UserRepository).delete(ada.id or 0)
        await uow.commit()

    assert await usable(new_uow, adas[0][0], VERIFY) is None
    assert await usable(new_uow, adas[1][0], RESET) is None
    assert await usable(new_uow, bobs[0]) is not None
    # Gone, not merely ended: even once they are all expired, only Bob's is left to delete.
    assert await delete_spent(new_uow, 2 * DAY) == 1
