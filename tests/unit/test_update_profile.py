"""UpdateProfile: one's own email, username, full name and password."""

from __future__ import annotations

import pytest

from application.users import ProfileChanges, UpdateProfile
from domain.errors import EmailTaken, InvalidToken, InvalidValue, UsernameTaken, WrongPassword
from domain.model import User
from domain.ports import UowFactory
from tests.fakes import FakeClock, FakeFailedLoginCounter, FakeHasher, FakeUnitOfWork, Store
from tests.unit.conftest import (
    PASSWORD,
    principal_for,
    seed_session,
    seed_token,
    seed_user,
    snapshot,
)

NEW_PASSWORD = "a brand new secret"


@pytest.fixture
def update(
    uow_factory: UowFactory,
    hasher: FakeHasher,
    clock: FakeClock,
    failed_logins: FakeFailedLoginCounter,
) -> UpdateProfile:
    return UpdateProfile(uow_factory, hasher, clock, failed_logins)


async def test_username_and_full_name_change_without_the_current_password(
    update: UpdateProfile, ada: User, store: Store, uow: FakeUnitOfWork, hasher: FakeHasher
) -> None:
    user = await update(
        principal_for(store, ada), ProfileChanges(username="Ada_L", full_name="Ada Lovelace")
    )

    stored = store.users[ada.id]  # type: ignore[index]
    assert (stored.username, stored.full_name) == ("Ada_L", "Ada Lovelace")
    assert user.username == "Ada_L"
    assert stored.token_version == 0
    assert hasher.calls == []
    assert uow.commits == 1


async def test_full_name_can_be_cleared_and_is_kept_when_unset(
    update: UpdateProfile, store: Store
) -> None:
    ada = seed_user(store, full_name="Ada Lovelace")

    await update(principal_for(store, ada), ProfileChanges(username="ada2"))
    assert store.users[ada.id].full_name == "Ada Lovelace"  # type: ignore[index]

    await update(principal_for(store, ada), ProfileChanges(full_name=None))
    assert store.users[ada.id].full_name is None  # type: ignore[index]


async def test_a_user_may_change_the_case_of_their_own_username(
    update: UpdateProfile, ada: User, store: Store
) -> None:
    await update(principal_for(store, ada), ProfileChanges(username="ADA"))

    assert store.users[ada.id].username == "ADA"  # type: ignore[index]


@pytest.mark.parametrize(
    "changes",
    [ProfileChanges(email="new@example.com"), ProfileChanges(password=NEW_PASSWORD)],
    ids=["email", "password"],
)
async def test_changing_email_or_password_requires_the_current_password(
    update: UpdateProfile,
    ada: User,
    store: Store,
    uow: FakeUnitOfWork,
    hasher: FakeHasher,
    changes: ProfileChanges,
) -> None:
    before = snapshot(store)

    with pytest.raises(InvalidValue) as caught:
        await update(principal_for(store, ada), changes)

    assert caught.value.field == "current_password"
    assert snapshot(store) == before
    assert hasher.calls == []
    assert uow.commits == 0


@pytest.mark.parametrize(
    "changes",
    [
        ProfileChanges(email="new@example.com", current_password="wrong password"),
        ProfileChanges(password=NEW_PASSWORD, current_password="wrong password"),
    ],
    ids=["email", "password"],
)
async def test_a_wrong_current_password_is_refused(
    update: UpdateProfile, ada: User, store: Store, uow: FakeUnitOfWork, changes: ProfileChanges
) -> None:
    before = snapshot(store)

    with pytest.raises(WrongPassword) as caught:
        await update(principal_for(store, ada), changes)

    assert caught.value.code == "wrong_password"
    assert snapshot(store) == before
    assert uow.commits == 0


