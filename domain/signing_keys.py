"""Signing keys of asymmetric JWTs (ES256, EdDSA): the entity, the rules of rotation,
and the ports they need.

A key is published (in the JWKS and in every replica's key set) from the moment it is
stored, signs from its activation time on, and once a newer key signs it is retired:
still published and accepted until every token it signed has expired, then deleted. A
revoked key (a compromise) is deleted at once: it leaves the JWKS, and every replica's
key set at its next reload, and every token it signed is refused from then on.

Each algorithm's keys follow these rules among themselves only: a process configured
with one algorithm never retires a key of another, which another process may sign with.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from domain.errors import DomainError, ErrorCategory, NotFound

ASYMMETRIC_ALGORITHMS = frozenset({"ES256", "EdDSA"})
# A replica may go on signing with a superseded key until its next reload of the key
# set (every 30 s, OPERATIONS.md: "within a minute"), and clocks differ a little: a
# retired key stays published this much longer than the longest-lived token it signed.
RELOAD_MARGIN = timedelta(minutes=5)


class SigningKeysUnavailable(DomainError):
    # Not an outage: this deployment's algorithm has no keys to manage.
    category = ErrorCategory.REJECTED
    code = "signing_keys_unavailable"
    message = (
        "Signing keys are only used with ALGORITHM=ES256 or EdDSA; with an HMAC algorithm"
        " tokens are signed with SECRET_KEY."
    )


class SigningKeyUnreadable(DomainError):
    """SECRET_KEY cannot decrypt a stored private key: not the key it was sealed with."""

    # The deployment cannot sign until an operator gives it the right SECRET_KEY.
    category = ErrorCategory.UNAVAILABLE
    code = "signing_key_unreadable"

    def __init__(self, kid: str) -> None:
        super().__init__(
            f"SECRET_KEY cannot decrypt the signing key {kid}: it is not the SECRET_KEY"
            " the signing keys were encrypted with"
        )
        self.kid = kid


class SigningKeyNotFound(NotFound):
    message = "No signing key has that kid: `app keys list` shows the stored keys."


class KeyState(StrEnum):
    PENDING = "pending"  # published, not signing yet
    ACTIVE = "active"  # the one that signs now
    RETIRED = "retired"  # superseded: verifies the tokens it signed until it is deleted


@dataclass(frozen=True)
class KeyPolicy:
    """How this deployment uses keys: the configured algorithm, how long a new key is
    published before it signs, and the longest lifetime of a token it signs (the
    refresh token's: refresh tokens are JWTs too)."""

    algorithm: str
    token_lifetime: timedelta
    activation_delay: timedelta = timedelta(seconds=600)

    @property
    def asymmetric(self) -> bool:
        return self.algorithm in ASYMMETRIC_ALGORITHMS

    def require_keys(self) -> None:
        if not self.asymmetric:
            raise SigningKeysUnavailable()


@dataclass(frozen=True)
class KeyMaterial:
    """A new key pair as the ``KeyMaker`` hands it out: the private part sealed."""

    kid: str
    public_jwk: Mapping[str, str]
    sealed_private: bytes = field(repr=False)


@dataclass(frozen=True)
class SigningKey:
    kid: str  # the RFC 7638 thumbprint of the public JWK
    algorithm: str
    # The public parameters only (kty, crv, x, and y for EC): never a private one.
    public_jwk: Mapping[str, str]
    # The private key, encrypted (AES-GCM) under a key derived from SECRET_KEY.
    sealed_private: bytes = field(repr=False)
    created_at: datetime
    activates_at: datetime  # signs from then on, until a newer key does
    retired_at: datetime | None = None  # when a newer key took over
    delete_after: datetime | None = None  # when the last token it signed has expired

    @classmethod
    def of(
        cls, material: KeyMaterial, algorithm: str, *, now: datetime, activates_at: datetime
    ) -> SigningKey:
        """A new key from freshly made material, stored at ``now``."""
        return cls(
            kid=material.kid,
            algorithm=algorithm,
            public_jwk=dict(material.public_jwk),
            sealed_private=material.sealed_private,
            created_at=now,
            activates_at=activates_at,
        )

    def jwk(self) -> dict[str, str]:
        """The public JWK as the JWKS publishes it."""
        return {**self.public_jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def is_retired(self, now: datetime) -> bool:
        return self.retired_at is not None and self.retired_at <= now

    def is_published(self, now: datetime) -> bool:
        """Whether a live token may still carry this key's signature."""
        return self.delete_after is None or self.delete_after > now


def _order(key: SigningKey) -> tuple[datetime, datetime, str]:
    return (key.activates_at, key.created_at, key.kid)


def in_order(keys: Iterable[SigningKey]) -> list[SigningKey]:
    """The keys in the order they (are to) start signing."""
    return sorted(keys, key=_order)


def signing_key(keys: Iterable[SigningKey], algorithm: str, now: datetime) -> SigningKey | None:
    """The key that signs at ``now``: the newest of ``algorithm`` whose activation time
    has passed and that is not retired."""
    candidates = [
        key
        for key in keys
        if key.algorithm == algorithm and key.activates_at <= now and not key.is_retired(now)
    ]
    return max(candidates, key=_order) if candidates else None


def published(keys: Iterable[SigningKey], algorithm: str, now: datetime) -> list[SigningKey]:
    """The keys of ``algorithm`` that may sign or still verify a live token, in order."""
    return in_order(k for k in keys if k.algorithm == algorithm and k.is_published(now))


def signers(keys: Iterable[SigningKey], algorithm: str, now: datetime) -> list[SigningKey]:
    """The keys of ``algorithm`` that sign at ``now`` or will: the signing key and the
    pending ones, in order. A process must be able to open each of them."""
    keys = list(keys)
    current = signing_key(keys, algorithm, now)
    return in_order(
        key
        for key in keys
        if key.algorithm == algorithm
        and ((current is not None and key.kid == current.kid) or key.activates_at > now)
    )


def state_of(key: SigningKey, keys: Sequence[SigningKey], now: datetime) -> KeyState:
    """What ``key`` is doing at ``now`` among the ``keys`` of its own algorithm (a key of
    another algorithm than this process's may sign for another process): a key that no
    longer signs is retired even before the lifecycle job has marked it so."""
    if key.activates_at > now and not key.is_retired(now):
        return KeyState.PENDING
    signer = signing_key(keys, key.algorithm, now)
    if signer is not None and signer.kid == key.kid:
        return KeyState.ACTIVE
    return KeyState.RETIRED


def activation_time(
    keys: Iterable[SigningKey], algorithm: str, now: datetime, delay: timedelta
) -> datetime:
    """When a key added now starts signing: after ``delay``, so that every verifier has
    it before it signs anything; at once when no key signs yet."""
    return now + delay if signing_key(keys, algorithm, now) is not None else now


@dataclass(frozen=True)
class Retirement:
    kid: str
    at: datetime  # when its successor started signing
    delete_after: datetime


def retirements(
    keys: Sequence[SigningKey], algorithm: str, now: datetime, token_lifetime: timedelta
) -> list[Retirement]:
    """The keys of ``algorithm`` that no longer sign but are not marked retired yet:
    every one that started signing before the current signer, each retired when the next
    one took over. A pending key is never retired, and a key of another algorithm never
    is: a process configured for another algorithm (a deploy in progress, a job runner
    configured unlike the API) may be signing with it. Each stays published until the
    longest token it could have signed has expired, plus the reload margin."""
    signer = signing_key(keys, algorithm, now)
    if signer is None:
        return []
    # The keys of ``algorithm`` that have started signing: each one took over from the
    # keys before it.
    started = in_order(k for k in keys if k.algorithm == algorithm and k.activates_at <= now)
    found = []
    for key in started:
        if key.retired_at is not None or _order(key) >= _order(signer):
            continue
        at = next(s.activates_at for s in started if _order(s) > _order(key))
        found.append(Retirement(key.kid, at, at + token_lifetime + RELOAD_MARGIN))
    return found


class SigningKeyRepository(abc.ABC):
    """The stored signing keys. Writes are single conditional statements: several
    processes may run them at once."""

    @abc.abstractmethod
    async def list_all(self) -> list[SigningKey]:
        """Every stored key, whatever its state, in the order they start signing."""

    @abc.abstractmethod
    async def add(self, key: SigningKey) -> None:
        """Store a new key (a rotation)."""

    @abc.abstractmethod
    async def add_first(self, key: SigningKey) -> bool:
        """Store ``key`` as the first key of its algorithm, unless another process
        already has: whether it was stored. The database decides (a unique constraint
        on a "first of its algorithm" marker, released when that key retires), so of any
        number of processes starting at once exactly one stores its key. Run it alone in
        its unit of work: on PostgreSQL the losing insert aborts the transaction."""

    @abc.abstractmethod
    async def retire(self, retirement: Retirement) -> bool:
        """Mark the key retired, unless it already is; whether this call did."""

    @abc.abstractmethod
    async def delete_expired(self, now: datetime) -> int:
        """Delete the retired keys whose ``delete_after`` has passed; how many."""

    @abc.abstractmethod
    async def delete(self, kid: str) -> bool:
        """Delete the key ``kid`` at once, whatever its state (a revocation): whether
        this call did. Of several processes deleting one key at once, exactly one
        does."""


class KeyMaker(abc.ABC):
    """Makes key pairs: the cryptography lives in an adapter."""

    @abc.abstractmethod
    def make(self, algorithm: str) -> KeyMaterial:
        """A fresh key pair for ``algorithm`` (ES256: P-256; EdDSA: Ed25519). Its kid is
        the RFC 7638 thumbprint of its public JWK; its private part comes sealed with
        AES-GCM under a key derived from SECRET_KEY and bound to the kid, never in the
        clear."""

    @abc.abstractmethod
    def check_readable(self, key: SigningKey) -> None:
        """Raise ``SigningKeyUnreadable`` unless this process's SECRET_KEY opens the
        private part of ``key``: the proof, before a key is stored, that every process
        sharing that SECRET_KEY can sign with it."""


class KeySetCache(abc.ABC):
    """The key set this process signs and verifies with, held in memory."""

    @abc.abstractmethod
    async def reload(self) -> None:
        """Read the published keys again and decrypt those that sign now or will.
        Raises ``SigningKeyUnreadable`` (and keeps the set it had) when SECRET_KEY
        cannot decrypt one of them."""

    @abc.abstractmethod
    async def keep_fresh(self) -> None:
        """Reload periodically, and soon after a token names an unknown kid (at most
        once per cooldown), until cancelled. A failed reload is logged and the current
        set stays: a running process keeps serving."""
