"""The SigningKeyRepository contract (SigningKeyRepository, domain/signing_keys.py): keys
read back as stored and in the order they sign, one "first key" per algorithm, and
retirements, expiries and revocations each done once; on the fake and on the SQL
adapter alike.

Processes racing to store the first key or to delete one key, and the use cases that
write keys with their audit events, stay in
tests/integration/test_signing_key_repository.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from domain.model import new_id
from domain.signing_keys import Retirement, SigningKey, SigningKeyRepository
from tests.contracts.builders import NOW, UowFactory

T = TypeVar("T")
HOUR = timedelta(hours=1)


def new_key(
    algorithm: str = "ES256",
    *,
    kid: str | None = None,
    created_at: datetime = NOW,
    activates_at: datetime = NOW,
    retired_at: datetime | None = None,
    delete_after: datetime | None = None,
) -> SigningKey:
    """A key with made-up material: the repository stores it, never opens it."""
    kid = kid or new_id()
    return SigningKey(
        kid=kid,
        algorithm=algorithm,
        public_jwk={"kty": "EC", "crv": "P-256", "x": f"x-{kid}", "y": f"y-{kid}"},
        # Not text: every byte value must come back as it went in.
        sealed_private=bytes(range(256)) + kid.encode(),
        created_at=created_at,
        activates_at=activates_at,
        retired_at=retired_at,
        delete_after=delete_after,
    )


async def stored(new_uow: UowFactory) -> list[SigningKey]:
    async with new_uow() as uow:
        return await uow.repository(SigningKeyRepository).list_all()


async def write(new_uow: UowFactory, step: Callable[[SigningKeyRepository], Awaitable[T]]) -> T:
    """One step in a unit of work of its own, committed."""
    async with new_uow() as uow:
        result = await step(uow.repository(SigningKeyRepository))
        await uow.commit()
        return result


async def add(new_uow: UowFactory, *keys: SigningKey) -> None:
    async with new_uow() as uow:
        for key in keys:
            await uow.repository(SigningKeyRepository).add(key)
        await uow.commit()


async def test_a_key_is_stored_and_read_back_as_it_was(new_uow: UowFactory) -> None:
    key = new_key(activates_at=NOW + HOUR)
    retired = new_key("EdDSA", retired_at=NOW, delete_after=NOW + 2 * HOUR)

    await write(new_uow, lambda keys: keys.add(key))
    await write(new_uow, lambda keys: keys.add(retired))

    assert await stored(new_uow) == [retired, key]  # in the order they sign
    # bytes, not a memoryview: the key maker opens it as it was sealed.
    assert all(type(found.sealed_private) is bytes for found in await stored(new_uow))


async def test_every_key_is_listed_in_the_order_they_start_signing_whatever_their_state(
    new_uow: UowFactory,
) -> None:
    # Activation first, then creation, then kid: the order of ``in_order``.
    pending = new_key(kid="kid-e", activates_at=NOW + HOUR, created_at=NOW - HOUR)
    active_b = new_key(kid="kid-b", created_at=NOW - HOUR)
    active_a = new_key(kid="kid-a", created_at=NOW - HOUR)
    newer = new_key(kid="kid-0", created_at=NOW)
    retired = new_key(
        "EdDSA", kid="kid-z", activates_at=NOW - HOUR, retired_at=NOW, delete_after=NOW + HOUR
    )
    await add(new_uow, pending, newer, active_b, retired, active_a)

    assert await stored(new_uow) == [retired, active_a, active_b, newer, pending]


async def test_only_one_first_key_per_algorithm_is_stored(new_uow: UowFactory) -> None:
    first, second, other = new_key(), new_key(), new_key("EdDSA")

    assert await write(new_uow, lambda keys: keys.add_first(first)) is True
    assert await write(new_uow, lambda keys: keys.add_first(second)) is False
    assert await write(new_uow, lambda keys: keys.add_first(other)) is True

    assert {key.kid for key in await stored(new_uow)} == {first.kid, other.kid}


async def test_retiring_is_done_once_and_frees_the_first_key_marker(new_uow: UowFactory) -> None:
    first = new_key()
    await write(new_uow, lambda keys: keys.add_first(first))
    retirement = Retirement(first.kid, NOW + HOUR, NOW + 9 * HOUR)

    assert await write(new_uow, lambda keys: keys.retire(retirement)) is True
    again = Retirement(first.kid, NOW + 2 * HOUR, NOW + 10 * HOUR)
    assert await write(new_uow, lambda keys: keys.retire(again)) is False
    unknown = Retirement("no-such-kid", NOW + HOUR, NOW + 9 * HOUR)
    assert await write(new_uow, lambda keys: keys.retire(unknown)) is False

    [key] = await stored(new_uow)
    assert (key.retired_at, key.delete_after) == (NOW + HOUR, NOW + 9 * HOUR)
    # After a switch of algorithm and back, a new first key may be stored.
    assert await write(new_uow, lambda keys: keys.add_first(new_key())) is True


async def test_only_keys_past_their_delete_time_are_deleted(new_uow: UowFactory) -> None:
    due = new_key(retired_at=NOW - HOUR, delete_after=NOW)
    later = new_key(retired_at=NOW - HOUR, delete_after=NOW + timedelta(seconds=1))
    active = new_key()
    await add(new_uow, due, later, active)

    assert await write(new_uow, lambda keys: keys.delete_expired(NOW)) == 1
    assert await write(new_uow, lambda keys: keys.delete_expired(NOW)) == 0
    assert {key.kid for key in await stored(new_uow)} == {later.kid, active.kid}


async def test_a_deleted_key_is_gone_once_and_frees_the_first_key_marker(
    new_uow: UowFactory,
) -> None:
    first, other = new_key(), new_key(activates_at=NOW + HOUR)
    await write(new_uow, lambda keys: keys.add_first(first))
    await write(new_uow, lambda keys: keys.add(other))

    assert await write(new_uow, lambda keys: keys.delete(first.kid)) is True
    assert await write(new_uow, lambda keys: keys.delete(first.kid)) is False
    assert await write(new_uow, lambda keys: keys.delete("no-such-kid")) is False

    assert [key.kid for key in await stored(new_uow)] == [other.kid]
    assert await write(new_uow, lambda keys: keys.add_first(new_key())) is True
