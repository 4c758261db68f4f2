"""The ports: what the use cases need from the outside world, stated as contracts.

Adapters implement these ABCs; tests implement them with in-memory fakes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TypeAlias, TypeVar

from domain.model import (
    AccessClaims,
    Credentials,
    PageRequest,
    ProfileUpdate,
    RefreshClaims,
    RefreshToken,
    Session,
    User,
    UserFilter,
)

R = TypeVar("R")


class UserRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, user: User) -> User:
        """Store a new user and assign its ``id``.

        Raises ``EmailTaken`` or ``UsernameTaken`` when either is already in use; the
        storage settles races, not a prior read. Emails are compared by their canonical
        forms (``domain.rules.canonical``: NFKC-normalised, case-folded), so a
        look-alike of a taken one is taken too; usernames, which the rules keep to
        ASCII once NFKC-normalised (``normalize_username``), regardless of case.
        """

    @abc.abstractmethod
    async def get(self, user_id: int) -> User | None:
        """The user with this id, active or not."""

    @abc.abstractmethod
    async def get_by_login(self, login: str) -> User | None:
        """The user whose email or username has the same canonical form as ``login``."""

    @abc.abstractmethod
    async def get_by_email(self, email: str) -> User | None:
        """The user whose email has the same canonical form as ``email`` (so a look-alike
        of the stored address finds it too)."""

    @abc.abstractmethod
    async def get_with_session(
        self, user_id: int, session_id: str
    ) -> tuple[User, Session | None] | None:
        """The user and its session ``session_id`` in one round trip.

        ``None`` when the user does not exist; the session is ``None`` when it does
        not exist or belongs to someone else.
        """

    @abc.abstractmethod
    async def email_taken(self, email: str, *, except_user: int | None = None) -> bool:
        """Whether another user has an email of the same canonical form as ``email``."""

    @abc.abstractmethod
    async def username_taken(self, username: str, *, except_user: int | None = None) -> bool:
        """Whether another user has this username, regardless of case. Usernames are
        compared as the rules leave them (ASCII once NFKC-normalised): normalise one
        with ``normalize_username`` before asking."""

    # Writes name what they change and never write back a whole row read earlier: a
    # change made meanwhile by another request (a deactivation, a password change) is
    # never undone. Each is one conditional statement: the database decides.

    @abc.abstractmethod
    async def update_profile(
        self, user_id: int, changes: ProfileUpdate, *, if_current: Credentials
    ) -> bool:
        """Write the fields set in ``changes``, only while the user is active and still
        has the credentials ``if_current`` (so no password change or revocation of all
        tokens came in between); whether it was written. Same uniqueness errors as
        ``add``."""

    @abc.abstractmethod
    async def set_password_hash(
        self, user_id: int, new_hash: str, *, if_hash: str | None = None
    ) -> bool:
        """Store a new password hash; with ``if_hash`` only while that is still the
        stored one. Whether it was written. Ending the sessions is the caller's call."""

    @abc.abstractmethod
    async def mark_verified(self, user_id: int, *, if_email: str) -> bool:
        """Mark the user's email address confirmed, only while the user is active and
        still has the address ``if_email``; whether it was written (also when it was
        confirmed already)."""

    @abc.abstractmethod
    async def update_details(self, user_id: int, changes: ProfileUpdate) -> bool:
        """Write the fields set in ``changes`` whatever the user's state (an admin's
        edit); whether the user exists. Same uniqueness errors as ``add``."""

    @abc.abstractmethod
    async def set_verified(self, user_id: int, verified: bool) -> bool:
        """Mark the email address confirmed or not; whether the user exists."""

    # The last active superuser is never deactivated, demoted or deleted. Each of the
    # three writes below decides that with the database: it holds every active
    # superuser's row while it checks, so two admins demoting each other at once cannot
    # both succeed. When one returns False, a read of the user tells why.

    @abc.abstractmethod
    async def set_active(self, user_id: int, active: bool) -> bool:
        """Activate or deactivate the user; whether that changed anything (never the
        deactivation of the last active superuser)."""

    @abc.abstractmethod
    async def set_superuser(self, user_id: int, superuser: bool) -> bool:
        """Grant or revoke superuser access; whether that changed anything (never the
        demotion of the last active superuser)."""

    @abc.abstractmethod
    async def revoke_tokens(self, user_id: int) -> bool:
        """Bump the user's token version: every access token issued so far dies.
        Whether the user exists."""

    @abc.abstractmethod
    async def delete(self, user_id: int) -> bool:
        """Remove the user, its sessions and its refresh tokens; whether it was removed
        (never the last active superuser)."""

    @abc.abstractmethod
    async def list_page(self, page: PageRequest, *, active_only: bool) -> tuple[list[User], int]:
        """One page of users ordered by id, and the total number of matching users."""

    @abc.abstractmethod
    async def search_page(self, where: UserFilter, page: PageRequest) -> tuple[list[User], int]:
        """One page of the users ``where`` matches, ordered by id, and how many match."""


class SessionRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, session: Session) -> bool:
        """Store a new session, only while its user exists, is active and still has the
        session's token version; whether it was stored. A login that raced a
        deactivation, a deletion or a password change opens nothing."""

    @abc.abstractmethod
    async def get(self, session_id: str) -> Session | None:
        """The session with this id, revoked or not."""

    @abc.abstractmethod
    async def list_for_user(self, user_id: int) -> list[Session]:
        """Every stored session of the user, ended ones too, newest first (which of them
        are live is ``Session.is_active``'s to say)."""

    @abc.abstractmethod
    async def extend(self, session_id: str, used_at: datetime, expires_at: datetime) -> None:
        """Record a use of the session and how long its newest refresh token lives."""

    @abc.abstractmethod
    async def mark_authenticated(self, session_id: str, at: datetime) -> bool:
        """Record that the session's user proved who they are at ``at``; whether the
        session was live (not revoked, not expired at ``at``)."""

    @abc.abstractmethod
    async def revoke(self, session_id: str, at: datetime) -> None:
        """Revoke the session and every refresh token of its family."""

    @abc.abstractmethod
    async def revoke_all(self, user_id: int, at: datetime) -> None:
        """Revoke every session and refresh token of the user."""

    @abc.abstractmethod
    async def delete_orphans(self, now: datetime, limit: int, *, dry_run: bool = False) -> int:
        """Delete up to ``limit`` expired sessions that have no refresh token left;
        return how many. With ``dry_run`` it deletes nothing and counts every expired
        session, whatever ``limit`` (their tokens would all be purged first)."""


class RefreshTokenRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, token: RefreshToken) -> None:
        """Store a newly issued refresh token."""

    @abc.abstractmethod
    async def get_with_owner(self, token_id: str) -> tuple[RefreshToken, Session, User] | None:
        """The refresh token with its session and its user, in one round trip; None when
        the token is unknown."""

    @abc.abstractmethod
    async def mark_rotated(self, token_id: str, at: datetime) -> bool:
        """Mark the token rotated if it is neither rotated nor revoked yet.

        Atomic: of several concurrent calls for one token exactly one returns True.
        """

    @abc.abstractmethod
    async def delete_expired(self, now: datetime, limit: int, *, dry_run: bool = False) -> int:
        """Delete up to ``limit`` tokens whose expiry has passed, whatever their state;
        return how many. With ``dry_run`` it deletes nothing and counts all of them,
        whatever ``limit``."""


class UnitOfWork(abc.ABC):
    """One transaction. ``async with uow:`` opens it; leaving without ``commit()``
    (or through an exception) rolls everything back."""

    @abc.abstractmethod
    def repository(self, port: type[R]) -> R:
        """The repository for ``port`` in this unit of work (inside ``async with``): the
        one way to reach a repository. ``uow.repository(UserRepository)`` is typed as a
        ``UserRepository``; a port with no adapter raises ``LookupError``."""

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()

    @abc.abstractmethod
    async def commit(self) -> None:
        """Make everything done in this unit of work durable, at once."""

    @abc.abstractmethod
    async def rollback(self) -> None:
        """Discard whatever has not been committed. Safe to call after ``commit()``."""


