"""The user repository against the UserRepository contract (domain/ports.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from adapters.database import Database
from adapters.orm import users
from domain.errors import EmailTaken, UsernameTaken
from domain.model import Credentials, PageRequest, ProfileUpdate, User
from domain.rules import normalize_login
from tests.integration.builders import (
    NOW,
    UowFactory,
    add_session,
    add_token,
    add_user,
    count_rows,
    make_user,
    stored_token,
)


def fields(user: User) -> dict[str, object]:
    return dict(vars(user))


def full_width(text: str) -> str:
    """``text`` with each printable ASCII character in its full-width form."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# A taken address, and look-alikes of it that compare equal once NFKC-normalised and
# case-folded (the HTTP contract, General).
TAKEN = "kelvin.strasse@example.com"
LOOK_ALIKES = [
    full_width("KELVIN.STRASSE") + "@example.com",
    full_width("kelvin.strasse@example.com"),
    "\u212aelvin.strasse@example.com",  # the Kelvin sign
    "kelvin.straße@example.com",  # 'ß' folds to 'ss'
]


async def test_add_assigns_distinct_ids_and_get_returns_every_field(new_uow: UowFactory) -> None:
    ada = make_user(
        "ada",
        full_name="Ada Lovelace",
        is_active=False,
        is_superuser=True,
        token_version=3,
        created_at=NOW,
    )
    async with new_uow() as uow:
        assert vars(ada)["id"] is None  # until add assigns it
        returned = await uow.users.add(ada)
        bob = await uow.users.add(make_user("bob"))
        await uow.commit()

    assert returned is ada
    assert isinstance(ada.id, int)
    assert isinstance(bob.id, int)
    assert ada.id != bob.id
    async with new_uow() as uow:
        stored = await uow.users.get(ada.id)
    assert stored is not None
    assert fields(stored) == fields(ada)


async def test_get_of_an_unknown_id_is_none(new_uow: UowFactory) -> None:
    async with new_uow() as uow:
        assert await uow.users.get(424242) is None


@pytest.mark.parametrize("email", ["ada@example.com", "ADA@Example.COM"])
async def test_add_refuses_an_email_already_taken_in_any_case(
    database: Database, new_uow: UowFactory, email: str
) -> None:
    await add_user(database, "ada", email="ada@example.com")

    with pytest.raises(EmailTaken):
        async with new_uow() as uow:
            await uow.users.add(make_user("other", email=email))

    assert (await count_rows(database))["users"] == 1


@pytest.mark.parametrize("username", ["Ada", "ADA", "ada"])
async def test_add_refuses_a_username_already_taken_in_any_case(
    database: Database, new_uow: UowFactory, username: str
) -> None:
    await add_user(database, "Ada")

    with pytest.raises(UsernameTaken):
        async with new_uow() as uow:
            await uow.users.add(make_user(username, email="other@example.com"))

    assert (await count_rows(database))["users"] == 1


async def stored(new_uow: UowFactory, user: User) -> User:
    async with new_uow() as uow:
        found = await uow.users.get(user.id or 0)
    assert found is not None
    return found


async def test_update_profile_writes_the_given_fields_only(
    database: Database, new_uow: UowFactory
) -> None:
    user = await add_user(database, "ada", full_name="Ada")
    changes = ProfileUpdate(
        email="lovelace@example.com", username="Lovelace", password_hash="new-hash"
    )

    async with new_uow() as uow:
        assert await uow.users.update_profile(
            user.id or 0, changes, if_current=Credentials.of(user)
        )
        await uow.commit()

    after = await stored(new_uow, user)
    assert (after.email, after.username, after.password_hash) == (
        "lovelace@example.com",
        "Lovelace",
        "new-hash",
    )
    assert (after.full_name, after.is_active, after.token_version) == ("Ada", True, 0)


async def test_update_profile_may_clear_the_full_name(
    database: Database, new_uow: UowFactory
) -> None:
    user = await add_user(database, "ada", full_name="Ada")
    changes = ProfileUpdate(full_name=None, set_full_name=True)

    async with new_uow() as uow:
        assert await uow.users.update_profile(
            user.id or 0, changes, if_current=Credentials.of(user)
        )
        await uow.commit()

    assert (await stored(new_uow, user)).full_name is None


