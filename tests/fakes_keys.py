"""In-memory fakes of the signing-key ports, for the unit tests of the rules and use
cases (plug the repository in with ``FakeUnitOfWork(repositories={...})``)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from domain.signing_keys import (
    KeyMaker,
    KeyMaterial,
    KeyPolicy,
    KeySetCache,
    Retirement,
    SigningKey,
    SigningKeyRepository,
    SigningKeyUnreadable,
    in_order,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LIFETIME = timedelta(days=7)
DELAY = timedelta(minutes=10)
ES256 = KeyPolicy(algorithm="ES256", token_lifetime=LIFETIME, activation_delay=DELAY)
HS256 = KeyPolicy(algorithm="HS256", token_lifetime=LIFETIME, activation_delay=DELAY)


class FakeSigningKeyRepository(SigningKeyRepository):
    """Keys by kid, with the storage's one rule: one unretired "first key" per
    algorithm."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys: dict[str, SigningKey] = {key.kid: key for key in keys}
        self.first_of: dict[str, str] = {}  # algorithm -> kid

    async def list_all(self) -> list[SigningKey]:
        return in_order(self.keys.values())

    async def add(self, key: SigningKey) -> None:
        assert key.kid not in self.keys
        self.keys[key.kid] = key

    async def add_first(self, key: SigningKey) -> bool:
        if key.algorithm in self.first_of:
            return False
        await self.add(key)
        self.first_of[key.algorithm] = key.kid
        return True

    async def retire(self, retirement: Retirement) -> bool:
        key = self.keys.get(retirement.kid)
        if key is None or key.retired_at is not None:
            return False
        self.keys[key.kid] = replace(
            key, retired_at=retirement.at, delete_after=retirement.delete_after
        )
        self.first_of = {a: kid for a, kid in self.first_of.items() if kid != key.kid}
        return True

    async def delete_expired(self, now: datetime) -> int:
        doomed = [
            kid
            for kid, key in self.keys.items()
            if key.delete_after is not None and key.delete_after <= now
        ]
        for kid in doomed:
            del self.keys[kid]
        return len(doomed)

    async def delete(self, kid: str) -> bool:
        if self.keys.pop(kid, None) is None:
            return False
        self.first_of = {a: k for a, k in self.first_of.items() if k != kid}
        return True


class FakeKeyMaker(KeyMaker):
    """Numbered "keys" with a recognisable fake seal: no cryptography."""

    # The kids whose seal this "SECRET_KEY" cannot open (another deployment's).
    unreadable: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self.made: list[str] = []

    def make(self, algorithm: str) -> KeyMaterial:
        kid = f"kid-{next(self._numbers)}"
        self.made.append(kid)
        jwk = {"kty": "EC", "crv": "P-256", "x": f"x-{kid}", "y": f"y-{kid}"}
        return KeyMaterial(kid=kid, public_jwk=jwk, sealed_private=f"sealed {kid}".encode())

    def check_readable(self, key: SigningKey) -> None:
        if key.kid in self.unreadable:
            raise SigningKeyUnreadable(key.kid)


class FakeKeySet(KeySetCache):
    def __init__(self) -> None:
        self.reloads = 0

    async def reload(self) -> None:
        self.reloads += 1

    async def keep_fresh(self) -> None:
        return None


def make_key(
    kid: str,
    *,
    activates_at: datetime = NOW,
    algorithm: str = "ES256",
    created_at: datetime | None = None,
    retired_at: datetime | None = None,
    delete_after: datetime | None = None,
) -> SigningKey:
    return SigningKey(
        kid=kid,
        algorithm=algorithm,
        public_jwk={"kty": "EC", "crv": "P-256", "x": "x", "y": "y"},
        sealed_private=b"sealed",
        created_at=created_at or min(activates_at, NOW),
        activates_at=activates_at,
        retired_at=retired_at,
        delete_after=delete_after,
    )
