"""Second factors on the fakes: TOTP set-up and its replay rule, recovery codes used once,
the login step and its counting, re-authentication with a factor, and the reset
(API.md, "Two-factor authentication"). The races are in tests/integration/test_mfa_races.py."""

from __future__ import annotations

import re
from datetime import datetime

import pyotp
import pytest

from adapters.jwt_codec import JwtCodec
from adapters.passkey_ceremonies import PyWebAuthn
from adapters.totp import PyotpCodes
from application.auth import Authenticate, LogIn, Reauthenticate
from application.mfa import (
    CompleteMfaLogin,
    ConfirmTotp,
    DisableTotp,
    GetMfaStatus,
    RegenerateRecoveryCodes,
    ResetMfa,
    StartTotp,
)
from domain.audit import Action
from domain.errors import (
    InvalidMfaCode,
    InvalidToken,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    MfaRequired,
    RateLimited,
)
from domain.mfa import (
    MAX_FAILURES,
    MfaStatus,
    SecondFactor,
    TotpFactor,
    mfa_token_id,
    recovery_code_hash,
)
from domain.model import Principal, User
from domain.outbox import Template
from domain.ports import UowFactory
from tests.fakes import POLICY, FakeClock, FakeFailedLoginCounter, FakeHasher, Store
from tests.unit.conftest import PASSWORD, seed_session

ISSUER = "Backend Template"


@pytest.fixture
def failed_logins() -> FakeFailedLoginCounter:
    # Room for the five wrong factors that kill a login-step token.
    return FakeFailedLoginCounter(limit=20)


@pytest.fixture
def start(uow_factory: UowFactory, totp: PyotpCodes, clock: FakeClock) -> StartTotp:
    return StartTotp(uow_factory, totp, clock, ISSUER)


@pytest.fixture
def confirm(uow_factory: UowFactory, totp: PyotpCodes, clock: FakeClock) -> ConfirmTotp:
    return ConfirmTotp(uow_factory, totp, clock)


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
def principal(store: Store, ada: User, clock: FakeClock) -> Principal:
    assert ada.id is not None
    session = seed_session(store, ada.id, clock.now())
    return Principal(user=ada, session_id=session.id, authenticated_at=clock.now())


class Phone:
    """An authenticator app: pyotp over the secret shown at set-up."""

    def __init__(self, secret: str, clock: FakeClock) -> None:
        self.totp = pyotp.TOTP(secret)
        self.clock = clock

    def code(self, steps: int = 0) -> str:
        return self.totp.at(self.clock.now(), counter_offset=steps)


@pytest.fixture
async def phone(
    start: StartTotp, confirm: ConfirmTotp, principal: Principal, clock: FakeClock
) -> Phone:
    """TOTP turned on for ada; the phone's codes of the next steps are still unused."""
    setup = await start(principal)
    phone = Phone(setup.secret, clock)
    await confirm(principal, phone.code())
    clock.advance(seconds=30)
    return phone


@pytest.fixture
async def recovery(
    start: StartTotp, confirm: ConfirmTotp, principal: Principal, clock: FakeClock
) -> tuple[Phone, list[str]]:
    setup = await start(principal)
    phone = Phone(setup.secret, clock)
    codes = await confirm(principal, phone.code())
    clock.advance(seconds=30)
    return phone, codes


async def mfa_token(log_in: LogIn) -> MfaRequired:
    with pytest.raises(MfaRequired) as raised:
        await log_in("ada", PASSWORD)
    return raised.value


def notices(store: Store) -> list[str]:
    return [
        m.context["change"] for m in store.outbox.values() if m.template is Template.SECURITY_NOTICE
    ]


def actions(store: Store) -> list[Action]:
    return [event.action for event in store.audit]


async def test_setting_up_totp_shows_a_secret_of_160_bits_and_an_otpauth_uri(
    start: StartTotp, principal: Principal, store: Store
) -> None:
    setup = await start(principal)

    assert re.fullmatch(r"[A-Z2-7]{32}", setup.secret)  # base32: 160 bits
    assert setup.otpauth_uri.startswith("otpauth://totp/Backend%20Template:ada?")
    assert f"secret={setup.secret}" in setup.otpauth_uri
    assert "issuer=Backend%20Template" in setup.otpauth_uri
    # Stored sealed only, and not yet in force.
    (stored,) = store.table("totp_factors").values()
    assert setup.secret.encode() not in stored.sealed_secret
    assert not stored.enabled
    assert notices(store) == []