@pytest.mark.parametrize(
    "meanwhile",
    [
        {"is_active": False},
        {"token_version": 1},
        {"password_hash": "set-by-someone-else"},
    ],
)
async def test_update_profile_writes_nothing_once_the_credentials_changed(
    database: Database, new_uow: UowFactory, meanwhile: dict[str, object]
) -> None:
    before = await add_user(database, "ada")
    current = Credentials.of(before)
    async with new_uow() as uow:
        await uow.users.delete(before.id or 0)
        user = await uow.users.add(make_user("ada", **meanwhile))
        await uow.commit()

    async with new_uow() as uow:
        written = await uow.users.update_profile(
            user.id or 0, ProfileUpdate(username="mallory"), if_current=current
        )
        await uow.commit()

    assert not written
    assert (await stored(new_uow, user)).username == "ada"


async def test_update_profile_may_change_the_case_of_ones_own_username(
    database: Database, new_uow: UowFactory
) -> None:
    user = await add_user(database, "ada")

    async with new_uow() as uow:
        await uow.users.update_profile(
            user.id or 0, ProfileUpdate(username="ADA"), if_current=Credentials.of(user)
        )
        await uow.commit()

    assert (await stored(new_uow, user)).username == "ADA"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (ProfileUpdate(email="ADA@example.com"), EmailTaken),
        (ProfileUpdate(username="aDa"), UsernameTaken),
    ],
)
async def test_update_profile_to_another_users_name_in_any_case_is_refused(
    database: Database, new_uow: UowFactory, changes: ProfileUpdate, error: type[Exception]
) -> None:
    await add_user(database, "ada")
    bob = await add_user(database, "bob")

    with pytest.raises(error):
        async with new_uow() as uow:
            await uow.users.update_profile(bob.id or 0, changes, if_current=Credentials.of(bob))

    after = await stored(new_uow, bob)
    assert (after.email, after.username) == ("bob@example.com", "bob")


async def test_set_password_hash_over_an_expected_hash_is_conditional(
    database: Database, new_uow: UowFactory
) -> None:
    user = await add_user(database, "ada")

    async with new_uow() as uow:
        assert not await uow.users.set_password_hash(user.id or 0, "x", if_hash="not-the-hash")
        assert await uow.users.set_password_hash(
            user.id or 0, "rehashed", if_hash=user.password_hash
        )
        await uow.commit()
    assert (await stored(new_uow, user)).password_hash == "rehashed"

    async with new_uow() as uow:
        assert await uow.users.set_password_hash(user.id or 0, "set")
        assert not await uow.users.set_password_hash(12345, "set")
        await uow.commit()
    assert (await stored(new_uow, user)).password_hash == "set"


async def test_set_active_reports_whether_it_changed_anything(
    database: Database, new_uow: UowFactory
) -> None:
    user = await add_user(database, "ada")

    async with new_uow() as uow:
        assert not await uow.users.set_active(user.id or 0, True)
        assert await uow.users.set_active(user.id or 0, False)
        assert not await uow.users.set_active(user.id or 0, False)
        await uow.commit()

    assert not (await stored(new_uow, user)).is_active


async def test_revoke_tokens_bumps_the_token_version_in_the_database(
    database: Database, new_uow: UowFactory
) -> None:
    user = await add_user(database, "ada", token_version=4)

    async with new_uow() as uow:
        assert await uow.users.revoke_tokens(user.id or 0)
        assert await uow.users.revoke_tokens(user.id or 0)
        assert not await uow.users.revoke_tokens(12345)
        await uow.commit()

    assert (await stored(new_uow, user)).token_version == 6


@pytest.mark.parametrize(
    "typed", ["ada.l@example.com", "Ada.L@Example.com", "AdaL", "adal", "ADAL", "  adal  "]
)
async def test_get_by_login_finds_the_user_by_email_or_username_in_any_case(
    database: Database, new_uow: UowFactory, typed: str
) -> None:
    ada = await add_user(database, "AdaL", email="ada.l@example.com")
    await add_user(database, "bob")

    async with new_uow() as uow:
        found = await uow.users.get_by_login(normalize_login(typed))

    assert found is not None
    assert found.id == ada.id


async def test_get_by_login_of_an_unknown_login_is_none(
    database: Database, new_uow: UowFactory
) -> None:
    await add_user(database, "ada")
    async with new_uow() as uow:
        assert await uow.users.get_by_login("nobody") is None
        assert await uow.users.get_by_login("nobody@example.com") is None


