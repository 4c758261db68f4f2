"""RefreshTokens: rotation within the session, and reuse detection."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.jwt_codec import JwtCodec
from application.auth import Authenticate, LogIn, LogOut, RefreshTokens
from application.tokens import LoginResult
from domain.errors import InvalidToken
from domain.model import RefreshClaims, User
from tests.fakes import POLICY, FakeClock, FakeRefreshTokenRepository, FakeUnitOfWork, Store
from tests.unit.conftest import PASSWORD, snapshot


@pytest.fixture
async def login(log_in: LogIn, ada: User) -> LoginResult:
    return await log_in("ada", PASSWORD)


async def test_refresh_rotates_the_token_within_the_same_session(
    refresh: RefreshTokens,
    login: LoginResult,
    store: Store,
    uow: FakeUnitOfWork,
    codec: JwtCodec,
    clock: FakeClock,
) -> None:
    old = codec.decode_refresh(login.tokens.refresh_token)

    pair = await refresh(login.tokens.refresh_token)

    new = codec.decode_refresh(pair.refresh_token)
    assert new.session_id == old.session_id
    assert new.token_id != old.token_id
    assert store.tokens[old.token_id].rotated_at == clock.now()
    assert store.tokens[old.token_id].revoked_at is None
    assert store.tokens[new.token_id].session_id == old.session_id
    assert store.tokens[new.token_id].rotated_at is None
    assert codec.decode_access(pair.access_token).session_id == old.session_id
    assert len(store.sessions) == 1
    assert uow.commits == 2  # login, refresh


async def test_refresh_records_the_use_and_extends_the_session(
    log_in: LogIn, refresh: RefreshTokens, ada: User, store: Store, clock: FakeClock
) -> None:
    login = await log_in("ada", PASSWORD)
    clock.advance(hours=1)

    await refresh(login.tokens.refresh_token)

    [session] = store.sessions.values()
    assert session.last_used_at == clock.now()
    assert session.expires_at == clock.now() + POLICY.refresh_ttl


async def test_the_new_pair_works_and_rotates_again(
    refresh: RefreshTokens, authenticate: Authenticate, login: LoginResult, ada: User
) -> None:
    second = await refresh(login.tokens.refresh_token)
    third = await refresh(second.refresh_token)

    assert (await authenticate(second.access_token)).user_id == ada.id
    assert (await authenticate(third.access_token)).user_id == ada.id


async def test_reusing_a_rotated_token_revokes_the_whole_session(
    refresh: RefreshTokens,
    authenticate: Authenticate,
    login: LoginResult,
    store: Store,
    uow: FakeUnitOfWork,
    codec: JwtCodec,
) -> None:
    victims = await refresh(login.tokens.refresh_token)

    with pytest.raises(InvalidToken):
        await refresh(login.tokens.refresh_token)  # the thief's copy

    [session] = store.sessions.values()
    assert session.revoked_at is not None
    assert all(token.revoked_at is not None for token in store.tokens.values())
    assert uow.commits == 3  # login, refresh, and the revocation that reuse causes
    with pytest.raises(InvalidToken):
        await refresh(victims.refresh_token)
    with pytest.raises(InvalidToken):
        await authenticate(victims.access_token)
    assert codec.decode_refresh(victims.refresh_token).session_id == session.id


async def test_reuse_leaves_the_users_other_sessions_alone(
    refresh: RefreshTokens, log_in: LogIn, login: LoginResult, authenticate: Authenticate
) -> None:
    other = await log_in("ada", PASSWORD)
    await refresh(login.tokens.refresh_token)

    with pytest.raises(InvalidToken):
        await refresh(login.tokens.refresh_token)

    await authenticate(other.tokens.access_token)
    await refresh(other.tokens.refresh_token)


async def test_token_of_a_logged_out_session_is_refused_and_nothing_written(
    refresh: RefreshTokens, log_out: LogOut, login: LoginResult, store: Store, uow: FakeUnitOfWork
) -> None:
    await log_out(login.tokens.refresh_token)
    before, commits = snapshot(store), uow.commits

    with pytest.raises(InvalidToken):
        await refresh(login.tokens.refresh_token)

    assert snapshot(store) == before
    assert uow.commits == commits


async def test_token_whose_session_alone_is_revoked_is_refused(
    refresh: RefreshTokens, login: LoginResult, store: Store, clock: FakeClock
) -> None:
    [session] = store.sessions.values()
    session.revoked_at = clock.now()
    before = snapshot(store)

    with pytest.raises(InvalidToken):
        await refresh(login.tokens.refresh_token)

    assert snapshot(store) == before


async def test_unknown_token_is_refused_and_nothing_written(
    refresh: RefreshTokens, login: LoginResult, codec: JwtCodec, store: Store, uow: FakeUnitOfWork
) -> None:
    claims = codec.decode_refresh(login.tokens.refresh_token)
    stranger = codec.encode_refresh(
        RefreshClaims(
            user_id=claims.user_id,
            session_id=claims.session_id,
            token_id="0" * 32,
            issued_at=claims.issued_at,
            expires_at=claims.expires_at,
        )
    )
    before = snapshot(store)

    with pytest.raises(InvalidToken):
        await refresh(stranger)

    assert snapshot(store) == before
    assert uow.commits == 1


async def test_token_whose_claims_do_not_match_its_row_is_refused(
    refresh: RefreshTokens, login: LoginResult, bob: User, codec: JwtCodec, store: Store
) -> None:
    claims = codec.decode_refresh(login.tokens.refresh_token)
    as_bob = codec.encode_refresh(
        RefreshClaims(
            user_id=bob.id,  # type: ignore[arg-type]
            session_id=claims.session_id,
            token_id=claims.token_id,
            issued_at=claims.issued_at,
            expires_at=claims.expires_at,
        )
    )
    before = snapshot(store)

    with pytest.raises(InvalidToken):
        await refresh(as_bob)

    assert snapshot(store) == before


async def test_token_of_an_inactive_user_is_refused_and_not_rotated(
    refresh: RefreshTokens, login: LoginResult, ada: User, store: Store, uow: FakeUnitOfWork
) -> None:
    store.users[ada.id].is_active = False  # type: ignore[index]
    before = snapshot(store)

    with pytest.raises(InvalidToken):
        await refresh(login.tokens.refresh_token)

    assert snapshot(store) == before
    assert uow.commits == 1


async def test_token_of_a_deleted_user_is_refused(
    refresh: RefreshTokens, login: LoginResult, ada: User, store: Store
) -> None:
    del store.users[ada.id]  # type: ignore[arg-type]

    with pytest.raises(InvalidToken):
        await refresh(login.tokens.refresh_token)


async def test_access_token_is_not_a_refresh_token(
    refresh: RefreshTokens, login: LoginResult
) -> None:
    with pytest.raises(InvalidToken):
        await refresh(login.tokens.access_token)


async def test_expired_refresh_token_is_refused(
    log_in: LogIn, refresh: RefreshTokens, ada: User, clock: FakeClock
) -> None:
    login = await log_in("ada", PASSWORD)
    clock.advance(days=8)

    with pytest.raises(InvalidToken):
        await refresh(login.tokens.refresh_token)


async def test_refresh_issues_the_users_current_token_version(
    refresh: RefreshTokens, login: LoginResult, ada: User, codec: JwtCodec, store: Store
) -> None:
    store.users[ada.id].token_version = 3  # type: ignore[index]
    for session in store.sessions.values():
        session.token_version = 3

    pair = await refresh(login.tokens.refresh_token)

    assert codec.decode_access(pair.access_token).token_version == 3


async def test_a_session_opened_before_the_users_tokens_were_revoked_cannot_refresh(
    refresh: RefreshTokens, login: LoginResult, ada: User, store: Store
) -> None:
    # A login that raced a password change stored its session after the revocation.
    store.users[ada.id].token_version += 1  # type: ignore[index]

    with pytest.raises(InvalidToken):
        await refresh(login.tokens.refresh_token)


async def test_refresh_issues_tokens_with_the_policys_lifetimes(
    refresh: RefreshTokens, login: LoginResult, codec: JwtCodec, clock: FakeClock
) -> None:
    pair = await refresh(login.tokens.refresh_token)

    access = codec.decode_access(pair.access_token)
    assert access.expires_at - access.issued_at == POLICY.access_ttl
    new = codec.decode_refresh(pair.refresh_token)
    assert new.expires_at - new.issued_at == POLICY.refresh_ttl
    assert pair.expires_in == POLICY.access_ttl // timedelta(seconds=1)


async def test_a_refresh_that_loses_a_race_is_refused_without_revoking_the_session(
    refresh: RefreshTokens,
    login: LoginResult,
    store: Store,
    uow: FakeUnitOfWork,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def rotated_meanwhile(self: object, token_id: str, at: object) -> bool:
        return False  # a concurrent refresh of the same token got there first

    monkeypatch.setattr(FakeRefreshTokenRepository, "mark_rotated", rotated_meanwhile)
    before = snapshot(store)

    with pytest.raises(InvalidToken):
        await refresh(login.tokens.refresh_token)

    assert snapshot(store) == before
    assert uow.commits == 1
