"""Signing keys of asymmetric tokens: the first key, rotation, listing, publishing and
the lifecycle job (OPERATIONS.md: Signing keys)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from domain.ports import Clock, UnitOfWork
from domain.signing_keys import (
    KeyMaker,
    KeyPolicy,
    KeySetCache,
    KeyState,
    SigningKey,
    SigningKeyRepository,
    activation_time,
    in_order,
    published,
    retirements,
    signing_key,
    state_of,
)

UowFactory = Callable[[], UnitOfWork]


def _keys(uow: UnitOfWork) -> SigningKeyRepository:
    return uow.repository(SigningKeyRepository)


class EnsureSigningKey:
    """At the start of a process (the API, the job runner): make sure a key of the
    configured algorithm signs, creating the first one if none does, then load this
    process's key set. However many processes start at once, exactly one first key is
    created: the database decides, not a read. Raises ``SigningKeyUnreadable`` when
    SECRET_KEY cannot decrypt the key that signs. With an HMAC algorithm it does
    nothing and touches no database."""

    def __init__(
        self,
        uow: UowFactory,
        reader: UowFactory,
        key_maker: KeyMaker,
        clock: Clock,
        key_policy: KeyPolicy,
        key_set: KeySetCache,
    ) -> None:
        self._uow = uow
        self._reader = reader
        self._key_maker = key_maker
        self._clock = clock
        self._policy = key_policy
        self._key_set = key_set

    async def __call__(self) -> None:
        if not self._policy.asymmetric:
            return
        algorithm = self._policy.algorithm
        async with self._reader() as reader:
            keys = await _keys(reader).list_all()
        now = self._clock.now()
        if signing_key(keys, algorithm, now) is None:
            key = SigningKey.of(
                self._key_maker.make(algorithm), algorithm, now=now, activates_at=now
            )
            async with self._uow() as uow:
                if await _keys(uow).add_first(key):
                    await uow.commit()
            # Stored or not, the key that won is in the database now.
        await self._key_set.reload()


class RotateSigningKeys:
    """Start a rotation: add a new key of the configured algorithm. It is published at
    once (in the JWKS, and in every replica's key set within a minute) and starts
    signing after JWT_KEY_ACTIVATION_DELAY_SECONDS (at once if no key signs yet). The
    key it replaces then retires: it stays published and accepted until every token it
    signed has expired, and the job runner deletes it after that (``RunKeyLifecycle``).
    Raises ``SigningKeysUnavailable`` with an HMAC algorithm."""

    def __init__(
        self, uow: UowFactory, key_maker: KeyMaker, clock: Clock, key_policy: KeyPolicy
    ) -> None:
        self._uow = uow
        self._key_maker = key_maker
        self._clock = clock
        self._policy = key_policy

    async def __call__(self) -> SigningKey:
        self._policy.require_keys()
        algorithm = self._policy.algorithm
        material = self._key_maker.make(algorithm)
        async with self._uow() as uow:
            keys = _keys(uow)
            now = self._clock.now()
            starts = activation_time(
                await keys.list_all(), algorithm, now, self._policy.activation_delay
            )
            key = SigningKey.of(material, algorithm, now=now, activates_at=starts)
            await keys.add(key)
            await uow.commit()
        return key


@dataclass(frozen=True)
class ListedKey:
    key: SigningKey
    state: KeyState


class ListSigningKeys:
    """Every stored signing key with its state (pending, active or retired), in the
    order they start signing. Raises ``SigningKeysUnavailable`` with an HMAC
    algorithm."""

    def __init__(self, reader: UowFactory, clock: Clock, key_policy: KeyPolicy) -> None:
        self._reader = reader
        self._clock = clock
        self._policy = key_policy

    async def __call__(self) -> list[ListedKey]:
        self._policy.require_keys()
        async with self._reader() as uow:
            keys = in_order(await _keys(uow).list_all())
        now = self._clock.now()
        algorithm = self._policy.algorithm
        return [ListedKey(key, state_of(key, keys, algorithm, now)) for key in keys]


class PublishedSigningKeys:
    """The public keys that may sign or still verify a live token: every key of the
    configured algorithm, pending ones included, until the last token it signed has
    expired. Empty with an HMAC algorithm: there is nothing public to verify with."""

    def __init__(self, reader: UowFactory, clock: Clock, key_policy: KeyPolicy) -> None:
        self._reader = reader
        self._clock = clock
        self._policy = key_policy

    async def __call__(self) -> list[SigningKey]:
        if not self._policy.asymmetric:
            return []
        async with self._reader() as uow:
            keys = await _keys(uow).list_all()
        return published(keys, self._policy.algorithm, self._clock.now())


@dataclass(frozen=True)
class KeyLifecycleResult:
    retired: int
    deleted: int


class RunKeyLifecycle:
    """The job runner's signing-key housekeeping; any schedule will do (every minute or
    few), and several runners may run it at once. A pending key needs nothing to start
    signing: its activation time does that. Every key superseded by one that now signs
    is marked retired, as of the moment it was superseded, with the time after which
    no token it signed can still be live (that moment, plus the longest token
    lifetime, plus a margin for replicas that reload late); keys past that time are
    deleted, and leave every replica's key set at its next reload. Returns how many
    keys it retired and deleted; with an HMAC algorithm it does nothing."""

    def __init__(self, uow: UowFactory, clock: Clock, key_policy: KeyPolicy) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = key_policy

    async def __call__(self) -> KeyLifecycleResult:
        if not self._policy.asymmetric:
            return KeyLifecycleResult(retired=0, deleted=0)
        now = self._clock.now()
        async with self._uow() as uow:
            keys = _keys(uow)
            due = retirements(
                await keys.list_all(), self._policy.algorithm, now, self._policy.token_lifetime
            )
            retired = 0
            for retirement in due:
                retired += await keys.retire(retirement)
            deleted = await keys.delete_expired(now)
            await uow.commit()
        return KeyLifecycleResult(retired=retired, deleted=deleted)