async def test_email_and_username_taken_compare_case_insensitively_and_skip_the_user(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "Ada")
    bob = await add_user(database, "bob")

    async with new_uow() as uow:
        assert await uow.users.email_taken("ADA@example.com")
        assert await uow.users.username_taken("aDA")
        assert not await uow.users.email_taken("carol@example.com")
        assert not await uow.users.username_taken("carol")
        assert not await uow.users.email_taken("ada@example.com", except_user=ada.id)
        assert not await uow.users.username_taken("ADA", except_user=ada.id)
        assert await uow.users.email_taken("ada@example.com", except_user=bob.id)
        assert await uow.users.username_taken("ada", except_user=bob.id)


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
async def test_add_refuses_a_look_alike_of_a_taken_email(
    database: Database, new_uow: UowFactory, look_alike: str
) -> None:
    await add_user(database, "kelvin", email=TAKEN)

    with pytest.raises(EmailTaken):
        async with new_uow() as uow:
            await uow.users.add(make_user("other", email=look_alike))

    assert (await count_rows(database))["users"] == 1


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
async def test_an_email_change_to_a_look_alike_of_a_taken_one_is_refused(
    database: Database, new_uow: UowFactory, look_alike: str
) -> None:
    await add_user(database, "kelvin", email=TAKEN)
    bob = await add_user(database, "bob")

    with pytest.raises(EmailTaken):
        async with new_uow() as uow:
            await uow.users.update_profile(
                bob.id or 0, ProfileUpdate(email=look_alike), if_current=Credentials.of(bob)
            )
    with pytest.raises(EmailTaken):
        async with new_uow() as uow:
            await uow.users.update_details(bob.id or 0, ProfileUpdate(email=look_alike))

    assert (await stored(new_uow, bob)).email == "bob@example.com"


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
async def test_every_lookup_by_email_finds_the_user_by_a_look_alike(
    database: Database, new_uow: UowFactory, look_alike: str
) -> None:
    kelvin = await add_user(database, "kelvin", email=TAKEN)
    bob = await add_user(database, "bob")

    async with new_uow() as uow:
        by_email = await uow.users.get_by_email(look_alike)
        by_login = await uow.users.get_by_login(normalize_login(look_alike))
        assert await uow.users.email_taken(look_alike)
        assert await uow.users.email_taken(look_alike, except_user=bob.id)
        assert not await uow.users.email_taken(look_alike, except_user=kelvin.id)

    assert by_email is not None
    assert by_email.id == kelvin.id
    assert by_login is not None
    assert by_login.id == kelvin.id


async def test_the_login_of_a_look_alike_username_finds_the_user(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "AdaL", email="ada.l@example.com")

    async with new_uow() as uow:
        found = await uow.users.get_by_login(normalize_login(full_width("adal")))

    assert found is not None
    assert found.id == ada.id


async def test_an_email_change_moves_the_comparison_key_with_it(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")

    async with new_uow() as uow:
        changes = ProfileUpdate(email="lovelace@example.com")
        assert await uow.users.update_profile(ada.id or 0, changes, if_current=Credentials.of(ada))
        await uow.commit()

    async with new_uow() as uow:
        assert not await uow.users.email_taken(full_width("ADA") + "@example.com")
        assert await uow.users.email_taken(full_width("LOVELACE") + "@example.com")
        found = await uow.users.get_by_email(full_width("Lovelace") + "@example.com")
    assert found is not None
    assert found.id == ada.id


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("İvan@example.com", "ivan@example.com"),  # PostgreSQL's lower() made these one
        ("émile@example.com", "emile@example.com"),
    ],
)
async def test_addresses_whose_canonical_forms_differ_are_both_kept(
    database: Database, new_uow: UowFactory, one: str, other: str
) -> None:
    first = await add_user(database, "first", email=one)
    second = await add_user(database, "second", email=other)

    async with new_uow() as uow:
        found_first = await uow.users.get_by_email(one)
        found_second = await uow.users.get_by_email(other)
    assert found_first is not None
    assert found_second is not None
    assert (found_first.id, found_second.id) == (first.id, second.id)
    assert (found_first.email, found_second.email) == (one, other)


async def test_a_user_inserted_through_the_table_gets_the_key_of_its_email(
    database: Database, new_uow: UowFactory
) -> None:
    row = {"email": TAKEN, "username": "bulk", "password_hash": "x", "created_at": NOW}
    async with database.engine.begin() as conn:
        await conn.execute(insert(users).values(row))

    async with new_uow() as uow:
        assert await uow.users.email_taken(LOOK_ALIKES[0])


