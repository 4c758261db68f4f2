"""Logging in and out, refreshing, and checking access tokens."""

from __future__ import annotations

from datetime import timedelta

from application.access_tokens import authenticate_personal
from application.accounts import (
    account_of,
    check_own_password,
    counted_check,
    end_all_sessions,
    take_attempt,
)
from application.audit import record
from application.mfa import use_second_factor
from application.tokens import LoginResult, TokenPolicy, issue_pair, open_session
from domain.access_tokens import looks_like_token
from domain.audit import Action
from domain.errors import (
    EmailNotVerified,
    InvalidCredentials,
    InvalidMfaCode,
    InvalidPasskey,
    InvalidToken,
    MfaRequired,
    Raises,
    RateLimited,
    ReauthenticationRequired,
    SessionNotFound,
    WrongPassword,
)
from domain.mfa import MfaToken, MfaTokenRepository, SecondFactor, SecondFactorRepository, TotpCodes
from domain.model import Principal, Session, TokenPair, is_id
from domain.passkeys import WebAuthn
from domain.ports import (
    Clock,
    FailedLoginCounter,
    PasswordHasher,
    RefreshTokenRepository,
    SessionRepository,
    TokenCodec,
    UowFactory,
    UserRepository,
)
from domain.rules import normalize_login


