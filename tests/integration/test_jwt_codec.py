"""JwtCodec: round trips, and every way a token can be bent to get past it."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.jwt_codec import JwtCodec
from domain.errors import InvalidToken
from domain.model import AccessClaims, RefreshClaims
from tests.fakes import RELAXED, SECRET_KEY, FakeClock
from tests.forged import forge

ACCESS_CLAIMS = ["sub", "type", "sid", "iat", "exp", "jti", "ver"]
REFRESH_CLAIMS = ["sub", "type", "sid", "iat", "exp", "jti"]
IDS = st.text(alphabet="0123456789abcdef", min_size=1, max_size=64)

codec = JwtCodec(SECRET_KEY)


def now() -> int:
    return int(time.time())


def access_payload(**changes: Any) -> dict[str, Any]:
    payload = {
        "sub": "42",
        "type": "access",
        "sid": "s" * 32,
        "iat": now() - 10,
        "exp": now() + 600,
        "jti": "j" * 32,
        "ver": 3,
    }
    payload.update(changes)
    return payload


def refresh_payload(**changes: Any) -> dict[str, Any]:
    payload = access_payload(type="refresh", **changes)
    del payload["ver"]
    return payload


def sign(
    payload: dict[str, Any],
    key: str = SECRET_KEY,
    algorithm: str = "HS256",
    typ: str | None = None,
) -> str:
    return forge(payload, key, algorithm, typ)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def access_claims(**changes: Any) -> AccessClaims:
    moment = datetime.fromtimestamp(now(), UTC)
    values: dict[str, Any] = {
        "user_id": 42,
        "session_id": "s" * 32,
        "token_version": 3,
        "issued_at": moment,
        "expires_at": moment + timedelta(minutes=30),
    }
    values.update(changes)
    return AccessClaims(**values)


# --- round trips ---------------------------------------------------------------------


@RELAXED
@given(
    user_id=st.integers(0, 10**18 - 1),
    version=st.integers(0, 2**63),
    session_id=IDS,
    token_id=IDS,
    age=st.integers(0, 10**7),
    ttl=st.integers(60, 10**8),
)
def test_access_claims_survive_a_round_trip(
    user_id: int, version: int, session_id: str, token_id: str, age: int, ttl: int
) -> None:
    issued = datetime.fromtimestamp(now() - age, UTC)
    claims = AccessClaims(
        user_id=user_id,
        session_id=session_id,
        token_version=version,
        issued_at=issued,
        expires_at=issued + timedelta(seconds=age + ttl),
        token_id=token_id,
    )

    assert codec.decode_access(codec.encode_access(claims)) == claims


@RELAXED
@given(user_id=st.integers(0, 10**18 - 1), session_id=IDS, token_id=IDS, age=st.integers(0, 10**7))
def test_refresh_claims_survive_a_round_trip(
    user_id: int, session_id: str, token_id: str, age: int
) -> None:
    issued = datetime.fromtimestamp(now() - age, UTC)
    claims = RefreshClaims(
        user_id=user_id,
        session_id=session_id,
        token_id=token_id,
        issued_at=issued,
        expires_at=issued + timedelta(seconds=age, days=7),
    )

    assert codec.decode_refresh(codec.encode_refresh(claims)) == claims


def test_access_token_carries_exactly_the_documented_claims() -> None:
    token = codec.encode_access(access_claims())

    payload = jwt.decode(token, SECRET_KEY, algorithms=["HS256"])

    assert sorted(payload) == sorted(ACCESS_CLAIMS)
    assert payload["sub"] == "42"
    assert payload["type"] == "access"
    assert payload["ver"] == 3
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_refresh_token_carries_exactly_the_documented_claims() -> None:
    payload = jwt.decode(sign(refresh_payload()), SECRET_KEY, algorithms=["HS256"])

    assert sorted(payload) == sorted(REFRESH_CLAIMS)
    assert codec.decode_refresh(sign(refresh_payload())).user_id == 42


def test_tokens_are_accepted_by_another_codec_with_the_same_key() -> None:
    token = codec.encode_access(access_claims())

    assert JwtCodec(SECRET_KEY).decode_access(token).user_id == 42


# --- signature and algorithm ---------------------------------------------------------


def test_alg_none_is_refused() -> None:
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(access_payload())}."

    with pytest.raises(InvalidToken):
        codec.decode_access(unsigned)


def test_alg_none_header_on_a_genuine_signature_is_refused() -> None:
    genuine = sign(access_payload())
    _, payload, signature = genuine.split(".")

    with pytest.raises(InvalidToken):
        codec.decode_access(f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}")


def test_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(sign(access_payload(), key=SECRET_KEY[::-1]))


@pytest.mark.parametrize(("configured", "used"), [("HS256", "HS512"), ("HS512", "HS256")])
def test_token_signed_with_another_algorithm_and_the_same_key_is_refused(
    configured: str, used: str
) -> None:
    strict = JwtCodec(SECRET_KEY, algorithm=configured)

    with pytest.raises(InvalidToken):
        strict.decode_access(sign(access_payload(), algorithm=used))


def test_a_tampered_payload_is_refused() -> None:
    header, _, signature = sign(access_payload()).split(".")

    with pytest.raises(InvalidToken):
        codec.decode_access(f"{header}.{b64(access_payload(sub='1'))}.{signature}")


@pytest.mark.parametrize("token", ["", "x", "a.b", "a.b.c", "a.b.c.d", "é.é.é", "null"])
def test_something_that_is_not_a_jwt_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(token)
    with pytest.raises(InvalidToken):
        codec.decode_refresh(token, verify_expiry=False)


def test_a_payload_that_is_not_an_object_is_refused() -> None:
    header = b64({"alg": "HS256", "typ": "JWT"})
    body = base64.urlsafe_b64encode(b"[1, 2]").rstrip(b"=").decode()
    signature = jwt.api_jws.PyJWS().encode(b"[1, 2]", SECRET_KEY, "HS256").split(".")[2]

    with pytest.raises(InvalidToken):
        codec.decode_access(f"{header}.{body}.{signature}")


# --- time ----------------------------------------------------------------------------


def test_expired_token_is_refused() -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(sign(access_payload(iat=now() - 600, exp=now() - 60)))


def test_expired_refresh_token_is_refused_unless_expiry_is_waived() -> None:
    token = sign(refresh_payload(iat=now() - 600, exp=now() - 60))

    with pytest.raises(InvalidToken):
        codec.decode_refresh(token)
    assert codec.decode_refresh(token, verify_expiry=False).user_id == 42


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_token_issued_or_valid_only_in_the_future_is_refused(claim: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(sign(access_payload(**{claim: now() + 3600})))
    with pytest.raises(InvalidToken):
        codec.decode_refresh(sign(refresh_payload(**{claim: now() + 3600})), verify_expiry=False)


def test_access_tokens_carry_the_rfc_9068_header_type_and_refresh_tokens_do_not() -> None:
    access = codec.encode_access(access_claims())
    refresh = codec.encode_refresh(
        RefreshClaims(
            user_id=42,
            session_id="s" * 32,
            token_id="t" * 32,
            issued_at=datetime.fromtimestamp(now(), UTC),
            expires_at=datetime.fromtimestamp(now() + 600, UTC),
        )
    )
    assert jwt.get_unverified_header(access)["typ"] == "at+jwt"
    assert jwt.get_unverified_header(refresh)["typ"] == "JWT"
    with pytest.raises(InvalidToken):
        codec.decode_access(refresh)
    with pytest.raises(InvalidToken):
        codec.decode_refresh(access)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+JWT+x", ""])
def test_an_access_payload_without_the_access_header_type_is_refused(typ: str) -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(sign(access_payload(), typ=typ))


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_the_access_header_type_is_matched_as_rfc_9068_says(typ: str) -> None:
    assert codec.decode_access(sign(access_payload(), typ=typ)).user_id == 42


def test_a_refresh_payload_under_the_access_header_type_is_refused() -> None:
    with pytest.raises(InvalidToken):
        codec.decode_refresh(sign(refresh_payload(), typ="at+jwt"))


def test_a_past_nbf_is_accepted() -> None:
    assert codec.decode_access(sign(access_payload(nbf=now() - 5))).user_id == 42


@pytest.mark.parametrize("claim", ["iat", "nbf", "exp"])
@pytest.mark.parametrize("value", ["soon", None, True, [1], float("inf"), float("nan"), 1e300])
def test_a_time_claim_that_is_not_a_sane_number_is_refused(claim: str, value: Any) -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(sign(access_payload(**{claim: value})))
    with pytest.raises(InvalidToken):
        codec.decode_refresh(sign(refresh_payload(**{claim: value})), verify_expiry=False)


# --- required claims and their types -------------------------------------------------


@pytest.mark.parametrize("claim", ACCESS_CLAIMS)
def test_access_token_missing_any_claim_is_refused(claim: str) -> None:
    payload = access_payload()
    del payload[claim]

    with pytest.raises(InvalidToken):
        codec.decode_access(sign(payload))


@pytest.mark.parametrize("claim", REFRESH_CLAIMS)
def test_refresh_token_missing_any_claim_is_refused(claim: str) -> None:
    payload = refresh_payload()
    del payload[claim]

    with pytest.raises(InvalidToken):
        codec.decode_refresh(sign(payload), verify_expiry=False)


def test_refresh_token_used_as_access_token_is_refused() -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(sign(refresh_payload()))
    with pytest.raises(InvalidToken):  # even with a "ver" claim added
        codec.decode_access(sign(refresh_payload(ver=3)))


def test_access_token_used_as_refresh_token_is_refused() -> None:
    with pytest.raises(InvalidToken):
        codec.decode_refresh(codec.encode_access(access_claims()), verify_expiry=False)


@pytest.mark.parametrize("kind", ["ACCESS", "id", "", None, 1])
def test_token_of_an_unknown_type_is_refused(kind: Any) -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(sign(access_payload(type=kind)))


@pytest.mark.parametrize(
    "sub", ["abc", "-1", "+1", "1.0", " 1", "1 ", "", "\u0661", "²", "0x1", "1" * 19, 42, 4.2, True]
)
def test_subject_that_is_not_a_string_of_ascii_digits_is_refused(sub: Any) -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(sign(access_payload(sub=sub)))
    with pytest.raises(InvalidToken):
        codec.decode_refresh(sign(refresh_payload(sub=sub)))


@pytest.mark.parametrize("ver", [True, False, "3", 3.0, [3], {"v": 3}])
def test_token_version_that_is_not_an_integer_is_refused(ver: Any) -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(sign(access_payload(ver=ver)))


@pytest.mark.parametrize("claim", ["sid", "jti"])
@pytest.mark.parametrize("value", ["", "x" * 65, 7, ["x"]])
def test_session_or_token_id_that_is_not_a_short_string_is_refused(claim: str, value: Any) -> None:
    with pytest.raises(InvalidToken):
        codec.decode_access(sign(access_payload(**{claim: value})))
    with pytest.raises(InvalidToken):
        codec.decode_refresh(sign(refresh_payload(**{claim: value})))


# --- issuer and audience -------------------------------------------------------------


@pytest.fixture
def strict() -> JwtCodec:
    return JwtCodec(SECRET_KEY, issuer="https://auth.example", audience="api")


def test_issuer_and_audience_are_issued_and_accepted_when_configured(strict: JwtCodec) -> None:
    token = strict.encode_access(access_claims())

    payload = jwt.decode(token, SECRET_KEY, algorithms=["HS256"], audience="api")
    assert (payload["iss"], payload["aud"]) == ("https://auth.example", "api")
    assert strict.decode_access(token).user_id == 42


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"iss": "https://auth.example"},
        {"aud": "api"},
        {"iss": "https://evil.example", "aud": "api"},
        {"iss": "https://auth.example", "aud": "other"},
        {"iss": "https://auth.example", "aud": ["other"]},
    ],
    ids=["neither", "no-aud", "no-iss", "wrong-iss", "wrong-aud", "wrong-aud-list"],
)
def test_missing_or_wrong_issuer_or_audience_is_refused_when_configured(
    strict: JwtCodec, changes: dict[str, Any]
) -> None:
    with pytest.raises(InvalidToken):
        strict.decode_access(sign(access_payload(**changes)))
    with pytest.raises(InvalidToken):
        strict.decode_refresh(sign(refresh_payload(**changes)))


def test_issuer_and_audience_are_not_required_when_not_configured() -> None:
    token = codec.encode_access(access_claims())

    assert "iss" not in jwt.decode(token, SECRET_KEY, algorithms=["HS256"])
    assert codec.decode_access(token).user_id == 42


# --- keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "minimum"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_a_key_shorter_than_the_hash_output_is_refused(algorithm: str, minimum: int) -> None:
    JwtCodec("k" * minimum, algorithm=algorithm)

    with pytest.raises(ValueError, match=f"at least {minimum} bytes"):
        JwtCodec("k" * (minimum - 1), algorithm=algorithm)


def test_key_length_is_counted_in_bytes() -> None:
    JwtCodec("é" * 16)  # 32 bytes in UTF-8

    with pytest.raises(ValueError, match="32 bytes"):
        JwtCodec("é" * 15 + "x")


def test_a_short_key_is_allowed_when_enforcement_is_off() -> None:
    lenient = JwtCodec("short", enforce_key_length=False)

    assert lenient.decode_access(lenient.encode_access(access_claims())).user_id == 42


@pytest.mark.parametrize("algorithm", ["none", "RS256", "ES256", "hs256", ""])
def test_an_unsupported_algorithm_is_refused(algorithm: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        JwtCodec(SECRET_KEY * 2, algorithm=algorithm)


# --- time comes from the clock port ---------------------------------------------------


async def test_expiry_and_issue_time_are_read_from_the_clock_port() -> None:
    clock = FakeClock(datetime(2040, 1, 1, tzinfo=UTC))
    on_the_clock = JwtCodec(SECRET_KEY, clock=clock)
    claims = access_claims(issued_at=clock.now(), expires_at=clock.now() + timedelta(minutes=30))
    token = on_the_clock.encode_access(claims)

    assert on_the_clock.decode_access(token) == claims  # valid in 2040, whatever today is
    clock.advance(minutes=31)
    with pytest.raises(InvalidToken):
        on_the_clock.decode_access(token)  # expired, though verified (and cached) before
    clock.advance(minutes=-62)
    with pytest.raises(InvalidToken):
        on_the_clock.decode_refresh(
            on_the_clock.encode_refresh(
                RefreshClaims(42, "s" * 32, "t" * 32, claims.issued_at, claims.expires_at)
            )
        )  # issued in the clock's future
