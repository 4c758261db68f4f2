"""JwksCodec and the key cryptography: ES256 and EdDSA round trips, kids that are RFC
7638 thumbprints, sealed private keys, every way a token can be bent to get past the
key set, and a key set that stays fresh without blocking a request."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from adapters.jwks_codec import JwksCodec
from adapters.key_crypto import AesGcmKeyMaker, thumbprint
from domain.errors import InvalidToken, ServiceUnavailable
from domain.model import AccessClaims, RefreshClaims
from domain.signing_keys import SigningKey, SigningKeyUnreadable
from tests.fakes import FakeClock

SECRET = "codec-test-secret-key-0123456789abcdef"
MAKER = AesGcmKeyMaker(SECRET)
ALGORITHMS = ["ES256", "EdDSA"]
MINUTE = timedelta(minutes=1)


def real_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_key(algorithm: str, activates_at: datetime, **changes: Any) -> SigningKey:
    key = SigningKey.of(
        MAKER.make(algorithm), algorithm, now=activates_at, activates_at=activates_at
    )
    return replace(key, **changes)


class Keys:
    """The stored keys a codec loads, and how often it did."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.loads = 0
        self.failure: Exception | None = None

    async def __call__(self) -> Sequence[SigningKey]:
        self.loads += 1
        if self.failure is not None:
            raise self.failure
        return list(self.keys)


def claims(clock: FakeClock, **changes: Any) -> AccessClaims:
    values: dict[str, Any] = {
        "user_id": 42,
        "session_id": "s" * 32,
        "token_version": 3,
        "issued_at": clock.now(),
        "expires_at": clock.now() + timedelta(minutes=30),
    }
    values.update(changes)
    return AccessClaims(**values)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def part(data: dict[str, Any]) -> str:
    # As PyJWT writes them: an unchanged header keeps its bytes, and its signature.
    return b64(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())


def reheader(token: str, **changes: Any) -> str:
    """``token`` with header members changed (None removes one); signature kept."""
    header_part, payload, signature = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_part + "=="))
    header.update(changes)
    header = {k: v for k, v in header.items() if v is not None}
    return f"{part(header)}.{payload}.{signature}"


def private_pem(key: SigningKey) -> bytes:
    return MAKER.open(key).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(real_now())


@pytest.fixture(params=ALGORITHMS)
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def key(algorithm: str, clock: FakeClock) -> SigningKey:
    return new_key(algorithm, clock.now() - timedelta(days=1))


@pytest.fixture
def keys(key: SigningKey) -> Keys:
    return Keys(key)


@pytest.fixture
async def codec(keys: Keys, algorithm: str, clock: FakeClock) -> JwksCodec:
    loaded = JwksCodec(keys, MAKER, algorithm=algorithm, clock=clock)
    await loaded.reload()
    return loaded


# --- keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "to_jwk"), [("ES256", ECAlgorithm.to_jwk), ("EdDSA", OKPAlgorithm.to_jwk)]
)
def test_the_kid_is_the_rfc_7638_thumbprint_of_the_public_key(algorithm: str, to_jwk: Any) -> None:
    made = MAKER.make(algorithm)
    stored = SigningKey.of(made, algorithm, now=real_now(), activates_at=real_now())
    public = MAKER.open(stored).public_key()

    # Computed apart: PyJWT's JWK of the same public key, hashed as RFC 7638, 3 says.
    theirs = to_jwk(public, as_dict=True)
    required = {"EC": ["crv", "kty", "x", "y"], "OKP": ["crv", "kty", "x"]}[theirs["kty"]]
    canonical = "{" + ",".join(f'"{name}":"{theirs[name]}"' for name in required) + "}"

    assert made.kid == b64(hashlib.sha256(canonical.encode()).digest())
    assert made.kid == thumbprint(made.public_jwk)
    assert {name: theirs[name] for name in required} == dict(made.public_jwk)


