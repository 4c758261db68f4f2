"""Passkeys on the fakes with the real ceremonies (py_webauthn) and an authenticator in
software: registration, passwordless login, the second step, and every check a relying
party must make (API.md, "Two-factor authentication": each refusal is
``invalid_passkey``)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from adapters.jwt_codec import JwtCodec
from adapters.passkey_ceremonies import PyWebAuthn
from adapters.totp import PyotpCodes
from application.auth import Authenticate, LogIn, Reauthenticate
from application.mfa import CompleteMfaLogin, GetMfaStatus, RegenerateRecoveryCodes, ResetMfa
from application.passkeys import (
    DeletePasskey,
    ListPasskeys,
    PasskeyLogin,
    RegisterPasskey,
    RenamePasskey,
    StartPasskeyLogin,
    StartPasskeyRegistration,
)
from domain.audit import Action
from domain.errors import (
    InvalidPasskey,
    InvalidToken,
    MfaRequired,
    PasskeyAlreadyRegistered,
    PasskeyNotFound,
)
from domain.mfa import SecondFactor
from domain.model import Principal, User
from domain.outbox import Template
from domain.passkeys import Passkey
from domain.ports import UowFactory
from tests.authenticator import SoftAuthenticator
from tests.fakes import POLICY, FakeClock, FakeFailedLoginCounter, FakeHasher, Store
from tests.unit.conftest import ORIGIN, PASSWORD, seed_session, seed_user


@pytest.fixture
def failed_logins() -> FakeFailedLoginCounter:
    return FakeFailedLoginCounter(limit=20)


@pytest.fixture
def principal(store: Store, ada: User, clock: FakeClock) -> Principal:
    assert ada.id is not None
    session = seed_session(store, ada.id, clock.now())
    return Principal(user=ada, session_id=session.id, authenticated_at=clock.now())


@pytest.fixture
def phone() -> SoftAuthenticator:
    return SoftAuthenticator(ORIGIN)


@pytest.fixture
def start_registration(
    uow_factory: UowFactory, webauthn: PyWebAuthn, clock: FakeClock
) -> StartPasskeyRegistration:
    return StartPasskeyRegistration(uow_factory, webauthn, clock)


@pytest.fixture
def register(uow_factory: UowFactory, webauthn: PyWebAuthn, clock: FakeClock) -> RegisterPasskey:
    return RegisterPasskey(uow_factory, webauthn, clock)


@pytest.fixture
def start_login(
    uow_factory: UowFactory, webauthn: PyWebAuthn, clock: FakeClock
) -> StartPasskeyLogin:
    return StartPasskeyLogin(uow_factory, webauthn, clock)


@pytest.fixture
def passkey_login(
    uow_factory: UowFactory,
    webauthn: PyWebAuthn,
    codec: JwtCodec,
    clock: FakeClock,
    failed_logins: FakeFailedLoginCounter,
) -> PasskeyLogin:
    return PasskeyLogin(uow_factory, webauthn, codec, clock, failed_logins, POLICY)


@pytest.fixture
def complete(
    uow_factory: UowFactory,
    totp: PyotpCodes,
    webauthn: PyWebAuthn,
    codec: JwtCodec,
    clock: FakeClock,
    failed_logins: FakeFailedLoginCounter,
) -> CompleteMfaLogin:
    return CompleteMfaLogin(uow_factory, totp, webauthn, codec, clock, failed_logins, POLICY)


@pytest.fixture
async def registered(
    start_registration: StartPasskeyRegistration,
    register: RegisterPasskey,
    principal: Principal,
    phone: SoftAuthenticator,
) -> Passkey:
    ceremony = await start_registration(principal)
    return await register(principal, ceremony.challenge_id, phone.create(ceremony.options))


def challenge_bytes(options: dict[str, Any]) -> bytes:
    text = options["challenge"]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_registration_options_follow_the_contract(
    start_registration: StartPasskeyRegistration, principal: Principal, ada: User
) -> None:
    ceremony = await start_registration(principal)
    options = ceremony.options

    assert options["rp"] == {"id": "localhost", "name": "Backend Template"}
    assert len(challenge_bytes(options)) >= 32
    assert {p["alg"] for p in options["pubKeyCredParams"]} == {-7, -8, -257}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert options["excludeCredentials"] == []
    handle = options["user"]["id"]
    assert handle not in {str(ada.id), ada.username, ada.email}
    assert len(base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4))) >= 32
    assert options["user"]["name"] == "ada"


async def test_a_registered_passkey_is_listed_excluded_and_noticed(
    registered: Passkey,
    start_registration: StartPasskeyRegistration,
    principal: Principal,
    uow_factory: UowFactory,
    store: Store,
    phone: SoftAuthenticator,
) -> None:
    assert registered.name == "Passkey"
    assert registered.credential_id == phone.credential_id
    assert (await GetMfaStatus(uow_factory)(principal)).passkeys == 1
    (listed,) = await ListPasskeys(uow_factory)(principal)
    assert listed.id == registered.id

    again = await start_registration(principal)
    excluded = again.options["excludeCredentials"]
    assert [c["id"] for c in excluded] == [
        base64.urlsafe_b64encode(phone.credential_id).rstrip(b"=").decode()
    ]
    # The same user handle, so the authenticator keeps one entry for the account.
    assert again.options["user"]["id"] == phone.user_handle

    notices = [
        m.context["change"] for m in store.outbox.values() if m.template is Template.SECURITY_NOTICE
    ]
    assert notices == ["passkey_added"]
    assert [e.action for e in store.audit] == [Action.PASSKEY_ADDED]


async def test_a_passkey_registered_twice_is_refused(
    registered: Passkey,
    start_registration: StartPasskeyRegistration,
    register: RegisterPasskey,
    principal: Principal,
    phone: SoftAuthenticator,
) -> None:
    ceremony = await start_registration(principal)
    with pytest.raises(PasskeyAlreadyRegistered):
        await register(principal, ceremony.challenge_id, phone.create(ceremony.options))


@pytest.mark.parametrize(
    "tamper",
    [
        {"origin": "http://evil.example"},
        {"rp_id": "evil.example"},
        {"verified": False},
    ],
)
async def test_a_wrong_registration_is_refused(
    start_registration: StartPasskeyRegistration,
    register: RegisterPasskey,
    principal: Principal,
    phone: SoftAuthenticator,
    uow_factory: UowFactory,
    tamper: dict[str, Any],
) -> None:
    ceremony = await start_registration(principal)
    with pytest.raises(InvalidPasskey):
        await register(principal, ceremony.challenge_id, phone.create(ceremony.options, **tamper))
    assert await ListPasskeys(uow_factory)(principal) == []


async def test_a_registration_challenge_is_single_use_expires_and_is_the_callers(
    start_registration: StartPasskeyRegistration,
    register: RegisterPasskey,
    principal: Principal,
    phone: SoftAuthenticator,
    clock: FakeClock,
    store: Store,
) -> None:
    ceremony = await start_registration(principal)
    bob = seed_user(store, email="bob@example.com", username="bob")
    with pytest.raises(InvalidPasskey):
        await register(
            Principal(user=bob, session_id="x"),
            ceremony.challenge_id,
            phone.create(ceremony.options),
        )
    late = await start_registration(principal)
    clock.advance(minutes=5)
    with pytest.raises(InvalidPasskey):
        await register(principal, late.challenge_id, phone.create(late.options))
    with pytest.raises(InvalidPasskey):
        await register(principal, "not-an-id", phone.create(late.options))


async def test_a_passkey_alone_logs_in(
    registered: Passkey,
    start_login: StartPasskeyLogin,
    passkey_login: PasskeyLogin,
    phone: SoftAuthenticator,
    authenticate: Authenticate,
    ada: User,
    uow_factory: UowFactory,
    principal: Principal,
) -> None:
    ceremony = await start_login()
    assert ceremony.options["allowCredentials"] == []
    assert ceremony.options["userVerification"] == "required"
    assert ceremony.options["rpId"] == "localhost"

    result = await passkey_login(ceremony.challenge_id, phone.get(ceremony.options))

    assert (await authenticate(result.tokens.access_token)).user_id == ada.id
    (stored,) = await ListPasskeys(uow_factory)(principal)
    assert stored.sign_count == 1
    assert stored.last_used_at is not None


async def test_a_replayed_assertion_and_a_reused_challenge_are_refused(
    registered: Passkey,
    start_login: StartPasskeyLogin,
    passkey_login: PasskeyLogin,
    phone: SoftAuthenticator,
) -> None:
    ceremony = await start_login()
    assertion = phone.get(ceremony.options)
    await passkey_login(ceremony.challenge_id, assertion)

    with pytest.raises(InvalidPasskey):
        await passkey_login(ceremony.challenge_id, assertion)
    with pytest.raises(InvalidPasskey):
        await passkey_login(ceremony.challenge_id, phone.get(ceremony.options))
    # A fresh challenge with the old assertion: its signature is over another challenge.
    fresh = await start_login()
    with pytest.raises(InvalidPasskey):
        await passkey_login(fresh.challenge_id, assertion)


async def test_an_expired_challenge_is_refused(
    registered: Passkey,
    start_login: StartPasskeyLogin,
    passkey_login: PasskeyLogin,
    phone: SoftAuthenticator,
    clock: FakeClock,
) -> None:
    ceremony = await start_login()
    clock.advance(minutes=5)
    with pytest.raises(InvalidPasskey):
        await passkey_login(ceremony.challenge_id, phone.get(ceremony.options))


@pytest.mark.parametrize(
    "tamper",
    [
        {"origin": "http://evil.example"},
        {"rp_id": "evil.example"},
        {"verified": False},
        {"sign_count": 0},  # a counter that does not grow (it was 1 at the last use)
    ],
)
async def test_a_wrong_assertion_is_refused(
    registered: Passkey,
    start_login: StartPasskeyLogin,
    passkey_login: PasskeyLogin,
    phone: SoftAuthenticator,
    tamper: dict[str, Any],
) -> None:
    first = await start_login()
    await passkey_login(first.challenge_id, phone.get(first.options))
    ceremony = await start_login()
    with pytest.raises(InvalidPasskey):
        await passkey_login(ceremony.challenge_id, phone.get(ceremony.options, **tamper))


async def test_an_unknown_credential_or_junk_is_refused(
    registered: Passkey, start_login: StartPasskeyLogin, passkey_login: PasskeyLogin
) -> None:
    ceremony = await start_login()
    stranger = SoftAuthenticator(ORIGIN)
    with pytest.raises(InvalidPasskey):
        await passkey_login(ceremony.challenge_id, stranger.get(ceremony.options))
    for junk in ({}, {"id": 1}, {"id": "x", "rawId": "x", "response": "no"}):
        with pytest.raises(InvalidPasskey):
            await passkey_login(ceremony.challenge_id, junk)


async def test_a_passkey_is_the_second_step_of_a_password_login(
    registered: Passkey,
    log_in: LogIn,
    start_login: StartPasskeyLogin,
    complete: CompleteMfaLogin,
    phone: SoftAuthenticator,
    authenticate: Authenticate,
) -> None:
    with pytest.raises(MfaRequired) as raised:
        await log_in("ada", PASSWORD)
    step = raised.value
    assert step.methods == ("passkey",)
    assert step.mfa_token is not None

    ceremony = await start_login(step.mfa_token)
    assert [c["id"] for c in ceremony.options["allowCredentials"]] == [
        base64.urlsafe_b64encode(phone.credential_id).rstrip(b"=").decode()
    ]
    factor = SecondFactor(
        challenge_id=ceremony.challenge_id, credential=phone.get(ceremony.options)
    )
    result = await complete(step.mfa_token, factor)

    assert (await authenticate(result.tokens.access_token)).user_id == result.user.id


async def test_another_users_passkey_is_no_second_step(
    registered: Passkey,
    log_in: LogIn,
    start_login: StartPasskeyLogin,
    start_registration: StartPasskeyRegistration,
    register: RegisterPasskey,
    complete: CompleteMfaLogin,
    store: Store,
    clock: FakeClock,
) -> None:
    bob = seed_user(store, email="bob@example.com", username="bob")
    bobs_key = SoftAuthenticator(ORIGIN)
    as_bob = Principal(user=bob, session_id="x", authenticated_at=clock.now())
    ceremony = await start_registration(as_bob)
    await register(as_bob, ceremony.challenge_id, bobs_key.create(ceremony.options))

    with pytest.raises(MfaRequired) as raised:
        await log_in("ada", PASSWORD)
    token = raised.value.mfa_token
    assert token is not None
    # Bob's passkey over a challenge bound to ada, and over an open one.
    for options in (await start_login(token), await start_login()):
        factor = SecondFactor(
            challenge_id=options.challenge_id, credential=bobs_key.get(options.options)
        )
        with pytest.raises(InvalidPasskey):
            await complete(token, factor)


async def test_passkey_options_for_a_second_step_need_a_live_token(
    start_login: StartPasskeyLogin,
) -> None:
    for token in ("unknown", "", "x" * 300):
        with pytest.raises(InvalidToken):
            await start_login(token)


async def test_reauthentication_with_a_passkey(
    registered: Passkey,
    reauthenticate: Reauthenticate,
    start_login: StartPasskeyLogin,
    principal: Principal,
    phone: SoftAuthenticator,
) -> None:
    with pytest.raises(MfaRequired):
        await reauthenticate(principal, PASSWORD)
    ceremony = await start_login()
    factor = SecondFactor(
        challenge_id=ceremony.challenge_id, credential=phone.get(ceremony.options)
    )
    await reauthenticate(principal, PASSWORD, factor)


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


async def test_renaming_and_removing_a_passkey(
    registered: Passkey,
    uow_factory: UowFactory,
    clock: FakeClock,
    principal: Principal,
    store: Store,
) -> None:
    renamed = await RenamePasskey(uow_factory)(principal, registered.id, "My laptop")
    assert renamed.name == "My laptop"
    codes = await RegenerateRecoveryCodes(uow_factory, clock)(principal)
    assert len(codes) == 10

    await DeletePasskey(uow_factory, clock)(principal, registered.id)

    status = await GetMfaStatus(uow_factory)(principal)
    assert (status.passkeys, status.recovery_codes_left) == (0, 0)  # the last factor went
    assert [e.action for e in store.audit][-1] is Action.PASSKEY_REMOVED
    for missing in (registered.id, "nope"):
        with pytest.raises(PasskeyNotFound):
            await DeletePasskey(uow_factory, clock)(principal, missing)
        with pytest.raises(PasskeyNotFound):
            await RenamePasskey(uow_factory)(principal, missing, "x")


async def test_someone_elses_passkey_cannot_be_renamed_or_removed(
    registered: Passkey, uow_factory: UowFactory, clock: FakeClock, store: Store
) -> None:
    bob = seed_user(store, email="bob@example.com", username="bob")
    as_bob = Principal(user=bob, session_id="x")
    with pytest.raises(PasskeyNotFound):
        await RenamePasskey(uow_factory)(as_bob, registered.id, "mine now")
    with pytest.raises(PasskeyNotFound):
        await DeletePasskey(uow_factory, clock)(as_bob, registered.id)


async def test_an_admin_reset_removes_passkeys(
    registered: Passkey, uow_factory: UowFactory, clock: FakeClock, principal: Principal
) -> None:
    await ResetMfa(uow_factory, clock)("ada")
    assert await ListPasskeys(uow_factory)(principal) == []
