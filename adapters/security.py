"""Password hashing (argon2id) and JWTs (PyJWT)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any

import argon2
import jwt

from domain.errors import InvalidToken, Overloaded
from domain.model import AccessClaims, RefreshClaims
from domain.ports import PasswordHasher, TokenCodec


class Argon2Hasher(PasswordHasher):
    """argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane).

    Hashing runs in a small dedicated thread pool: argon2 releases the GIL, so the
    event loop keeps serving, and at most ``max_concurrency`` hashes (each holding
    ``memory_cost`` KiB) run at once, whatever the number of logins waiting.
    """

    def __init__(
        self,
        *,
        time_cost: int = 2,
        memory_cost: int = 19_456,
        parallelism: int = 1,
        max_concurrency: int | None = None,
        max_waiting: int | None = None,
    ) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=argon2.Type.ID,
        )
        workers = max_concurrency or min(4, os.cpu_count() or 1)
        # Past this many hashes running or queued, a new one is refused at once: a
        # flood of hashing requests must not delay everybody's login without end.
        self._capacity = workers + (
            WAITING_PER_WORKER * workers if max_waiting is None else max_waiting
        )
        self._in_flight = 0
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=_yield_to_event_loop
        )

    @cached_property
    def _dummy_hash(self) -> str:
        return self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return str(await self._run(self._hasher.hash, password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return bool(await self._run(self._verify, password_hash, password))

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            matched = self._hasher.verify(password_hash or self._dummy_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
        return matched and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except argon2.exceptions.InvalidHashError:
            return True

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._in_flight >= self._capacity:
            raise Overloaded(retry_after=1)
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _yield_to_event_loop() -> None:
    """Run this hashing thread at a lower priority (Linux schedules threads one by one):
    hashes still use every idle core, but the event loop thread is never kept waiting
    behind them, so logins do not slow down every other request."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


HASHING_NICENESS = 10
# Hashes that may wait for a busy worker: room for a burst of logins, yet at ~50 ms a
# hash no login waits more than about 1.6 s behind a flood before it is refused.
WAITING_PER_WORKER = 32

# RFC 7518, 3.2: an HMAC key at least as long as the hash output.
MIN_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_ACCESS_CLAIMS = ["sub", "type", "sid", "iat", "exp", "jti", "ver"]
_REFRESH_CLAIMS = ["sub", "type", "sid", "iat", "exp", "jti"]
# Verified access tokens remembered per process (about 1 KiB each).
ACCESS_CACHE_SIZE = 4096
# Tolerated clock difference between the host that issues and the host that checks.
CLOCK_SKEW_SECONDS = 2


class JwtCodec(TokenCodec):
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
        self._key = secret_key.encode()
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience
        self._jwt = jwt.PyJWT()
        # Only successes are cached (an exception is never cached), keyed by the exact
        # token, so nothing is ever accepted that would not verify now, but for expiry.
        self._verified_access = lru_cache(maxsize=ACCESS_CACHE_SIZE)(self._decode_access)

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
            }
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
        claims = self._verified_access(token)
        if claims.expires_at.timestamp() <= time.time():
            raise InvalidToken()
        return claims

    def _decode_access(self, token: str) -> AccessClaims:
        payload = self._decode(token, "access", _ACCESS_CLAIMS, verify_expiry=True)
        version = payload["ver"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidToken()
        return AccessClaims(
            user_id=_user_id(payload),
            session_id=_string(payload, "sid"),
            token_version=version,
            issued_at=_datetime(payload["iat"]),
            expires_at=_datetime(payload["exp"]),
            token_id=_string(payload, "jti"),
        )

    def decode_refresh(self, token: str, *, verify_expiry: bool = True) -> RefreshClaims:
        payload = self._decode(token, "refresh", _REFRESH_CLAIMS, verify_expiry=verify_expiry)
        return RefreshClaims(
            user_id=_user_id(payload),
            session_id=_string(payload, "sid"),
            token_id=_string(payload, "jti"),
            issued_at=_datetime(payload["iat"]),
            expires_at=_datetime(payload["exp"]),
        )

    def _encode(self, payload: dict[str, Any]) -> str:
        if self._issuer is not None:
            payload["iss"] = self._issuer
        if self._audience is not None:
            payload["aud"] = self._audience
        return self._jwt.encode(payload, self._key, algorithm=self._algorithm)

    def _decode(
        self, token: str, expected_type: str, required: list[str], *, verify_expiry: bool
    ) -> dict[str, Any]:
        required = list(required)
        if self._issuer is not None:
            required.append("iss")
        if self._audience is not None:
            required.append("aud")
        try:
            payload: dict[str, Any] = self._jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={
                    "require": required,
                    "verify_exp": verify_expiry,
                    "verify_iat": False,  # checked below, with a small skew allowance
                    "verify_nbf": False,
                    "verify_aud": self._audience is not None,
                    "verify_iss": self._issuer is not None,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken() from exc
        if payload.get("type") != expected_type:
            raise InvalidToken()
        now = datetime.now(UTC).timestamp() + CLOCK_SKEW_SECONDS
        for claim in ("iat", "nbf"):
            if claim in payload:
                value = payload[claim]
                # ``not <=`` rather than ``>``: a NaN compares false either way.
                if not _is_number(value) or not value <= now:
                    raise InvalidToken()
        return payload


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