async def test_confirming_turns_totp_on_with_ten_recovery_codes_a_notice_and_events(
    start: StartTotp,
    confirm: ConfirmTotp,
    principal: Principal,
    clock: FakeClock,
    store: Store,
    uow_factory: UowFactory,
) -> None:
    setup = await start(principal)
    codes = await confirm(principal, Phone(setup.secret, clock).code())

    assert len(codes) == len(set(codes)) == 10
    assert all(re.fullmatch(r"[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}", c) for c in codes)
    # Stored as hashes only.
    stored = store.table("recovery_codes")
    assert {h for (_, h) in stored} == {recovery_code_hash(c) for c in codes}
    assert await GetMfaStatus(uow_factory)(principal) == MfaStatus(
        totp=True, passkeys=0, recovery_codes_left=10
    )
    assert notices(store) == ["totp_enabled"]
    assert actions(store) == [Action.RECOVERY_CODES_GENERATED, Action.TOTP_ENABLED]


async def test_a_wrong_code_leaves_totp_off(
    start: StartTotp, confirm: ConfirmTotp, principal: Principal, store: Store
) -> None:
    await start(principal)
    with pytest.raises(InvalidMfaCode):
        await confirm(principal, "000000")
    with pytest.raises(InvalidMfaCode):
        await confirm(principal, "not a code")
    (stored,) = store.table("totp_factors").values()
    assert not stored.enabled
    assert notices(store) == []


async def test_confirming_without_a_set_up_or_twice_is_refused(
    start: StartTotp, confirm: ConfirmTotp, principal: Principal, clock: FakeClock
) -> None:
    with pytest.raises(MfaNotEnabled):
        await confirm(principal, "123456")
    setup = await start(principal)
    phone = Phone(setup.secret, clock)
    await confirm(principal, phone.code())
    with pytest.raises(MfaAlreadyEnabled):
        await confirm(principal, phone.code(1))
    with pytest.raises(MfaAlreadyEnabled):
        await start(principal)


async def test_a_new_set_up_replaces_the_pending_secret(
    start: StartTotp, confirm: ConfirmTotp, principal: Principal, clock: FakeClock
) -> None:
    first = await start(principal)
    second = await start(principal)
    assert first.secret != second.secret
    with pytest.raises(InvalidMfaCode):
        await confirm(principal, Phone(first.secret, clock).code())
    await confirm(principal, Phone(second.secret, clock).code())


async def test_a_right_password_of_a_user_with_totp_opens_no_session_but_a_login_step(
    phone: Phone, log_in: LogIn, store: Store
) -> None:
    sessions_before = len(store.sessions)
    step = await mfa_token(log_in)

    assert step.mfa_token is not None
    assert len(step.mfa_token) >= 43  # 32 random bytes
    assert step.methods == ("totp", "recovery_code")
    assert step.members() == {"methods": ["totp", "recovery_code"], "mfa_token": step.mfa_token}
    assert len(store.sessions) == sessions_before
    # Stored as a hash only.
    assert step.mfa_token not in store.table("mfa_tokens")


async def test_the_login_step_with_a_code_opens_the_session(
    phone: Phone, log_in: LogIn, complete: CompleteMfaLogin, authenticate: Authenticate
) -> None:
    step = await mfa_token(log_in)
    assert step.mfa_token is not None

    result = await complete(step.mfa_token, SecondFactor(code=phone.code()), user_agent="curl")

    principal = await authenticate(result.tokens.access_token)
    assert principal.user_id == result.user.id


async def test_a_code_is_accepted_once_and_never_an_earlier_one(
    phone: Phone, log_in: LogIn, complete: CompleteMfaLogin
) -> None:
    first = await mfa_token(log_in)
    assert first.mfa_token is not None
    await complete(first.mfa_token, SecondFactor(code=phone.code()))

    again = await mfa_token(log_in)
    assert again.mfa_token is not None
    with pytest.raises(InvalidMfaCode):
        await complete(again.mfa_token, SecondFactor(code=phone.code()))
    with pytest.raises(InvalidMfaCode):
        await complete(again.mfa_token, SecondFactor(code=phone.code(-1)))
    # The next step's code is accepted (a phone a little ahead), and then not the current.
    await complete(again.mfa_token, SecondFactor(code=phone.code(1)))
    last = await mfa_token(log_in)
    assert last.mfa_token is not None
    with pytest.raises(InvalidMfaCode):
        await complete(last.mfa_token, SecondFactor(code=phone.code()))


