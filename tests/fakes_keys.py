"""In-memory fakes of the signing-key ports other than the repository (which is in
``tests/fakes.py``, with the others), for the unit tests of the rules and use cases."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from domain.signing_keys import (
    KeyMaker,
    KeyMaterial,
    KeyPolicy,
    KeySetCache,
    SigningKey,
    SigningKeyUnreadable,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LIFETIME = timedelta(days=7)
DELAY = timedelta(minutes=10)
ES256 = KeyPolicy(algorithm="ES256", token_lifetime=LIFETIME, activation_delay=DELAY)
HS256 = KeyPolicy(algorithm="HS256", token_lifetime=LIFETIME, activation_delay=DELAY)


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
