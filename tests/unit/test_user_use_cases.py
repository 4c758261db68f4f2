"""RegisterUser, DeleteAccount and ListUsers."""

from __future__ import annotations

import pytest

from application.users import (
    DeleteAccount,
    ListUsers,
    NewUser,
    RegisterUser,
)
from domain.audit import Action
from domain.errors import EmailTaken, InvalidValue, UsernameTaken
from domain.model import PageRequest, User
from domain.ports import UowFactory
from tests.fakes import FakeClock, FakeHasher, FakeUnitOfWork, Store
from tests.unit.conftest import (
    principal_for,
    seed_session,
    seed_token,
    seed_user,
    snapshot,
)


@pytest.fixture
def register(uow_factory: UowFactory, hasher: FakeHasher, clock: FakeClock) -> RegisterUser:
    return RegisterUser(uow_factory, hasher, clock)


def new_user(**fields: object) -> NewUser:
    values: dict[str, object] = {
        "email": "Cy@Example.com",
        "username": "Cy_Young",
        "password": "a long passphrase",
    }
    values.update(fields)
    return NewUser(**values)  # type: ignore[arg-type]


# --- RegisterUser --------------------------------------------------------------------


async def test_registration_stores_the_user_with_a_hash_never_the_password(
    register: RegisterUser, store: Store, uow: FakeUnitOfWork, hasher: FakeHasher, clock: FakeClock
) -> None:
    user = await register(new_user(full_name="Cy Young"))

    stored = store.users[user.id]  # type: ignore[index]
    assert stored.email == "cy@example.com"
    assert stored.username == "Cy_Young"
    assert stored.full_name == "Cy Young"
    assert stored.password_hash == "new$a long passphrase"
    assert stored.created_at == clock.now()
    assert stored.is_active
    assert not stored.is_superuser
    assert stored.token_version == 0
    assert hasher.calls == ["hash"]
    assert uow.commits == 1


async def test_registration_can_create_a_superuser(register: RegisterUser, store: Store) -> None:
    user = await register(new_user(is_superuser=True))

    assert [(e.action, e.target_user_id) for e in store.audit] == [
        (Action.REGISTERED, user.id),
        (Action.SUPERUSER_GRANTED, user.id),
    ]

    assert store.users[user.id].is_superuser  # type: ignore[index]


@pytest.mark.parametrize("email", ["ada@example.com", "ADA@EXAMPLE.COM", " Ada@Example.com "])
async def test_registration_with_a_taken_email_is_refused_whatever_its_case(
    register: RegisterUser, ada: User, store: Store, uow: FakeUnitOfWork, email: str
) -> None:
    before = snapshot(store)

    with pytest.raises(EmailTaken):
        await register(new_user(email=email))

    assert snapshot(store) == before
    assert uow.commits == 0


@pytest.mark.parametrize("username", ["ada", "ADA", "aDa"])
async def test_registration_with_a_taken_username_is_refused_whatever_its_case(
    register: RegisterUser, ada: User, store: Store, hasher: FakeHasher, username: str
) -> None:
    before = snapshot(store)

    with pytest.raises(UsernameTaken):
        await register(new_user(username=username))

    assert snapshot(store) == before
    assert hasher.calls == []


