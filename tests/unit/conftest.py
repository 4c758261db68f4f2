"""Fixtures for the unit tests: the in-memory fakes wired to the real JWT codec.

The codec reads the same fake clock as the use cases, so a test moves time freely, in
either direction. The clock starts at the real present (to the second).
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.jwt_codec import JwtCodec
from adapters.passkey_ceremonies import PyWebAuthn
from adapters.totp import PyotpCodes
from application.auth import (
    Authenticate,
    EndSession,
    ListSessions,
    LogIn,
    LogOut,
    LogOutEverywhere,
    RefreshTokens,
)
from domain.model import Principal, RefreshToken, Session, User
from domain.ports import UowFactory
from tests.fakes import (
    POLICY,
    SECRET_KEY,
    FakeClock,
    FakeFailedLoginCounter,
    FakeHasher,
    FakeUnitOfWork,
    Store,
    make_user,
)

PASSWORD = "correct horse battery"


def real_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def seed_user(store: Store, **fields: Any) -> User:
    """Put a user straight into the committed store (no unit of work, no commit)."""
    user = make_user(**fields)
    user.id = store.next_user_id
    store.next_user_id += 1
    store.users[user.id] = copy.copy(user)
    return user


def seed_session(
    store: Store,
    user_id: int,
    at: datetime,
    *,
    ttl: timedelta = POLICY.refresh_ttl,
    revoked: bool = False,
) -> Session:
    session = Session(
        user_id=user_id,
        created_at=at,
        last_used_at=at,
        expires_at=at + ttl,
        revoked_at=at if revoked else None,
    )
    store.sessions[session.id] = copy.copy(session)
    return session


def seed_token(
    store: Store,
    session: Session,
    at: datetime,
    *,
    ttl: timedelta = POLICY.refresh_ttl,
    rotated: bool = False,
    revoked: bool = False,
) -> RefreshToken:
    token = RefreshToken(
        session_id=session.id,
        user_id=session.user_id,
        created_at=at,
        expires_at=at + ttl,
        rotated_at=at if rotated else None,
        revoked_at=at if revoked else None,
    )
    store.tokens[token.id] = copy.copy(token)
    return token


def snapshot(store: Store) -> dict[str, Any]:
    """A comparable picture of everything the store holds."""
    return {
        "users": {k: asdict(v) for k, v in store.users.items()},
        "sessions": {k: asdict(v) for k, v in store.sessions.items()},
        "tokens": {k: asdict(v) for k, v in store.tokens.items()},
        "next_user_id": store.next_user_id,
    }


def principal_for(store: Store, user: User, session_id: str = "no-session") -> Principal:
    assert user.id is not None
    return Principal(user=copy.copy(store.users[user.id]), session_id=session_id)


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def uow(store: Store) -> FakeUnitOfWork:
    return FakeUnitOfWork(store)


@pytest.fixture
def uow_factory(uow: FakeUnitOfWork) -> UowFactory:
    return lambda: uow


@pytest.fixture
def hasher() -> FakeHasher:
    return FakeHasher()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(real_now())


@pytest.fixture
def codec(clock: FakeClock) -> JwtCodec:
    return JwtCodec(SECRET_KEY, clock=clock)


@pytest.fixture
def failed_logins() -> FakeFailedLoginCounter:
    return FakeFailedLoginCounter(limit=3)


@pytest.fixture
def ada(store: Store) -> User:
    return seed_user(store, password_hash=f"new${PASSWORD}")


@pytest.fixture
def bob(store: Store) -> User:
    return seed_user(
        store, email="bob@example.com", username="bob", password_hash="new$bob's password"
    )


@pytest.fixture
def log_in(
    uow_factory: UowFactory,
    hasher: FakeHasher,
    codec: JwtCodec,
    clock: FakeClock,
    failed_logins: FakeFailedLoginCounter,
) -> LogIn:
    return LogIn(uow_factory, hasher, codec, clock, failed_logins, POLICY)


@pytest.fixture
def authenticate(uow_factory: UowFactory, codec: JwtCodec, clock: FakeClock) -> Authenticate:
    return Authenticate(uow_factory, uow_factory, codec, clock)


@pytest.fixture
def refresh(uow_factory: UowFactory, codec: JwtCodec, clock: FakeClock) -> RefreshTokens:
    return RefreshTokens(uow_factory, codec, clock, POLICY)


@pytest.fixture
def log_out(uow_factory: UowFactory, codec: JwtCodec, clock: FakeClock) -> LogOut:
    return LogOut(uow_factory, codec, clock)


@pytest.fixture
def log_out_everywhere(uow_factory: UowFactory, clock: FakeClock) -> LogOutEverywhere:
    return LogOutEverywhere(uow_factory, clock)


@pytest.fixture
def list_sessions(uow_factory: UowFactory, clock: FakeClock) -> ListSessions:
    return ListSessions(uow_factory, clock)


@pytest.fixture
def end_session(uow_factory: UowFactory, clock: FakeClock) -> EndSession:
    return EndSession(uow_factory, clock)


@pytest.fixture
def totp() -> PyotpCodes:
    """The real TOTP algorithm: pure, and the "phone" of the tests is pyotp too."""
    return PyotpCodes(SECRET_KEY)


RP_ID = "localhost"
ORIGIN = "http://localhost:3000"


@pytest.fixture
def webauthn() -> PyWebAuthn:
    """The real ceremonies (py_webauthn): the tests' authenticator is in software."""
    return PyWebAuthn(RP_ID, "Backend Template", [ORIGIN])
