"""Ending sessions: LogOut, LogOutEverywhere, ListSessions and EndSession."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.jwt_codec import JwtCodec
from application.auth import (
    Authenticate,
    EndSession,
    ListSessions,
    LogIn,
    LogOut,
    LogOutEverywhere,
    RefreshTokens,
)
from application.tokens import LoginResult
from domain.errors import InvalidToken, NotFound, SessionNotFound
from domain.model import Principal, User
from domain.ports import UserRepository
from tests.fakes import SECRET_KEY, FakeClock, FakeUnitOfWork, Store
from tests.unit.conftest import PASSWORD, principal_for, seed_session, snapshot


@pytest.fixture
async def login(log_in: LogIn, ada: User) -> LoginResult:
    return await log_in("ada", PASSWORD)


@pytest.fixture
def principal(store: Store, ada: User) -> Principal:
    return principal_for(store, ada)


def session_of(codec: JwtCodec, login: LoginResult) -> str:
    return codec.decode_refresh(login.tokens.refresh_token, verify_expiry=False).session_id


# --- LogOut --------------------------------------------------------------------------


async def test_logout_revokes_the_session_and_its_tokens_at_once(
    log_out: LogOut,
    login: LoginResult,
    authenticate: Authenticate,
    refresh: RefreshTokens,
    store: Store,
    uow: FakeUnitOfWork,
    codec: JwtCodec,
) -> None:
    await log_out(login.tokens.refresh_token)

    assert store.sessions[session_of(codec, login)].revoked_at is not None
    assert all(token.revoked_at is not None for token in store.tokens.values())
    assert uow.commits == 2
    with pytest.raises(InvalidToken):
        await authenticate(login.tokens.access_token)
    with pytest.raises(InvalidToken):
        await refresh(login.tokens.refresh_token)


async def test_logout_leaves_the_users_other_sessions_alone(
    log_out: LogOut, log_in: LogIn, login: LoginResult, authenticate: Authenticate
) -> None:
    other = await log_in("ada", PASSWORD)

    await log_out(login.tokens.refresh_token)

    still = await authenticate(other.tokens.access_token)
    assert still.user_id == login.user.id
    with pytest.raises(InvalidToken):
        await authenticate(login.tokens.access_token)


async def test_logout_of_an_ended_session_succeeds_and_writes_nothing(
    log_out: LogOut, login: LoginResult, store: Store, uow: FakeUnitOfWork
) -> None:
    await log_out(login.tokens.refresh_token)
    before = snapshot(store)

    await log_out(login.tokens.refresh_token)

    assert snapshot(store) == before
    assert uow.commits == 2


async def test_logout_with_a_rotated_token_still_ends_the_session(
    log_out: LogOut, refresh: RefreshTokens, login: LoginResult, store: Store, codec: JwtCodec
) -> None:
    await refresh(login.tokens.refresh_token)

    await log_out(login.tokens.refresh_token)

    assert store.sessions[session_of(codec, login)].revoked_at is not None


async def test_logout_accepts_an_expired_but_genuine_token(
    log_out: LogOut, log_in: LogIn, ada: User, store: Store, clock: FakeClock, codec: JwtCodec
) -> None:
    login = await log_in("ada", PASSWORD)
    clock.advance(days=8)
    with pytest.raises(InvalidToken):
        codec.decode_refresh(login.tokens.refresh_token)

    await log_out(login.tokens.refresh_token)

    assert store.sessions[session_of(codec, login)].revoked_at is not None


async def test_logout_of_a_deleted_users_session_is_quietly_done(
    log_out: LogOut, login: LoginResult, ada: User, uow: FakeUnitOfWork
) -> None:
    async with uow:
        await uow.repository(UserRepository).delete(ada.id)  # type: ignore[arg-type]
        await uow.commit()

    await log_out(login.tokens.refresh_token)

    assert uow.commits == 2


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
async def test_logout_refuses_a_malformed_token(log_out: LogOut, token: str) -> None:
    with pytest.raises(InvalidToken):
        await log_out(token)


async def test_logout_refuses_a_forged_token_and_ends_nothing(
    log_out: LogOut, login: LoginResult, store: Store, codec: JwtCodec
) -> None:
    claims = codec.decode_refresh(login.tokens.refresh_token)
    forged = JwtCodec(SECRET_KEY[::-1]).encode_refresh(claims)
    before = snapshot(store)

    with pytest.raises(InvalidToken):
        await log_out(forged)

    assert snapshot(store) == before


async def test_logout_refuses_an_access_token(log_out: LogOut, login: LoginResult) -> None:
    with pytest.raises(InvalidToken):
        await log_out(login.tokens.access_token)


# --- LogOutEverywhere ----------------------------------------------------------------


async def test_logout_everywhere_bumps_the_token_version_and_revokes_every_session(
    log_out_everywhere: LogOutEverywhere,
    log_in: LogIn,
    login: LoginResult,
    authenticate: Authenticate,
    refresh: RefreshTokens,
    store: Store,
    uow: FakeUnitOfWork,
    ada: User,
) -> None:
    other = await log_in("ada", PASSWORD)
    principal = await authenticate(login.tokens.access_token)

    await log_out_everywhere(principal)

    assert store.users[ada.id].token_version == ada.token_version + 1  # type: ignore[index]
    assert all(s.revoked_at is not None for s in store.sessions.values())
    assert all(t.revoked_at is not None for t in store.tokens.values())
    assert uow.commits == 3
    for pair in (login.tokens, other.tokens):
        with pytest.raises(InvalidToken):
            await authenticate(pair.access_token)
        with pytest.raises(InvalidToken):
            await refresh(pair.refresh_token)


async def test_logout_everywhere_spares_other_users(
    log_out_everywhere: LogOutEverywhere,
    log_in: LogIn,
    login: LoginResult,
    authenticate: Authenticate,
    bob: User,
    store: Store,
) -> None:
    bobs = await log_in("bob", "bob's password")

    await log_out_everywhere(await authenticate(login.tokens.access_token))

    assert (await authenticate(bobs.tokens.access_token)).user_id == bob.id
    assert store.users[bob.id].token_version == 0


async def test_logout_everywhere_for_a_deleted_user_is_refused(
    log_out_everywhere: LogOutEverywhere, principal: Principal, store: Store, uow: FakeUnitOfWork
) -> None:
    del store.users[principal.user_id]

    with pytest.raises(InvalidToken):
        await log_out_everywhere(principal)

    assert uow.commits == 0


# --- ListSessions --------------------------------------------------------------------


async def test_sessions_are_listed_newest_first(
    list_sessions: ListSessions,
    log_in: LogIn,
    principal: Principal,
    clock: FakeClock,
    codec: JwtCodec,
) -> None:
    clock.advance(hours=-1)
    first = await log_in("ada", PASSWORD, user_agent="first")
    clock.advance(minutes=1)
    second = await log_in("ada", PASSWORD, user_agent="second")
    clock.advance(minutes=1)

    sessions = await list_sessions(principal)

    assert [s.id for s in sessions] == [session_of(codec, second), session_of(codec, first)]
    assert [s.user_agent for s in sessions] == ["second", "first"]


async def test_only_the_callers_active_sessions_are_listed(
    list_sessions: ListSessions,
    log_out: LogOut,
    log_in: LogIn,
    login: LoginResult,
    ada: User,
    bob: User,
    store: Store,
    clock: FakeClock,
    codec: JwtCodec,
    uow: FakeUnitOfWork,
    principal: Principal,
) -> None:
    ended = await log_in("ada", PASSWORD)
    await log_out(ended.tokens.refresh_token)
    seed_session(store, ada.id, clock.now() - timedelta(days=8))  # type: ignore[arg-type]
    seed_session(store, bob.id, clock.now())  # type: ignore[arg-type]
    commits = uow.commits

    sessions = await list_sessions(principal)

    assert [s.id for s in sessions] == [session_of(codec, login)]
    assert uow.commits == commits


# --- EndSession ----------------------------------------------------------------------


async def test_ending_a_session_stops_its_tokens_and_spares_the_others(
    end_session: EndSession,
    log_in: LogIn,
    login: LoginResult,
    authenticate: Authenticate,
    refresh: RefreshTokens,
    store: Store,
    uow: FakeUnitOfWork,
    codec: JwtCodec,
) -> None:
    other = await log_in("ada", PASSWORD)
    me = await authenticate(other.tokens.access_token)

    await end_session(me, session_of(codec, login))

    assert store.sessions[session_of(codec, login)].revoked_at is not None
    assert uow.commits == 3
    with pytest.raises(InvalidToken):
        await authenticate(login.tokens.access_token)
    with pytest.raises(InvalidToken):
        await refresh(login.tokens.refresh_token)
    await authenticate(other.tokens.access_token)


async def test_a_user_may_end_the_session_they_are_using(
    end_session: EndSession, login: LoginResult, authenticate: Authenticate
) -> None:
    me = await authenticate(login.tokens.access_token)

    assert me.session_id is not None
    await end_session(me, me.session_id)

    with pytest.raises(InvalidToken):
        await authenticate(login.tokens.access_token)


@pytest.mark.parametrize("which", ["another-users", "unknown", "revoked", "expired"])
async def test_ending_a_session_that_is_not_ones_own_live_one_is_not_found(
    end_session: EndSession,
    principal: Principal,
    bob: User,
    store: Store,
    uow: FakeUnitOfWork,
    clock: FakeClock,
    which: str,
) -> None:
    now = clock.now()
    session_id = {
        "another-users": lambda: seed_session(store, bob.id, now).id,  # type: ignore[arg-type]
        "unknown": lambda: "f" * 32,
        "revoked": lambda: seed_session(store, principal.user_id, now, revoked=True).id,
        "expired": lambda: seed_session(store, principal.user_id, now - timedelta(days=8)).id,
    }[which]()
    before = snapshot(store)

    with pytest.raises(SessionNotFound) as caught:
        await end_session(principal, session_id)

    assert isinstance(caught.value, NotFound)
    assert caught.value.code == "not_found"
    assert snapshot(store) == before
    assert uow.commits == 0
