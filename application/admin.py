"""Managing accounts (the admin API and the CLI share these use cases)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from application.accounts import UNSET, Unset, delete_user, end_all_sessions, ensure_free
from application.audit import record
from application.email import email_changed, password_changed, queue_message
from domain.audit import Action
from domain.errors import (
    CannotChangeOwnAccess,
    EmailTaken,
    InvalidValue,
    LastSuperuser,
    Raises,
    UsernameTaken,
    UserNotFound,
)
from domain.model import Page, PageRequest, ProfileUpdate, Session, User, UserFilter
from domain.orgs import LastOwner
from domain.outbox import Template
from domain.ports import (
    Clock,
    PasswordHasher,
    SessionRepository,
    UnitOfWork,
    UowFactory,
    UserRepository,
)
from domain.rules import (
    normalize_login,
    validate_email,
    validate_full_name,
    validate_password,
    validate_username,
)

# A user as the API names one (its id) or as an operator may (an id, email or username).
UserRef = int | str


async def find_user(uow: UnitOfWork, ref: UserRef) -> User:
    """The user named by ``ref``: an id; or, for a string, an id, an email or a username
    (in that order)."""
    if isinstance(ref, int):
        found = await uow.repository(UserRepository).get(ref)
        if found is None:
            raise UserNotFound()
        return found
    ref = ref.strip()
    user = None
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if ref.isascii() and ref.isdigit() and len(ref) < 19:
        user = await uow.repository(UserRepository).get(int(ref))
    if user is None:
        user = await uow.repository(UserRepository).get_by_login(normalize_login(ref))
    if user is None:
        raise UserNotFound(f"No user with id, email or username {ref!r}.")
    return user


async def _reread(uow: UnitOfWork, user: User) -> User:
    """The user as a change just left it."""
    assert user.id is not None
    found = await uow.repository(UserRepository).get(user.id)
    if found is None:
        raise UserNotFound()
    return found


class GetUser:
    """Look a user up by id, email or username."""

    raises: Raises = (UserNotFound,)

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, ref: UserRef) -> User:
        async with self._reader() as uow:
            return await find_user(uow, ref)


class SetPassword:
    """Give a user a new password and end all of the user's sessions."""

    raises: Raises = (InvalidValue, UserNotFound)

    def __init__(self, uow: UowFactory, hasher: PasswordHasher, clock: Clock) -> None:
        self._uow = uow
        self._hasher = hasher
        self._clock = clock

    async def __call__(self, ref: UserRef, password: str) -> User:
        new_hash = await self._hasher.hash(validate_password(password))
        async with self._uow() as uow:
            user = await find_user(uow, ref)
            assert user.id is not None
            now = self._clock.now()
            await uow.repository(UserRepository).set_password_hash(user.id, new_hash)
            await end_all_sessions(uow, user.id, now)
            user = await _reread(uow, user)
            await password_changed(uow, user, now)
            await record(uow, Action.PASSWORD_CHANGED, user.id, now)
            await uow.commit()
        return user


class SetActive:
    """Activate or deactivate a user; deactivation ends all of the user's sessions, and
    the last active superuser is never deactivated."""

    raises: Raises = (UserNotFound, LastSuperuser)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, ref: UserRef, *, active: bool) -> User:
        async with self._uow() as uow:
            user = await find_user(uow, ref)
            now = self._clock.now()
            if not await change_access(uow, user, now, active=active):
                return await _reread(uow, user)  # nothing to change: nothing written
            user = await _reread(uow, user)
            await uow.commit()
        return user


async def change_access(
    uow: UnitOfWork,
    user: User,
    now: datetime,
    *,
    active: bool | None = None,
    superuser: bool | None = None,
) -> list[str]:
    """(De)activate and grant or revoke superuser access, as asked; what changed. Losing
    either ends every session of the user at once; the last active superuser keeps
    both (``LastSuperuser``), decided by the database, not by what was read before."""
    assert user.id is not None
    users = uow.repository(UserRepository)
    changed = []
    ended = False
    for wanted, current, write, gained, lost, name in (
        (active, user.is_active, users.set_active, Action.ACTIVATED, Action.DEACTIVATED,
         "is_active"),
        (superuser, user.is_superuser, users.set_superuser, Action.SUPERUSER_GRANTED,
         Action.SUPERUSER_REVOKED, "is_superuser"),
    ):  # fmt: skip
        if wanted is None or wanted == current:
            continue
        if not await write(user.id, wanted):
            now_stored = await users.get(user.id)
            if now_stored is None:
                raise UserNotFound()
            if getattr(now_stored, name) == wanted:
                continue  # someone else made the same change meanwhile
            raise LastSuperuser()
        changed.append(name)
        await record(uow, gained if wanted else lost, user.id, now)
        if not wanted and not ended:
            await end_all_sessions(uow, user.id, now)
            ended = True
    return changed


@dataclass(frozen=True)
class UserChanges:
    """An admin's changes to an account; ``None`` (``UNSET`` for ``full_name``) leaves
    a field as it is."""

    email: str | None = None
    username: str | None = None
    full_name: str | Unset | None = UNSET
    is_active: bool | None = None
    is_superuser: bool | None = None
    is_verified: bool | None = None


