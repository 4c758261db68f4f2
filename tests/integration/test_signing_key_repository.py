"""SqlSigningKeyRepository on SQLite and PostgreSQL: the first key created exactly
once by processes that start together, one key deleted once by processes deleting it
at once, and rotations, retirements and revocations written with their audit events in
one transaction. What the port promises on every backend is specified in
tests/contracts/test_signing_key_repository.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import TracebackType
from typing import TypeVar

import pytest

from adapters.database import Database
from adapters.jwks_codec import JwksCodec
from adapters.key_crypto import AesGcmKeyMaker
from adapters.unit_of_work import unit_of_work
from application.signing_keys import (
    EnsureSigningKey,
    PublishedSigningKeys,
    RevokeSigningKey,
    RotateSigningKeys,
    RunKeyLifecycle,
)
from domain.audit import AuditEvent, AuditFilter, AuditLog
from domain.model import PageRequest
from domain.ports import UnitOfWork
from domain.signing_keys import (
    KeyPolicy,
    SigningKey,
    SigningKeyNotFound,
    SigningKeyRepository,
    SigningKeyUnreadable,
)
from tests.fakes import FakeClock
from tests.integration.builders import NOW

R = TypeVar("R")
T = TypeVar("T")
SECRET = "integration-secret-key-0123456789abcdef"
MAKER = AesGcmKeyMaker(SECRET)
HOUR = timedelta(hours=1)
POLICY = KeyPolicy(algorithm="ES256", token_lifetime=timedelta(days=7))


def new_key() -> SigningKey:
    return SigningKey.of(MAKER.make("ES256"), "ES256", now=NOW, activates_at=NOW)


async def stored(database: Database) -> list[SigningKey]:
    async with unit_of_work(database, read_only=True) as uow:
        return await uow.repository(SigningKeyRepository).list_all()


async def audited(database: Database) -> list[AuditEvent]:
    """The stored audit events, oldest first."""
    async with unit_of_work(database, read_only=True) as uow:
        events, _ = await uow.repository(AuditLog).page(AuditFilter(), PageRequest(size=100))
    return events[::-1]


def uows(database: Database) -> Callable[[], UnitOfWork]:
    return lambda: unit_of_work(database)


async def write(database: Database, step: Callable[[SigningKeyRepository], Awaitable[T]]) -> T:
    async with unit_of_work(database) as uow:
        result = await step(uow.repository(SigningKeyRepository))
        await uow.commit()
        return result


async def test_two_first_keys_inserted_at_once_store_exactly_one(database: Database) -> None:
    """The second insert waits on the first transaction's lock and then loses to it."""
    first_inserted = asyncio.Event()
    release = asyncio.Event()
    one, two = new_key(), new_key()

    async def first() -> bool:
        async with unit_of_work(database) as uow:
            stored_it = await uow.repository(SigningKeyRepository).add_first(one)
            first_inserted.set()
            await release.wait()
            await uow.commit()
            return stored_it

    async def second() -> bool:
        await first_inserted.wait()
        async with unit_of_work(database) as uow:
            stored_it = await uow.repository(SigningKeyRepository).add_first(two)
            if stored_it:
                await uow.commit()
            return stored_it

    racing = asyncio.gather(first(), second())
    await first_inserted.wait()
    await asyncio.sleep(0.3)  # the second insert is waiting behind the first by now
    release.set()

    assert list(await asyncio.wait_for(racing, timeout=30)) == [True, False]
    assert [key.kid for key in await stored(database)] == [one.kid]


class _ReadThenWait(UnitOfWork):
    """A reader that, once done, waits for the other process to have read too: both
    see no key before either writes."""

    def __init__(self, inner: UnitOfWork, barrier: asyncio.Barrier) -> None:
        self._inner = inner
        self._barrier = barrier

    def repository(self, port: type[R]) -> R:
        return self._inner.repository(port)

    async def __aenter__(self) -> _ReadThenWait:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)
        await self._barrier.wait()

    async def commit(self) -> None:
        await self._inner.commit()

    async def rollback(self) -> None:
        await self._inner.rollback()


