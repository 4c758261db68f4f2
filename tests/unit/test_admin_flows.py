"""The admin use cases on the fakes: the guards (nobody removes their own access, the
last active superuser keeps theirs), ending sessions, the audit trail written with the
change by whoever acts, the search, and the queued reset mail."""

from __future__ import annotations

from typing import Any

import pytest

from application.admin import (
    DeleteUser,
    EndUserSessions,
    ListUserSessions,
    QueuePasswordReset,
    SearchUsers,
    SetActive,
    UpdateUser,
    UserChanges,
    change_access,
)
from application.users import DeleteAccount
from domain.audit import SYSTEM, Action, Actor, ActorType, AuditEvent, acting_as
from domain.errors import (
    CannotChangeOwnAccess,
    DomainError,
    EmailTaken,
    InvalidValue,
    LastSuperuser,
    UsernameTaken,
    UserNotFound,
)
from domain.model import PageRequest, User, UserFilter
from domain.outbox import Template
from domain.ports import UowFactory
from tests.fakes import FakeClock, FakeUnitOfWork, Store
from tests.unit.conftest import principal_for, seed_session, seed_token, seed_user, snapshot

ADMIN = Actor(ActorType.USER, id=1, request_id="req-1", ip="192.0.2.1")
OPERATOR = Actor(ActorType.OPERATOR, name="ops")


@pytest.fixture
def update(uow_factory: UowFactory, clock: FakeClock) -> UpdateUser:
    return UpdateUser(uow_factory, clock)


@pytest.fixture
def delete(uow_factory: UowFactory, clock: FakeClock) -> DeleteUser:
    return DeleteUser(uow_factory, clock)


@pytest.fixture
def set_active(uow_factory: UowFactory, clock: FakeClock) -> SetActive:
    return SetActive(uow_factory, clock)


@pytest.fixture
def root(store: Store) -> User:
    """An active superuser, id 1."""
    return seed_user(store, email="root@example.com", username="root", is_superuser=True)


def _id(user: User) -> int:
    assert user.id is not None
    return user.id


def seed_other_superuser(store: Store, state: str) -> User | None:
    """Another superuser: none, an active one, an inactive one, or a demoted one."""
    if state == "none":
        return None
    return seed_user(
        store,
        email=f"{state}@example.com",
        username=state,
        is_superuser=state != "demoted",
        is_active=state != "inactive",
    )


def actions(store: Store) -> list[Action | str]:
    return [event.action for event in store.audit]


def assert_nothing_written(store: Store, uow: FakeUnitOfWork, before: dict[str, Any]) -> None:
    assert snapshot(store) == before
    assert store.audit == []
    assert store.outbox == {}
    assert uow.commits == 0


# --- nobody removes their own access ------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        UserChanges(is_active=False),
        UserChanges(is_superuser=False),
        UserChanges(is_active=False, is_superuser=False),
        UserChanges(full_name="New name", is_superuser=False),
        UserChanges(email="new@example.com", is_active=False),
    ],
    ids=["deactivate", "demote", "both", "demote with a detail", "deactivate with an email"],
)
async def test_an_admin_cannot_remove_their_own_access(
    update: UpdateUser, root: User, store: Store, uow: FakeUnitOfWork, changes: UserChanges
) -> None:
    seed_other_superuser(store, "active")  # so that only the own-access guard applies
    before = snapshot(store)

    with pytest.raises(CannotChangeOwnAccess) as caught, acting_as(ADMIN):
        await update(_id(root), changes, acting_user=_id(root))

    assert caught.value.code == "cannot_change_own_access"
    assert_nothing_written(store, uow, before)


async def test_an_admin_cannot_delete_themselves(
    delete: DeleteUser, root: User, store: Store, uow: FakeUnitOfWork
) -> None:
    seed_other_superuser(store, "active")
    before = snapshot(store)

    with pytest.raises(CannotChangeOwnAccess):
        await delete(_id(root), acting_user=_id(root))

    assert_nothing_written(store, uow, before)


async def test_an_admin_may_change_their_own_details_and_keep_their_access(
    update: UpdateUser, root: User, store: Store, uow: FakeUnitOfWork
) -> None:
    changes = UserChanges(full_name="Root", is_active=True, is_superuser=True)

    user = await update(_id(root), changes, acting_user=_id(root))

    assert (user.full_name, user.is_active, user.is_superuser) == ("Root", True, True)
    assert store.users[_id(root)].token_version == 0
    assert actions(store) == [Action.UPDATED]
    assert uow.commits == 1


