"""Email verification and password reset: the mailed-token flows.

Nothing here sends mail. A use case that causes a message queues it in the outbox, in
the transaction of its change; the relay (``application.outbox``) makes the token and
the link when it sends, so no token is stored anywhere but as a hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from application.accounts import end_all_sessions
from application.audit import record
from domain.audit import Action
from domain.email_tokens import TOKEN_MAX_LENGTH, EmailTokenRepository, Purpose, token_hash
from domain.errors import (
    AlreadyVerified,
    InvalidResetToken,
    InvalidToken,
    InvalidValue,
    InvalidVerificationToken,
    Raises,
)
from domain.mail import mask_address
from domain.mfa import Change
from domain.model import Principal, User
from domain.outbox import OutboxMessage, OutboxRepository, Template
from domain.ports import Clock, PasswordHasher, UnitOfWork, UowFactory, UserRepository
from domain.rules import validate_email, validate_password


@dataclass(frozen=True)
class EmailPolicy:
    """Where mailed links point, how long their tokens live, and whether a login needs
    a confirmed address."""

    frontend_url: str = "http://localhost:3000"
    verify_path: str = "/verify-email"
    reset_path: str = "/reset-password"
    verification_ttl: timedelta = timedelta(hours=48)
    reset_ttl: timedelta = timedelta(minutes=60)
    require_verified: bool = False
    invitation_path: str = "/accept-invitation"
    invitation_ttl: timedelta = timedelta(days=7)

    def link(self, purpose: Purpose, token: str) -> str:
        path = self.verify_path if purpose is Purpose.VERIFY_EMAIL else self.reset_path
        return self._link(path, token)

    def invitation_link(self, token: str) -> str:
        return self._link(self.invitation_path, token)

    def _link(self, path: str, token: str) -> str:
        # Tokens are URL-safe already: nothing to quote.
        return f"{self.frontend_url.rstrip('/')}{path}?token={token}"


async def queue_message(
    uow: UnitOfWork,
    template: Template,
    recipient: str,
    now: datetime,
    *,
    user: User | None = None,
    context: dict[str, str] | None = None,
) -> None:
    """Queue a message in ``uow``'s transaction: it is sent if and only if the change
    it belongs to commits."""
    message = OutboxMessage.queue(
        template, recipient, now, user_id=user.id if user else None, context=context
    )
    await uow.repository(OutboxRepository).add(message)


async def queue_verification(uow: UnitOfWork, user: User, now: datetime) -> None:
    """A verification mail to the user's current address."""
    await queue_message(uow, Template.VERIFY_EMAIL, user.email, now, user=user)


async def email_changed(
    uow: UnitOfWork, user: User, old_email: str, now: datetime, *, verify: bool = True
) -> None:
    """What follows a change of address: every link mailed before stops working (a
    reset link in the old mailbox must not take the account back), a verification mail
    goes to the new one (unless it counts as confirmed), and a notice to the old one (so
    a hijacked account does not change hands silently)."""
    assert user.id is not None
    await uow.repository(EmailTokenRepository).end_all(user.id, None, now)
    if verify:
        await queue_verification(uow, user, now)
    await queue_message(
        uow,
        Template.EMAIL_CHANGED,
        old_email,
        now,
        user=user,
        context={"username": user.username, "new_email": mask_address(user.email)},
    )


async def password_changed(uow: UnitOfWork, user: User, now: datetime) -> None:
    """What follows any new password (whose change also ended every session and mailed
    link, ``end_all_sessions``): the account's address hears of it."""
    context = {"username": user.username}
    await queue_message(uow, Template.PASSWORD_CHANGED, user.email, now, user=user, context=context)


async def security_notice(
    uow: UnitOfWork,
    user: User,
    change: Change,
    action: Action,
    now: datetime,
    *,
    mail: Mapping[str, str] | None = None,
    **details: object,
) -> None:
    """A change to how the account is protected (its second factors, its tokens): the
    notice mail to the user (``mail``: what the change's template shows besides) and
    the audit event, in ``uow``'s transaction."""
    context = {**(mail or {}), "username": user.username, "change": change.value}
    await queue_message(uow, Template.SECURITY_NOTICE, user.email, now, user=user, context=context)
    await record(uow, action, user.id, now, **details)


def _hash_of(token: str) -> str | None:
    """The stored form of a presented token, or None for one that cannot be ours."""
    if not token or len(token) > TOKEN_MAX_LENGTH:
        return None
    return token_hash(token)


