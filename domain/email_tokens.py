"""Single-use tokens mailed to a user: to confirm an address, or to reset a password.

Only a SHA-256 of each token is ever stored; the token itself exists in the mail alone.
"""

from __future__ import annotations

import abc
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# At least 32 random bytes, URL-safe (43 characters).
TOKEN_BYTES = 32
# Far longer than any token this code makes: anything longer names nothing.
TOKEN_MAX_LENGTH = 256


class Purpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose, not a password


def token_hash(token: str) -> str:
    """What is stored of a token, and what a redemption looks it up by."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(eq=False)
class EmailToken:
    """A stored token: bound to one purpose, one user and the address it was sent to."""

    id: str  # the token's SHA-256, hex
    purpose: Purpose
    user_id: int
    email: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None

    @classmethod
    def issue(
        cls, purpose: Purpose, user_id: int, email: str, now: datetime, ttl: timedelta
    ) -> tuple[str, EmailToken]:
        """A fresh token (to mail) and its stored form."""
        value = secrets.token_urlsafe(TOKEN_BYTES)
        stored = cls(
            id=token_hash(value),
            purpose=purpose,
            user_id=user_id,
            email=email,
            created_at=now,
            expires_at=now + ttl,
        )
        return value, stored

    def is_usable(self, now: datetime) -> bool:
        return self.used_at is None and self.expires_at > now


class EmailTokenRepository(abc.ABC):
    @abc.abstractmethod
    async def issue(self, token: EmailToken) -> None:
        """Store a newly issued token. The user's older tokens of its purpose stay
        usable until ``supersede`` says this one has gone out: a mail that fails to
        leave never takes the previous link away."""

    @abc.abstractmethod
    async def supersede(self, token: EmailToken, at: datetime) -> int:
        """``token`` has been sent: end the user's other unused tokens of its purpose
        issued before it or at the same instant; how many. However the sends of
        several tokens interleave, the newest one sent stays usable."""

    @abc.abstractmethod
    async def find_usable(
        self, token_id: str, purpose: Purpose, now: datetime
    ) -> EmailToken | None:
        """The token with this hash and purpose while it is unused and unexpired."""

    @abc.abstractmethod
    async def redeem(self, token_id: str, purpose: Purpose, now: datetime) -> EmailToken | None:
        """Use the token up: one conditional statement, so that of concurrent
        redemptions exactly one gets the token back; the others (and any later one)
        get None, as do unknown, expired and superseded tokens."""

    @abc.abstractmethod
    async def end_all(self, user_id: int, purpose: Purpose | None, at: datetime) -> int:
        """End every unused token of the user for ``purpose`` (every purpose when it
        is None): what they were for has been done another way, or the account
        changed under them. How many."""

    @abc.abstractmethod
    async def delete_spent(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` tokens used or expired before ``before``; how many."""