# --- the last active superuser --------------------------------------------------------------


@pytest.mark.parametrize("other", ["none", "inactive", "demoted"])
@pytest.mark.parametrize(
    "changes",
    [
        UserChanges(is_active=False),
        UserChanges(is_superuser=False),
        UserChanges(full_name="Changed", is_superuser=False),
        UserChanges(username="changed", is_active=False),
    ],
    ids=["deactivate", "demote", "demote with a detail", "deactivate with a detail"],
)
async def test_the_last_active_superuser_is_never_deactivated_or_demoted(
    update: UpdateUser,
    root: User,
    store: Store,
    uow: FakeUnitOfWork,
    clock: FakeClock,
    other: str,
    changes: UserChanges,
) -> None:
    seed_other_superuser(store, other)
    seed_session(store, _id(root), clock.now())
    before = snapshot(store)

    with pytest.raises(LastSuperuser) as caught, acting_as(OPERATOR):
        await update(_id(root), changes)  # by the operator: no acting user

    assert caught.value.code == "last_superuser"
    assert_nothing_written(store, uow, before)


@pytest.mark.parametrize("other", ["none", "inactive", "demoted"])
async def test_the_last_active_superuser_is_never_deactivated_by_set_active(
    set_active: SetActive, root: User, store: Store, uow: FakeUnitOfWork, other: str
) -> None:
    seed_other_superuser(store, other)
    before = snapshot(store)

    with pytest.raises(LastSuperuser):
        await set_active("root", active=False)

    assert_nothing_written(store, uow, before)


@pytest.mark.parametrize("other", ["none", "inactive", "demoted"])
async def test_the_last_active_superuser_is_never_deleted(
    delete: DeleteUser,
    root: User,
    store: Store,
    uow: FakeUnitOfWork,
    clock: FakeClock,
    other: str,
) -> None:
    seed_other_superuser(store, other)
    seed_token(store, seed_session(store, _id(root), clock.now()), clock.now())
    before = snapshot(store)

    with pytest.raises(LastSuperuser):
        await delete(_id(root), acting_user=None)

    assert_nothing_written(store, uow, before)


@pytest.mark.parametrize("other", ["none", "inactive", "demoted"])
async def test_the_last_active_superuser_cannot_delete_their_own_account(
    uow_factory: UowFactory,
    clock: FakeClock,
    root: User,
    store: Store,
    uow: FakeUnitOfWork,
    other: str,
) -> None:
    seed_other_superuser(store, other)
    before = snapshot(store)

    with pytest.raises(LastSuperuser):
        await DeleteAccount(uow_factory, clock)(principal_for(store, root))

    assert_nothing_written(store, uow, before)


@pytest.mark.parametrize(
    "changes",
    [UserChanges(is_active=False), UserChanges(is_superuser=False)],
    ids=["deactivate", "demote"],
)
async def test_a_superuser_loses_access_while_another_active_one_remains(
    update: UpdateUser,
    root: User,
    store: Store,
    uow: FakeUnitOfWork,
    clock: FakeClock,
    changes: UserChanges,
) -> None:
    deputy = seed_other_superuser(store, "active")
    assert deputy is not None
    session = seed_session(store, _id(deputy), clock.now())
    token = seed_token(store, session, clock.now())

    user = await update(_id(deputy), changes, acting_user=_id(root))

    stored = store.users[_id(deputy)]
    assert (stored.is_active, stored.is_superuser) == (
        changes.is_active is not False,
        changes.is_superuser is not False,
    )
    assert user.token_version == stored.token_version == 1
    assert store.sessions[session.id].revoked_at == clock.now()
    assert store.tokens[token.id].revoked_at == clock.now()
    assert uow.commits == 1


async def test_an_inactive_superuser_may_be_demoted_and_deleted(
    update: UpdateUser, delete: DeleteUser, root: User, store: Store
) -> None:
    dormant = seed_other_superuser(store, "inactive")
    assert dormant is not None

    demoted = await update(_id(dormant), UserChanges(is_superuser=False), acting_user=_id(root))
    await delete(_id(dormant), acting_user=_id(root))

    assert not demoted.is_superuser
    assert _id(dormant) not in store.users
    assert actions(store) == [Action.SUPERUSER_REVOKED, Action.UPDATED, Action.DELETED]