async def test_codes_two_steps_away_are_refused(
    phone: Phone, log_in: LogIn, complete: CompleteMfaLogin
) -> None:
    step = await mfa_token(log_in)
    assert step.mfa_token is not None
    for off in (-2, 2):
        with pytest.raises(InvalidMfaCode):
            await complete(step.mfa_token, SecondFactor(code=phone.code(off)))


async def test_a_login_step_token_is_single_use(
    phone: Phone, log_in: LogIn, complete: CompleteMfaLogin, clock: FakeClock
) -> None:
    step = await mfa_token(log_in)
    assert step.mfa_token is not None
    await complete(step.mfa_token, SecondFactor(code=phone.code()))
    clock.advance(seconds=30)
    with pytest.raises(InvalidToken):
        await complete(step.mfa_token, SecondFactor(code=phone.code()))


async def test_a_login_step_token_expires_after_five_minutes(
    phone: Phone, log_in: LogIn, complete: CompleteMfaLogin, clock: FakeClock
) -> None:
    step = await mfa_token(log_in)
    assert step.mfa_token is not None
    clock.advance(minutes=5)
    with pytest.raises(InvalidToken):
        await complete(step.mfa_token, SecondFactor(code=phone.code()))


@pytest.mark.parametrize("token", ["", "x" * 300, "unknown-token"])
async def test_an_unknown_login_step_token_is_refused(
    phone: Phone, complete: CompleteMfaLogin, token: str
) -> None:
    with pytest.raises(InvalidToken):
        await complete(token, SecondFactor(code=phone.code()))


async def test_five_wrong_factors_kill_the_token_and_each_counts_for_the_account(
    phone: Phone,
    log_in: LogIn,
    complete: CompleteMfaLogin,
    failed_logins: FakeFailedLoginCounter,
    ada: User,
) -> None:
    step = await mfa_token(log_in)
    assert step.mfa_token is not None
    for _ in range(MAX_FAILURES):
        with pytest.raises(InvalidMfaCode):
            await complete(step.mfa_token, SecondFactor(code="000000"))
    assert failed_logins.failures[f"user:{ada.id}"] == MAX_FAILURES
    with pytest.raises(InvalidToken):
        await complete(step.mfa_token, SecondFactor(code=phone.code()))


async def test_wrong_factors_stop_at_the_accounts_failed_login_limit(
    phone: Phone, log_in: LogIn, complete: CompleteMfaLogin, failed_logins: FakeFailedLoginCounter
) -> None:
    failed_logins.limit = 2
    step = await mfa_token(log_in)
    assert step.mfa_token is not None
    for _ in range(2):
        with pytest.raises(InvalidMfaCode):
            await complete(step.mfa_token, SecondFactor(recovery_code="aaaaa-aaaaa"))
    with pytest.raises(RateLimited):
        await complete(step.mfa_token, SecondFactor(code=phone.code()))


async def test_a_password_change_after_the_first_step_ends_the_token(
    phone: Phone, log_in: LogIn, complete: CompleteMfaLogin, store: Store, ada: User
) -> None:
    step = await mfa_token(log_in)
    assert step.mfa_token is not None
    assert ada.id is not None
    store.users[ada.id].token_version += 1
    with pytest.raises(InvalidToken):
        await complete(step.mfa_token, SecondFactor(code=phone.code()))


async def test_a_recovery_code_works_once_in_any_case_with_a_notice(
    recovery: tuple[Phone, list[str]],
    log_in: LogIn,
    complete: CompleteMfaLogin,
    store: Store,
    uow_factory: UowFactory,
    principal: Principal,
) -> None:
    _, codes = recovery
    typed = " " + codes[0].upper().replace("-", " - ") + " "
    step = await mfa_token(log_in)
    assert step.mfa_token is not None
    await complete(step.mfa_token, SecondFactor(recovery_code=typed))

    assert notices(store) == ["totp_enabled", "recovery_code_used"]
    assert actions(store)[-1] is Action.RECOVERY_CODE_USED
    assert (await GetMfaStatus(uow_factory)(principal)).recovery_codes_left == 9
    again = await mfa_token(log_in)
    assert again.mfa_token is not None
    with pytest.raises(InvalidMfaCode):
        await complete(again.mfa_token, SecondFactor(recovery_code=codes[0]))


