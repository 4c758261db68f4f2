"""Authenticate: an access token works only for a live session of an active user at
the user's current token version."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.jwt_codec import JwtCodec
from application.auth import Authenticate, LogIn
from application.tokens import LoginResult
from domain.errors import InvalidToken
from domain.model import AccessClaims, User
from tests.fakes import SECRET_KEY, FakeClock, FakeUnitOfWork, Store
from tests.unit.conftest import PASSWORD, seed_session


@pytest.fixture
async def login(log_in: LogIn, ada: User) -> LoginResult:
    return await log_in("ada", PASSWORD)


def session_id_of(codec: JwtCodec, login: LoginResult) -> str:
    return codec.decode_access(login.tokens.access_token).session_id


async def test_fresh_access_token_speaks_for_its_user_and_session(
    authenticate: Authenticate, login: LoginResult, ada: User, codec: JwtCodec, uow: FakeUnitOfWork
) -> None:
    principal = await authenticate(login.tokens.access_token)

    assert principal.user_id == ada.id
    assert principal.user.username == "ada"
    assert principal.session_id == session_id_of(codec, login)
    assert uow.commits == 1  # the login's; authenticating writes nothing


async def test_token_of_an_older_token_version_is_refused(
    authenticate: Authenticate, login: LoginResult, ada: User, store: Store
) -> None:
    store.users[ada.id].token_version += 1  # type: ignore[index]

    with pytest.raises(InvalidToken):
        await authenticate(login.tokens.access_token)


async def test_token_of_a_revoked_session_is_refused(
    authenticate: Authenticate, login: LoginResult, store: Store, codec: JwtCodec, clock: FakeClock
) -> None:
    store.sessions[session_id_of(codec, login)].revoked_at = clock.now()

    with pytest.raises(InvalidToken):
        await authenticate(login.tokens.access_token)


async def test_token_of_a_vanished_session_is_refused(
    authenticate: Authenticate, login: LoginResult, store: Store, codec: JwtCodec
) -> None:
    del store.sessions[session_id_of(codec, login)]

    with pytest.raises(InvalidToken):
        await authenticate(login.tokens.access_token)


async def test_token_of_an_inactive_user_is_refused(
    authenticate: Authenticate, login: LoginResult, ada: User, store: Store
) -> None:
    store.users[ada.id].is_active = False  # type: ignore[index]

    with pytest.raises(InvalidToken):
        await authenticate(login.tokens.access_token)


async def test_token_of_a_deleted_user_is_refused(
    authenticate: Authenticate, login: LoginResult, ada: User, store: Store
) -> None:
    del store.users[ada.id]  # type: ignore[arg-type]

    with pytest.raises(InvalidToken):
        await authenticate(login.tokens.access_token)


async def test_token_naming_another_users_session_is_refused(
    authenticate: Authenticate,
    ada: User,
    bob: User,
    store: Store,
    codec: JwtCodec,
    clock: FakeClock,
) -> None:
    bobs_session = seed_session(store, bob.id, clock.now())  # type: ignore[arg-type]
    token = codec.encode_access(
        AccessClaims(
            user_id=ada.id,  # type: ignore[arg-type]
            session_id=bobs_session.id,
            token_version=ada.token_version,
            issued_at=clock.now(),
            expires_at=clock.now() + timedelta(minutes=5),
        )
    )

    with pytest.raises(InvalidToken):
        await authenticate(token)


async def test_refresh_token_is_not_an_access_token(
    authenticate: Authenticate, login: LoginResult
) -> None:
    with pytest.raises(InvalidToken):
        await authenticate(login.tokens.refresh_token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
async def test_malformed_token_is_refused(authenticate: Authenticate, token: str) -> None:
    with pytest.raises(InvalidToken):
        await authenticate(token)


async def test_token_signed_with_another_key_is_refused(
    authenticate: Authenticate, login: LoginResult, codec: JwtCodec
) -> None:
    claims = codec.decode_access(login.tokens.access_token)
    forged = JwtCodec(SECRET_KEY[::-1]).encode_access(claims)

    with pytest.raises(InvalidToken):
        await authenticate(forged)
