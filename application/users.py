"""Registration, one's own profile, and the public list of users."""

from __future__ import annotations

from dataclasses import dataclass

from application.auth import UowFactory
from domain.errors import EmailTaken, InvalidToken, InvalidValue, UsernameTaken, WrongPassword
from domain.model import Page, PageRequest, Principal, User
from domain.ports import Clock, PasswordHasher, UnitOfWork
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
    """Create a user account. Email and username must be free, case-insensitively."""

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
            await _ensure_free(uow, email, username)
        # Hash outside the transaction; the unique indexes still settle a race.
        password_hash = await self._hasher.hash(password)
        async with self._uow() as uow:
            user = await uow.users.add(
                User(
                    email=email,
                    username=username,
                    password_hash=password_hash,
                    full_name=full_name,
                    is_superuser=new.is_superuser,
                    created_at=self._clock.now(),
                )
            )
            await uow.commit()
        return user


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


@dataclass(frozen=True)
class ProfileChanges:
    """Fields to change; a field left ``None`` (``UNSET`` for ``full_name``, which may
    be set to None) is not changed."""

    email: str | None = None
    username: str | None = None
    full_name: str | _Unset | None = UNSET
    password: str | None = None
    current_password: str | None = None


class UpdateProfile:
    """Change one's own profile. Changing the email or the password needs the current
    password; a new password ends every session of the user."""

    def __init__(self, uow: UowFactory, hasher: PasswordHasher, clock: Clock) -> None:
        self._uow = uow
        self._hasher = hasher
        self._clock = clock

    async def __call__(self, principal: Principal, changes: ProfileChanges) -> User:
        email = validate_email(changes.email) if changes.email is not None else None
        username = validate_username(changes.username) if changes.username is not None else None
        full_name = changes.full_name
        if not isinstance(full_name, _Unset):
            full_name = validate_full_name(full_name)
        password = validate_password(changes.password) if changes.password is not None else None

        if email is not None or password is not None:
            if changes.current_password is None:
                raise InvalidValue(
                    "current_password", "is required to change the email or the password"
                )
            if not await self._hasher.verify(
                principal.user.password_hash, changes.current_password
            ):
                raise WrongPassword()
        new_hash = await self._hasher.hash(password) if password is not None else None

        async with self._uow() as uow:
            user = await uow.users.get(principal.user_id)
            if user is None or not user.is_active:
                raise InvalidToken()
            if email is not None and email != user.email:
                if await uow.users.email_taken(email, except_user=user.id):
                    raise EmailTaken()
                user.email = email
            if username is not None and username != user.username:
                if await uow.users.username_taken(username, except_user=user.id):
                    raise UsernameTaken()
                user.username = username
            if not isinstance(full_name, _Unset):
                user.full_name = full_name
            if new_hash is not None:
                user.password_hash = new_hash
                user.revoke_tokens()
                await uow.sessions.revoke_all(principal.user_id, self._clock.now())
            await uow.users.update(user)
            await uow.commit()
        return user


class DeleteAccount:
    """Delete one's own account with its sessions and tokens; email and username
    become free again."""

    def __init__(self, uow: UowFactory) -> None:
        self._uow = uow

    async def __call__(self, principal: Principal) -> None:
        async with self._uow() as uow:
            await uow.users.delete(principal.user_id)
            await uow.commit()


class ListUsers:
    """One page of users ordered by id: active ones only, unless ``include_inactive``."""

    def __init__(self, uow: UowFactory) -> None:
        self._uow = uow

    async def __call__(self, request: PageRequest, *, include_inactive: bool = False) -> Page[User]:
        async with self._uow() as uow:
            items, total = await uow.users.list_page(request, active_only=not include_inactive)
        return Page(items=items, total=total, page=request.page, size=request.size)


async def _ensure_free(uow: UnitOfWork, email: str, username: str) -> None:
    if await uow.users.email_taken(email):
        raise EmailTaken()
    if await uow.users.username_taken(username):
        raise UsernameTaken()
