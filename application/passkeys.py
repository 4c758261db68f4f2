"""Passkeys: registration, discoverable passwordless login, a passkey as the second step
of a password login, and the caller's list of them (API.md, "Two-factor
authentication").

Every ceremony starts with a challenge stored server-side (single use, 5 minutes, any
replica can check it); the cryptography is the ``WebAuthn`` port's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from application.accounts import account_of, take_attempt
from application.email import security_notice
from application.tokens import LoginResult, TokenPolicy, open_session
from domain.audit import Action
from domain.errors import (
    EmailNotVerified,
    InvalidPasskey,
    InvalidToken,
    PasskeyAlreadyRegistered,
    PasskeyNotFound,
    Raises,
    RateLimited,
)
from domain.mfa import Change, MfaTokenRepository, SecondFactorRepository, mfa_token_id
from domain.model import Principal, is_id
from domain.passkeys import (
    Ceremony,
    Challenge,
    ChallengeRepository,
    CredentialJson,
    Passkey,
    PasskeyRepository,
    WebAuthn,
    default_name,
    new_user_handle,
)
from domain.ports import (
    Clock,
    FailedLoginCounter,
    TokenCodec,
    UnitOfWork,
    UowFactory,
    UserRepository,
)


@dataclass(frozen=True)
class CeremonyOptions:
    """What the browser needs for a ceremony: the options, and the id of their challenge
    to send back with the result."""

    challenge_id: str
    options: dict[str, Any]


async def use_passkey(
    uow: UnitOfWork,
    webauthn: WebAuthn,
    challenge_id: str,
    credential: CredentialJson,
    now: datetime,
    *,
    user_id: int | None = None,
) -> Passkey:
    """Check an assertion over the challenge ``challenge_id`` (used up) by one of the
    user's passkeys (``user_id``; any user's when None) and record its counter, in
    ``uow``'s transaction; ``InvalidPasskey`` for anything wrong."""
    if not is_id(challenge_id):
        raise InvalidPasskey()
    challenge = await uow.repository(ChallengeRepository).redeem(
        challenge_id, Ceremony.AUTHENTICATION, now
    )
    credential_id = webauthn.credential_id(credential)
    if challenge is None or credential_id is None:
        raise InvalidPasskey()
    passkeys = uow.repository(PasskeyRepository)
    passkey = await passkeys.get_by_credential(credential_id)
    owners = {user_id, challenge.user_id} - {None}
    if passkey is None or not owners <= {passkey.user_id}:
        raise InvalidPasskey()
    assertion = webauthn.verify_authentication(credential, challenge.challenge, passkey)
    # Checked against the counter read: an assertion checked at the same time wins or
    # this one is refused, never both.
    if not await passkeys.record_use(passkey, assertion, now):
        raise InvalidPasskey()
    return passkey


class StartPasskeyRegistration:
    """Options to create a passkey for the caller: a resident key with user
    verification, without attestation; their existing passkeys are excluded."""

    raises: Raises = ()

    def __init__(self, uow: UowFactory, webauthn: WebAuthn, clock: Clock) -> None:
        self._uow = uow
        self._webauthn = webauthn
        self._clock = clock

    async def __call__(self, principal: Principal) -> CeremonyOptions:
        user = principal.user
        async with self._uow() as uow:
            existing = await uow.repository(PasskeyRepository).list_for_user(principal.user_id)
            # One handle per user: a new passkey on the same authenticator replaces the
            # old one there instead of adding a second account entry.
            handle = existing[0].user_handle if existing else new_user_handle()
            challenge = Challenge.issue(
                Ceremony.REGISTRATION, self._clock.now(), principal.user_id, handle
            )
            await uow.repository(ChallengeRepository).add(challenge)
            await uow.commit()
        options = self._webauthn.registration_options(
            challenge.challenge,
            handle,
            user.username,
            user.full_name or user.username,
            [p.credential_id for p in existing],
        )
        return CeremonyOptions(challenge_id=challenge.id, options=options)


class RegisterPasskey:
    """Add the passkey the browser created from the registration options."""

    raises: Raises = (InvalidPasskey, PasskeyAlreadyRegistered)

    def __init__(self, uow: UowFactory, webauthn: WebAuthn, clock: Clock) -> None:
        self._uow = uow
        self._webauthn = webauthn
        self._clock = clock

    async def __call__(
        self,
        principal: Principal,
        challenge_id: str,
        credential: CredentialJson,
        name: str | None = None,
    ) -> Passkey:
        if not is_id(challenge_id):
            raise InvalidPasskey()
        async with self._uow() as uow:
            now = self._clock.now()
            challenge = await uow.repository(ChallengeRepository).redeem(
                challenge_id, Ceremony.REGISTRATION, now
            )
            if challenge is None or challenge.user_id != principal.user_id:
                raise InvalidPasskey()
            assert challenge.user_handle is not None
            new = self._webauthn.verify_registration(credential, challenge.challenge)
            # A removal of the other factors at the same moment sees this one.
            await uow.repository(SecondFactorRepository).hold(principal.user_id)
            passkey = Passkey(
                user_id=principal.user_id,
                credential_id=new.credential_id,
                public_key=new.public_key,
                sign_count=new.sign_count,
                name=name or default_name(new.aaguid),
                user_handle=challenge.user_handle,
                created_at=now,
                backed_up=new.backed_up,
                aaguid=new.aaguid,
            )
            await uow.repository(PasskeyRepository).add(passkey)
            await security_notice(
                uow,
                principal.user,
                Change.PASSKEY_ADDED,
                Action.PASSKEY_ADDED,
                now,
                passkey_id=passkey.id,
            )
            await uow.commit()
        return passkey


