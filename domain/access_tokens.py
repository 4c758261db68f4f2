"""Personal access tokens: long-lived, scoped credentials for scripts and CI.

A token reads ``app_pat_`` + 43 base62 characters (32 random bytes) + a 6-character
base62 CRC32 of those 43 characters. The prefix lets secret scanners find a leaked
token; the checksum lets them (and ``checksum_ok``) tell a real one from a look-alike
without asking the server. Only the token's SHA-256 is stored.

A token never outlives what would end its owner's sessions: it keeps the owner's token
version at its creation, and every change that ends all sessions (a new password,
logout-all, an admin's revocation, an MFA reset) bumps that version.
"""

from __future__ import annotations

import abc
import secrets
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.email_tokens import token_hash
from domain.errors import DomainError, ErrorCategory, NotFound
from domain.fields import Text
from domain.model import User, new_id
from domain.scopes import Scope

PREFIX = "app_pat_"
SECRET_BYTES = 32
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 62**43 > 2**256 and 62**6 > 2**32: each part has a fixed width.
BODY_LENGTH = 43
CHECKSUM_LENGTH = 6
TOKEN_LENGTH = len(PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH
# A token's name: its limits reach the table and the request schema from here.
NAME = Text("name", max_length=64)
MAX_LIVE_TOKENS = 50
MAX_LIFETIME_DAYS = 365
# ``last_used_at`` is kept to the minute: a token is written at most once a minute.
USE_RESOLUTION = timedelta(minutes=1)


class TooManyTokens(DomainError):
    category = ErrorCategory.CONFLICT
    code = "too_many_tokens"
    message = f"A user has at most {MAX_LIVE_TOKENS} live personal access tokens."


class AccessTokenNotFound(NotFound):
    message = "No such personal access token."


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits.append(_ALPHABET[digit])
    assert value == 0, "the value does not fit the width"
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def new_token() -> str:
    """A fresh token, checksum included."""
    return token_from(secrets.token_bytes(SECRET_BYTES))


def token_from(secret: bytes) -> str:
    """The token of ``secret`` (``SECRET_BYTES`` random bytes), checksum included."""
    body = _base62(int.from_bytes(secret, "big"), BODY_LENGTH)
    return PREFIX + body + _checksum(body)


def looks_like_token(value: str) -> bool:
    """Whether ``value`` is meant as a personal access token (rather than a JWT)."""
    return value.startswith(PREFIX)


def checksum_ok(token: str) -> bool:
    """Whether ``token`` has the form and checksum of one this service made: what a
    secret scanner checks offline, and what the server checks before any lookup."""
    if len(token) != TOKEN_LENGTH or not token.startswith(PREFIX):
        return False
    rest = token[len(PREFIX) :]
    if not all(c in _ALPHABET for c in rest):
        return False
    body, checksum = rest[:BODY_LENGTH], rest[BODY_LENGTH:]
    return secrets.compare_digest(_checksum(body), checksum)


def on_the_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


@dataclass(eq=False)
class AccessToken:
    """A stored personal access token: its SHA-256, never the token."""

    id: str
    user_id: int
    name: str
    scopes: frozenset[Scope]
    token_hash: str
    # The owner's token version at creation: any later bump ends the token.
    token_version: int
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = None

    @classmethod
    def issue(
        cls, owner: User, name: str, scopes: frozenset[Scope], days: int, now: datetime
    ) -> tuple[str, AccessToken]:
        """A fresh token (shown once) and its stored form."""
        assert owner.id is not None, "a token's owner is stored"
        token = new_token()
        stored = cls(
            id=new_id(),
            user_id=owner.id,
            name=name,
            scopes=scopes,
            token_hash=token_hash(token),
            token_version=owner.token_version,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        return token, stored

    def admits(self, owner: User, now: datetime) -> bool:
        """Whether the token still speaks for ``owner``: not expired, and nothing has
        ended the owner's sessions (or the owner's account) since it was made."""
        return (
            now < self.expires_at
            and owner.is_active
            and owner.id == self.user_id
            and owner.token_version == self.token_version
        )

    def use_to_record(self, now: datetime) -> datetime | None:
        """The ``last_used_at`` to write for a use at ``now``: None while the stored one
        already says this minute (no write per request)."""
        minute = on_the_minute(now)
        if self.last_used_at is not None and self.last_used_at >= minute:
            return None
        return minute


class AccessTokenRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, token: AccessToken, limit: int) -> bool:
        """Store ``token`` unless its owner has ``limit`` live tokens already (False):
        decided by the database, also when two are created at once. Holds the owner's
        row until the transaction ends; ``InvalidToken`` if the owner is gone."""

    @abc.abstractmethod
    async def list_live(self, user_id: int, now: datetime) -> list[AccessToken]:
        """The user's live tokens (not expired, not ended by a token version bump),
        newest first."""

    @abc.abstractmethod
    async def get_with_owner(self, token_hash: str) -> tuple[AccessToken, User] | None:
        """The token stored under ``token_hash`` and its owner, in one statement."""

    @abc.abstractmethod
    async def record_use(self, token_id: str, at: datetime) -> None:
        """Set ``last_used_at`` to ``at`` unless it already is as late."""

    @abc.abstractmethod
    async def delete(self, token_id: str, user_id: int) -> AccessToken | None:
        """Remove one of the user's tokens; the removed token, or None if there was none."""

    @abc.abstractmethod
    async def delete_spent(self, now: datetime, limit: int) -> int:
        """Remove up to ``limit`` expired or ended tokens; how many went."""