async def test_get_with_session_returns_the_user_and_its_own_session(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    session = await add_session(database, ada, revoked_at=NOW)

    async with new_uow() as uow:
        found = await uow.users.get_with_session(ada.id or 0, session.id)

    assert found is not None
    user, stored = found
    assert fields(user) == fields(ada)
    assert stored is not None
    assert vars(stored) == vars(session)


async def test_get_with_session_hides_another_users_session(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    bob = await add_user(database, "bob")
    bobs_session = await add_session(database, bob)

    async with new_uow() as uow:
        found = await uow.users.get_with_session(ada.id or 0, bobs_session.id)

    assert found is not None
    assert found[0].id == ada.id
    assert found[1] is None


async def test_get_with_session_of_a_missing_session_gives_the_user_alone(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    async with new_uow() as uow:
        found = await uow.users.get_with_session(ada.id or 0, "0" * 32)
    assert found is not None
    assert found[0].id == ada.id
    assert found[1] is None


async def test_get_with_session_of_a_missing_user_is_none(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    session = await add_session(database, ada)
    async with new_uow() as uow:
        assert await uow.users.get_with_session((ada.id or 0) + 1000, session.id) is None


async def test_list_page_orders_by_id_and_counts_all_users(
    database: Database, new_uow: UowFactory
) -> None:
    names = ["erin", "carol", "ada", "dave", "bob"]
    added = [await add_user(database, name, is_active=name != "carol") for name in names]
    ids = [user.id for user in added]

    async with new_uow() as uow:
        first, total = await uow.users.list_page(PageRequest(page=1, size=2), active_only=False)
        second, _ = await uow.users.list_page(PageRequest(page=2, size=2), active_only=False)
        third, _ = await uow.users.list_page(PageRequest(page=3, size=2), active_only=False)

    assert total == 5
    assert [u.id for u in first + second + third] == sorted(ids)  # type: ignore[type-var]
    assert [len(first), len(second), len(third)] == [2, 2, 1]


async def test_list_page_active_only_skips_inactive_users_in_items_and_total(
    database: Database, new_uow: UowFactory
) -> None:
    for name in ["ada", "bob", "carol", "dave"]:
        await add_user(database, name, is_active=name in {"ada", "dave"})

    async with new_uow() as uow:
        items, total = await uow.users.list_page(PageRequest(page=1, size=10), active_only=True)
        second, _ = await uow.users.list_page(PageRequest(page=2, size=1), active_only=True)

    assert total == 2
    assert [u.username for u in items] == ["ada", "dave"]
    assert [u.username for u in second] == ["dave"]


async def test_list_page_past_the_end_is_empty_with_the_total(
    database: Database, new_uow: UowFactory
) -> None:
    await add_user(database, "ada")
    async with new_uow() as uow:
        items, total = await uow.users.list_page(PageRequest(page=5, size=10), active_only=False)
    assert items == []
    assert total == 1


async def test_list_page_of_no_users_is_empty(new_uow: UowFactory) -> None:
    async with new_uow() as uow:
        assert await uow.users.list_page(PageRequest(), active_only=True) == ([], 0)


async def test_delete_removes_the_user_its_sessions_and_tokens_and_frees_its_names(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    bob = await add_user(database, "bob")
    for _ in range(2):
        session = await add_session(database, ada)
        await add_token(database, session)
        await add_token(database, session, rotated_at=NOW)
    bobs_token = await add_token(database, await add_session(database, bob))

    async with new_uow() as uow:
        await uow.users.delete(ada.id or 0)
        await uow.commit()

    assert await count_rows(database) == {"users": 1, "sessions": 1, "refresh_tokens": 1}
    async with new_uow() as uow:
        assert await uow.users.get(ada.id or 0) is None
        assert await stored_token(uow, bobs_token.id) is not None
        await uow.users.add(make_user("ada"))  # email and username are free again
        await uow.commit()


async def test_delete_of_an_unknown_user_changes_nothing(
    database: Database, new_uow: UowFactory
) -> None:
    ada = await add_user(database, "ada")
    await add_token(database, await add_session(database, ada))

    async with new_uow() as uow:
        await uow.users.delete((ada.id or 0) + 1000)
        await uow.commit()

    assert await count_rows(database) == {"users": 1, "sessions": 1, "refresh_tokens": 1}
