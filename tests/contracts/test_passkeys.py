"""The passkey contracts (PasskeyRepository and ChallengeRepository, domain/passkeys.py):
what the fakes and the SQL adapters on SQLite and PostgreSQL alike must do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import PasskeyAlreadyRegistered
from domain.mfa import MfaStatus, SecondFactorRepository
from domain.model import User
from domain.passkeys import (
    Assertion,
    Ceremony,
    Challenge,
    ChallengeRepository,
    Passkey,
    PasskeyRepository,
)
from domain.ports import UnitOfWork, UserRepository
from tests.contracts.builders import NOW, UowFactory, add_user

MINUTE = timedelta(minutes=1)


def keys(uow: UnitOfWork) -> PasskeyRepository:
    return uow.repository(PasskeyRepository)


def challenges(uow: UnitOfWork) -> ChallengeRepository:
    return uow.repository(ChallengeRepository)


def make_passkey(user: User, credential: bytes = b"cred-1", **fields: object) -> Passkey:
    assert user.id is not None
    values: dict[str, object] = {
        "user_id": user.id,
        "credential_id": credential,
        "public_key": b"\xa5cose",
        "sign_count": 0,
        "name": "Passkey",
        "user_handle": b"h" * 32,
        "created_at": NOW,
        "backed_up": False,
        "aaguid": "00000000-0000-0000-0000-000000000000",
    }
    values.update(fields)
    return Passkey(**values)  # type: ignore[arg-type]


async def add(new_uow: UowFactory, *passkeys: Passkey) -> None:
    async with new_uow() as uow:
        for passkey in passkeys:
            await keys(uow).add(passkey)
        await uow.commit()


async def test_a_passkey_is_stored_with_every_field_and_found_by_credential(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow)
    passkey = make_passkey(ada, last_used_at=NOW + MINUTE, backed_up=True)
    await add(new_uow, passkey)
    assert ada.id is not None
    async with new_uow() as uow:
        by_credential = await keys(uow).get_by_credential(b"cred-1")
        by_id = await keys(uow).get(passkey.id, ada.id)
        assert await keys(uow).get(passkey.id, ada.id + 1) is None
        assert await keys(uow).get_by_credential(b"other") is None
        status = await uow.repository(SecondFactorRepository).status(ada.id)
    assert by_credential is not None
    assert by_id is not None
    assert vars(by_credential) == vars(passkey) == vars(by_id)
    assert status == MfaStatus(passkeys=1)


async def test_a_credential_is_registered_once_whoever_tries_again(new_uow: UowFactory) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    await add(new_uow, make_passkey(ada))
    with pytest.raises(PasskeyAlreadyRegistered):
        await add(new_uow, make_passkey(bob))


async def test_listing_renaming_and_deleting_are_the_owners_only(new_uow: UowFactory) -> None:
    ada, bob = await add_user(new_uow, "ada"), await add_user(new_uow, "bob")
    assert ada.id is not None
    assert bob.id is not None
    first = make_passkey(ada, b"one")
    second = make_passkey(ada, b"two", created_at=NOW + MINUTE)
    theirs = make_passkey(bob, b"three")
    await add(new_uow, second, first, theirs)

    async with new_uow() as uow:
        assert [p.id for p in await keys(uow).list_for_user(ada.id)] == [first.id, second.id]
        assert await keys(uow).rename(theirs.id, ada.id, "mine") is None
        renamed = await keys(uow).rename(first.id, ada.id, "Laptop")
        assert not await keys(uow).delete(theirs.id, ada.id)
        assert await keys(uow).delete(second.id, ada.id)
        assert not await keys(uow).delete(second.id, ada.id)
        await uow.commit()
    assert renamed is not None
    assert renamed.name == "Laptop"
    async with new_uow() as uow:
        assert [p.name for p in await keys(uow).list_for_user(ada.id)] == ["Laptop"]
        assert await keys(uow).delete_all(bob.id) == 1
        assert await keys(uow).list_for_user(bob.id) == []


async def test_a_use_is_recorded_only_over_the_counter_it_was_checked_against(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow)
    assert ada.id is not None
    passkey = make_passkey(ada, sign_count=4)
    await add(new_uow, passkey)

    async with new_uow() as uow:
        assert await keys(uow).record_use(passkey, Assertion(5, True), NOW + MINUTE)
        # A second assertion checked against the same counter 4 loses.
        assert not await keys(uow).record_use(passkey, Assertion(6, True), NOW + MINUTE)
        await uow.commit()
        stored = await keys(uow).get(passkey.id, ada.id)
    assert stored is not None
    assert (stored.sign_count, stored.backed_up, stored.last_used_at) == (5, True, NOW + MINUTE)


async def test_passkeys_go_with_their_user(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow)
    assert ada.id is not None
    uid = ada.id
    await add(new_uow, make_passkey(ada))
    challenge = Challenge.issue(Ceremony.REGISTRATION, NOW, uid, b"h" * 32)
    async with new_uow() as uow:
        await challenges(uow).add(challenge)
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.repository(UserRepository).delete(uid)
        await uow.commit()
    async with new_uow() as uow:
        assert await keys(uow).get_by_credential(b"cred-1") is None
        assert await challenges(uow).redeem(challenge.id, Ceremony.REGISTRATION, NOW) is None


async def test_a_challenge_redeems_once_for_its_ceremony_until_it_expires(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow)
    assert ada.id is not None
    bound = Challenge.issue(Ceremony.REGISTRATION, NOW, ada.id, b"h" * 32)
    open_one = Challenge.issue(Ceremony.AUTHENTICATION, NOW)
    late = Challenge.issue(Ceremony.AUTHENTICATION, NOW)
    async with new_uow() as uow:
        for challenge in (bound, open_one, late):
            await challenges(uow).add(challenge)
        await uow.commit()

    async with new_uow() as uow:
        assert await challenges(uow).redeem(bound.id, Ceremony.AUTHENTICATION, NOW) is None
        found = await challenges(uow).redeem(bound.id, Ceremony.REGISTRATION, NOW + MINUTE)
        assert await challenges(uow).redeem(bound.id, Ceremony.REGISTRATION, NOW) is None
        free = await challenges(uow).redeem(open_one.id, Ceremony.AUTHENTICATION, NOW)
        expired = await challenges(uow).redeem(late.id, Ceremony.AUTHENTICATION, NOW + 5 * MINUTE)
        await uow.commit()
    assert found is not None
    assert (found.challenge, found.user_id, found.user_handle) == (
        bound.challenge,
        ada.id,
        b"h" * 32,
    )
    assert found.used_at == NOW + MINUTE
    assert free is not None
    assert free.user_id is None
    assert expired is None

    async with new_uow() as uow:
        assert await challenges(uow).delete_spent(NOW + 10 * MINUTE, 10) == 3
        await uow.commit()