async def test_deleting_a_user_removes_their_sessions_and_records_it(
    delete: DeleteUser, root: User, store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    ada = seed_user(store)
    session = seed_session(store, _id(ada), clock.now())
    seed_token(store, session, clock.now())

    with acting_as(ADMIN):
        await delete("ada", acting_user=_id(root))

    assert _id(ada) not in store.users
    assert store.sessions == {}
    assert store.tokens == {}
    [event] = store.audit
    assert (event.action, event.target_user_id, event.actor_id) == (
        Action.DELETED,
        _id(ada),
        ADMIN.id,
    )
    assert uow.commits == 1


@pytest.mark.parametrize("ref", [99, "99", "nobody"])
async def test_deleting_an_unknown_user_is_not_found(
    delete: DeleteUser, root: User, store: Store, uow: FakeUnitOfWork, ref: int | str
) -> None:
    before = snapshot(store)

    with pytest.raises(UserNotFound):
        await delete(ref, acting_user=_id(root))

    assert_nothing_written(store, uow, before)


# --- change_access ------------------------------------------------------------------------


async def test_losing_both_access_flags_ends_the_sessions_once_and_records_both(
    root: User, store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    deputy = seed_other_superuser(store, "active")
    assert deputy is not None
    session = seed_session(store, _id(deputy), clock.now())

    async with uow:
        changed = await change_access(uow, deputy, clock.now(), active=False, superuser=False)
        await uow.commit()

    assert changed == ["is_active", "is_superuser"]
    stored = store.users[_id(deputy)]
    assert (stored.is_active, stored.is_superuser, stored.token_version) == (False, False, 1)
    assert store.sessions[session.id].revoked_at == clock.now()
    assert actions(store) == [Action.DEACTIVATED, Action.SUPERUSER_REVOKED]


async def test_gaining_access_ends_no_session(
    store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    ada = seed_user(store, is_active=False)
    session = seed_session(store, _id(ada), clock.now())

    async with uow:
        changed = await change_access(uow, ada, clock.now(), active=True, superuser=True)
        await uow.commit()

    assert changed == ["is_active", "is_superuser"]
    stored = store.users[_id(ada)]
    assert (stored.is_active, stored.is_superuser, stored.token_version) == (True, True, 0)
    assert store.sessions[session.id].revoked_at is None
    assert actions(store) == [Action.ACTIVATED, Action.SUPERUSER_GRANTED]


@pytest.mark.parametrize(
    "flags",
    [{}, {"active": True}, {"superuser": False}, {"active": True, "superuser": False}],
    ids=str,
)
async def test_asking_for_the_current_access_changes_and_records_nothing(
    store: Store, uow: FakeUnitOfWork, clock: FakeClock, flags: dict[str, bool]
) -> None:
    ada = seed_user(store)
    before = snapshot(store)

    async with uow:
        changed = await change_access(uow, ada, clock.now(), **flags)
        await uow.commit()

    assert changed == []
    assert snapshot(store) == before
    assert store.audit == []


async def test_a_change_someone_else_already_made_is_not_an_error(
    root: User, store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    deputy = seed_other_superuser(store, "active")
    assert deputy is not None
    store.users[_id(deputy)].is_superuser = False  # demoted meanwhile, after it was read

    async with uow:
        changed = await change_access(uow, deputy, clock.now(), superuser=False)
        await uow.commit()

    assert changed == []
    assert store.audit == []
    assert store.users[_id(deputy)].token_version == 0


# --- the audit trail ------------------------------------------------------------------------


async def test_an_admin_change_is_recorded_with_the_current_actor(
    update: UpdateUser, root: User, store: Store, clock: FakeClock
) -> None:
    ada = seed_user(store)

    with acting_as(ADMIN):
        await update("ada", UserChanges(full_name="Ada Lovelace", username="countess"))

    [event] = store.audit
    assert event.action is Action.UPDATED
    assert event.occurred_at == clock.now()
    assert (event.actor_type, event.actor_id) == (ActorType.USER, ADMIN.id)
    assert (event.request_id, event.ip) == ("req-1", "192.0.2.1")
    assert event.target_user_id == _id(ada)
    assert event.details == {"fields": ["full_name", "username"]}
    assert event.id is not None


async def test_an_operators_change_names_the_os_user(set_active: SetActive, store: Store) -> None:
    ada = seed_user(store)

    with acting_as(OPERATOR):
        await set_active("ada", active=False)

    [event] = store.audit
    assert event.action is Action.DEACTIVATED
    assert (event.actor_type, event.actor_id) == (ActorType.OPERATOR, None)
    assert (event.request_id, event.ip) == (None, None)
    assert event.target_user_id == _id(ada)
    assert event.details == {"os_user": "ops"}


async def test_without_an_entrypoint_the_system_acts(update: UpdateUser, store: Store) -> None:
    seed_user(store)

    await update("ada", UserChanges(is_superuser=True))

    assert [e.action for e in store.audit] == [Action.SUPERUSER_GRANTED, Action.UPDATED]
    assert all(e.actor_type is SYSTEM.type and e.actor_id is None for e in store.audit)


async def test_the_actor_is_restored_after_acting_as(update: UpdateUser, store: Store) -> None:
    seed_user(store)
    with acting_as(ADMIN):
        await update("ada", UserChanges(full_name="A"))

    await update("ada", UserChanges(full_name="B"))

    assert [e.actor_type for e in store.audit] == [ActorType.USER, ActorType.SYSTEM]


async def test_changing_the_email_unverifies_records_it_and_mails_both_addresses(
    update: UpdateUser, store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    ada = seed_user(store, is_verified=True)

    with acting_as(ADMIN):
        user = await update("ada", UserChanges(email="Ada.New@Example.com"))

    assert (user.email, user.is_verified) == ("ada.new@example.com", False)
    assert store.users[_id(ada)].is_verified is False
    assert actions(store) == [Action.EMAIL_CHANGED, Action.UPDATED]
    assert store.audit[1].details == {"fields": ["email"]}
    assert sorted((m.template, m.recipient, m.user_id) for m in store.outbox.values()) == sorted(
        [
            (Template.VERIFY_EMAIL, "ada.new@example.com", _id(ada)),
            (Template.EMAIL_CHANGED, "ada@example.com", _id(ada)),
        ]
    )
    assert all(m.created_at == clock.now() for m in store.outbox.values())
    assert uow.commits == 1


async def test_marking_a_user_verified_is_recorded_as_email_verified(
    update: UpdateUser, store: Store
) -> None:
    seed_user(store)

    with acting_as(ADMIN):
        user = await update("ada", UserChanges(is_verified=True))

    assert user.is_verified
    assert actions(store) == [Action.EMAIL_VERIFIED, Action.UPDATED]
    assert store.audit[1].details == {"fields": ["is_verified"]}


async def test_a_change_that_changes_nothing_records_nothing(
    update: UpdateUser, store: Store
) -> None:
    seed_user(store, full_name="Ada")
    before = snapshot(store)

    await update(
        "ada",
        UserChanges(
            email="ADA@example.com",
            username="ada",
            full_name="Ada",
            is_active=True,
            is_superuser=False,
            is_verified=False,
        ),
    )

    assert snapshot(store) == before
    assert store.audit == []
    assert store.outbox == {}


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (UserChanges(email="bob@example.com", full_name="X"), EmailTaken),
        (UserChanges(username="BOB", full_name="X"), UsernameTaken),
        (UserChanges(email="not an email"), InvalidValue),
        (UserChanges(username="a b"), InvalidValue),
        (UserChanges(full_name="x" * 101), InvalidValue),
    ],
    ids=["email taken", "username taken", "bad email", "bad username", "long name"],
)
async def test_a_refused_change_records_nothing_and_commits_nothing(
    update: UpdateUser,
    root: User,
    bob_user: User,
    store: Store,
    uow: FakeUnitOfWork,
    changes: UserChanges,
    error: type[DomainError],
) -> None:
    ada = seed_user(store)
    before = snapshot(store)

    with pytest.raises(error), acting_as(ADMIN):
        await update(_id(ada), changes, acting_user=_id(root))

    assert_nothing_written(store, uow, before)


@pytest.fixture
def bob_user(store: Store) -> User:
    return seed_user(store, email="bob@example.com", username="bob")


async def test_an_update_of_an_unknown_user_is_not_found_and_records_nothing(
    update: UpdateUser, root: User, store: Store, uow: FakeUnitOfWork
) -> None:
    before = snapshot(store)

    with pytest.raises(UserNotFound):
        await update("nobody", UserChanges(full_name="X"))

    assert_nothing_written(store, uow, before)


# --- sessions -----------------------------------------------------------------------------


async def test_ending_a_users_sessions_bumps_the_version_and_records_it(
    uow_factory: UowFactory, store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    ada = seed_user(store)
    bob = seed_user(store, email="bob@example.com", username="bob")
    adas = [seed_session(store, _id(ada), clock.now()) for _ in range(2)]
    bobs = seed_session(store, _id(bob), clock.now())

    with acting_as(ADMIN):
        await EndUserSessions(uow_factory, clock)("ada")

    assert store.users[_id(ada)].token_version == 1
    assert all(store.sessions[s.id].revoked_at == clock.now() for s in adas)
    assert store.sessions[bobs.id].revoked_at is None
    [event] = store.audit
    assert (event.action, event.target_user_id, event.actor_id) == (
        Action.SESSIONS_REVOKED,
        _id(ada),
        ADMIN.id,
    )
    assert uow.commits == 1


async def test_a_users_session_list_holds_their_active_sessions_only(
    uow_factory: UowFactory, store: Store, clock: FakeClock
) -> None:
    ada = seed_user(store)
    bob = seed_user(store, email="bob@example.com", username="bob")
    live = seed_session(store, _id(ada), clock.now())
    seed_session(store, _id(ada), clock.now(), revoked=True)
    seed_session(store, _id(ada), clock.now().replace(year=2000))  # long expired
    seed_session(store, _id(bob), clock.now())

    listed = await ListUserSessions(uow_factory, clock)("ada")

    assert [s.id for s in listed] == [live.id]


# --- SearchUsers ----------------------------------------------------------------------------


@pytest.fixture
def population(store: Store) -> dict[str, User]:
    return {
        "root": seed_user(store, email="root@example.com", username="root", is_superuser=True),
        "ada": seed_user(store, email="ada@wonder.example", username="Ada", is_verified=True),
        "bob": seed_user(store, email="bob@example.com", username="bob_w", is_active=False),
        "cyd": seed_user(store, email="cyd@example.com", username="cyd"),
    }


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (UserFilter(), ["root", "ada", "bob", "cyd"]),
        (UserFilter(q="WONDER"), ["ada"]),
        (UserFilter(q="aDa"), ["ada"]),
        (UserFilter(q="_w"), ["bob"]),
        (UserFilter(q="example.com"), ["root", "bob", "cyd"]),
        (UserFilter(is_active=False), ["bob"]),
        (UserFilter(is_superuser=True), ["root"]),
        (UserFilter(is_verified=True), ["ada"]),
        (UserFilter(q="example.com", is_active=True, is_superuser=False), ["cyd"]),
        (UserFilter(q="nobody"), []),
    ],
    ids=str,
)
async def test_search_filters_by_substring_and_state_in_id_order(
    uow_factory: UowFactory,
    population: dict[str, User],
    where: UserFilter,
    expected: list[str],
) -> None:
    page = await SearchUsers(uow_factory)(where, PageRequest(page=1, size=100))

    assert [u.id for u in page.items] == [population[name].id for name in expected]
    assert page.total == len(expected)


async def test_search_pages(uow_factory: UowFactory, population: dict[str, User]) -> None:
    search = SearchUsers(uow_factory)

    first = await search(UserFilter(), PageRequest(page=1, size=3))
    second = await search(UserFilter(), PageRequest(page=2, size=3))
    past = await search(UserFilter(), PageRequest(page=3, size=3))

    assert [u.id for u in first.items + second.items] == [u.id for u in population.values()]
    assert (first.total, first.pages, len(second.items)) == (4, 2, 1)
    assert (past.items, past.total, past.page) == ([], 4, 3)


# --- QueuePasswordReset ---------------------------------------------------------------------


async def test_queueing_a_password_reset_queues_the_mail_for_the_user(
    uow_factory: UowFactory, store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    ada = seed_user(store)
    before = snapshot(store)

    with acting_as(ADMIN):
        user = await QueuePasswordReset(uow_factory, clock)("ADA@example.com")

    assert user.id == ada.id
    [message] = store.outbox.values()
    assert message.template is Template.PASSWORD_RESET
    assert (message.recipient, message.user_id) == ("ada@example.com", _id(ada))
    assert message.created_at == message.next_attempt_at == clock.now()
    assert "token" not in message.context
    # The account is untouched: no password, no session changes.
    assert snapshot(store) == before
    [event] = store.audit
    assert isinstance(event, AuditEvent)
    assert (event.action, event.target_user_id, event.actor_id) == (
        Action.PASSWORD_RESET_QUEUED,
        _id(ada),
        ADMIN.id,
    )
    assert uow.commits == 1


async def test_queueing_a_reset_for_an_unknown_user_queues_nothing(
    uow_factory: UowFactory, store: Store, uow: FakeUnitOfWork, clock: FakeClock
) -> None:
    seed_user(store)

    with pytest.raises(UserNotFound):
        await QueuePasswordReset(uow_factory, clock)("nobody")

    assert store.outbox == {}
    assert store.audit == []
    assert uow.commits == 0
