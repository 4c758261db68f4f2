"""LogIn: username or email, one hash check whatever the outcome, per-account limits."""

from __future__ import annotations

import pytest

from adapters.jwt_codec import JwtCodec
from application.auth import LogIn
from application.tokens import USER_AGENT_MAX_LENGTH
from domain.errors import InvalidCredentials, RateLimited
from domain.model import User
from tests.fakes import POLICY, FakeClock, FakeFailedLoginCounter, FakeHasher, FakeUnitOfWork, Store
from tests.unit.conftest import PASSWORD, seed_user, snapshot


@pytest.mark.parametrize(
    "login",
    ["ada", "ADA", "Ada", "ada@example.com", "ADA@Example.COM", "  ada  ", " Ada@example.com\t"],
)
async def test_login_accepts_username_or_email_case_insensitively(
    log_in: LogIn, ada: User, codec: JwtCodec, login: str
) -> None:
    result = await log_in(login, PASSWORD)

    assert result.user.id == ada.id
    claims = codec.decode_access(result.tokens.access_token)
    assert claims.user_id == ada.id
    assert claims.token_version == ada.token_version


async def test_login_opens_a_session_and_stores_its_refresh_token_in_one_commit(
    log_in: LogIn, ada: User, store: Store, uow: FakeUnitOfWork, codec: JwtCodec, clock: FakeClock
) -> None:
    result = await log_in("ada", PASSWORD, user_agent="curl/8.0")

    assert uow.commits == 1
    [session] = store.sessions.values()
    [token] = store.tokens.values()
    assert session.user_id == ada.id
    assert session.user_agent == "curl/8.0"
    assert session.created_at == session.last_used_at == clock.now()
    assert session.expires_at == clock.now() + POLICY.refresh_ttl
    assert session.revoked_at is None
    assert (token.session_id, token.user_id) == (session.id, ada.id)
    assert token.rotated_at is None
    assert token.revoked_at is None
    refresh = codec.decode_refresh(result.tokens.refresh_token)
    assert (refresh.token_id, refresh.session_id) == (token.id, session.id)
    assert codec.decode_access(result.tokens.access_token).session_id == session.id
    assert result.tokens.expires_in == int(POLICY.access_ttl.total_seconds())


async def test_each_login_opens_a_new_session(log_in: LogIn, ada: User, store: Store) -> None:
    await log_in("ada", PASSWORD)
    await log_in("ada", PASSWORD)

    assert len(store.sessions) == 2
    assert len(store.tokens) == 2


async def test_login_truncates_a_long_user_agent(log_in: LogIn, ada: User, store: Store) -> None:
    await log_in("ada", PASSWORD, user_agent="x" * 1000)

    [session] = store.sessions.values()
    assert session.user_agent == "x" * USER_AGENT_MAX_LENGTH


async def test_login_without_user_agent_stores_none(log_in: LogIn, ada: User, store: Store) -> None:
    await log_in("ada", PASSWORD, user_agent="")

    [session] = store.sessions.values()
    assert session.user_agent is None


async def test_successful_login_checks_one_hash_and_records_no_failure(
    log_in: LogIn, ada: User, hasher: FakeHasher, failed_logins: FakeFailedLoginCounter
) -> None:
    await log_in("ada", PASSWORD)

    assert hasher.calls == ["verify"]
    assert failed_logins.failures == {}


@pytest.mark.parametrize(
    ("login", "password", "active"),
    [
        pytest.param("nobody", PASSWORD, True, id="unknown-user"),
        pytest.param("ada", "wrong password", True, id="wrong-password"),
        pytest.param("ada", PASSWORD, False, id="inactive-user"),
        pytest.param("ada", "wrong password", False, id="inactive-user-wrong-password"),
    ],
)
async def test_every_failed_login_is_alike_and_costs_exactly_one_hash_check(
    log_in: LogIn,
    store: Store,
    uow: FakeUnitOfWork,
    hasher: FakeHasher,
    failed_logins: FakeFailedLoginCounter,
    login: str,
    password: str,
    active: bool,
) -> None:
    user = seed_user(store, password_hash=f"new${PASSWORD}", is_active=active)
    before = snapshot(store)

    with pytest.raises(InvalidCredentials) as caught:
        await log_in(login, password)

    assert hasher.calls.count("verify") == 1
    assert hasher.calls == ["verify"]
    assert caught.value.code == "invalid_credentials"
    assert caught.value.detail == InvalidCredentials().detail
    account = "login:nobody" if login == "nobody" else f"user:{user.id}"
    assert failed_logins.failures == {account: 1}
    assert uow.commits == 0
    assert snapshot(store) == before


async def test_failures_are_counted_per_account_whichever_name_is_typed(
    log_in: LogIn, ada: User, failed_logins: FakeFailedLoginCounter
) -> None:
    for login in ("ada", " Ada ", ada.email.upper()):
        with pytest.raises(InvalidCredentials):
            await log_in(login, "wrong password")
    with pytest.raises(InvalidCredentials):
        await log_in("bob", "wrong password")

    assert failed_logins.failures == {f"user:{ada.id}": 3, "login:bob": 1}


async def test_login_is_refused_once_the_account_has_too_many_failures(
    log_in: LogIn, ada: User, hasher: FakeHasher, failed_logins: FakeFailedLoginCounter
) -> None:
    for _ in range(failed_logins.limit):
        with pytest.raises(InvalidCredentials):
            await log_in("ada", "wrong password")
    hasher.calls.clear()

    with pytest.raises(RateLimited) as caught:
        await log_in("ADA", PASSWORD)

    assert caught.value.retry_after == 60
    assert caught.value.code == "rate_limited"
    assert hasher.calls == []  # not even the right password is checked


async def test_a_throttled_account_does_not_throttle_another(
    log_in: LogIn, ada: User, bob: User, failed_logins: FakeFailedLoginCounter
) -> None:
    failed_logins.failures[f"user:{ada.id}"] = failed_logins.limit

    result = await log_in("bob", "bob's password")

    assert result.user.id == bob.id


async def test_login_rehashes_a_password_hashed_with_outdated_parameters(
    log_in: LogIn, store: Store, uow: FakeUnitOfWork, hasher: FakeHasher
) -> None:
    user = seed_user(store, password_hash=f"old${PASSWORD}")

    result = await log_in("ada", PASSWORD)

    assert hasher.calls == ["verify", "hash"]
    assert store.users[user.id].password_hash == f"new${PASSWORD}"  # type: ignore[index]
    assert result.user.password_hash == f"new${PASSWORD}"
    assert uow.commits == 1
    assert len(store.sessions) == 1


async def test_login_keeps_a_current_hash(log_in: LogIn, ada: User, store: Store) -> None:
    await log_in("ada", PASSWORD)

    assert store.users[ada.id].password_hash == f"new${PASSWORD}"  # type: ignore[index]


async def test_failed_login_never_rehashes(log_in: LogIn, store: Store, hasher: FakeHasher) -> None:
    user = seed_user(store, password_hash=f"old${PASSWORD}")

    with pytest.raises(InvalidCredentials):
        await log_in("ada", "wrong password")

    assert hasher.calls == ["verify"]
    assert store.users[user.id].password_hash == f"old${PASSWORD}"  # type: ignore[index]
