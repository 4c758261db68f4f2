"""Second factors under concurrency, on PostgreSQL (SQLite has one writer): a TOTP
code, a recovery code and a login-step token each work once however many transactions
present them at the same moment, and two new sets of recovery codes never add up.

Each race is made real (tests/integration/test_races.py): the second transaction is
seen waiting on the first one's lock before the first commits.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from adapters.database import Database
from adapters.mfa_repository import recovery_codes
from adapters.unit_of_work import unit_of_work
from domain.mfa import (
    MfaStatus,
    MfaToken,
    MfaTokenRepository,
    SecondFactorRepository,
    recovery_code_hash,
)
from domain.passkeys import Passkey, PasskeyRepository
from domain.ports import UnitOfWork
from tests.integration.builders import NOW, add_user
from tests.integration.test_races import race

pytestmark = pytest.mark.postgres
SEALED = b"\x01sealed"


def factors(uow: UnitOfWork) -> SecondFactorRepository:
    return uow.repository(SecondFactorRepository)


async def user_with_totp(database: Database, name: str = "ada") -> int:
    user = await add_user(database, name)
    assert user.id is not None
    async with unit_of_work(database) as uow:
        assert await factors(uow).set_pending_totp(user.id, SEALED, NOW)
        assert await factors(uow).enable_totp(user.id, SEALED, 100, NOW)
        await uow.commit()
    return user.id


async def test_one_totp_code_presented_twice_at_once_is_accepted_once(
    pg_database: Database,
) -> None:
    uid = await user_with_totp(pg_database)

    outcome = await race(
        pg_database,
        lambda uow: factors(uow).use_totp_step(uid, 101),
        lambda uow: factors(uow).use_totp_step(uid, 101),
    )

    assert outcome.second_waited
    assert (outcome.first, outcome.second) == (True, False)


async def test_an_earlier_code_presented_while_a_later_one_commits_is_refused(
    pg_database: Database,
) -> None:
    uid = await user_with_totp(pg_database)

    outcome = await race(
        pg_database,
        lambda uow: factors(uow).use_totp_step(uid, 102),
        lambda uow: factors(uow).use_totp_step(uid, 101),
    )

    assert outcome.second_waited
    assert (outcome.first, outcome.second) == (True, False)


async def test_one_recovery_code_presented_twice_at_once_works_once(
    pg_database: Database,
) -> None:
    uid = await user_with_totp(pg_database)
    code_hash = recovery_code_hash("k7qm2-x9tfa")
    assert code_hash is not None
    async with unit_of_work(pg_database) as uow:
        await factors(uow).replace_recovery_codes(uid, [code_hash], NOW)
        await uow.commit()

    outcome = await race(
        pg_database,
        lambda uow: factors(uow).use_recovery_code(uid, code_hash, NOW),
        lambda uow: factors(uow).use_recovery_code(uid, code_hash, NOW),
    )

    assert outcome.second_waited
    assert (outcome.first, outcome.second) == (True, False)


async def test_one_login_step_token_redeemed_twice_at_once_goes_on_once(
    pg_database: Database,
) -> None:
    uid = await user_with_totp(pg_database)
    _, stored = MfaToken.issue(uid, 0, NOW)
    async with unit_of_work(pg_database) as uow:
        await uow.repository(MfaTokenRepository).add(stored)
        await uow.commit()

    outcome = await race(
        pg_database,
        lambda uow: uow.repository(MfaTokenRepository).redeem(stored.id, NOW),
        lambda uow: uow.repository(MfaTokenRepository).redeem(stored.id, NOW),
    )

    assert outcome.second_waited
    assert outcome.first is not None
    assert outcome.second is None


async def test_two_new_sets_of_recovery_codes_at_once_leave_one_set(
    pg_database: Database,
) -> None:
    uid = await user_with_totp(pg_database)
    first = [h for h in (recovery_code_hash(f"aaaa{i}-aaaaa") for i in range(10)) if h]
    second = [h for h in (recovery_code_hash(f"bbbb{i}-bbbbb") for i in range(10)) if h]

    outcome = await race(
        pg_database,
        lambda uow: factors(uow).replace_recovery_codes(uid, first, NOW),
        lambda uow: factors(uow).replace_recovery_codes(uid, second, NOW),
    )

    assert outcome.second_waited
    async with pg_database.engine.connect() as conn:
        stored = set(
            await conn.scalars(
                select(recovery_codes.c.code_hash).where(recovery_codes.c.user_id == uid)
            )
        )
        total = await conn.scalar(select(func.count()).select_from(recovery_codes))
    assert stored == set(second)
    assert total == 10


async def test_a_change_that_holds_the_factors_sees_a_removal_that_held_them_first(
    pg_database: Database,
) -> None:
    # The last two factors removed at once (a passkey here, TOTP there): each removal
    # holds the factors before it asks what remains, so the second sees the first's
    # outcome and takes the recovery codes with the last factor.
    uid = await user_with_totp(pg_database)
    passkey = Passkey(
        user_id=uid,
        credential_id=b"credential",
        public_key=b"key",
        sign_count=0,
        name="Passkey",
        user_handle=b"h" * 32,
        created_at=NOW,
    )
    async with unit_of_work(pg_database) as uow:
        await uow.repository(PasskeyRepository).add(passkey)
        await uow.commit()

    async def remove_passkey(uow: UnitOfWork) -> bool:
        await factors(uow).hold(uid)
        return await uow.repository(PasskeyRepository).delete(passkey.id, uid)

    async def what_remains(uow: UnitOfWork) -> MfaStatus:
        await factors(uow).hold(uid)
        return await factors(uow).status(uid)

    outcome = await race(pg_database, remove_passkey, what_remains)

    assert outcome.second_waited
    assert outcome.first is True
    assert outcome.second == MfaStatus(totp=True, passkeys=0, recovery_codes_left=0)