# What a use case is given to open units of work: one per transaction.
UowFactory: TypeAlias = Callable[[], UnitOfWork]


class PasswordHasher(abc.ABC):
    @abc.abstractmethod
    async def hash(self, password: str) -> str:
        """A salted, slow hash of the password, encoded with its parameters."""

    @abc.abstractmethod
    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether the password matches. With ``password_hash=None`` it verifies
        against a dummy hash and returns False, so that an unknown user costs the
        same time as a known one."""

    @abc.abstractmethod
    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with parameters other than the current ones."""


class TokenCodec(abc.ABC):
    """Signs and checks JWTs. Every decode checks signature, algorithm, the ``type``
    claim, expiry, required claims and (when configured) issuer and audience, and
    raises ``InvalidToken`` on any failure."""

    @abc.abstractmethod
    def encode_access(self, claims: AccessClaims) -> str: ...

    @abc.abstractmethod
    def encode_refresh(self, claims: RefreshClaims) -> str: ...

    @abc.abstractmethod
    def decode_access(self, token: str) -> AccessClaims: ...

    @abc.abstractmethod
    def decode_refresh(self, token: str, *, verify_expiry: bool = True) -> RefreshClaims: ...


class Clock(abc.ABC):
    @abc.abstractmethod
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""


class FailedLoginCounter(abc.ABC):
    """Counts failed password checks per account so that one account attacked from many
    addresses is throttled, without a permanent lock-out.

    A check takes its slot *before* the slow verification, so however many attempts
    arrive at once, at most the limit's number are ever verified per window. The count is
    never skipped: while its storage cannot be reached, no attempt goes ahead."""

    @abc.abstractmethod
    async def acquire(self, account: str) -> int | None:
        """Take one attempt for ``account``: None when it may go ahead, else the seconds
        until it may try again (and nothing was taken). Raises ``LimitsUnavailable``
        while the storage cannot be reached: the attempt is refused, never let through
        uncounted."""

    @abc.abstractmethod
    async def succeeded(self, account: str) -> None:
        """The attempt was right: the account's failures are forgiven. Never raises: if
        the storage cannot be reached they are merely not forgiven (the safe side)."""


class RateLimits(abc.ABC):
    """Named limits, such as ``"login"`` at 5 a minute, each counted per key (a client's
    address): the limits an operator configures for the delivery adapters."""

    @abc.abstractmethod
    def names(self) -> frozenset[str]:
        """The names of the configured limits."""

    @abc.abstractmethod
    async def hit(self, name: str, key: str) -> int | None:
        """Count one hit of ``key`` against the limit ``name``: None while under it, else
        the seconds to wait. Raises ``LimitsUnavailable`` while the storage cannot be
        reached: the guarded request is refused, never let through unlimited."""


class DatabaseProbe(abc.ABC):
    @abc.abstractmethod
    async def ping(self) -> bool:
        """Whether the database answers right now; never raises."""


@dataclass(frozen=True, slots=True)
class SchemaBehind:
    """The database's schema is older than the code: it is at the revisions ``current``
    (none: no migration was ever applied) while the code's migrations end at ``head``."""

    current: tuple[str, ...]
    head: tuple[str, ...]


class SchemaProbe(abc.ABC):
    """Whether the database's schema is the one this code's migrations make: a process
    must not serve against a schema that lacks what its code expects."""

    @abc.abstractmethod
    async def behind(self) -> SchemaBehind | None:
        """How the schema is behind the code's head revision, or None when it is at
        the head, or past it (a newer release migrated first: its migrations keep the
        schema usable by the code before it). Raises ``ServiceUnavailable`` when the
        database cannot be reached."""
