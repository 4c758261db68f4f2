"""Second factors: a TOTP app (RFC 6238) with recovery codes, and the login step that
asks for one after a right password.

What is stored: the TOTP secret sealed (never in clear), a SHA-256 of each recovery
code and of each login-step token (never the values). The rules that must hold under
concurrency (a TOTP code is accepted once, a recovery code and a login-step token are
used once, a token dies after ``MAX_FAILURES``) are each one conditional write of the
repository: the database decides.
"""

from __future__ import annotations

import abc
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from domain.email_tokens import token_hash

# The login-step token: at least 32 random bytes, lives 5 minutes, dies after 5 wrong
# second factors.
MFA_TOKEN_BYTES = 32
MFA_TOKEN_TTL = timedelta(minutes=5)
MAX_FAILURES = 5
# Far longer than any token or code this code makes: anything longer names nothing.
MAX_INPUT_LENGTH = 256

RECOVERY_CODE_COUNT = 10
# Crockford's base32 alphabet, lower case (no i, l, o, u): 5 bits a character, so ten
# characters are 50 random bits; typed as two groups of five.
RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
RECOVERY_GROUP = 5
RECOVERY_GROUPS = 2


class Method(StrEnum):
    """The second factors a login step may ask for, in the order they are listed."""

    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    PASSKEY = "passkey"


class Change(StrEnum):
    """A change to how an account is protected (its second factors, its personal access
    tokens): each is mailed to the user as a notice."""

    TOTP_ENABLED = "totp_enabled"
    TOTP_DISABLED = "totp_disabled"
    RECOVERY_CODES_GENERATED = "recovery_codes_generated"
    RECOVERY_CODE_USED = "recovery_code_used"
    RESET_BY_ADMIN = "reset_by_admin"
    PASSKEY_ADDED = "passkey_added"
    PASSKEY_REMOVED = "passkey_removed"
    TOKEN_CREATED = "token_created"  # noqa: S105 - a change's name


@dataclass(frozen=True)
class MfaStatus:
    """Which second factors a user has."""

    totp: bool = False
    passkeys: int = 0
    recovery_codes_left: int = 0

    @property
    def enabled(self) -> bool:
        """Whether the user has any second factor (recovery codes alone are none)."""
        return self.totp or self.passkeys > 0

    @property
    def methods(self) -> tuple[Method, ...]:
        """The factors a login step accepts from this user."""
        if not self.enabled:
            return ()
        found = [Method.TOTP] if self.totp else []
        if self.recovery_codes_left:
            found.append(Method.RECOVERY_CODE)
        if self.passkeys:
            found.append(Method.PASSKEY)
        return tuple(found)


@dataclass(frozen=True)
class SecondFactor:
    """One second factor as presented: a TOTP code, a recovery code, or a passkey's
    assertion (``credential``, the browser's JSON) over the challenge ``challenge_id``."""

    code: str | None = None
    recovery_code: str | None = None
    challenge_id: str | None = None
    credential: dict[str, Any] | None = None

    @property
    def method(self) -> Method | None:
        if self.code is not None:
            return Method.TOTP
        if self.recovery_code is not None:
            return Method.RECOVERY_CODE
        if self.challenge_id is not None and self.credential is not None:
            return Method.PASSKEY
        return None


@dataclass(frozen=True)
class TotpFactor:
    """A user's TOTP secret, sealed. Pending (``enabled_at`` None) until a first code
    confirms it; ``last_step`` is the newest time step whose code was accepted."""

    user_id: int
    sealed_secret: bytes
    created_at: datetime
    enabled_at: datetime | None = None
    last_step: int | None = None

    @property
    def enabled(self) -> bool:
        return self.enabled_at is not None


@dataclass(frozen=True)
class NewTotpSecret:
    """A fresh secret: in clear to show once, sealed to store."""

    secret: str
    sealed: bytes


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Fresh recovery codes, such as ``k7qm2-x9tfa``."""
    return [
        "-".join(
            "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_GROUP))
            for _ in range(RECOVERY_GROUPS)
        )
        for _ in range(count)
    ]


def recovery_code_hash(code: str) -> str | None:
    """What is stored of a recovery code, and what a use looks it up by: its SHA-256,
    regardless of case, spaces or dashes. None for input that cannot be a code. One
    fast hash is enough: a code has 50 random bits, not a person's choice."""
    if len(code) > MAX_INPUT_LENGTH:
        return None
    normalized = "".join(code.split()).replace("-", "").lower()
    if len(normalized) != RECOVERY_GROUP * RECOVERY_GROUPS or not all(
        c in RECOVERY_ALPHABET for c in normalized
    ):
        return None
    return token_hash(normalized)


