"""Recent authentication: a login makes the session's authentication recent, a
re-authentication renews it, and RecentAuthentication refuses a session whose last one
is older than the window (API.md, "Recent authentication")."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.passkey_ceremonies import PyWebAuthn
from adapters.totp import PyotpCodes
from application.auth import (
    Authenticate,
    LogIn,
    LogOutEverywhere,
    Reauthenticate,
    RecentAuthentication,
)
from application.tokens import LoginResult
from domain.errors import InvalidToken, RateLimited, ReauthenticationRequired, WrongPassword
from domain.model import Principal, User
from tests.fakes import FakeClock, FakeFailedLoginCounter, FakeHasher, Store, session_of
from tests.integration.builders import UowFactory
from tests.unit.conftest import PASSWORD

WINDOW = timedelta(minutes=10)


@pytest.fixture
def reauthenticate(
    uow_factory: UowFactory,
    hasher: FakeHasher,
    totp: PyotpCodes,
    webauthn: PyWebAuthn,
    clock: FakeClock,
    failed_logins: FakeFailedLoginCounter,
) -> Reauthenticate:
    return Reauthenticate(uow_factory, hasher, totp, webauthn, clock, failed_logins)


@pytest.fixture
def recent(clock: FakeClock) -> RecentAuthentication:
    return RecentAuthentication(clock, WINDOW)


@pytest.fixture
async def login(log_in: LogIn, ada: User) -> LoginResult:
    return await log_in("ada", PASSWORD)


@pytest.fixture
async def principal(authenticate: Authenticate, login: LoginResult) -> Principal:
    return await authenticate(login.tokens.access_token)


async def test_a_login_is_a_recent_authentication_until_the_window_ends(
    principal: Principal, recent: RecentAuthentication, clock: FakeClock
) -> None:
    assert principal.authenticated_at == clock.now()
    assert recent(principal) is principal
    clock.advance(minutes=10)
    assert recent(principal) is principal  # the window's last moment still counts
    clock.advance(seconds=1)
    with pytest.raises(ReauthenticationRequired):
        recent(principal)


async def test_a_principal_without_an_authentication_time_is_never_recent(
    ada: User, recent: RecentAuthentication
) -> None:
    with pytest.raises(ReauthenticationRequired):
        recent(Principal(user=ada, session_id="s"))


async def test_the_right_password_renews_the_session_s_authentication(
    principal: Principal,
    reauthenticate: Reauthenticate,
    authenticate: Authenticate,
    recent: RecentAuthentication,
    login: LoginResult,
    clock: FakeClock,
    store: Store,
) -> None:
    clock.advance(minutes=20)
    await reauthenticate(principal, PASSWORD)

    renewed = await authenticate(login.tokens.access_token)
    assert renewed.authenticated_at == clock.now()
    assert recent(renewed) is renewed
    session = store.sessions[session_of(principal)]
    assert session.last_used_at < clock.now()  # a re-authentication is not a refresh


async def test_a_wrong_password_is_refused_counted_and_changes_nothing(
    principal: Principal,
    reauthenticate: Reauthenticate,
    failed_logins: FakeFailedLoginCounter,
    clock: FakeClock,
    store: Store,
) -> None:
    before = store.sessions[session_of(principal)].authenticated_at
    clock.advance(minutes=20)
    for _ in range(3):  # the fake counter's limit
        with pytest.raises(WrongPassword):
            await reauthenticate(principal, "not the password")
    with pytest.raises(RateLimited):
        await reauthenticate(principal, PASSWORD)  # the account's limit, as at login
    assert store.sessions[session_of(principal)].authenticated_at == before


async def test_a_session_ended_meanwhile_stays_ended(
    principal: Principal,
    reauthenticate: Reauthenticate,
    uow_factory: UowFactory,
    clock: FakeClock,
    store: Store,
) -> None:
    await LogOutEverywhere(uow_factory, clock)(principal)
    with pytest.raises(InvalidToken):
        await reauthenticate(principal, PASSWORD)
    assert store.sessions[session_of(principal)].revoked_at is not None