def test_rfc_7638_example_thumbprint() -> None:
    # RFC 7638, 3.1 gives an RSA example; RFC 8037, A.3 an Ed25519 one.
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}

    assert thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_the_public_jwk_has_no_private_member(key: SigningKey) -> None:
    jwk = key.jwk()

    assert set(jwk) <= {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert jwk["use"] == "sig"
    assert jwk["alg"] == key.algorithm
    assert jwt.PyJWK(jwk).key is not None  # a standard client reads it


def test_the_private_key_is_sealed_not_stored_in_the_clear(key: SigningKey) -> None:
    der = MAKER.open(key).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    assert der not in key.sealed_private
    assert der[-32:] not in key.sealed_private  # nor the raw private scalar or seed


def test_another_secret_key_cannot_open_a_sealed_key(key: SigningKey) -> None:
    with pytest.raises(SigningKeyUnreadable, match=f"SECRET_KEY cannot decrypt .*{key.kid}"):
        AesGcmKeyMaker("another-secret-key-0123456789abcdef!").open(key)


def test_a_sealed_key_moved_to_another_kid_does_not_open(key: SigningKey, algorithm: str) -> None:
    other = new_key(algorithm, real_now())

    with pytest.raises(SigningKeyUnreadable):
        MAKER.open(replace(other, sealed_private=key.sealed_private))
    # One bit of the tag flipped (a fixed byte would leave 1 blob in 256 unchanged).
    tampered = key.sealed_private[:-1] + bytes([key.sealed_private[-1] ^ 1])
    with pytest.raises(SigningKeyUnreadable):
        MAKER.open(replace(key, sealed_private=tampered))
    with pytest.raises(SigningKeyUnreadable):
        MAKER.open(replace(key, sealed_private=b"\x02" + key.sealed_private[1:]))


# --- round trips -------------------------------------------------------------------------


async def test_access_and_refresh_tokens_survive_a_round_trip(
    codec: JwksCodec, clock: FakeClock
) -> None:
    access = claims(clock)
    refresh = RefreshClaims(
        user_id=7,
        session_id="s" * 32,
        token_id="t" * 32,
        issued_at=clock.now(),
        expires_at=clock.now() + timedelta(days=7),
    )

    assert codec.decode_access(codec.encode_access(access)) == access
    assert codec.decode_refresh(codec.encode_refresh(refresh)) == refresh


async def test_a_token_names_its_key_and_verifies_with_the_public_jwk_alone(
    codec: JwksCodec, key: SigningKey, clock: FakeClock
) -> None:
    token = codec.encode_access(claims(clock))

    header = jwt.get_unverified_header(token)
    assert (header["kid"], header["alg"]) == (key.kid, key.algorithm)
    verified = jwt.decode(token, jwt.PyJWK(key.jwk()).key, algorithms=[key.algorithm])
    assert verified["sub"] == "42"


async def test_a_pending_key_takes_over_at_its_activation_time_without_a_reload(
    keys: Keys, key: SigningKey, algorithm: str, clock: FakeClock
) -> None:
    pending = new_key(algorithm, clock.now() + MINUTE)
    keys.keys.append(pending)
    codec = JwksCodec(keys, MAKER, algorithm=algorithm, clock=clock)
    await codec.reload()

    before = codec.encode_access(claims(clock, expires_at=clock.now() + 2 * MINUTE))
    clock.advance(minutes=1)
    after = codec.encode_access(claims(clock))

    assert jwt.get_unverified_header(before)["kid"] == key.kid
    assert jwt.get_unverified_header(after)["kid"] == pending.kid
    assert codec.decode_access(before).user_id == codec.decode_access(after).user_id == 42
    assert keys.loads == 1


async def test_without_a_loaded_key_nothing_is_signed(algorithm: str, clock: FakeClock) -> None:
    codec = JwksCodec(Keys(), MAKER, algorithm=algorithm, clock=clock)

    with pytest.raises(ServiceUnavailable):
        codec.encode_access(claims(clock))


# --- tokens bent to get past the key set ---------------------------------------------------


async def test_a_token_with_an_unknown_kid_is_refused(
    codec: JwksCodec, algorithm: str, clock: FakeClock
) -> None:
    stranger = new_key(algorithm, clock.now() - MINUTE)
    token = JwksCodec(Keys(stranger), MAKER, algorithm=algorithm, clock=clock)
    await token.reload()

    with pytest.raises(InvalidToken):
        codec.decode_access(token.encode_access(claims(clock)))


@pytest.mark.parametrize("kid", [None, 7, "", ["k"]])
async def test_a_token_without_a_string_kid_is_refused(
    codec: JwksCodec, clock: FakeClock, kid: Any
) -> None:
    token = reheader(codec.encode_access(claims(clock)), kid=kid)

    with pytest.raises(InvalidToken):
        codec.decode_access(token)


async def test_a_token_whose_kid_was_swapped_for_another_known_key_is_refused(
    keys: Keys, key: SigningKey, algorithm: str, clock: FakeClock
) -> None:
    other = new_key(algorithm, clock.now() + MINUTE)  # published, pending
    keys.keys.append(other)
    codec = JwksCodec(keys, MAKER, algorithm=algorithm, clock=clock)
    await codec.reload()
    token = codec.encode_access(claims(clock))

    assert codec.decode_access(reheader(token, kid=key.kid)).user_id == 42  # unchanged
    with pytest.raises(InvalidToken):
        codec.decode_access(reheader(token, kid=other.kid))


async def test_a_tampered_payload_is_refused(codec: JwksCodec, clock: FakeClock) -> None:
    token = codec.encode_access(claims(clock))
    header, _, signature = token.split(".")
    forged = jwt.decode(token, options={"verify_signature": False})
    forged["sub"] = "1"

    with pytest.raises(InvalidToken):
        codec.decode_access(f"{header}.{part(forged)}.{signature}")


async def test_a_tampered_signature_is_refused(codec: JwksCodec, clock: FakeClock) -> None:
    header, payload, signature = codec.encode_access(claims(clock)).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]

    with pytest.raises(InvalidToken):
        codec.decode_access(f"{header}.{payload}.{flipped}")


