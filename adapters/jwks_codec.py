"""JWTs signed with the asymmetric keys stored in the database (ES256, EdDSA), from a
key set cached in memory and kept fresh in the background.

Verification reads the header first and trusts only the local key set: a token names
its key by ``kid``, is verified with that key's public part and that key's algorithm
only, and is refused when its kid is unknown or when it carries a header that points
somewhere else for a key (``jku``, ``x5u``, ``jwk``, ``x5c``). So ``alg: none`` and
HS256 with the public key as the secret both fail.

The decode path never waits for the database: a token with an unknown kid is refused
at once and asks the background task for a reload (at most once per cooldown), so the
next token signed with a key just published is accepted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence, Set
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import jwt

from adapters.jwt_codec import BaseJwtCodec
from adapters.key_crypto import AesGcmKeyMaker, PrivateKey, PublicKey, load_public_key
from domain.errors import DomainError, InvalidToken, ServiceUnavailable
from domain.ports import Clock
from domain.signing_keys import KeySetCache, SigningKey, SigningKeyUnreadable, signers, signing_key

logger = logging.getLogger(__name__)

# Headers by which a token would choose its own verification key.
FOREIGN_KEY_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
# Every replica sees a rotation within a minute (OPERATIONS.md).
REFRESH_SECONDS = 30.0
UNKNOWN_KID_COOLDOWN_SECONDS = 10.0

KeyLoader = Callable[[], Awaitable[Sequence[SigningKey]]]


@dataclass(frozen=True)
class _Verifier:
    public: PublicKey
    algorithm: str


@dataclass(frozen=True)
class KeySet:
    """One load of the keys: what verifies (every published key) and what may sign
    (the signing key and the pending ones, decrypted)."""

    verifiers: dict[str, _Verifier] = field(default_factory=dict)
    signers: list[SigningKey] = field(default_factory=list)
    private: dict[str, PrivateKey] = field(default_factory=dict, repr=False)


class JwksCodec(BaseJwtCodec, KeySetCache):
    """Signs with the key the domain's rule picks at each moment (so a pending key takes
    over at its activation time without a reload) and verifies against the cached set."""

    def __init__(
        self,
        load_keys: KeyLoader,
        key_maker: AesGcmKeyMaker,
        *,
        algorithm: str,
        issuer: str | None = None,
        audience: str | None = None,
        clock: Clock | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
        unknown_kid_cooldown: float = UNKNOWN_KID_COOLDOWN_SECONDS,
    ) -> None:
        super().__init__(issuer=issuer, audience=audience, clock=clock)
        self._load_keys = load_keys
        self._key_maker = key_maker
        self._algorithm = algorithm
        self._refresh_seconds = refresh_seconds
        self._cooldown = unknown_kid_cooldown
        self._keys = KeySet()
        self._reload_wanted = asyncio.Event()
        self._next_unknown_reload = 0.0

    @property
    def kids(self) -> frozenset[str]:
        """The kids this process accepts now."""
        return frozenset(self._keys.verifiers)

    async def reload(self) -> None:
        keys = await self._load_keys()
        gone = self._keys.verifiers.keys() - {key.kid for key in keys}
        try:
            self._keys = self._loaded(keys)
        except SigningKeyUnreadable:
            # A key that left the store (revoked, or past its tokens) is refused even
            # when the rest of the set cannot be replaced.
            self._forget(gone)
            raise
        if gone:
            # ``_trusts`` already refuses them; this frees their entries at once.
            self._verified_access.cache_clear()

    def _loaded(self, keys: Sequence[SigningKey]) -> KeySet:
        """The set of ``keys``; raises before anything is replaced, so that the set in
        use stays whole."""
        to_sign = signers(keys, self._algorithm, self._clock.now())
        return KeySet(
            verifiers={
                key.kid: _Verifier(load_public_key(key.public_jwk), key.algorithm) for key in keys
            },
            signers=to_sign,
            private={key.kid: self._key_maker.open(key) for key in to_sign},
        )

    def _forget(self, kids: Set[str]) -> None:
        """Stop verifying and signing with ``kids`` at once."""
        if not kids:
            return
        keys = self._keys
        self._keys = KeySet(
            verifiers={kid: v for kid, v in keys.verifiers.items() if kid not in kids},
            signers=[key for key in keys.signers if key.kid not in kids],
            private={kid: p for kid, p in keys.private.items() if kid not in kids},
        )
        self._verified_access.cache_clear()

    async def keep_fresh(self) -> None:
        while True:
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that comes
            # as the event is set, and the task would never stop.
            with suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_seconds):
                    await self._reload_wanted.wait()
            self._reload_wanted.clear()
            try:
                await self.reload()
            except Exception as exc:
                reason = exc.detail if isinstance(exc, DomainError) else type(exc).__name__
                logger.warning("signing keys not reloaded (%s): the current set stays", reason)

    def _signing_key(self) -> tuple[Any, str, dict[str, Any] | None]:
        keys = self._keys
        key = signing_key(keys.signers, self._algorithm, self._clock.now())
        if key is None:
            raise ServiceUnavailable("No signing key is loaded.")
        return keys.private[key.kid], key.algorithm, {"kid": key.kid}

    def _verification_key(self, token: str) -> tuple[Any, str, str | None]:
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken() from exc
        if FOREIGN_KEY_HEADERS & header.keys():
            raise InvalidToken()
        kid = header.get("kid")
        verifier = self._keys.verifiers.get(kid) if isinstance(kid, str) else None
        if verifier is None:
            self._unknown_kid()
            raise InvalidToken()
        return verifier.public, verifier.algorithm, kid

    def _trusts(self, kid: str | None) -> bool:
        return kid is not None and kid in self._keys.verifiers

    def _unknown_kid(self) -> None:
        # A key published a moment ago, not yet in this process's set: reload soon, but
        # never more than once per cooldown, whatever a client sends.
        now = time.monotonic()
        if now >= self._next_unknown_reload:
            self._next_unknown_reload = now + self._cooldown
            self._reload_wanted.set()


class NoKeySet(KeySetCache):
    """The key set of an HMAC algorithm: nothing to load, nothing to refresh."""

    async def reload(self) -> None:
        return None

    async def keep_fresh(self) -> None:
        return None
