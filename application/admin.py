"""The operator's use cases: managing accounts and purging old tokens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from application.auth import UowFactory
from application.email import password_changed
from domain.errors import UserNotFound
from domain.model import User
from domain.ports import Clock, PasswordHasher, UnitOfWork
from domain.rules import normalize_login, validate_password

PURGE_BATCH_SIZE = 5_000


async def find_user(uow: UnitOfWork, ref: str) -> User:
    """The user named by ``ref``: an id, an email or a username (in that order)."""
    ref = ref.strip()
    user = None
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if ref.isascii() and ref.isdigit() and len(ref) < 19:
        user = await uow.users.get(int(ref))
    if user is None:
        user = await uow.users.get_by_login(normalize_login(ref))
    if user is None:
        raise UserNotFound(f"No user with id, email or username {ref!r}.")
    return user


async def _reread(uow: UnitOfWork, user_id: int) -> User:
    """The user as a change just left it."""
    user = await uow.users.get(user_id)
    if user is None:
        raise UserNotFound()
    return user


class GetUser:
    """Look a user up by id, email or username."""

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, ref: str) -> User:
        async with self._reader() as uow:
            return await find_user(uow, ref)


class SetPassword:
    """Give a user a new password and end all of the user's sessions."""

    def __init__(self, uow: UowFactory, hasher: PasswordHasher, clock: Clock) -> None:
        self._uow = uow
        self._hasher = hasher
        self._clock = clock

    async def __call__(self, ref: str, password: str) -> User:
        new_hash = await self._hasher.hash(validate_password(password))
        async with self._uow() as uow:
            user = await find_user(uow, ref)
            assert user.id is not None
            now = self._clock.now()
            await uow.users.set_password_hash(user.id, new_hash)
            await uow.end_all_sessions(user.id, now)
            user = await _reread(uow, user.id)
            await password_changed(uow, user, now)
            await uow.commit()
        return user


class SetActive:
    """Activate or deactivate a user; deactivation ends all of the user's sessions."""

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, ref: str, *, active: bool) -> User:
        async with self._uow() as uow:
            user = await find_user(uow, ref)
            assert user.id is not None
            # Decided by the database: of two racing calls, one changes the row.
            if not await uow.users.set_active(user.id, active):
                return await _reread(uow, user.id)
            if not active:
                await uow.end_all_sessions(user.id, self._clock.now())
            user = await _reread(uow, user.id)
            await uow.commit()
        return user


@dataclass(frozen=True)
class PurgeResult:
    tokens: int
    sessions: int
    batches: int
    dry_run: bool


ProgressCallback = Callable[[int], None]


class PurgeTokens:
    """Delete refresh tokens past their expiry, then sessions with no token left.

    Revoked and rotated tokens are kept until they expire, so reuse is still detected.
    Rows go in batches of ``batch_size``, each in its own short transaction, so a large
    table is never locked for long and a stop loses at most the batch in flight.
    """

    def __init__(self, uow: UowFactory, clock: Clock, batch_size: int = PURGE_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._uow = uow
        self._clock = clock
        self.batch_size = batch_size

    async def __call__(
        self, *, dry_run: bool = False, on_progress: ProgressCallback | None = None
    ) -> PurgeResult:
        now = self._clock.now()
        if dry_run:
            async with self._uow() as uow:
                tokens = await uow.refresh_tokens.delete_expired(now, 0, dry_run=True)
                sessions = await uow.sessions.delete_orphans(now, 0, dry_run=True)
            return PurgeResult(tokens=tokens, sessions=sessions, batches=0, dry_run=True)

        tokens, token_batches = await self._drain(
            lambda uow: uow.refresh_tokens.delete_expired(now, self.batch_size), on_progress
        )
        sessions, session_batches = await self._drain(
            lambda uow: uow.sessions.delete_orphans(now, self.batch_size), on_progress
        )
        batches = token_batches + session_batches
        return PurgeResult(tokens=tokens, sessions=sessions, batches=batches, dry_run=False)

    async def _drain(
        self,
        delete_batch: Callable[[UnitOfWork], Awaitable[int]],
        on_progress: ProgressCallback | None,
    ) -> tuple[int, int]:
        """Run ``delete_batch`` in one transaction each until a batch comes back short."""
        total = batches = 0
        while True:
            async with self._uow() as uow:
                deleted = await delete_batch(uow)
                await uow.commit()
            if deleted:
                total += deleted
                batches += 1
                if on_progress:
                    on_progress(deleted)
            if deleted < self.batch_size:
                return total, batches