async def test_alg_none_with_a_known_kid_is_refused(
    codec: JwksCodec, key: SigningKey, clock: FakeClock
) -> None:
    genuine = codec.encode_access(claims(clock))
    payload = genuine.split(".")[1]

    for signature in ("", genuine.split(".")[2]):
        token = f"{part({'alg': 'none', 'typ': 'JWT', 'kid': key.kid})}.{payload}.{signature}"
        with pytest.raises(InvalidToken):
            codec.decode_access(token)


async def test_hs256_with_the_public_key_as_the_secret_is_refused(
    codec: JwksCodec, key: SigningKey, clock: FakeClock
) -> None:
    public = MAKER.open(key).public_key()
    genuine = codec.encode_access(claims(clock))
    payload = genuine.split(".")[1]
    secrets_tried = [
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        json.dumps(key.jwk()).encode(),
    ]

    for secret in secrets_tried:
        # Made by hand: PyJWT itself refuses a PEM key as an HMAC secret.
        header = part({"alg": "HS256", "typ": "JWT", "kid": key.kid})
        mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        with pytest.raises(InvalidToken):
            codec.decode_access(f"{header}.{payload}.{b64(mac)}")


@pytest.mark.parametrize("alg", ["ES384", "ES512", "EdDSA", "ES256", "RS256", "PS256", "HS256"])
async def test_only_the_keys_own_algorithm_is_accepted(
    codec: JwksCodec, key: SigningKey, clock: FakeClock, alg: str
) -> None:
    token = reheader(codec.encode_access(claims(clock)), alg=alg)

    if alg == key.algorithm:
        assert codec.decode_access(token).user_id == 42
    else:
        with pytest.raises(InvalidToken):
            codec.decode_access(token)


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c"])
async def test_a_token_naming_a_key_elsewhere_is_refused_even_when_genuinely_signed(
    codec: JwksCodec, key: SigningKey, clock: FakeClock, name: str
) -> None:
    values: dict[str, Any] = {
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "jwk": key.jwk(),
        "x5c": ["MIIB"],
    }
    genuine = _sign(key, claims(clock))
    payload = jwt.decode(genuine, options={"verify_signature": False})
    headers = {"kid": key.kid, name: values[name]}
    token = jwt.encode(payload, private_pem(key), algorithm=key.algorithm, headers=headers)

    assert codec.decode_access(genuine).user_id == 42
    with pytest.raises(InvalidToken):
        codec.decode_access(token)


