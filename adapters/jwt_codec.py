"""JWTs (PyJWT), signed and checked with one pinned algorithm, against the clock port."""

from __future__ import annotations

import abc
import warnings
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jwt

from adapters.clock import SystemClock
from domain.errors import InvalidToken
from domain.model import AccessClaims, RefreshClaims
from domain.ports import Clock, TokenCodec
from domain.rules import HMAC_MIN_KEY_BYTES as MIN_KEY_BYTES

_ACCESS_CLAIMS = ["sub", "type", "sid", "iat", "exp", "jti", "ver"]
_REFRESH_CLAIMS = ["sub", "type", "sid", "iat", "exp", "jti"]
# Verified access tokens remembered per process (about 1 KiB each).
ACCESS_CACHE_SIZE = 4096
# Tolerated clock difference between the host that issues and the host that checks.
CLOCK_SKEW_SECONDS = 2
# RFC 9068: the header type of an access token, so that a verifier of access tokens
# (here, or a service reading the JWKS) never takes a refresh token for one.
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type
_ACCESS_TOKEN_TYPES = frozenset({ACCESS_TOKEN_TYPE, f"application/{ACCESS_TOKEN_TYPE}"})


class BaseJwtCodec(TokenCodec):
    """The claims and checks of every JWT, whatever signs it; subclasses say which key
    signs a token and which one verifies it, pinning its algorithm."""

    def __init__(
        self,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._issuer = issuer
        self._audience = audience
        self._jwt = jwt.PyJWT()
        # Only successes are cached (an exception is never cached), keyed by the exact
        # token, so nothing is ever accepted that would not verify now, but for expiry
        # and for a key leaving the key set (``_trusts``, checked on every hit).
        self._verified_access = lru_cache(maxsize=ACCESS_CACHE_SIZE)(self._decode_access)

    @abc.abstractmethod
    def _signing_key(self) -> tuple[Any, str, dict[str, Any] | None]:
        """The key that signs now, its algorithm and the headers to add."""

    @abc.abstractmethod
    def _verification_key(self, token: str) -> tuple[Any, str, str | None]:
        """The key that verifies ``token``, the one algorithm it may use, and its kid
        (None without key ids); raises ``InvalidToken`` when no key may verify it."""

    def _trusts(self, kid: str | None) -> bool:
        """Whether a token verified earlier by key ``kid`` may still be accepted."""
        return True

    def encode_access(self, claims: AccessClaims) -> str:
        return self._encode(
            {
                "sub": str(claims.user_id),
                "type": "access",
                "sid": claims.session_id,
                "ver": claims.token_version,
                "iat": _timestamp(claims.issued_at),
                "exp": _timestamp(claims.expires_at),
                "jti": claims.token_id,
            },
            typ=ACCESS_TOKEN_TYPE,
        )

    def encode_refresh(self, claims: RefreshClaims) -> str:
        return self._encode(
            {
                "sub": str(claims.user_id),
                "type": "refresh",
                "sid": claims.session_id,
                "iat": _timestamp(claims.issued_at),
                "exp": _timestamp(claims.expires_at),
                "jti": claims.token_id,
            }
        )

    def decode_access(self, token: str) -> AccessClaims:
        # A client sends the same access token with every request for its lifetime:
        # once its signature and claims have been verified, only the expiry can change.
        kid, claims = self._verified_access(token)
        if claims.expires_at <= self._clock.now() or not self._trusts(kid):
            raise InvalidToken()
        return claims

    def _decode_access(self, token: str) -> tuple[str | None, AccessClaims]:
        payload, kid = self._decode(token, "access", _ACCESS_CLAIMS, verify_expiry=True)
        version = payload["ver"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidToken()
        return kid, AccessClaims(
            user_id=_user_id(payload),
            session_id=_string(payload, "sid"),
            token_version=version,
            issued_at=_datetime(payload["iat"]),
            expires_at=_datetime(payload["exp"]),
            token_id=_string(payload, "jti"),
        )

    def decode_refresh(self, token: str, *, verify_expiry: bool = True) -> RefreshClaims:
        payload, _ = self._decode(token, "refresh", _REFRESH_CLAIMS, verify_expiry=verify_expiry)
        return RefreshClaims(
            user_id=_user_id(payload),
            session_id=_string(payload, "sid"),
            token_id=_string(payload, "jti"),
            issued_at=_datetime(payload["iat"]),
            expires_at=_datetime(payload["exp"]),
        )

    def _encode(self, payload: dict[str, Any], *, typ: str = "JWT") -> str:
        if self._issuer is not None:
            payload["iss"] = self._issuer
        if self._audience is not None:
            payload["aud"] = self._audience
        key, algorithm, headers = self._signing_key()
        headers = {**(headers or {}), "typ": typ}
        return self._jwt.encode(payload, key, algorithm=algorithm, headers=headers)

    def _decode(
        self, token: str, expected_type: str, required: list[str], *, verify_expiry: bool
    ) -> tuple[dict[str, Any], str | None]:
        """The verified payload and the kid of the key that verified it."""
        required = list(required)
        if self._issuer is not None:
            required.append("iss")
        if self._audience is not None:
            required.append("aud")
        key, algorithm, kid = self._verification_key(token)
        try:
            decoded = self._jwt.decode_complete(
                token,
                key,
                algorithms=[algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={
                    "require": required,
                    "verify_exp": False,  # checked below, against the clock port
                    "verify_iat": False,  # checked below, with a small skew allowance
                    "verify_nbf": False,
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken() from exc
        payload: dict[str, Any] = decoded["payload"]
        typ = decoded["header"].get("typ")
        is_access = isinstance(typ, str) and typ.lower() in _ACCESS_TOKEN_TYPES
        if payload.get("type") != expected_type or is_access != (expected_type == "access"):
            raise InvalidToken()
        now = self._clock.now().timestamp()
        if verify_expiry:
            expires = payload["exp"]
            if not _is_number(expires) or not expires > now:
                raise InvalidToken()
        now += CLOCK_SKEW_SECONDS
        for claim in ("iat", "nbf"):
            if claim in payload:
                value = payload[claim]
                # ``not <=`` rather than ``>``: a NaN compares false either way.
                if not _is_number(value) or not value <= now:
                    raise InvalidToken()
        return payload, kid


class JwtCodec(BaseJwtCodec):
    """HMAC-signed JWTs. Only the configured algorithm is accepted, so ``alg: none``
    and algorithm-confusion tokens fail the signature check."""

    def __init__(
        self,
        secret_key: str,
        *,
        algorithm: str = "HS256",
        issuer: str | None = None,
        audience: str | None = None,
        enforce_key_length: bool = True,
        clock: Clock | None = None,
    ) -> None:
        if algorithm not in MIN_KEY_BYTES:
            raise ValueError(f"unsupported JWT algorithm {algorithm!r}")
        if len(secret_key.encode()) < MIN_KEY_BYTES[algorithm]:
            if enforce_key_length:
                raise ValueError(
                    f"the signing key must be at least {MIN_KEY_BYTES[algorithm]} bytes"
                    f" for {algorithm}"
                )
            # Allowed outside production; the settings already said so once.
            warnings.filterwarnings("ignore", category=jwt.InsecureKeyLengthWarning)
        super().__init__(issuer=issuer, audience=audience, clock=clock)
        self._key = secret_key.encode()
        self._algorithm = algorithm

    def _signing_key(self) -> tuple[Any, str, dict[str, Any] | None]:
        return self._key, self._algorithm, None

    def _verification_key(self, token: str) -> tuple[Any, str, str | None]:
        return self._key, self._algorithm, None


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def _datetime(value: Any) -> datetime:
    if not _is_number(value):
        raise InvalidToken()
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidToken() from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _string(payload: dict[str, Any], claim: str) -> str:
    value = payload[claim]
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidToken()
    return value


def _user_id(payload: dict[str, Any]) -> int:
    sub = payload["sub"]
    if not isinstance(sub, str) or not (sub.isascii() and sub.isdigit()) or len(sub) > 18:
        raise InvalidToken()
    return int(sub)