async def test_new_recovery_codes_replace_the_old_set(
    recovery: tuple[Phone, list[str]],
    uow_factory: UowFactory,
    clock: FakeClock,
    principal: Principal,
    log_in: LogIn,
    complete: CompleteMfaLogin,
    store: Store,
) -> None:
    _, old = recovery
    new = await RegenerateRecoveryCodes(uow_factory, clock)(principal)

    assert len(new) == 10
    assert not set(new) & set(old)
    assert notices(store)[-1] == "recovery_codes_generated"
    step = await mfa_token(log_in)
    assert step.mfa_token is not None
    with pytest.raises(InvalidMfaCode):
        await complete(step.mfa_token, SecondFactor(recovery_code=old[1]))
    await complete(step.mfa_token, SecondFactor(recovery_code=new[1]))


async def test_recovery_codes_need_a_second_factor(
    uow_factory: UowFactory, clock: FakeClock, principal: Principal, store: Store
) -> None:
    with pytest.raises(MfaNotEnabled):
        await RegenerateRecoveryCodes(uow_factory, clock)(principal)
    assert store.table("recovery_codes") == {}
    assert notices(store) == []


async def test_turning_totp_off_removes_the_codes_and_the_login_step(
    recovery: tuple[Phone, list[str]],
    uow_factory: UowFactory,
    clock: FakeClock,
    principal: Principal,
    log_in: LogIn,
    store: Store,
) -> None:
    await DisableTotp(uow_factory, clock)(principal)

    assert await GetMfaStatus(uow_factory)(principal) == MfaStatus()
    assert notices(store)[-1] == "totp_disabled"
    assert actions(store)[-1] is Action.TOTP_DISABLED
    result = await log_in("ada", PASSWORD)
    assert result.tokens.access_token
    with pytest.raises(MfaNotEnabled):
        await DisableTotp(uow_factory, clock)(principal)


async def test_reauthentication_of_a_user_with_totp_needs_a_factor(
    phone: Phone, reauthenticate: Reauthenticate, principal: Principal, store: Store
) -> None:
    with pytest.raises(MfaRequired) as raised:
        await reauthenticate(principal, PASSWORD)
    assert raised.value.members() == {"methods": ["totp", "recovery_code"]}
    with pytest.raises(InvalidMfaCode):
        await reauthenticate(principal, PASSWORD, SecondFactor(code="000000"))

    await reauthenticate(principal, PASSWORD, SecondFactor(code=phone.code()))

    # The code is used up there as at login.
    with pytest.raises(InvalidMfaCode):
        await reauthenticate(principal, PASSWORD, SecondFactor(code=phone.code()))


async def test_an_admin_reset_removes_every_factor_and_ends_the_sessions(
    recovery: tuple[Phone, list[str]],
    uow_factory: UowFactory,
    clock: FakeClock,
    principal: Principal,
    log_in: LogIn,
    store: Store,
    ada: User,
) -> None:
    step = await mfa_token(log_in)
    assert step.mfa_token is not None
    await ResetMfa(uow_factory, clock)("ada")

    assert await GetMfaStatus(uow_factory)(principal) == MfaStatus()
    assert store.table("mfa_tokens")[recovery_id(step.mfa_token)].used_at == clock.now()
    assert all(s.revoked_at is not None for s in store.sessions.values())
    assert notices(store)[-1] == "reset_by_admin"
    assert Action.MFA_RESET_BY_ADMIN in actions(store)
    result = await log_in("ada", PASSWORD)
    assert result.user.id == ada.id


def recovery_id(token: str) -> str:
    found = mfa_token_id(token)
    assert found is not None
    return found


def test_recovery_code_hashes_ignore_case_spaces_and_dashes_and_refuse_junk() -> None:
    assert recovery_code_hash("k7qm2-x9tfa") == recovery_code_hash(" K7QM2 X9TFA ")
    assert recovery_code_hash("k7qm2x9tfa") == recovery_code_hash("K7Qm2-x9TfA")
    for junk in ("", "k7qm2", "k7qm2-x9tfaa", "k7qm2-x9tfu", "x" * 1000, "k7qm2-x9tf\x00"):
        assert recovery_code_hash(junk) is None


def test_a_sealed_secret_opens_for_its_user_only(totp: PyotpCodes) -> None:
    new = totp.new_secret(1)
    now = datetime.now().astimezone()
    code = pyotp.TOTP(new.secret).at(now)
    mine = TotpFactor(user_id=1, sealed_secret=new.sealed, created_at=now)
    theirs = TotpFactor(user_id=2, sealed_secret=new.sealed, created_at=now)
    assert totp.matching_step(mine, code, now) is not None
    assert totp.matching_step(theirs, code, now) is None
    other_key = PyotpCodes("another-secret-key-0123456789abcdef-0123456789")
    assert other_key.matching_step(mine, code, now) is None