class LogIn:
    """Log in with a username or an email and a password; opens a new session.

    Unknown user, wrong password and inactive user fail alike, and cost the same time.
    With ``require_verified_email``, a right password of an account whose address is
    not confirmed opens no session. Nor does one of a user who has a second factor: it
    answers the token of the second step (``CompleteMfaLogin``).
    """

    raises: Raises = (InvalidCredentials, EmailNotVerified, MfaRequired, RateLimited)

    def __init__(
        self,
        uow: UowFactory,
        hasher: PasswordHasher,
        codec: TokenCodec,
        clock: Clock,
        failed_logins: FailedLoginCounter,
        policy: TokenPolicy,
        require_verified_email: bool = False,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._codec = codec
        self._clock = clock
        self._failed_logins = failed_logins
        self._policy = policy
        self._require_verified = require_verified_email

    async def __call__(
        self, login: str, password: str, user_agent: str | None = None
    ) -> LoginResult:
        login = normalize_login(login)
        # The hash is checked outside any transaction: no connection is held while
        # the CPU works.
        async with self._uow() as uow:
            found = await uow.repository(UserRepository).get_by_login(login)
        # Failures count per account, whichever of its names is typed; an unknown
        # name is its own bucket, so probing it reveals nothing.
        account = account_of(found.id) if found and found.id else f"login:{login}"
        # An inactive account is checked against the dummy hash: it fails, and counts,
        # like a wrong password, at the same cost.
        matches = await counted_check(
            self._failed_logins,
            self._hasher,
            account,
            found.password_hash if found and found.is_active else None,
            password,
        )
        if found is None or not matches or not found.is_active:
            raise InvalidCredentials()
        user = found
        assert user.id is not None
        # Only after a right password: a wrong one says nothing about the address.
        if self._require_verified and not user.is_verified:
            raise EmailNotVerified()

        new_hash = None
        if self._hasher.needs_rehash(user.password_hash):
            new_hash = await self._hasher.hash(password)

        async with self._uow() as uow:
            now = self._clock.now()
            # Only over the hash just verified: a password set meanwhile stays.
            if new_hash is not None and await uow.repository(UserRepository).set_password_hash(
                user.id, new_hash, if_hash=user.password_hash
            ):
                user.password_hash = new_hash
            factors = await uow.repository(SecondFactorRepository).status(user.id)
            if factors.enabled:
                # No session yet: a token that the second step trades for one.
                token, stored = MfaToken.issue(user.id, user.token_version, now)
                await uow.repository(MfaTokenRepository).add(stored)
                await uow.commit()
                raise MfaRequired(tuple(factors.methods), token)
            # Refused when the user was deactivated, deleted or had every token revoked
            # while the password was being checked.
            result = await open_session(uow, self._codec, self._policy, user, now, user_agent)
            if result is None:
                raise InvalidCredentials()
            await uow.commit()
        return result


class Authenticate:
    """Accept an access token only if its user is active, its token version is the
    user's current one and its session is live; or a personal access token
    (``app_pat_…``) that is live, for its owner, with its scopes."""

    raises: Raises = (InvalidToken,)

    def __init__(
        self, reader: UowFactory, uow: UowFactory, codec: TokenCodec, clock: Clock
    ) -> None:
        self._reader = reader
        self._uow = uow
        self._codec = codec
        self._clock = clock

    async def __call__(self, access_token: str) -> Principal:
        if looks_like_token(access_token):
            return await authenticate_personal(self._reader, self._uow, self._clock, access_token)
        claims = self._codec.decode_access(access_token)
        async with self._reader() as uow:
            found = await uow.repository(UserRepository).get_with_session(
                claims.user_id, claims.session_id
            )
        if found is None:
            raise InvalidToken()
        user, session = found
        if (
            session is None
            or user.token_version != claims.token_version
            or not session.admits(user, self._clock.now())
        ):
            raise InvalidToken()
        return Principal(
            user=user, session_id=session.id, authenticated_at=session.authenticated_at
        )


class Reauthenticate:
    """Prove again who the caller is, in the caller's session, without logging out: the
    password, and the second factor when the user has one, make the session's
    authentication recent. Wrong ones count against the account's failed-login limit,
    as at login."""

    raises: Raises = (
        WrongPassword,
        MfaRequired,
        InvalidMfaCode,
        InvalidPasskey,
        InvalidToken,
        RateLimited,
    )

    def __init__(
        self,
        uow: UowFactory,
        hasher: PasswordHasher,
        totp: TotpCodes,
        webauthn: WebAuthn,
        clock: Clock,
        failed_logins: FailedLoginCounter,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._totp = totp
        self._webauthn = webauthn
        self._clock = clock
        self._failed_logins = failed_logins

    async def __call__(
        self, principal: Principal, password: str, factor: SecondFactor | None = None
    ) -> None:
        await check_own_password(self._failed_logins, self._hasher, principal, password)
        async with self._uow() as uow:
            now = self._clock.now()
            factors = await uow.repository(SecondFactorRepository).status(principal.user_id)
            if factors.enabled:
                if factor is None or factor.method is None:
                    raise MfaRequired(tuple(factors.methods))
                account = account_of(principal.user_id)
                await take_attempt(self._failed_logins, account)
                if not await use_second_factor(
                    uow, self._totp, self._webauthn, principal.user, factor, now
                ):
                    raise InvalidMfaCode()
                await self._failed_logins.succeeded(account)
            # Only while the session lives: one ended meanwhile stays ended.
            if principal.session_id is None or not await uow.repository(
                SessionRepository
            ).mark_authenticated(principal.session_id, now):
                raise InvalidToken()
            await uow.commit()


class RecentAuthentication:
    """The check of the operations that change how an account is protected: the
    caller's session must have authenticated within ``window`` (a login or a
    re-authentication), else 403 ``reauthentication_required``."""

    raises: Raises = (ReauthenticationRequired,)

    def __init__(self, clock: Clock, window: timedelta) -> None:
        self._clock = clock
        self.window = window

    def __call__(self, principal: Principal) -> Principal:
        if not principal.authenticated_recently(self._clock.now(), self.window):
            raise ReauthenticationRequired()
        return principal


class RefreshTokens:
    """Trade a refresh token for a new pair in the same session (rotation).

    A rotated token presented again is reuse: the whole session is revoked, so the
    thief's copy and the victim's die together.
    """

    raises: Raises = (InvalidToken,)

    def __init__(
        self, uow: UowFactory, codec: TokenCodec, clock: Clock, policy: TokenPolicy
    ) -> None:
        self._uow = uow
        self._codec = codec
        self._clock = clock
        self._policy = policy

    async def __call__(self, refresh_token: str) -> TokenPair:
        claims = self._codec.decode_refresh(refresh_token)
        async with self._uow() as uow:
            now = self._clock.now()
            found = await uow.repository(RefreshTokenRepository).get_with_owner(claims.token_id)
            if found is None:
                raise InvalidToken()
            stored, session, user = found
            if (
                stored.user_id != claims.user_id
                or stored.session_id != claims.session_id
                or stored.revoked_at is not None
            ):
                raise InvalidToken()
            if stored.rotated_at is not None:
                await uow.repository(SessionRepository).revoke(stored.session_id, now)
                await record(
                    uow, Action.REUSE_DETECTED, stored.user_id, now, session_id=stored.session_id
                )
                await uow.commit()
                raise InvalidToken()
            if not session.admits(user, now):
                raise InvalidToken()
            # A lost race with a concurrent refresh of the same token is refused
            # without revoking: the winner's new pair stays valid.
            if not await uow.repository(RefreshTokenRepository).mark_rotated(stored.id, now):
                raise InvalidToken()
            pair, new_token = issue_pair(self._codec, self._policy, user, session, now)
            await uow.repository(RefreshTokenRepository).add(new_token)
            await uow.repository(SessionRepository).extend(session.id, now, new_token.expires_at)
            await uow.commit()
        return pair


class LogOut:
    """End the session of a refresh token. Ending an ended session is not an error."""

    raises: Raises = (InvalidToken,)

    def __init__(self, uow: UowFactory, codec: TokenCodec, clock: Clock) -> None:
        self._uow = uow
        self._codec = codec
        self._clock = clock

    async def __call__(self, refresh_token: str) -> None:
        # An expired but genuine token may still end its session.
        claims = self._codec.decode_refresh(refresh_token, verify_expiry=False)
        async with self._uow() as uow:
            session = await uow.repository(SessionRepository).get(claims.session_id)
            if session is None or session.user_id != claims.user_id:
                return
            if session.revoked_at is None:
                await uow.repository(SessionRepository).revoke(session.id, self._clock.now())
                await uow.commit()


class LogOutEverywhere:
    """End every session of the caller; every access token issued so far dies."""

    raises: Raises = (InvalidToken,)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal) -> None:
        async with self._uow() as uow:
            now = self._clock.now()
            if not await end_all_sessions(uow, principal.user_id, now):
                raise InvalidToken()
            await record(uow, Action.SESSIONS_REVOKED, principal.user_id, now)
            await uow.commit()


class ListSessions:
    """The caller's active sessions, newest first."""

    raises: Raises = ()

    def __init__(self, reader: UowFactory, clock: Clock) -> None:
        self._reader = reader
        self._clock = clock

    async def __call__(self, principal: Principal) -> list[Session]:
        async with self._reader() as uow:
            stored = await uow.repository(SessionRepository).list_for_user(principal.user_id)
        now = self._clock.now()
        return [session for session in stored if session.is_active(now)]


class EndSession:
    """End one of the caller's own sessions; its access and refresh tokens stop working."""

    raises: Raises = (SessionNotFound,)

    def __init__(self, uow: UowFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, principal: Principal, session_id: str) -> None:
        if not is_id(session_id):
            raise SessionNotFound()
        async with self._uow() as uow:
            now = self._clock.now()
            session = await uow.repository(SessionRepository).get(session_id)
            if (
                session is None
                or session.user_id != principal.user_id
                or not session.is_active(now)
            ):
                raise SessionNotFound()
            await uow.repository(SessionRepository).revoke(session.id, now)
            await uow.commit()