class VerifyEmail:
    """Confirm an email address with the token mailed to it. The token works once,
    and only while the account still has the address it was sent to."""

    raises: Raises = (InvalidVerificationToken,)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, token: str) -> User:
        token_id = _hash_of(token)
        if token_id is None:
            raise InvalidVerificationToken()
        async with self._uow() as uow:
            now = self._clock.now()
            redeemed = await uow.repository(EmailTokenRepository).redeem(
                token_id, Purpose.VERIFY_EMAIL, now
            )
            # Rolled back (the token stays as it was) unless the address still matches.
            if redeemed is None or not await uow.repository(UserRepository).mark_verified(
                redeemed.user_id, if_email=redeemed.email
            ):
                raise InvalidVerificationToken()
            user = await uow.repository(UserRepository).get(redeemed.user_id)
            await record(uow, Action.EMAIL_VERIFIED, redeemed.user_id, now)
            await uow.commit()
        assert user is not None
        return user


class ResendVerification:
    """Mail a fresh verification link to the caller's current address; the older links
    stop working once the new one is made (by the relay, as it sends)."""

    raises: Raises = (InvalidToken, AlreadyVerified)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal) -> None:
        async with self._uow() as uow:
            user = await uow.repository(UserRepository).get(principal.user_id)
            if user is None or not user.is_active:
                raise InvalidToken()
            if user.is_verified:
                raise AlreadyVerified()
            await queue_verification(uow, user, self._clock.now())
            await uow.commit()


class _RequestByAddress:
    """Records a request for mail to an address, and nothing else: every well-formed
    address gets the same answer at the same cost, and the relay looks the account up
    when it sends."""

    raises: Raises = (InvalidValue,)

    template: Template

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, email: str) -> None:
        address = validate_email(email)
        async with self._uow() as uow:
            await queue_message(uow, self.template, address, self._clock.now())
            await uow.commit()


class RequestVerificationLink(_RequestByAddress):
    """Ask for a new verification link by address, without logging in (a login may be
    what an unconfirmed address prevents). Every well-formed address gets the same
    answer, at the same cost: the request only records the address, and the relay
    mails an active, unconfirmed account that has it; nobody else gets anything."""

    template = Template.VERIFY_EMAIL


class RequestPasswordReset(_RequestByAddress):
    """Ask for a password reset link. Every well-formed address gets the same answer,
    at the same cost: the request only records the address, and the relay looks the
    account up when it sends (an active account gets the mail; nobody else does)."""

    template = Template.PASSWORD_RESET


class ResetPassword:
    """Set a new password with the token of a reset mail. The token works once, and
    only while the account still has the address it was sent to; every session of the
    user ends, the address counts as confirmed (the user has just read a mail sent to
    it), and the user is told of the change."""

    raises: Raises = (InvalidValue, InvalidResetToken)

    def __init__(self, uow: UowFactory, hasher: PasswordHasher, clock: Clock) -> None:
        self._uow = uow
        self._hasher = hasher
        self._clock = clock

    async def __call__(self, token: str, new_password: str) -> None:
        password = validate_password(new_password, "new_password")
        token_id = _hash_of(token)
        if token_id is None:
            raise InvalidResetToken()
        # A cheap look first, so that a bad token costs no hashing.
        async with self._uow() as uow:
            found = await uow.repository(EmailTokenRepository).find_usable(
                token_id, Purpose.PASSWORD_RESET, self._clock.now()
            )
        if found is None:
            raise InvalidResetToken()
        new_hash = await self._hasher.hash(password)
        async with self._uow() as uow:
            now = self._clock.now()
            redeemed = await uow.repository(EmailTokenRepository).redeem(
                token_id, Purpose.PASSWORD_RESET, now
            )
            user = await uow.repository(UserRepository).get(redeemed.user_id) if redeemed else None
            # A link sent to an address the account no longer has resets nothing.
            if (
                redeemed is None
                or user is None
                or not user.is_active
                or user.email != redeemed.email
            ):
                raise InvalidResetToken()
            assert user.id is not None
            await uow.repository(UserRepository).set_password_hash(user.id, new_hash)
            await end_all_sessions(uow, user.id, now)
            await uow.repository(UserRepository).mark_verified(user.id, if_email=redeemed.email)
            await password_changed(uow, user, now)
            await record(uow, Action.PASSWORD_RESET, user.id, now)
            await uow.commit()