@dataclass(eq=False)
class MfaToken:
    """The proof of a right password, waiting for its second factor: single use, bound
    to one user (and to their token version, so a password change meanwhile ends it)."""

    id: str  # the token's SHA-256, hex
    user_id: int
    token_version: int
    created_at: datetime
    expires_at: datetime
    failures: int = 0
    used_at: datetime | None = None

    @classmethod
    def issue(cls, user_id: int, token_version: int, now: datetime) -> tuple[str, MfaToken]:
        """A fresh token (for the client) and its stored form."""
        value = secrets.token_urlsafe(MFA_TOKEN_BYTES)
        stored = cls(
            id=token_hash(value),
            user_id=user_id,
            token_version=token_version,
            created_at=now,
            expires_at=now + MFA_TOKEN_TTL,
        )
        return value, stored


def mfa_token_id(token: str) -> str | None:
    """The stored form of a presented token, or None for one that cannot be ours."""
    if not token or len(token) > MAX_INPUT_LENGTH:
        return None
    return token_hash(token)


class TotpCodes(abc.ABC):
    """The TOTP algorithm (RFC 6238: SHA-1, 6 digits, 30-second steps) and the sealing
    of its secrets at rest."""

    @abc.abstractmethod
    def new_secret(self, user_id: int) -> NewTotpSecret:
        """A fresh secret of at least 160 random bits, base32, and its sealed form
        (bound to ``user_id``: sealed for one user, it opens for no other)."""

    @abc.abstractmethod
    def uri(self, secret: str, account: str, issuer: str) -> str:
        """The ``otpauth://totp/`` URI an authenticator app scans."""

    @abc.abstractmethod
    def matching_step(self, factor: TotpFactor, code: str, now: datetime) -> int | None:
        """The newest time step among the current one and one either side whose code
        is ``code``; None when none is. Whether that step may still be used is the
        repository's to decide (``use_totp_step``)."""


class SecondFactorRepository(abc.ABC):
    @abc.abstractmethod
    async def hold(self, user_id: int) -> None:
        """Hold the user's second factors until the transaction ends: another change to
        them waits here, and then sees this one's outcome. A change that decides by
        what factors remain (the last one takes the recovery codes with it) holds them
        first."""

    @abc.abstractmethod
    async def status(self, user_id: int) -> MfaStatus:
        """Which second factors the user has, in one round trip."""

    @abc.abstractmethod
    async def get_totp(self, user_id: int) -> TotpFactor | None:
        """The user's TOTP factor, pending or enabled."""

    @abc.abstractmethod
    async def set_pending_totp(self, user_id: int, sealed_secret: bytes, at: datetime) -> bool:
        """Store a pending secret in place of any pending one; False (nothing written)
        while TOTP is enabled."""

    @abc.abstractmethod
    async def enable_totp(
        self, user_id: int, sealed_secret: bytes, step: int, at: datetime
    ) -> bool:
        """Enable the pending secret ``sealed_secret``, its code of ``step`` used; only
        while that is still the user's pending secret (of two confirmations at once,
        one wins). Whether it was enabled."""

    @abc.abstractmethod
    async def use_totp_step(self, user_id: int, step: int) -> bool:
        """Accept the code of ``step``: only while TOTP is enabled and no code of this
        step or a later one was accepted. Of concurrent uses of one code, one wins."""

    @abc.abstractmethod
    async def disable_totp(self, user_id: int) -> bool:
        """Remove the user's TOTP factor, pending or not; whether an enabled one went."""

    @abc.abstractmethod
    async def replace_recovery_codes(
        self, user_id: int, code_hashes: list[str], at: datetime
    ) -> None:
        """Store a new set of recovery codes (their hashes); the old set stops working."""

    @abc.abstractmethod
    async def use_recovery_code(self, user_id: int, code_hash: str, at: datetime) -> bool:
        """Use the user's unused code with this hash; of concurrent uses, one wins."""

    @abc.abstractmethod
    async def delete_recovery_codes(self, user_id: int) -> None:
        """Remove every recovery code of the user."""


class MfaTokenRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, token: MfaToken) -> None:
        """Store a newly issued login-step token."""

    @abc.abstractmethod
    async def find_usable(self, token_id: str, now: datetime) -> MfaToken | None:
        """The token while it is unused, unexpired and under ``MAX_FAILURES``."""

    @abc.abstractmethod
    async def redeem(self, token_id: str, now: datetime) -> MfaToken | None:
        """Use the token up, in one conditional statement: of concurrent redemptions
        exactly one gets it; unknown, used, expired and dead tokens give None."""

    @abc.abstractmethod
    async def fail(self, token_id: str) -> None:
        """Count one wrong second factor against an unused token (dead at
        ``MAX_FAILURES``)."""

    @abc.abstractmethod
    async def end_all(self, user_id: int, at: datetime) -> int:
        """End every unused token of the user; how many."""

    @abc.abstractmethod
    async def delete_spent(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` tokens used or expired before ``before``; how many."""