class ListPasskeys:
    """The caller's passkeys, oldest first."""

    raises: Raises = ()

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, principal: Principal) -> list[Passkey]:
        async with self._reader() as uow:
            return await uow.repository(PasskeyRepository).list_for_user(principal.user_id)


class RenamePasskey:
    """Rename one of the caller's passkeys."""

    raises: Raises = (PasskeyNotFound,)

    def __init__(self, uow: UowFactory) -> None:
        self._uow = uow

    async def __call__(self, principal: Principal, passkey_id: str, name: str) -> Passkey:
        if not is_id(passkey_id):
            raise PasskeyNotFound()
        async with self._uow() as uow:
            renamed = await uow.repository(PasskeyRepository).rename(
                passkey_id, principal.user_id, name
            )
            if renamed is None:
                raise PasskeyNotFound()
            await uow.commit()
        return renamed


class DeletePasskey:
    """Remove one of the caller's passkeys. Without another second factor, the recovery
    codes go too."""

    raises: Raises = (PasskeyNotFound,)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, passkey_id: str) -> None:
        if not is_id(passkey_id):
            raise PasskeyNotFound()
        user_id = principal.user_id
        async with self._uow() as uow:
            now = self._clock.now()
            factors = uow.repository(SecondFactorRepository)
            # Two last factors removed at once: the second sees the first gone.
            await factors.hold(user_id)
            if not await uow.repository(PasskeyRepository).delete(passkey_id, user_id):
                raise PasskeyNotFound()
            if not (await factors.status(user_id)).enabled:
                await factors.delete_recovery_codes(user_id)
            await security_notice(
                uow,
                principal.user,
                Change.PASSKEY_REMOVED,
                Action.PASSKEY_REMOVED,
                now,
                passkey_id=passkey_id,
            )
            await uow.commit()


class StartPasskeyLogin:
    """Options to log in with a passkey: any discoverable passkey of this site, or, with
    the ``mfa_token`` of a right password, one of that user's (for ``/login/mfa``)."""

    raises: Raises = (InvalidToken,)

    def __init__(self, uow: UowFactory, webauthn: WebAuthn, clock: Clock) -> None:
        self._uow = uow
        self._webauthn = webauthn
        self._clock = clock

    async def __call__(self, mfa_token: str | None = None) -> CeremonyOptions:
        async with self._uow() as uow:
            now = self._clock.now()
            user_id, allow = None, []
            if mfa_token is not None:
                token_id = mfa_token_id(mfa_token)
                step = (
                    await uow.repository(MfaTokenRepository).find_usable(token_id, now)
                    if token_id is not None
                    else None
                )
                if step is None:
                    raise InvalidToken()
                user_id = step.user_id
                keys = await uow.repository(PasskeyRepository).list_for_user(user_id)
                allow = [p.credential_id for p in keys]
            challenge = Challenge.issue(Ceremony.AUTHENTICATION, now, user_id)
            await uow.repository(ChallengeRepository).add(challenge)
            await uow.commit()
        options = self._webauthn.authentication_options(challenge.challenge, allow)
        return CeremonyOptions(challenge_id=challenge.id, options=options)


class PasskeyLogin:
    """Log in with a passkey alone: with user verification it is a complete login, no
    second step. A wrong assertion counts against its account's failed-login limit."""

    raises: Raises = (InvalidPasskey, EmailNotVerified, RateLimited)

    def __init__(
        self,
        uow: UowFactory,
        webauthn: WebAuthn,
        codec: TokenCodec,
        clock: Clock,
        failed_logins: FailedLoginCounter,
        policy: TokenPolicy,
        require_verified_email: bool = False,
    ) -> None:
        self._uow = uow
        self._webauthn = webauthn
        self._codec = codec
        self._clock = clock
        self._failed_logins = failed_logins
        self._policy = policy
        self._require_verified = require_verified_email

    async def __call__(
        self, challenge_id: str, credential: CredentialJson, user_agent: str | None = None
    ) -> LoginResult:
        credential_id = self._webauthn.credential_id(credential)
        if credential_id is None:
            raise InvalidPasskey()
        async with self._uow() as uow:
            known = await uow.repository(PasskeyRepository).get_by_credential(credential_id)
        if known is None:
            raise InvalidPasskey()
        account = account_of(known.user_id)
        await take_attempt(self._failed_logins, account)
        async with self._uow() as uow:
            now = self._clock.now()
            passkey = await use_passkey(uow, self._webauthn, challenge_id, credential, now)
            user = await uow.repository(UserRepository).get(passkey.user_id)
            if user is None or not user.is_active:
                raise InvalidPasskey()
            if self._require_verified and not user.is_verified:
                raise EmailNotVerified()
            result = await open_session(uow, self._codec, self._policy, user, now, user_agent)
            if result is None:
                raise InvalidPasskey()
            await uow.commit()
        await self._failed_logins.succeeded(account)
        return result
