"""Entities and value objects of the domain."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

from domain.errors import InvalidValue

if TYPE_CHECKING:
    from domain.scopes import Scope

T = TypeVar("T")

MAX_PAGE_SIZE = 100


ID_LENGTH = 32


def new_id() -> str:
    """A random, URL-safe identifier for sessions and refresh tokens (128 bits)."""
    return secrets.token_hex(ID_LENGTH // 2)


def is_id(value: str) -> bool:
    """Whether ``value`` has the form of an id that ``new_id`` makes: anything else
    names nothing, and never reaches the database."""
    return len(value) == ID_LENGTH and all(c in "0123456789abcdef" for c in value)


@dataclass(eq=False)
class User:
    email: str
    username: str
    password_hash: str
    created_at: datetime
    full_name: str | None = None
    is_active: bool = True
    is_superuser: bool = False
    # The current email address has been confirmed (by a mailed link).
    is_verified: bool = False
    # Bumped whenever every access token issued so far must stop working.
    token_version: int = 0
    id: int | None = None  # assigned by the repository on add


@dataclass(frozen=True)
class Credentials:
    """What a write checks is still current: the password hash and token version the
    caller was authenticated with."""

    password_hash: str
    token_version: int

    @classmethod
    def of(cls, user: User) -> Credentials:
        return cls(password_hash=user.password_hash, token_version=user.token_version)


@dataclass(frozen=True)
class ProfileUpdate:
    """Fields of a user to write; ``None`` leaves a field as it is, except
    ``full_name``, which is written whenever ``set_full_name`` is true. A new email
    address is unconfirmed until its link is followed."""

    email: str | None = None
    username: str | None = None
    full_name: str | None = None
    set_full_name: bool = False
    password_hash: str | None = None

    def fields(self) -> dict[str, str | None]:
        values: dict[str, str | None] = {
            name: value
            for name, value in (
                ("email", self.email),
                ("username", self.username),
                ("password_hash", self.password_hash),
            )
            if value is not None
        }
        if self.set_full_name:
            values["full_name"] = self.full_name
        return values

    @property
    def unverifies(self) -> bool:
        """Whether the write makes the email address unconfirmed."""
        return self.email is not None


@dataclass(eq=False)
class Session:
    """One login: the refresh tokens it rotates through form its family."""

    user_id: int
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None = None
    revoked_at: datetime | None = None
    # The user's token version when the session was opened: a session opened by a login
    # that raced a password change (or logout-all) never outlives it.
    token_version: int = 0
    id: str = field(default_factory=new_id)
    # When the user last proved who they are in this session: the login, or a
    # re-authentication since (a refresh does not count). None: at ``created_at``.
    authenticated_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.authenticated_at is None:
            self.authenticated_at = self.created_at

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now

    def admits(self, user: User, now: datetime) -> bool:
        """Whether the session's tokens still speak for ``user``: the session is live,
        the user active, and no revocation of all the user's tokens came after it."""
        return (
            self.is_active(now)
            and self.user_id == user.id
            and user.is_active
            and self.token_version == user.token_version
        )


@dataclass(eq=False)
class RefreshToken:
    session_id: str
    user_id: int
    created_at: datetime
    expires_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None
    id: str = field(default_factory=new_id)


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: str
    token_version: int
    issued_at: datetime
    expires_at: datetime
    token_id: str = field(default_factory=new_id)


@dataclass(frozen=True)
class RefreshClaims:
    user_id: int
    session_id: str
    token_id: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives


@dataclass(frozen=True)
class Principal:
    """Who an accepted token speaks for: a session's access token, or a personal access
    token (``token_id``, with its ``scopes``)."""

    user: User
    # The session of an access token; None for a personal access token.
    session_id: str | None
    # When the session's user last proved who they are (None: not known, never recent).
    authenticated_at: datetime | None = None
    # A personal access token's scopes; None for a session, which has its user's rights.
    scopes: frozenset[Scope] | None = None
    token_id: str | None = None

    @property
    def user_id(self) -> int:
        assert self.user.id is not None, "a principal's user is always stored"
        return self.user.id

    def authenticated_recently(self, now: datetime, window: timedelta) -> bool:
        """Whether the session's last login or re-authentication is within ``window``."""
        at = self.authenticated_at
        return at is not None and now - at <= window

    @property
    def is_session(self) -> bool:
        return self.scopes is None

    def allows(self, scope: Scope | None) -> bool:
        """Whether the caller may do what needs ``scope`` (None: what no token may do).
        A session may do anything its user may; a token what its scopes name, and an
        admin scope only while its owner is still a superuser."""
        if self.scopes is None:
            return True
        if scope is None or scope not in self.scopes:
            return False
        return not scope.needs_superuser or self.user.is_superuser


@dataclass(frozen=True)
class UserFilter:
    """Which users an admin's search shows: ``q`` is a case-insensitive substring of the
    email or the username (on SQLite, whose ``lower()`` knows ASCII only, the case of
    other letters counts); the flags match when given."""

    q: str | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None
    is_verified: bool | None = None


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    size: int = 20

    def __post_init__(self) -> None:
        if self.page < 1:
            raise InvalidValue("page", "page must be at least 1")
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise InvalidValue("size", f"size must be between 1 and {MAX_PAGE_SIZE}")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        # Integer division: a float quotient loses precision for large totals.
        return -(-self.total // self.size)