class UpdateUser:
    """Change any account: its email, username, full name, and whether it is active, a
    superuser and confirmed. Deactivating or demoting ends every session of the user at
    once. Nobody removes their own access or moves their own address here, and the last
    active superuser keeps theirs. A new address is unconfirmed until the link mailed to
    it is followed, every link mailed before stops working, and the old address is
    told."""

    raises: Raises = (
        InvalidValue,
        UserNotFound,
        CannotChangeOwnAccess,
        LastSuperuser,
        EmailTaken,
        UsernameTaken,
    )

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(
        self, ref: UserRef, changes: UserChanges, *, acting_user: int | None = None
    ) -> User:
        email = validate_email(changes.email) if changes.email is not None else None
        if email is not None and changes.is_verified:
            # The new address is confirmed by the link mailed to it, never by decree.
            raise InvalidValue("is_verified", "cannot be set together with a new email")
        username = validate_username(changes.username) if changes.username is not None else None
        full_name = changes.full_name
        if not isinstance(full_name, Unset):
            full_name = validate_full_name(full_name)
        async with self._uow() as uow:
            user = await find_user(uow, ref)
            assert user.id is not None
            new_email = email if email not in (None, user.email) else None
            # A superuser's own address is changed through /users/me, with the password:
            # a stolen access token alone must not move an account to another mailbox.
            if user.id == acting_user and (
                False in (changes.is_active, changes.is_superuser) or new_email is not None
            ):
                raise CannotChangeOwnAccess()
            now = self._clock.now()
            update = ProfileUpdate(
                email=new_email,
                username=username if username not in (None, user.username) else None,
                full_name=None if isinstance(full_name, Unset) else full_name,
                set_full_name=not isinstance(full_name, Unset) and full_name != user.full_name,
            )
            fields = [name for name in update.fields() if name != "password_hash"]
            await ensure_free(uow, update.email, update.username, except_user=user.id)
            if fields and not await uow.repository(UserRepository).update_details(user.id, update):
                raise UserNotFound()
            fields += await change_access(
                uow, user, now, active=changes.is_active, superuser=changes.is_superuser
            )
            verified = user.is_verified and update.email is None
            if changes.is_verified is not None and changes.is_verified != verified:
                await uow.repository(UserRepository).set_verified(user.id, changes.is_verified)
                fields.append("is_verified")
                if changes.is_verified:
                    await record(uow, Action.EMAIL_VERIFIED, user.id, now)
            updated = await _reread(uow, user)
            if update.email is not None:
                await record(uow, Action.EMAIL_CHANGED, user.id, now)
                await email_changed(uow, updated, user.email, now, verify=not updated.is_verified)
            if fields:
                await record(uow, Action.UPDATED, user.id, now, fields=sorted(set(fields)))
            await uow.commit()
        return updated


class DeleteUser:
    """Delete any account with its sessions and tokens. Nobody deletes themselves here,
    and the last active superuser is never deleted."""

    raises: Raises = (UserNotFound, CannotChangeOwnAccess, LastSuperuser, LastOwner)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, ref: UserRef, *, acting_user: int | None = None) -> None:
        async with self._uow() as uow:
            user = await find_user(uow, ref)
            assert user.id is not None
            if user.id == acting_user:
                raise CannotChangeOwnAccess()
            await delete_user(uow, user, self._clock.now())
            await uow.commit()


class SearchUsers:
    """One page of every user (inactive ones too), ordered by id: by a substring of the
    email or username, and by state."""

    raises: Raises = ()

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, where: UserFilter, request: PageRequest) -> Page[User]:
        async with self._reader() as uow:
            items, total = await uow.repository(UserRepository).search_page(where, request)
        return Page(items=items, total=total, page=request.page, size=request.size)


class QueuePasswordReset:
    """Mail a password reset link to a user (the admin never sees or sets the password)."""

    raises: Raises = (UserNotFound,)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, ref: UserRef) -> User:
        async with self._uow() as uow:
            user = await find_user(uow, ref)
            now = self._clock.now()
            await queue_message(uow, Template.PASSWORD_RESET, user.email, now, user=user)
            await record(uow, Action.PASSWORD_RESET_QUEUED, user.id, now)
            await uow.commit()
        return user


class ListUserSessions:
    """A user's active sessions, newest first."""

    raises: Raises = (UserNotFound,)

    def __init__(self, reader: UowFactory, clock: Clock) -> None:
        self._reader = reader
        self._clock = clock

    async def __call__(self, ref: UserRef) -> list[Session]:
        async with self._reader() as uow:
            user = await find_user(uow, ref)
            assert user.id is not None
            stored = await uow.repository(SessionRepository).list_for_user(user.id)
        now = self._clock.now()
        return [session for session in stored if session.is_active(now)]


class EndUserSessions:
    """End every session of a user: all of the user's tokens stop working at once."""

    raises: Raises = (UserNotFound,)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, ref: UserRef) -> None:
        async with self._uow() as uow:
            user = await find_user(uow, ref)
            assert user.id is not None
            now = self._clock.now()
            await end_all_sessions(uow, user.id, now)
            await record(uow, Action.SESSIONS_REVOKED, user.id, now)
            await uow.commit()