class RacingHasher(FakeHasher):
    """While the password hashes, another registration takes the same email."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    async def hash(self, password: str) -> str:
        seed_user(self.store, email="cy@example.com", username="someone_else")
        return await super().hash(password)


async def test_registration_that_loses_a_race_is_refused_by_the_store(
    uow_factory: UowFactory, store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    register = RegisterUser(uow_factory, RacingHasher(store), clock)

    with pytest.raises(EmailTaken):
        await register(new_user())

    assert [u.username for u in store.users.values()] == ["someone_else"]
    assert uow.commits == 0


@pytest.mark.parametrize(
    ("field", "fields"),
    [
        ("email", {"email": "not-an-email"}),
        ("email", {"email": "cy\x00@example.com"}),
        ("username", {"username": "cy"}),
        ("username", {"username": "cy young"}),
        ("password", {"password": "short"}),
        ("password", {"password": "Password123"}),
        ("password", {"password": "x" * 129}),
        ("full_name", {"full_name": "x" * 101}),
        ("full_name", {"full_name": "Cy\x00"}),
    ],
)
async def test_invalid_registration_is_refused_before_anything_is_hashed_or_stored(
    register: RegisterUser,
    store: Store,
    uow: FakeUnitOfWork,
    hasher: FakeHasher,
    field: str,
    fields: dict[str, object],
) -> None:
    with pytest.raises(InvalidValue) as caught:
        await register(new_user(**fields))

    assert caught.value.field == field
    assert store.users == {}
    assert hasher.calls == []
    assert uow.commits == 0


async def test_registration_takes_the_password_exactly_as_sent(
    register: RegisterUser, store: Store
) -> None:
    user = await register(new_user(password="  spaced passphrase  "))

    assert store.users[user.id].password_hash == "new$  spaced passphrase  "  # type: ignore[index]


# --- DeleteAccount -------------------------------------------------------------------


async def test_deleting_an_account_removes_its_sessions_and_tokens_and_frees_its_names(
    uow_factory: UowFactory,
    register: RegisterUser,
    ada: User,
    bob: User,
    store: Store,
    uow: FakeUnitOfWork,
    clock: FakeClock,
) -> None:
    seed_token(store, seed_session(store, ada.id, clock.now()), clock.now())  # type: ignore[arg-type]
    bobs = seed_token(store, seed_session(store, bob.id, clock.now()), clock.now())  # type: ignore[arg-type]

    await DeleteAccount(uow_factory, clock)(principal_for(store, ada))

    assert list(store.users) == [bob.id]
    assert [s.user_id for s in store.sessions.values()] == [bob.id]
    assert list(store.tokens) == [bobs.id]
    assert uow.commits == 1
    again = await register(new_user(email="ada@example.com", username="ada"))
    assert again.id != ada.id


# --- ListUsers -----------------------------------------------------------------------


@pytest.fixture
def five_users(store: Store) -> list[User]:
    """Ids 1-5; the third is inactive."""
    return [
        seed_user(store, email=f"u{n}@example.com", username=f"user{n}", is_active=n != 3)
        for n in range(1, 6)
    ]


async def test_the_public_list_shows_active_users_only_ordered_by_id(
    uow_factory: UowFactory, five_users: list[User]
) -> None:
    page = await ListUsers(uow_factory)(PageRequest())

    assert [u.id for u in page.items] == [1, 2, 4, 5]
    assert (page.total, page.page, page.size, page.pages) == (4, 1, 20, 1)


async def test_the_operator_list_can_include_inactive_users(
    uow_factory: UowFactory, five_users: list[User]
) -> None:
    page = await ListUsers(uow_factory)(PageRequest(), include_inactive=True)

    assert [u.id for u in page.items] == [1, 2, 3, 4, 5]
    assert page.total == 5


@pytest.mark.parametrize(
    ("page", "size", "ids"), [(1, 3, [1, 2, 4]), (2, 3, [5]), (2, 2, [4, 5]), (3, 3, [])]
)
async def test_users_are_listed_a_page_at_a_time(
    uow_factory: UowFactory,
    five_users: list[User],
    uow: FakeUnitOfWork,
    page: int,
    size: int,
    ids: list[int],
) -> None:
    result = await ListUsers(uow_factory)(PageRequest(page, size))

    assert [u.id for u in result.items] == ids
    assert result.total == 4
    assert result.pages == -(-4 // size)
    assert uow.commits == 0


async def test_an_empty_list_has_no_pages(uow_factory: UowFactory) -> None:
    page = await ListUsers(uow_factory)(PageRequest())

    assert (page.items, page.total, page.pages) == ([], 0, 0)
