"""What the use cases on an account share, whoever calls them (the user or an
operator): ending every session, checking a password against the account's limit,
keeping emails and usernames unique, deleting an account."""

from __future__ import annotations

from datetime import datetime

from application.audit import record
from domain.audit import Action
from domain.email_tokens import EmailTokenRepository
from domain.errors import (
    EmailTaken,
    LastSuperuser,
    RateLimited,
    UsernameTaken,
    UserNotFound,
    WrongPassword,
)
from domain.model import Principal, User
from domain.orgs import LastOwner, OrgRepository
from domain.ports import (
    FailedLoginCounter,
    PasswordHasher,
    SessionRepository,
    UnitOfWork,
    UserRepository,
)


def account_of(user_id: int) -> str:
    """The bucket that counts an account's wrong passwords: one for every name it goes by,
    and for logins and password checks alike."""
    return f"user:{user_id}"


async def take_attempt(failed_checks: FailedLoginCounter, account: str) -> None:
    """One attempt against the account's failed-login limit, taken before the check (so
    parallel ones cannot all slip through); 429 once the limit is reached."""
    retry_after = await failed_checks.acquire(account)
    if retry_after is not None:
        raise RateLimited(retry_after, "Too many wrong attempts for this account.")


async def counted_check(
    failed_checks: FailedLoginCounter,
    hasher: PasswordHasher,
    account: str,
    password_hash: str | None,
    password: str,
) -> bool:
    """Whether ``password`` matches, checked against the account's limit: the attempt
    takes its slot before the slow verification (so parallel ones cannot all slip
    through), and a right password forgives the account's failures."""
    retry_after = await failed_checks.acquire(account)
    if retry_after is not None:
        raise RateLimited(retry_after, "Too many wrong passwords for this account.")
    matches = await hasher.verify(password_hash, password)
    if matches:
        await failed_checks.succeeded(account)
    return matches


async def check_own_password(
    failed_checks: FailedLoginCounter, hasher: PasswordHasher, principal: Principal, password: str
) -> None:
    """The caller's own password, before a change that needs it: 403 ``wrong_password``
    otherwise, counted against the account's failed-login limit as at login."""
    account = account_of(principal.user_id)
    if not await counted_check(
        failed_checks, hasher, account, principal.user.password_hash, password
    ):
        raise WrongPassword()


async def end_all_sessions(uow: UnitOfWork, user_id: int, at: datetime) -> bool:
    """End every session of the user: every access, refresh and personal access token
    issued so far stops working at once (each carries the token version bumped here),
    and so does every link mailed to the user (reset and verification), since whatever
    ends a user's sessions must not leave a way to open a new one. Whether the user
    exists."""
    if not await uow.repository(UserRepository).revoke_tokens(user_id):
        return False
    await uow.repository(SessionRepository).revoke_all(user_id, at)
    await uow.repository(EmailTokenRepository).end_all(user_id, None, at)
    return True


class Unset:
    """The value of a field a change leaves alone (where None is a value to write)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


async def delete_user(uow: UnitOfWork, user: User, now: datetime) -> None:
    """Delete the account (never the last active superuser, nor the last owner of an
    organization that has other members) and record it. The organizations it is the
    only member of go with it."""
    assert user.id is not None
    if not await uow.repository(OrgRepository).release_user(user.id):
        raise LastOwner()
    if not await uow.repository(UserRepository).delete(user.id):
        if await uow.repository(UserRepository).get(user.id) is None:
            raise UserNotFound()
        raise LastSuperuser()
    await record(uow, Action.DELETED, user.id, now)


async def ensure_free(
    uow: UnitOfWork,
    email: str | None,
    username: str | None,
    *,
    except_user: int | None = None,
) -> None:
    """Refuse an email or username (those given) that another user already has. A clear
    answer up front; the unique indexes still settle a race."""
    if email is not None and await uow.repository(UserRepository).email_taken(
        email, except_user=except_user
    ):
        raise EmailTaken()
    if username is not None and await uow.repository(UserRepository).username_taken(
        username, except_user=except_user
    ):
        raise UsernameTaken()
