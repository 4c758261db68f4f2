"""Second factors: TOTP with recovery codes, the login step that asks for one, and their
removal by an administrator (API.md, "Two-factor authentication").

The rules that must hold under concurrency are the repository's conditional writes:
a TOTP code's step is used once (``use_totp_step``), a recovery code once
(``use_recovery_code``), a login-step token once (``redeem``). Every change queues its
notice mail and writes its audit event in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from application.accounts import account_of, end_all_sessions, take_attempt
from application.admin import UserRef, find_user
from application.audit import record
from application.email import security_notice
from application.passkeys import use_passkey
from application.tokens import LoginResult, TokenPolicy, open_session
from domain.audit import Action
from domain.errors import (
    InvalidMfaCode,
    InvalidPasskey,
    InvalidToken,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    Raises,
    RateLimited,
    UserNotFound,
)
from domain.mfa import (
    Change,
    MfaStatus,
    MfaTokenRepository,
    SecondFactor,
    SecondFactorRepository,
    TotpCodes,
    mfa_token_id,
    new_recovery_codes,
    recovery_code_hash,
)
from domain.model import Principal, User
from domain.passkeys import PasskeyRepository, WebAuthn
from domain.ports import (
    Clock,
    FailedLoginCounter,
    TokenCodec,
    UnitOfWork,
    UowFactory,
    UserRepository,
)


@dataclass(frozen=True)
class TotpSetup:
    """A pending secret, shown once: as base32 and as the URI an app scans."""

    secret: str
    otpauth_uri: str


async def use_second_factor(
    uow: UnitOfWork,
    totp: TotpCodes,
    webauthn: WebAuthn,
    user: User,
    factor: SecondFactor,
    now: datetime,
) -> bool:
    """Whether ``factor`` is one of the user's, using it up in ``uow``'s transaction: a
    TOTP code's time step (and every earlier one), a recovery code (with its notice), a
    passkey's challenge and counter. A wrong passkey raises ``InvalidPasskey``."""
    assert user.id is not None
    factors = uow.repository(SecondFactorRepository)
    if factor.code is not None:
        found = await factors.get_totp(user.id)
        if found is None or not found.enabled:
            return False
        step = totp.matching_step(found, factor.code, now)
        return step is not None and await factors.use_totp_step(user.id, step)
    if factor.recovery_code is not None:
        code_hash = recovery_code_hash(factor.recovery_code)
        if code_hash is None or not await factors.use_recovery_code(user.id, code_hash, now):
            return False
        await security_notice(uow, user, Change.RECOVERY_CODE_USED, Action.RECOVERY_CODE_USED, now)
        return True
    if factor.challenge_id is not None and factor.credential is not None:
        await use_passkey(
            uow, webauthn, factor.challenge_id, factor.credential, now, user_id=user.id
        )
        return True
    return False


async def new_recovery_code_set(uow: UnitOfWork, user_id: int, now: datetime) -> list[str]:
    """Ten fresh recovery codes, stored hashed in place of the user's old set."""
    codes = new_recovery_codes()
    hashes = [recovery_code_hash(code) for code in codes]
    await uow.repository(SecondFactorRepository).replace_recovery_codes(
        user_id, [h for h in hashes if h is not None], now
    )
    return codes


class GetMfaStatus:
    """Which second factors the caller has."""

    raises: Raises = ()

    def __init__(self, reader: UowFactory) -> None:
        self._reader = reader

    async def __call__(self, principal: Principal) -> MfaStatus:
        async with self._reader() as uow:
            return await uow.repository(SecondFactorRepository).status(principal.user_id)


class StartTotp:
    """Make a pending TOTP secret for the caller, in place of any pending one: it is in
    force once a first code confirms it."""

    raises: Raises = (MfaAlreadyEnabled,)

    def __init__(self, uow: UowFactory, totp: TotpCodes, clock: Clock, issuer: str) -> None:
        self._uow = uow
        self._totp = totp
        self._clock = clock
        self._issuer = issuer

    async def __call__(self, principal: Principal) -> TotpSetup:
        new = self._totp.new_secret(principal.user_id)
        async with self._uow() as uow:
            factors = uow.repository(SecondFactorRepository)
            if not await factors.set_pending_totp(principal.user_id, new.sealed, self._clock.now()):
                raise MfaAlreadyEnabled()
            await uow.commit()
        uri = self._totp.uri(new.secret, principal.user.username, self._issuer)
        return TotpSetup(secret=new.secret, otpauth_uri=uri)


class ConfirmTotp:
    """Turn TOTP on with a first code of the pending secret. When it is the caller's
    first second factor, ten recovery codes come with it (else none: the set they have
    stays)."""

    raises: Raises = (InvalidMfaCode, MfaAlreadyEnabled, MfaNotEnabled)

    def __init__(self, uow: UowFactory, totp: TotpCodes, clock: Clock) -> None:
        self._uow = uow
        self._totp = totp
        self._clock = clock

    async def __call__(self, principal: Principal, code: str) -> list[str]:
        user_id = principal.user_id
        async with self._uow() as uow:
            now = self._clock.now()
            factors = uow.repository(SecondFactorRepository)
            # Whether this is the first factor is decided on what is committed by then.
            await factors.hold(user_id)
            pending = await factors.get_totp(user_id)
            if pending is None:
                raise MfaNotEnabled("Set up TOTP first: POST /api/v1/auth/mfa/totp.")
            if pending.enabled:
                raise MfaAlreadyEnabled()
            step = self._totp.matching_step(pending, code, now)
            # Only the secret just checked: a new set-up meanwhile leaves TOTP off.
            if step is None or not await factors.enable_totp(
                user_id, pending.sealed_secret, step, now
            ):
                raise InvalidMfaCode()
            codes: list[str] = []
            if (await factors.status(user_id)).passkeys == 0:
                codes = await new_recovery_code_set(uow, user_id, now)
                await record(uow, Action.RECOVERY_CODES_GENERATED, user_id, now)
            await security_notice(
                uow, principal.user, Change.TOTP_ENABLED, Action.TOTP_ENABLED, now
            )
            await uow.commit()
        return codes


