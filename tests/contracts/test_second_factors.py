"""The second-factor contracts (SecondFactorRepository and MfaTokenRepository,
domain/mfa.py): what the fakes and the SQL adapters on SQLite and PostgreSQL alike must
do. The races on several connections are in tests/integration/test_mfa_races.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from domain.mfa import (
    MAX_FAILURES,
    MfaStatus,
    MfaToken,
    MfaTokenRepository,
    SecondFactorRepository,
    recovery_code_hash,
)
from domain.model import User
from domain.ports import UnitOfWork, UserRepository
from tests.contracts.builders import NOW, UowFactory, add_user

T = TypeVar("T")
MINUTE = timedelta(minutes=1)
SECRET, OTHER_SECRET = b"\x01sealed-one", b"\x01sealed-two"


def factors(uow: UnitOfWork) -> SecondFactorRepository:
    return uow.repository(SecondFactorRepository)


def tokens(uow: UnitOfWork) -> MfaTokenRepository:
    return uow.repository(MfaTokenRepository)


async def committed(new_uow: UowFactory, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    async with new_uow() as uow:
        result = await work(uow)
        await uow.commit()
    return result


async def status(new_uow: UowFactory, user: User) -> MfaStatus:
    assert user.id is not None
    uid = user.id
    async with new_uow() as uow:
        return await factors(uow).status(uid)


async def enabled_totp(new_uow: UowFactory, user: User, step: int = 100) -> int:
    assert user.id is not None
    uid = user.id
    assert await committed(new_uow, lambda uow: factors(uow).set_pending_totp(uid, SECRET, NOW))
    assert await committed(new_uow, lambda uow: factors(uow).enable_totp(uid, SECRET, step, NOW))
    return uid


async def test_a_new_user_has_no_second_factor(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    assert await status(new_uow, ada) == MfaStatus(totp=False, passkeys=0, recovery_codes_left=0)
    assert ada.id is not None
    uid = ada.id
    async with new_uow() as uow:
        assert await factors(uow).get_totp(uid) is None


async def test_a_pending_secret_is_not_in_force_and_is_replaced_by_the_next(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow)
    assert ada.id is not None
    uid = ada.id
    assert await committed(new_uow, lambda uow: factors(uow).set_pending_totp(uid, SECRET, NOW))
    assert await committed(
        new_uow, lambda uow: factors(uow).set_pending_totp(uid, OTHER_SECRET, NOW + MINUTE)
    )

    async with new_uow() as uow:
        found = await factors(uow).get_totp(uid)
    assert found is not None
    assert (found.sealed_secret, found.created_at, found.enabled) == (
        OTHER_SECRET,
        NOW + MINUTE,
        False,
    )
    assert not (await status(new_uow, ada)).totp
    # The replaced secret can no longer be confirmed.
    assert not await committed(new_uow, lambda uow: factors(uow).enable_totp(uid, SECRET, 100, NOW))


async def test_enabling_uses_the_step_and_refuses_a_new_set_up(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    uid = await enabled_totp(new_uow, ada, step=100)

    async with new_uow() as uow:
        found = await factors(uow).get_totp(uid)
    assert found is not None
    assert (found.enabled_at, found.last_step, found.sealed_secret) == (NOW, 100, SECRET)
    assert (await status(new_uow, ada)).totp
    assert not await committed(
        new_uow, lambda uow: factors(uow).set_pending_totp(uid, OTHER_SECRET, NOW)
    )
    assert not await committed(new_uow, lambda uow: factors(uow).enable_totp(uid, SECRET, 101, NOW))


async def test_a_step_is_used_once_and_never_an_earlier_one(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    uid = await enabled_totp(new_uow, ada, step=100)

    async def use(step: int) -> bool:
        return await committed(new_uow, lambda uow: factors(uow).use_totp_step(uid, step))

    assert not await use(100)  # the confirmation's code
    assert not await use(99)
    assert await use(101)
    assert not await use(101)
    assert await use(103)
    assert not await use(102)


async def test_no_step_is_used_while_totp_is_pending_or_off(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    assert ada.id is not None
    uid = ada.id
    assert not await committed(new_uow, lambda uow: factors(uow).use_totp_step(uid, 1))
    assert await committed(new_uow, lambda uow: factors(uow).set_pending_totp(uid, SECRET, NOW))
    assert not await committed(new_uow, lambda uow: factors(uow).use_totp_step(uid, 1))


async def test_disabling_removes_an_enabled_factor_once(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    uid = await enabled_totp(new_uow, ada)

    assert await committed(new_uow, lambda uow: factors(uow).disable_totp(uid))
    assert not await committed(new_uow, lambda uow: factors(uow).disable_totp(uid))
    assert not (await status(new_uow, ada)).totp
    async with new_uow() as uow:
        assert await factors(uow).get_totp(uid) is None


async def test_disabling_a_pending_set_up_removes_it_and_says_nothing_was_on(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow)
    assert ada.id is not None
    uid = ada.id
    assert await committed(new_uow, lambda uow: factors(uow).set_pending_totp(uid, SECRET, NOW))
    assert not await committed(new_uow, lambda uow: factors(uow).disable_totp(uid))
    async with new_uow() as uow:
        assert await factors(uow).get_totp(uid) is None


async def test_recovery_codes_are_counted_used_once_and_replaced_as_a_set(
    new_uow: UowFactory,
) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    assert ada.id is not None
    assert bob.id is not None
    uid, other = ada.id, bob.id
    first = [h for h in map(recovery_code_hash, ["aaaaa-aaaaa", "bbbbb-bbbbb"]) if h]
    second = [h for h in map(recovery_code_hash, ["ccccc-ccccc"]) if h]
    await committed(new_uow, lambda uow: factors(uow).replace_recovery_codes(uid, first, NOW))
    assert (await status(new_uow, ada)).recovery_codes_left == 2

    def use(user_id: int, code_hash: str) -> Callable[[UnitOfWork], Awaitable[bool]]:
        return lambda uow: factors(uow).use_recovery_code(user_id, code_hash, NOW)

    assert not await committed(new_uow, use(other, first[0]))  # another user's
    assert await committed(new_uow, use(uid, first[0]))
    assert not await committed(new_uow, use(uid, first[0]))
    assert (await status(new_uow, ada)).recovery_codes_left == 1

    await committed(new_uow, lambda uow: factors(uow).replace_recovery_codes(uid, second, NOW))
    assert not await committed(new_uow, use(uid, first[1]))
    assert (await status(new_uow, ada)).recovery_codes_left == 1
    assert await committed(new_uow, use(uid, second[0]))

    await committed(new_uow, lambda uow: factors(uow).delete_recovery_codes(uid))
    assert (await status(new_uow, ada)).recovery_codes_left == 0


async def test_second_factors_go_with_their_user(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    uid = await enabled_totp(new_uow, ada)
    codes = [h for h in [recovery_code_hash("aaaaa-aaaaa")] if h]
    await committed(new_uow, lambda uow: factors(uow).replace_recovery_codes(uid, codes, NOW))
    _, stored = MfaToken.issue(uid, 0, NOW)
    await committed(new_uow, lambda uow: tokens(uow).add(stored))

    assert await committed(new_uow, lambda uow: uow.repository(UserRepository).delete(uid))

    async with new_uow() as uow:
        assert await factors(uow).get_totp(uid) is None
        assert await factors(uow).status(uid) == MfaStatus()
        assert await tokens(uow).find_usable(stored.id, NOW) is None


async def test_a_login_step_token_is_found_with_every_field_and_redeems_once(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow)
    assert ada.id is not None
    value, stored = MfaToken.issue(ada.id, 3, NOW)
    await committed(new_uow, lambda uow: tokens(uow).add(stored))

    async with new_uow() as uow:
        found = await tokens(uow).find_usable(stored.id, NOW + MINUTE)
    assert found is not None
    assert vars(found) == vars(stored)
    assert stored.id != value

    first = await committed(new_uow, lambda uow: tokens(uow).redeem(stored.id, NOW + MINUTE))
    second = await committed(new_uow, lambda uow: tokens(uow).redeem(stored.id, NOW + MINUTE))
    assert first is not None
    assert (first.user_id, first.token_version, first.used_at) == (ada.id, 3, NOW + MINUTE)
    assert second is None


async def test_a_login_step_token_expires_after_five_minutes(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    assert ada.id is not None
    _, stored = MfaToken.issue(ada.id, 0, NOW)
    await committed(new_uow, lambda uow: tokens(uow).add(stored))

    async with new_uow() as uow:
        assert await tokens(uow).find_usable(stored.id, NOW + 5 * MINUTE) is None
    assert (
        await committed(new_uow, lambda uow: tokens(uow).redeem(stored.id, NOW + 6 * MINUTE))
        is None
    )
    assert await committed(new_uow, lambda uow: tokens(uow).redeem(stored.id, NOW + 4 * MINUTE))


async def test_a_login_step_token_dies_after_five_failures(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    assert ada.id is not None
    _, stored = MfaToken.issue(ada.id, 0, NOW)
    await committed(new_uow, lambda uow: tokens(uow).add(stored))

    for _ in range(MAX_FAILURES - 1):
        await committed(new_uow, lambda uow: tokens(uow).fail(stored.id))
    async with new_uow() as uow:
        alive = await tokens(uow).find_usable(stored.id, NOW)
    assert alive is not None
    assert alive.failures == MAX_FAILURES - 1

    await committed(new_uow, lambda uow: tokens(uow).fail(stored.id))
    async with new_uow() as uow:
        assert await tokens(uow).find_usable(stored.id, NOW) is None
    assert await committed(new_uow, lambda uow: tokens(uow).redeem(stored.id, NOW)) is None


async def test_ending_a_users_tokens_and_deleting_spent_ones(new_uow: UowFactory) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    assert ada.id is not None
    assert bob.id is not None
    _, mine = MfaToken.issue(ada.id, 0, NOW)
    _, theirs = MfaToken.issue(bob.id, 0, NOW)
    await committed(new_uow, lambda uow: tokens(uow).add(mine))
    await committed(new_uow, lambda uow: tokens(uow).add(theirs))

    assert await committed(new_uow, lambda uow: tokens(uow).end_all(mine.user_id, NOW)) == 1
    async with new_uow() as uow:
        assert await tokens(uow).find_usable(mine.id, NOW) is None
        assert await tokens(uow).find_usable(theirs.id, NOW) is not None

    # The ended one now (used before the cut-off), the other once it has expired.
    later = NOW + MINUTE
    assert await committed(new_uow, lambda uow: tokens(uow).delete_spent(later, 10)) == 1
    much_later = NOW + 10 * MINUTE
    assert await committed(new_uow, lambda uow: tokens(uow).delete_spent(much_later, 10)) == 1


async def test_holding_the_factors_changes_nothing(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    uid = await enabled_totp(new_uow, ada)
    async with new_uow() as uow:
        await factors(uow).hold(uid)
        await factors(uow).hold(uid)  # again, in the same transaction
        held = await factors(uow).status(uid)
        await uow.commit()
    assert held == await status(new_uow, ada) == MfaStatus(totp=True)
