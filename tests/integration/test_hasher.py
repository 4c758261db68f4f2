"""Argon2Hasher, with cheap parameters so the tests stay fast."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from adapters.hasher import Argon2Hasher
from domain.errors import Overloaded

CHEAP = {"time_cost": 1, "memory_cost": 1024}


@pytest.fixture
def hasher() -> Iterator[Argon2Hasher]:
    hasher = Argon2Hasher(**CHEAP)
    yield hasher
    hasher.close()


@pytest.fixture
def other_params() -> Iterator[Argon2Hasher]:
    hasher = Argon2Hasher(time_cost=2, memory_cost=1024)
    yield hasher
    hasher.close()


async def test_a_hash_verifies_its_password_and_no_other(hasher: Argon2Hasher) -> None:
    encoded = await hasher.hash("correct horse battery")

    assert encoded.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert "correct horse battery" not in encoded
    assert await hasher.verify(encoded, "correct horse battery")
    assert not await hasher.verify(encoded, "wrong horse battery")


@pytest.mark.parametrize(
    "variant", ["correct horse battery ", " correct horse battery", "CORRECT HORSE BATTERY"]
)
async def test_the_password_is_compared_exactly(hasher: Argon2Hasher, variant: str) -> None:
    encoded = await hasher.hash("correct horse battery")

    assert not await hasher.verify(encoded, variant)


async def test_the_same_password_hashes_differently_each_time(hasher: Argon2Hasher) -> None:
    first, second = await hasher.hash("same"), await hasher.hash("same")

    assert first != second
    assert await hasher.verify(first, "same")
    assert await hasher.verify(second, "same")


async def test_verifying_against_no_hash_is_false(hasher: Argon2Hasher) -> None:
    assert not await hasher.verify(None, "any password")
    assert not await hasher.verify(None, "")


@pytest.mark.parametrize("bad", ["", "not a hash", "$argon2id$v=19$garbage", "$2b$12$" + "a" * 53])
async def test_verifying_against_an_invalid_hash_is_false(hasher: Argon2Hasher, bad: str) -> None:
    assert not await hasher.verify(bad, "any password")


async def test_a_hash_with_the_current_parameters_needs_no_rehash(hasher: Argon2Hasher) -> None:
    assert not hasher.needs_rehash(await hasher.hash("pw"))


async def test_a_hash_with_other_parameters_needs_a_rehash(
    hasher: Argon2Hasher, other_params: Argon2Hasher
) -> None:
    older = await other_params.hash("pw")

    assert hasher.needs_rehash(older)
    assert await hasher.verify(older, "pw")  # and still verifies until then


def test_an_invalid_hash_needs_a_rehash(hasher: Argon2Hasher) -> None:
    assert hasher.needs_rehash("not a hash")


async def test_hashes_past_the_waiting_bound_are_refused_at_once() -> None:
    hasher = Argon2Hasher(**CHEAP, max_concurrency=1, max_waiting=1)
    gate = threading.Event()
    try:
        # The one worker is busy and one hash waits for it: the bound is reached.
        busy = asyncio.ensure_future(hasher._run(gate.wait, 30))
        waiting = asyncio.ensure_future(hasher.hash("two"))
        await asyncio.sleep(0)

        with pytest.raises(Overloaded) as refused:
            await hasher.verify(None, "three")
        assert (refused.value.retry_after or 0) >= 1

        gate.set()
        await busy
        assert (await waiting).startswith("$argon2id$")
        assert await hasher.verify(await hasher.hash("four"), "four")
    finally:
        gate.set()
        hasher.close()