@pytest.mark.parametrize("token", ["", "x", "a.b", "a.b.c", "é.é.é", "null"])
async def test_something_that_is_not_a_jwt_is_refused(codec: JwksCodec, token: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(token)
    with pytest.raises(InvalidToken):
        codec.decode_refresh(token, verify_expiry=False)


async def test_an_expired_token_is_refused_even_from_the_cache(
    codec: JwksCodec, clock: FakeClock
) -> None:
    token = codec.encode_access(claims(clock, expires_at=clock.now() + MINUTE))
    assert codec.decode_access(token).user_id == 42

    clock.advance(minutes=1)

    with pytest.raises(InvalidToken):
        codec.decode_access(token)


# --- the key set -------------------------------------------------------------------------


async def test_a_key_deleted_from_the_set_takes_its_cached_tokens_with_it(
    keys: Keys, key: SigningKey, algorithm: str, clock: FakeClock
) -> None:
    successor = new_key(algorithm, clock.now() - MINUTE)
    keys.keys.append(successor)
    codec = JwksCodec(keys, MAKER, algorithm=algorithm, clock=clock)
    old_token = _sign(key, claims(clock))  # signed before the rotation
    await codec.reload()
    new_token = codec.encode_access(claims(clock))
    assert codec.decode_access(old_token).user_id == 42  # verified, and now cached
    assert codec.decode_access(new_token).user_id == 42

    keys.keys.remove(key)
    await codec.reload()

    with pytest.raises(InvalidToken):
        codec.decode_access(old_token)
    assert codec.decode_access(new_token).user_id == 42
    assert codec.kids == {successor.kid}


def _sign(key: SigningKey, access: AccessClaims) -> str:
    return jwt.encode(
        {
            "sub": str(access.user_id),
            "type": "access",
            "sid": access.session_id,
            "ver": access.token_version,
            "iat": int(access.issued_at.timestamp()),
            "exp": int(access.expires_at.timestamp()),
            "jti": access.token_id,
        },
        private_pem(key),
        algorithm=key.algorithm,
        headers={"kid": key.kid, "typ": "at+jwt"},
    )


async def test_a_secret_key_that_cannot_decrypt_the_signing_key_fails_the_load(
    keys: Keys, algorithm: str, clock: FakeClock, key: SigningKey
) -> None:
    wrong = JwksCodec(
        keys,
        AesGcmKeyMaker("not-the-secret-key-0123456789abcdef"),
        algorithm=algorithm,
        clock=clock,
    )

    with pytest.raises(SigningKeyUnreadable, match=key.kid):
        await wrong.reload()
    assert wrong.kids == frozenset()


async def test_a_reload_that_cannot_decrypt_a_new_key_keeps_the_set_in_use(
    keys: Keys, codec: JwksCodec, key: SigningKey, algorithm: str, clock: FakeClock
) -> None:
    token = codec.encode_access(claims(clock))
    stranger = AesGcmKeyMaker("another-deployment-secret-0123456789")
    made = stranger.make(algorithm)
    keys.keys.append(SigningKey.of(made, algorithm, now=clock.now(), activates_at=clock.now()))

    with pytest.raises(SigningKeyUnreadable):
        await codec.reload()

    assert codec.kids == {key.kid}
    assert codec.decode_access(token).user_id == 42


async def test_a_revoked_key_leaves_the_set_even_when_the_rest_cannot_be_replaced(
    keys: Keys, key: SigningKey, algorithm: str, clock: FakeClock
) -> None:
    # Two keys are gone from the store: the signer (revoked, its successor sealed with
    # a SECRET_KEY this process does not have) and a retired one.
    retired = new_key(algorithm, clock.now() - 2 * MINUTE - timedelta(days=1))
    keys.keys.insert(0, retired)
    codec = JwksCodec(keys, MAKER, algorithm=algorithm, clock=clock)
    await codec.reload()
    tokens = [_sign(k, claims(clock)) for k in (key, retired)]
    for token in tokens:
        assert codec.decode_access(token).user_id == 42  # verified, and now cached
    stranger = AesGcmKeyMaker("another-deployment-secret-0123456789")
    made = stranger.make(algorithm)
    keys.keys = [SigningKey.of(made, algorithm, now=clock.now(), activates_at=clock.now())]

    with pytest.raises(SigningKeyUnreadable):
        await codec.reload()

    assert codec.kids == frozenset()
    for token in tokens:
        with pytest.raises(InvalidToken):
            codec.decode_access(token)
    with pytest.raises(ServiceUnavailable):  # nothing left to sign with
        codec.encode_access(claims(clock))


async def test_a_revoked_key_leaves_the_set_at_the_next_periodic_reload(
    keys: Keys, key: SigningKey, algorithm: str, clock: FakeClock
) -> None:
    successor = new_key(algorithm, clock.now())
    codec = JwksCodec(keys, MAKER, algorithm=algorithm, clock=clock, refresh_seconds=0.02)
    await codec.reload()
    token = codec.encode_access(claims(clock))
    assert codec.decode_access(token).user_id == 42
    keys.keys = [successor]  # revoked, and a new key signs in its place
    refresher = asyncio.create_task(codec.keep_fresh())
    try:
        await _until(lambda: codec.kids == {successor.kid})
    finally:
        refresher.cancel()

    with pytest.raises(InvalidToken):
        codec.decode_access(token)
    assert jwt.get_unverified_header(codec.encode_access(claims(clock)))["kid"] == successor.kid


async def test_an_unknown_kid_reloads_the_set_soon_but_at_most_once_per_cooldown(
    keys: Keys, algorithm: str, clock: FakeClock
) -> None:
    codec = JwksCodec(
        keys, MAKER, algorithm=algorithm, clock=clock, refresh_seconds=3600, unknown_kid_cooldown=60
    )
    await codec.reload()
    fresh = new_key(algorithm, clock.now() - MINUTE)
    keys.keys.append(fresh)
    token = _sign(fresh, claims(clock))
    stranger = _sign(new_key(algorithm, clock.now()), claims(clock))
    refresher = asyncio.create_task(codec.keep_fresh())
    try:
        with pytest.raises(InvalidToken):  # refused now: the request never waits
            codec.decode_access(token)
        await _until(lambda: fresh.kid in codec.kids)
        assert codec.decode_access(token).user_id == 42

        for _ in range(5):
            with pytest.raises(InvalidToken):
                codec.decode_access(stranger)
        await asyncio.sleep(0.1)
        assert keys.loads == 2  # within the cooldown: no reload
    finally:
        refresher.cancel()


async def test_the_set_is_reloaded_periodically(
    keys: Keys, algorithm: str, clock: FakeClock
) -> None:
    codec = JwksCodec(keys, MAKER, algorithm=algorithm, clock=clock, refresh_seconds=0.02)
    await codec.reload()
    fresh = new_key(algorithm, clock.now() + MINUTE)
    keys.keys.append(fresh)
    refresher = asyncio.create_task(codec.keep_fresh())
    try:
        await _until(lambda: fresh.kid in codec.kids)
    finally:
        refresher.cancel()


async def test_a_failing_reload_is_logged_and_the_set_stays(
    keys: Keys, key: SigningKey, algorithm: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    codec = JwksCodec(keys, MAKER, algorithm=algorithm, clock=clock, refresh_seconds=0.02)
    await codec.reload()
    keys.failure = ServiceUnavailable()
    refresher = asyncio.create_task(codec.keep_fresh())
    try:
        with caplog.at_level(logging.WARNING, logger="adapters.jwks_codec"):
            await _until(lambda: keys.loads >= 3)
    finally:
        refresher.cancel()

    assert codec.kids == {key.kid}
    assert "signing keys not reloaded" in caplog.text
    assert "temporarily unavailable" in caplog.text
    assert SECRET not in caplog.text


async def _until(condition: Any, within: float = 5.0) -> None:
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not so within {within} s")


async def test_the_refresh_task_stops_when_cancelled_just_as_a_reload_is_asked_for(
    keys: Keys, algorithm: str, clock: FakeClock
) -> None:
    codec = JwksCodec(keys, MAKER, algorithm=algorithm, clock=clock, refresh_seconds=3600)
    stranger = _sign(new_key(algorithm, clock.now()), claims(clock))
    refresher = asyncio.create_task(codec.keep_fresh())
    await asyncio.sleep(0.01)

    with pytest.raises(InvalidToken):
        codec.decode_access(stranger)  # asks for a reload...
    await asyncio.sleep(0)
    refresher.cancel()  # ...and the app stops at that very moment

    done, _ = await asyncio.wait({refresher}, timeout=5)
    assert refresher in done
    assert refresher.cancelled()