async def test_email_change_stores_the_address_lower_cased_and_keeps_sessions(
    update: UpdateProfile, ada: User, store: Store, clock: FakeClock
) -> None:
    session = seed_session(store, ada.id, clock.now())  # type: ignore[arg-type]

    await update(
        principal_for(store, ada),
        ProfileChanges(email="Ada.L@Example.com", current_password=PASSWORD),
    )

    assert store.users[ada.id].email == "ada.l@example.com"  # type: ignore[index]
    assert store.users[ada.id].token_version == 0  # type: ignore[index]
    assert store.sessions[session.id].revoked_at is None


async def test_password_change_bumps_the_token_version_and_revokes_every_session(
    update: UpdateProfile,
    ada: User,
    bob: User,
    store: Store,
    uow: FakeUnitOfWork,
    hasher: FakeHasher,
    clock: FakeClock,
) -> None:
    mine = [seed_session(store, ada.id, clock.now()) for _ in range(2)]  # type: ignore[arg-type]
    tokens = [seed_token(store, s, clock.now()) for s in mine]
    bobs = seed_session(store, bob.id, clock.now())  # type: ignore[arg-type]

    await update(
        principal_for(store, ada), ProfileChanges(password=NEW_PASSWORD, current_password=PASSWORD)
    )

    stored = store.users[ada.id]  # type: ignore[index]
    assert stored.password_hash == f"new${NEW_PASSWORD}"
    assert stored.token_version == 1
    assert all(store.sessions[s.id].revoked_at == clock.now() for s in mine)
    assert all(store.tokens[t.id].revoked_at == clock.now() for t in tokens)
    assert store.sessions[bobs.id].revoked_at is None
    assert hasher.calls == ["verify", "hash"]
    assert uow.commits == 1


async def test_email_taken_by_another_user_is_refused_whatever_its_case(
    update: UpdateProfile, ada: User, bob: User, store: Store, uow: FakeUnitOfWork
) -> None:
    before = snapshot(store)

    with pytest.raises(EmailTaken):
        await update(
            principal_for(store, ada),
            ProfileChanges(email="BOB@example.com", current_password=PASSWORD),
        )

    assert snapshot(store) == before
    assert uow.commits == 0


async def test_an_error_after_partial_changes_writes_nothing(
    update: UpdateProfile, ada: User, bob: User, store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    seed_session(store, ada.id, clock.now())  # type: ignore[arg-type]
    before = snapshot(store)
    changes = ProfileChanges(
        email="fresh@example.com",  # free: applied to the working copy first
        username="Bob",  # taken: refused afterwards
        password=NEW_PASSWORD,
        current_password=PASSWORD,
    )

    with pytest.raises(UsernameTaken):
        await update(principal_for(store, ada), changes)

    assert snapshot(store) == before
    assert uow.commits == 0


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("email", ProfileChanges(email="nope", current_password=PASSWORD)),
        ("username", ProfileChanges(username="a")),
        ("full_name", ProfileChanges(full_name="x" * 101)),
        ("password", ProfileChanges(password="password1", current_password=PASSWORD)),
        ("password", ProfileChanges(password="short", current_password=PASSWORD)),
    ],
)
async def test_invalid_changes_are_refused_and_nothing_written(
    update: UpdateProfile,
    ada: User,
    store: Store,
    uow: FakeUnitOfWork,
    field: str,
    changes: ProfileChanges,
) -> None:
    before = snapshot(store)

    with pytest.raises(InvalidValue) as caught:
        await update(principal_for(store, ada), changes)

    assert caught.value.field == field
    assert snapshot(store) == before
    assert uow.commits == 0


@pytest.mark.parametrize("gone", ["deleted", "inactive"])
async def test_profile_of_a_deleted_or_inactive_user_cannot_change(
    update: UpdateProfile, ada: User, store: Store, uow: FakeUnitOfWork, gone: str
) -> None:
    principal = principal_for(store, ada)
    if gone == "deleted":
        del store.users[ada.id]  # type: ignore[arg-type]
    else:
        store.users[ada.id].is_active = False  # type: ignore[index]

    with pytest.raises(InvalidToken):
        await update(principal, ProfileChanges(username="someone"))

    assert uow.commits == 0
