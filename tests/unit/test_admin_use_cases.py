"""The operator's use cases: finding users, setting passwords, (de)activating."""

from __future__ import annotations

import pytest

from application.admin import GetUser, SetActive, SetPassword
from domain.errors import InvalidValue, NotFound, UserNotFound
from domain.model import User
from domain.ports import UowFactory
from tests.fakes import FakeClock, FakeHasher, FakeUnitOfWork, Store
from tests.unit.conftest import seed_session, seed_token, seed_user, snapshot

NEW_PASSWORD = "an operator's choice"


@pytest.fixture
def get_user(uow_factory: UowFactory) -> GetUser:
    return GetUser(uow_factory)


@pytest.fixture
def set_password(uow_factory: UowFactory, hasher: FakeHasher, clock: FakeClock) -> SetPassword:
    return SetPassword(uow_factory, hasher, clock)


@pytest.fixture
def set_active(uow_factory: UowFactory, clock: FakeClock) -> SetActive:
    return SetActive(uow_factory, clock)


# --- finding a user ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref", ["1", " 1 ", "ada", "ADA", "ada@example.com", "Ada@Example.COM", "  ada  "]
)
async def test_a_user_is_found_by_id_email_or_username(
    get_user: GetUser, ada: User, bob: User, ref: str
) -> None:
    assert (await get_user(ref)).id == ada.id == 1


async def test_an_inactive_user_is_found_too(get_user: GetUser, store: Store) -> None:
    user = seed_user(store, is_active=False)

    assert (await get_user("ada")).id == user.id


async def test_a_numeric_username_is_found_when_no_user_has_that_id(
    get_user: GetUser, store: Store
) -> None:
    user = seed_user(store, username="2024")

    assert (await get_user("2024")).id == user.id


async def test_an_id_wins_over_a_username_of_the_same_digits(
    get_user: GetUser, ada: User, store: Store
) -> None:
    seed_user(store, email="one@example.com", username="1")

    assert (await get_user("1")).id == ada.id


@pytest.mark.parametrize(
    "ref",
    [
        "nobody",
        "99",
        "",
        "   ",
        "0",
        "9" * 40,  # too large for an id: looked up as a name, not overflowed
        "²",  # a digit to str.isdigit(), not to int()
        "\u0661",  # an Arabic-Indic one is not the id 1 either
    ],
)
async def test_an_unknown_user_is_not_found(get_user: GetUser, ada: User, ref: str) -> None:
    with pytest.raises(UserNotFound) as caught:
        await get_user(ref)

    assert isinstance(caught.value, NotFound)
    assert caught.value.code == "not_found"


# --- SetPassword ---------------------------------------------------------------------


async def test_setting_a_password_stores_its_hash_and_ends_every_session(
    set_password: SetPassword,
    ada: User,
    bob: User,
    store: Store,
    uow: FakeUnitOfWork,
    clock: FakeClock,
) -> None:
    session = seed_session(store, ada.id, clock.now())  # type: ignore[arg-type]
    token = seed_token(store, session, clock.now())
    bobs = seed_session(store, bob.id, clock.now())  # type: ignore[arg-type]

    user = await set_password("ADA", NEW_PASSWORD)

    stored = store.users[ada.id]  # type: ignore[index]
    assert stored.password_hash == f"new${NEW_PASSWORD}"
    assert stored.token_version == user.token_version == 1
    assert store.sessions[session.id].revoked_at == clock.now()
    assert store.tokens[token.id].revoked_at == clock.now()
    assert store.sessions[bobs.id].revoked_at is None
    assert uow.commits == 1


@pytest.mark.parametrize("password", ["short", "password", "x" * 129, "nul\x00password"])
async def test_an_invalid_password_is_refused_before_hashing(
    set_password: SetPassword,
    ada: User,
    store: Store,
    uow: FakeUnitOfWork,
    hasher: FakeHasher,
    password: str,
) -> None:
    before = snapshot(store)

    with pytest.raises(InvalidValue) as caught:
        await set_password("ada", password)

    assert caught.value.field == "password"
    assert hasher.calls == []
    assert snapshot(store) == before
    assert uow.commits == 0


async def test_setting_the_password_of_an_unknown_user_writes_nothing(
    set_password: SetPassword, ada: User, store: Store, uow: FakeUnitOfWork
) -> None:
    before = snapshot(store)

    with pytest.raises(UserNotFound):
        await set_password("nobody", NEW_PASSWORD)

    assert snapshot(store) == before
    assert uow.commits == 0


# --- SetActive -----------------------------------------------------------------------


async def test_deactivation_revokes_every_session_and_access_token(
    set_active: SetActive, ada: User, store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    session = seed_session(store, ada.id, clock.now())  # type: ignore[arg-type]
    token = seed_token(store, session, clock.now())

    user = await set_active("ada", active=False)

    stored = store.users[ada.id]  # type: ignore[index]
    assert not stored.is_active
    assert not user.is_active
    assert stored.token_version == 1
    assert store.sessions[session.id].revoked_at == clock.now()
    assert store.tokens[token.id].revoked_at == clock.now()
    assert uow.commits == 1


async def test_activation_restores_the_user_without_touching_tokens(
    set_active: SetActive, store: Store, uow: FakeUnitOfWork
) -> None:
    user = seed_user(store, is_active=False, token_version=2)

    await set_active(str(user.id), active=True)

    stored = store.users[user.id]  # type: ignore[index]
    assert stored.is_active
    assert stored.token_version == 2
    assert uow.commits == 1


@pytest.mark.parametrize("active", [True, False])
async def test_setting_the_current_state_again_writes_nothing(
    set_active: SetActive, store: Store, uow: FakeUnitOfWork, active: bool
) -> None:
    seed_user(store, is_active=active)
    before = snapshot(store)

    user = await set_active("ada", active=active)

    assert user.is_active is active
    assert snapshot(store) == before
    assert uow.commits == 0


async def test_activating_an_unknown_user_is_not_found(
    set_active: SetActive, uow: FakeUnitOfWork
) -> None:
    with pytest.raises(UserNotFound):
        await set_active("nobody", active=True)

    assert uow.commits == 0
