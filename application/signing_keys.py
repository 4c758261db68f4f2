"""Signing keys of asymmetric tokens: the first key, rotation, revocation, listing,
publishing and the lifecycle job (OPERATIONS.md: Signing keys). Rotations, retirements
and revocations are audited in the transaction of the change (``key.*``: the kid and
algorithm, never key material)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from application.audit import record
from domain.audit import Action
from domain.errors import Raises
from domain.ports import Clock, UnitOfWork
from domain.signing_keys import (
    KeyMaker,
    KeyPolicy,
    KeySetCache,
    KeyState,
    SigningKey,
    SigningKeyNotFound,
    SigningKeyRepository,
    SigningKeysUnavailable,
    SigningKeyUnreadable,
    activation_time,
    in_order,
    published,
    retirements,
    signers,
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

    raises: Raises = (SigningKeyUnreadable,)

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

    Before it stores anything it proves that this SECRET_KEY opens the keys that sign
    now or will, and the new sealed key: a rotation with another SECRET_KEY than the
    deployment's raises ``SigningKeyUnreadable`` and changes nothing (it would store a
    key no process could sign with). Records ``key.rotated``. Raises
    ``SigningKeysUnavailable`` with an HMAC algorithm."""

    raises: Raises = (SigningKeysUnavailable, SigningKeyUnreadable)

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
            stored = await keys.list_all()
            for current in signers(stored, algorithm, now):
                self._key_maker.check_readable(current)
            starts = activation_time(stored, algorithm, now, self._policy.activation_delay)
            key = SigningKey.of(material, algorithm, now=now, activates_at=starts)
            self._key_maker.check_readable(key)
            await keys.add(key)
            await _rotated(uow, key, now)
            await uow.commit()
        return key


async def _rotated(uow: UnitOfWork, key: SigningKey, now: datetime) -> None:
    await record(
        uow,
        Action.KEY_ROTATED,
        None,
        now,
        kid=key.kid,
        algorithm=key.algorithm,
        activates_at=key.activates_at.isoformat(),
    )


@dataclass(frozen=True)
class Revocation:
    revoked: SigningKey
    # The key made to sign in its place at once, when it was the one that signed.
    successor: SigningKey | None = None


class RevokeSigningKey:
    """Revoke a key at once (it is compromised): it is deleted, so it leaves the JWKS
    now and every replica's key set at its next reload (within a minute), after which
    every token it signed is refused. Whatever its state and algorithm.

    When it is the key that signs now (for its algorithm: a process configured with it
    must go on signing), a new key of that algorithm is stored in the same transaction
    and signs at once: no activation delay, as the old one must not sign on. SECRET_KEY
    is proven first to open the revoked key and the new one (``SigningKeyUnreadable``,
    nothing changed, otherwise). Records ``key.revoked``, and ``key.rotated`` for the new
    key. Raises ``SigningKeyNotFound`` for an unknown kid (or one revoked meanwhile) and
    ``SigningKeysUnavailable`` with an HMAC algorithm."""

    raises: Raises = (SigningKeysUnavailable, SigningKeyNotFound, SigningKeyUnreadable)

    def __init__(
        self, uow: UowFactory, key_maker: KeyMaker, clock: Clock, key_policy: KeyPolicy
    ) -> None:
        self._uow = uow
        self._key_maker = key_maker
        self._clock = clock
        self._policy = key_policy

    async def __call__(self, kid: str) -> Revocation:
        self._policy.require_keys()
        async with self._uow() as uow:
            keys = _keys(uow)
            now = self._clock.now()
            stored = await keys.list_all()
            key = next((k for k in stored if k.kid == kid), None)
            if key is None:
                raise SigningKeyNotFound()
            successor = self._successor(stored, key, now)
            if not await keys.delete(kid):
                raise SigningKeyNotFound()  # another process revoked it meanwhile
            replaced = {"replaced_by": successor.kid} if successor is not None else {}
            await record(
                uow, Action.KEY_REVOKED, None, now, kid=key.kid, algorithm=key.algorithm, **replaced
            )
            if successor is not None:
                await keys.add(successor)
                await _rotated(uow, successor, now)
            await uow.commit()
        return Revocation(key, successor)

    def _successor(
        self, stored: list[SigningKey], key: SigningKey, now: datetime
    ) -> SigningKey | None:
        """The key to sign in place of ``key`` from ``now``, if ``key`` signs now."""
        signer = signing_key(stored, key.algorithm, now)
        if signer is None or signer.kid != key.kid:
            return None
        self._key_maker.check_readable(key)  # this SECRET_KEY is the deployment's
        material = self._key_maker.make(key.algorithm)
        successor = SigningKey.of(material, key.algorithm, now=now, activates_at=now)
        self._key_maker.check_readable(successor)
        return successor


@dataclass(frozen=True)
class ListedKey:
    key: SigningKey
    state: KeyState


class ListSigningKeys:
    """Every stored signing key with its state (pending, active or retired among the
    keys of its own algorithm), in the order they start signing. Raises
    ``SigningKeysUnavailable`` with an HMAC algorithm."""

    raises: Raises = (SigningKeysUnavailable,)

    def __init__(self, reader: UowFactory, clock: Clock, key_policy: KeyPolicy) -> None:
        self._reader = reader
        self._clock = clock
        self._policy = key_policy

    async def __call__(self) -> list[ListedKey]:
        self._policy.require_keys()
        async with self._reader() as uow:
            keys = in_order(await _keys(uow).list_all())
        now = self._clock.now()
        return [ListedKey(key, state_of(key, keys, now)) for key in keys]


class PublishedSigningKeys:
    """The public keys that may sign or still verify a live token: every key of the
    configured algorithm, pending ones included, until the last token it signed has
    expired. Empty with an HMAC algorithm: there is nothing public to verify with."""

    raises: Raises = ()

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
    signing: its activation time does that. Every key of the configured algorithm
    superseded by one that now signs is marked retired (``key.retired``), as of the
    moment it was superseded, with the time after which no token it signed can still
    be live (that moment, plus the longest token lifetime, plus a margin for replicas
    that reload late); retired keys past that time are deleted, whatever their
    algorithm, and leave every replica's key set at its next reload. Keys of another
    algorithm are never retired: a process configured with it may sign with them.
    Returns how many keys it retired and deleted; with an HMAC algorithm it does
    nothing."""

    raises: Raises = ()

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
                if await keys.retire(retirement):
                    retired += 1
                    await record(
                        uow,
                        Action.KEY_RETIRED,
                        None,
                        now,
                        kid=retirement.kid,
                        algorithm=self._policy.algorithm,
                        delete_after=retirement.delete_after.isoformat(),
                    )
            deleted = await keys.delete_expired(now)
            await uow.commit()
        return KeyLifecycleResult(retired=retired, deleted=deleted)