class DisableTotp:
    """Turn TOTP off. Without another second factor, the recovery codes go too."""

    raises: Raises = (MfaNotEnabled,)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal) -> None:
        user_id = principal.user_id
        async with self._uow() as uow:
            now = self._clock.now()
            factors = uow.repository(SecondFactorRepository)
            if not await factors.disable_totp(user_id):
                raise MfaNotEnabled("TOTP is not on.")
            if not (await factors.status(user_id)).enabled:
                await factors.delete_recovery_codes(user_id)
            await security_notice(
                uow, principal.user, Change.TOTP_DISABLED, Action.TOTP_DISABLED, now
            )
            await uow.commit()


class RegenerateRecoveryCodes:
    """A new set of ten recovery codes; the old set stops working."""

    raises: Raises = (MfaNotEnabled,)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal) -> list[str]:
        user_id = principal.user_id
        async with self._uow() as uow:
            now = self._clock.now()
            # The set is replaced first (holding the user's factors), then the rule is
            # checked on what is committed by then: a removal that came first is seen.
            codes = await new_recovery_code_set(uow, user_id, now)
            if not (await uow.repository(SecondFactorRepository).status(user_id)).enabled:
                raise MfaNotEnabled()
            await security_notice(
                uow,
                principal.user,
                Change.RECOVERY_CODES_GENERATED,
                Action.RECOVERY_CODES_GENERATED,
                now,
            )
            await uow.commit()
        return codes


class CompleteMfaLogin:
    """The second step of a login: the ``mfa_token`` of a right password and one second
    factor open the session. A wrong factor counts against the account's failed-login
    limit and against the token, which dies after five."""

    raises: Raises = (InvalidToken, InvalidMfaCode, InvalidPasskey, RateLimited)

    def __init__(
        self,
        uow: UowFactory,
        totp: TotpCodes,
        webauthn: WebAuthn,
        codec: TokenCodec,
        clock: Clock,
        failed_logins: FailedLoginCounter,
        policy: TokenPolicy,
    ) -> None:
        self._uow = uow
        self._totp = totp
        self._webauthn = webauthn
        self._codec = codec
        self._clock = clock
        self._failed_logins = failed_logins
        self._policy = policy

    async def __call__(
        self, mfa_token: str, factor: SecondFactor, user_agent: str | None = None
    ) -> LoginResult:
        token_id = mfa_token_id(mfa_token)
        if token_id is None:
            raise InvalidToken()
        async with self._uow() as uow:
            found = await uow.repository(MfaTokenRepository).find_usable(
                token_id, self._clock.now()
            )
        if found is None:
            raise InvalidToken()
        account = account_of(found.user_id)
        await take_attempt(self._failed_logins, account)
        try:
            result = await self._complete(token_id, factor, user_agent)
            if result is None:
                raise InvalidMfaCode()
        except (InvalidMfaCode, InvalidPasskey):
            # Counted against the token, which dies after MAX_FAILURES.
            async with self._uow() as uow:
                await uow.repository(MfaTokenRepository).fail(token_id)
                await uow.commit()
            raise
        await self._failed_logins.succeeded(account)
        return result

    async def _complete(
        self, token_id: str, factor: SecondFactor, user_agent: str | None
    ) -> LoginResult | None:
        """The session, or None for a wrong factor (and nothing written)."""
        async with self._uow() as uow:
            now = self._clock.now()
            # The token is used up first: of two attempts at once, one goes on.
            token = await uow.repository(MfaTokenRepository).redeem(token_id, now)
            if token is None:
                raise InvalidToken()
            user = await uow.repository(UserRepository).get(token.user_id)
            # A password change or a revocation since the password step ends the token.
            if user is None or not user.is_active or user.token_version != token.token_version:
                raise InvalidToken()
            if not await use_second_factor(uow, self._totp, self._webauthn, user, factor, now):
                return None
            result = await open_session(uow, self._codec, self._policy, user, now, user_agent)
            if result is None:
                raise InvalidToken()
            await uow.commit()
        return result


class ResetMfa:
    """Remove every second factor of a user who lost them (an administrator's or an
    operator's act): TOTP, passkeys, recovery codes, pending login steps, and every
    session."""

    raises: Raises = (UserNotFound,)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, ref: UserRef) -> User:
        async with self._uow() as uow:
            user = await find_user(uow, ref)
            assert user.id is not None
            now = self._clock.now()
            factors = uow.repository(SecondFactorRepository)
            await factors.hold(user.id)
            await factors.disable_totp(user.id)
            await factors.delete_recovery_codes(user.id)
            await uow.repository(PasskeyRepository).delete_all(user.id)
            await uow.repository(MfaTokenRepository).end_all(user.id, now)
            await end_all_sessions(uow, user.id, now)
            await security_notice(uow, user, Change.RESET_BY_ADMIN, Action.MFA_RESET_BY_ADMIN, now)
            await uow.commit()
        return user
