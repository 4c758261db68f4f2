"""Registration, one's own profile, and the public list of users."""

from __future__ import annotations

from dataclasses import dataclass

from application.accounts import (
    UNSET,
    Unset,
    check_own_password,
    delete_user,
    end_all_sessions,
    ensure_free,
)
from application.audit import record
from application.email import email_changed, password_changed, queue_verification
from domain.audit import Action
from domain.errors import (
    EmailTaken,
    InsufficientScope,
    InvalidToken,
    InvalidValue,
    LastSuperuser,
    Raises,
    RateLimited,
    UsernameTaken,
    UserNotFound,
    WrongPassword,
)
from domain.model import Credentials, Page, PageRequest, Principal, ProfileUpdate, User
from domain.orgs import LastOwner
from domain.ports import (
    Clock,
    FailedLoginCounter,
    PasswordHasher,
    UowFactory,
    UserRepository,
)
from domain.rules import (
    validate_email,
    validate_full_name,
    validate_password,
    validate_username,
)


@dataclass(frozen=True)
class NewUser:
    email: str
    username: str
    password: str
    full_name: str | None = None
    is_superuser: bool = False


class RegisterUser:
    """Create a user account. Email and username must be free, case-insensitively. A
    mail asks the new user to confirm the address."""

    raises: Raises = (InvalidValue, EmailTaken, UsernameTaken)

    def __init__(self, uow: UowFactory, hasher: PasswordHasher, clock: Clock) -> None:
        self._uow = uow
        self._hasher = hasher
        self._clock = clock

    async def __call__(self, new: NewUser) -> User:
        email = validate_email(new.email)
        username = validate_username(new.username)
        full_name = validate_full_name(new.full_name)
        password = validate_password(new.password)
        async with self._uow() as uow:
            await ensure_free(uow, email, username)
        # Hash outside the transaction; the unique indexes still settle a race.
        password_hash = await self._hasher.hash(password)
        async with self._uow() as uow:
            now = self._clock.now()
            user = await uow.repository(UserRepository).add(
                User(
                    email=email,
                    username=username,
                    password_hash=password_hash,
                    full_name=full_name,
                    is_superuser=new.is_superuser,
                    created_at=now,
                )
            )
            await queue_verification(uow, user, now)
            await record(uow, Action.REGISTERED, user.id, now)
            if user.is_superuser:
                await record(uow, Action.SUPERUSER_GRANTED, user.id, now)
            await uow.commit()
        return user


@dataclass(frozen=True)
class ProfileChanges:
    """Fields to change; a field left ``None`` (``UNSET`` for ``full_name``, which may
    be set to None) is not changed."""

    email: str | None = None
    username: str | None = None
    full_name: str | Unset | None = UNSET
    password: str | None = None
    current_password: str | None = None


class UpdateProfile:
    """Change one's own profile. Changing the email or the password needs the current
    password; a new password ends every session of the user. A new address is
    unconfirmed until the link mailed to it is followed, and the old address is told.

    Wrong current passwords count against the account like failed logins, so a stolen
    access token does not allow guessing the password online."""

    raises: Raises = (
        InvalidValue,
        InsufficientScope,
        WrongPassword,
        RateLimited,
        EmailTaken,
        UsernameTaken,
        InvalidToken,
    )

    def __init__(
        self,
        uow: UowFactory,
        hasher: PasswordHasher,
        clock: Clock,
        failed_logins: FailedLoginCounter,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._clock = clock
        self._failed_logins = failed_logins

    async def __call__(self, principal: Principal, changes: ProfileChanges) -> User:
        email = validate_email(changes.email) if changes.email is not None else None
        username = validate_username(changes.username) if changes.username is not None else None
        full_name = changes.full_name
        if not isinstance(full_name, Unset):
            full_name = validate_full_name(full_name)
        password = validate_password(changes.password) if changes.password is not None else None

        if email is not None or password is not None:
            if not principal.is_session and (password is not None or email != principal.user.email):
                # A token never changes how the account is reached or protected.
                raise InsufficientScope()
            if changes.current_password is None:
                raise InvalidValue(
                    "current_password", "is required to change the email or the password"
                )
            await check_own_password(
                self._failed_logins, self._hasher, principal, changes.current_password
            )
        new_hash = await self._hasher.hash(password) if password is not None else None

        user = principal.user
        update = ProfileUpdate(
            email=email if email != user.email else None,
            username=username if username != user.username else None,
            full_name=None if isinstance(full_name, Unset) else full_name,
            set_full_name=not isinstance(full_name, Unset) and full_name != user.full_name,
            password_hash=new_hash,
        )
        async with self._uow() as uow:
            await ensure_free(uow, update.email, update.username, except_user=principal.user_id)
            # Written only if nothing revoked the caller's credentials meanwhile (the
            # password and token version it was authenticated with).
            if not await uow.repository(UserRepository).update_profile(
                principal.user_id, update, if_current=Credentials.of(user)
            ):
                raise InvalidToken()
            now = self._clock.now()
            if new_hash is not None:
                await end_all_sessions(uow, principal.user_id, now)
            updated = await uow.repository(UserRepository).get(principal.user_id)
            assert updated is not None
            if update.email is not None:
                await email_changed(uow, updated, user.email, now)
                await record(uow, Action.EMAIL_CHANGED, updated.id, now)
            if new_hash is not None:
                await password_changed(uow, updated, now)
                await record(uow, Action.PASSWORD_CHANGED, updated.id, now)
            fields = [name.removesuffix("_hash") for name in update.fields()]
            if fields:
                await record(uow, Action.UPDATED, updated.id, now, fields=sorted(fields))
            await uow.commit()
        return updated


class DeleteAccount:
    """Delete one's own account with its sessions and tokens; email and username
    become free again. The last active superuser cannot leave."""

    raises: Raises = (UserNotFound, LastSuperuser, LastOwner)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal) -> None:
        async with self._uow() as uow:
            await delete_user(uow, principal.user, self._clock.now())
            await uow.commit()


class ListUsers:
    """One page of users ordered by id: active ones only, unless ``include_inactive``."""

    raises: Raises = ()

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, request: PageRequest, *, include_inactive: bool = False) -> Page[User]:
        async with self._reader() as uow:
            items, total = await uow.repository(UserRepository).list_page(
                request, active_only=not include_inactive
            )
        return Page(items=items, total=total, page=request.page, size=request.size)