async def test_two_processes_starting_at_once_create_one_first_key(
    database: Database, database_url: str
) -> None:
    other_process = Database(database_url)
    barrier = asyncio.Barrier(2)
    clock = FakeClock(NOW)

    def start(db: Database) -> tuple[EnsureSigningKey, JwksCodec]:
        def reader() -> UnitOfWork:
            return unit_of_work(db, read_only=True)

        published = PublishedSigningKeys(reader, clock, POLICY)
        codec = JwksCodec(published, MAKER, algorithm="ES256", clock=clock)
        ensure = EnsureSigningKey(
            lambda: unit_of_work(db),
            lambda: _ReadThenWait(reader(), barrier),
            MAKER,
            clock,
            POLICY,
            codec,
        )
        return ensure, codec

    try:
        (ensure_a, codec_a), (ensure_b, codec_b) = start(database), start(other_process)
        await asyncio.wait_for(asyncio.gather(ensure_a(), ensure_b()), timeout=30)
    finally:
        await other_process.dispose()

    [key] = await stored(database)
    assert codec_a.kids == codec_b.kids == {key.kid}


async def test_two_deletes_of_one_key_at_once_delete_it_once(database: Database) -> None:
    """The second waits on the first transaction's row lock, then finds nothing."""
    key = new_key()
    await write(database, lambda keys: keys.add(key))
    first_deleted = asyncio.Event()
    release = asyncio.Event()

    async def first() -> bool:
        async with unit_of_work(database) as uow:
            deleted = await uow.repository(SigningKeyRepository).delete(key.kid)
            first_deleted.set()
            await release.wait()
            await uow.commit()
            return deleted

    async def second() -> bool:
        await first_deleted.wait()
        return await write(database, lambda keys: keys.delete(key.kid))

    racing = asyncio.gather(first(), second())
    await first_deleted.wait()
    await asyncio.sleep(0.3)  # the second delete is waiting behind the first by now
    release.set()

    assert list(await asyncio.wait_for(racing, timeout=30)) == [True, False]
    assert await stored(database) == []


async def test_a_rotation_is_stored_with_its_audit_event(database: Database) -> None:
    clock = FakeClock(NOW)
    first = await RotateSigningKeys(uows(database), MAKER, clock, POLICY)()

    [event] = await audited(database)

    assert (event.action.value, event.target_user_id) == ("key.rotated", None)
    assert event.details == {
        "kid": first.kid,
        "algorithm": "ES256",
        "activates_at": NOW.isoformat(),
    }
    assert first.kid in {key.kid for key in await stored(database)}


async def test_a_rotation_with_another_secret_key_stores_nothing(database: Database) -> None:
    clock = FakeClock(NOW)
    current = await RotateSigningKeys(uows(database), MAKER, clock, POLICY)()
    stranger = AesGcmKeyMaker("another-deployment-secret-0123456789abcdef")

    with pytest.raises(SigningKeyUnreadable):
        await RotateSigningKeys(uows(database), stranger, clock, POLICY)()

    assert [key.kid for key in await stored(database)] == [current.kid]
    assert len(await audited(database)) == 1


async def test_a_retirement_by_the_lifecycle_is_stored_with_its_audit_event(
    database: Database,
) -> None:
    clock = FakeClock(NOW)
    old = await RotateSigningKeys(uows(database), MAKER, clock, POLICY)()
    new = await RotateSigningKeys(uows(database), MAKER, clock, POLICY)()
    clock.current = new.activates_at

    result = await RunKeyLifecycle(uows(database), clock, POLICY)()

    assert result.retired == 1
    event = (await audited(database))[-1]
    assert (event.action.value, event.actor_type.value) == ("key.retired", "system")
    assert (event.details["kid"], event.details["algorithm"]) == (old.kid, "ES256")


async def test_revoking_the_signing_key_stores_its_successor_and_both_events_at_once(
    database: Database,
) -> None:
    clock = FakeClock(NOW)
    old = await RotateSigningKeys(uows(database), MAKER, clock, POLICY)()
    clock.current = NOW + HOUR

    done = await RevokeSigningKey(uows(database), MAKER, clock, POLICY)(old.kid)

    assert done.successor is not None
    [key] = await stored(database)
    assert (key.kid, key.activates_at) == (done.successor.kid, NOW + HOUR)
    assert MAKER.open(key) is not None
    events = [(e.action.value, e.details.get("kid")) for e in await audited(database)]
    assert events[1:] == [("key.revoked", old.kid), ("key.rotated", key.kid)]


async def test_revoking_an_unknown_kid_stores_nothing(database: Database) -> None:
    clock = FakeClock(NOW)
    await RotateSigningKeys(uows(database), MAKER, clock, POLICY)()

    with pytest.raises(SigningKeyNotFound):
        await RevokeSigningKey(uows(database), MAKER, clock, POLICY)("no-such-kid")

    assert len(await stored(database)) == len(await audited(database)) == 1
