"""The user repository contract (UserRepository, domain/ports.py): on the fake, and on the
SQL adapter on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from domain.errors import EmailTaken, UsernameTaken
from domain.model import Credentials, PageRequest, ProfileUpdate, User, UserFilter
from domain.ports import RefreshTokenRepository, SessionRepository, UserRepository
from domain.rules import normalize_login
from tests.contracts.builders import (
    DAY,
    NOW,
    UowFactory,
    add_session,
    add_token,
    add_user,
    make_user,
)

# Every session and token of these tests has expired by then.
FOREVER = NOW + 100_000 * DAY


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


def xfail_on(request: pytest.FixtureRequest, backends: set[str], reason: str) -> None:
    """Expect the running test to fail on ``backends``, whose adapter contradicts the
    port's docstring there (strict: a fix shows up as a failure to remove this)."""
    if request.node.callspec.params["new_uow"] in backends:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


async def stored(new_uow: UowFactory, user: User) -> User:
    async with new_uow() as uow:
        found = await uow.repository(UserRepository).get(user.id or 0)
    assert found is not None
    return found


async def count_stored(new_uow: UowFactory) -> dict[str, int]:
    """How many users, sessions and refresh tokens are stored, counted through the
    ports: the dry runs of the purges count every session and token expired by
    ``FOREVER``, which is all of them."""
    async with new_uow() as uow:
        _, users = await uow.repository(UserRepository).list_page(PageRequest(), active_only=False)
        sessions = await uow.repository(SessionRepository).delete_orphans(FOREVER, 1, dry_run=True)
        tokens = await uow.repository(RefreshTokenRepository).delete_expired(
            FOREVER, 1, dry_run=True
        )
    return {"users": users, "sessions": sessions, "refresh_tokens": tokens}


async def token_reachable(new_uow: UowFactory, token_id: str) -> bool:
    """Whether the refresh token is stored with its session and user."""
    async with new_uow() as uow:
        return await uow.repository(RefreshTokenRepository).get_with_owner(token_id) is not None


# add, get


async def test_add_assigns_distinct_ids_and_get_returns_every_field(new_uow: UowFactory) -> None:
    ada = make_user(
        "ada",
        full_name="Ada Lovelace",
        is_active=False,
        is_superuser=True,
        is_verified=True,
        token_version=3,
        created_at=NOW,
    )
    async with new_uow() as uow:
        assert vars(ada)["id"] is None  # until add assigns it
        returned = await uow.repository(UserRepository).add(ada)
        bob = await uow.repository(UserRepository).add(make_user("bob"))
        await uow.commit()

    assert returned is ada
    assert isinstance(ada.id, int)
    assert isinstance(bob.id, int)
    assert ada.id != bob.id
    async with new_uow() as uow:
        found = await uow.repository(UserRepository).get(ada.id)
    assert found is not None
    assert fields(found) == fields(ada)


async def test_get_of_an_unknown_id_is_none(new_uow: UowFactory) -> None:
    async with new_uow() as uow:
        assert await uow.repository(UserRepository).get(424242) is None


@pytest.mark.parametrize("email", ["ada@example.com", "ADA@Example.COM"])
async def test_add_refuses_an_email_already_taken_in_any_case(
    new_uow: UowFactory, email: str
) -> None:
    await add_user(new_uow, "ada", email="ada@example.com")

    with pytest.raises(EmailTaken):
        async with new_uow() as uow:
            await uow.repository(UserRepository).add(make_user("other", email=email))

    assert (await count_stored(new_uow))["users"] == 1


@pytest.mark.parametrize("username", ["Ada", "ADA", "ada"])
async def test_add_refuses_a_username_already_taken_in_any_case(
    new_uow: UowFactory, username: str
) -> None:
    await add_user(new_uow, "Ada")

    with pytest.raises(UsernameTaken):
        async with new_uow() as uow:
            await uow.repository(UserRepository).add(make_user(username, email="other@example.com"))

    assert (await count_stored(new_uow))["users"] == 1


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
async def test_add_refuses_a_look_alike_of_a_taken_email(
    new_uow: UowFactory, look_alike: str
) -> None:
    await add_user(new_uow, "kelvin", email=TAKEN)

    with pytest.raises(EmailTaken):
        async with new_uow() as uow:
            await uow.repository(UserRepository).add(make_user("other", email=look_alike))

    assert (await count_stored(new_uow))["users"] == 1


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("İvan@example.com", "ivan@example.com"),  # PostgreSQL's lower() made these one
        ("émile@example.com", "emile@example.com"),
    ],
)
async def test_addresses_whose_canonical_forms_differ_are_both_kept(
    new_uow: UowFactory, one: str, other: str
) -> None:
    first = await add_user(new_uow, "first", email=one)
    second = await add_user(new_uow, "second", email=other)

    async with new_uow() as uow:
        found_first = await uow.repository(UserRepository).get_by_email(one)
        found_second = await uow.repository(UserRepository).get_by_email(other)
    assert found_first is not None
    assert found_second is not None
    assert (found_first.id, found_second.id) == (first.id, second.id)
    assert (found_first.email, found_second.email) == (one, other)


# get_by_login, get_by_email, email_taken, username_taken


@pytest.mark.parametrize(
    "typed", ["ada.l@example.com", "Ada.L@Example.com", "AdaL", "adal", "ADAL", "  adal  "]
)
async def test_get_by_login_finds_the_user_by_email_or_username_in_any_case(
    new_uow: UowFactory, typed: str
) -> None:
    ada = await add_user(new_uow, "AdaL", email="ada.l@example.com")
    await add_user(new_uow, "bob")

    async with new_uow() as uow:
        found = await uow.repository(UserRepository).get_by_login(normalize_login(typed))

    assert found is not None
    assert found.id == ada.id


async def test_get_by_login_of_an_unknown_login_is_none(new_uow: UowFactory) -> None:
    await add_user(new_uow, "ada")
    async with new_uow() as uow:
        assert await uow.repository(UserRepository).get_by_login("nobody") is None
        assert await uow.repository(UserRepository).get_by_login("nobody@example.com") is None


async def test_the_login_of_a_look_alike_username_finds_the_user(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "AdaL", email="ada.l@example.com")

    async with new_uow() as uow:
        found = await uow.repository(UserRepository).get_by_login(
            normalize_login(full_width("adal"))
        )

    assert found is not None
    assert found.id == ada.id


async def test_get_by_email_finds_the_user_by_its_email_only(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada", full_name="Ada")
    await add_user(new_uow, "bob")

    async with new_uow() as uow:
        found = await uow.repository(UserRepository).get_by_email("ADA@example.com")
        assert await uow.repository(UserRepository).get_by_email("nobody@example.com") is None
        # A username is no email.
        assert await uow.repository(UserRepository).get_by_email("ada") is None

    assert found is not None
    assert fields(found) == fields(ada)


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
async def test_every_lookup_by_email_finds_the_user_by_a_look_alike(
    new_uow: UowFactory, look_alike: str
) -> None:
    kelvin = await add_user(new_uow, "kelvin", email=TAKEN)
    bob = await add_user(new_uow, "bob")

    async with new_uow() as uow:
        by_email = await uow.repository(UserRepository).get_by_email(look_alike)
        by_login = await uow.repository(UserRepository).get_by_login(normalize_login(look_alike))
        assert await uow.repository(UserRepository).email_taken(look_alike)
        assert await uow.repository(UserRepository).email_taken(look_alike, except_user=bob.id)
        assert not await uow.repository(UserRepository).email_taken(
            look_alike, except_user=kelvin.id
        )

    assert by_email is not None
    assert by_email.id == kelvin.id
    assert by_login is not None
    assert by_login.id == kelvin.id


async def test_email_and_username_taken_compare_case_insensitively_and_skip_the_user(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "Ada")
    bob = await add_user(new_uow, "bob")

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).email_taken("ADA@example.com")
        assert await uow.repository(UserRepository).username_taken("aDA")
        assert not await uow.repository(UserRepository).email_taken("carol@example.com")
        assert not await uow.repository(UserRepository).username_taken("carol")
        assert not await uow.repository(UserRepository).email_taken(
            "ada@example.com", except_user=ada.id
        )
        assert not await uow.repository(UserRepository).username_taken("ADA", except_user=ada.id)
        assert await uow.repository(UserRepository).email_taken(
            "ada@example.com", except_user=bob.id
        )
        assert await uow.repository(UserRepository).username_taken("ada", except_user=bob.id)


# The SQL adapter compares usernames lower-cased (its unique index is on lower(username)),
# which is their canonical form only for a valid username: ASCII, as validate_username
# leaves it.
# get_with_session


async def test_get_with_session_returns_the_user_and_its_own_session(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    session = await add_session(new_uow, ada, revoked_at=NOW)

    async with new_uow() as uow:
        found = await uow.repository(UserRepository).get_with_session(ada.id or 0, session.id)

    assert found is not None
    user, its_session = found
    assert fields(user) == fields(ada)
    assert its_session is not None
    assert vars(its_session) == vars(session)


async def test_get_with_session_hides_another_users_session(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    bob = await add_user(new_uow, "bob")
    bobs_session = await add_session(new_uow, bob)

    async with new_uow() as uow:
        found = await uow.repository(UserRepository).get_with_session(ada.id or 0, bobs_session.id)

    assert found is not None
    assert found[0].id == ada.id
    assert found[1] is None


async def test_get_with_session_of_a_missing_session_gives_the_user_alone(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    async with new_uow() as uow:
        found = await uow.repository(UserRepository).get_with_session(ada.id or 0, "0" * 32)
    assert found is not None
    assert found[0].id == ada.id
    assert found[1] is None


async def test_get_with_session_of_a_missing_user_is_none(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    session = await add_session(new_uow, ada)
    async with new_uow() as uow:
        assert (
            await uow.repository(UserRepository).get_with_session((ada.id or 0) + 1000, session.id)
            is None
        )


# update_profile


async def test_update_profile_writes_the_given_fields_only(new_uow: UowFactory) -> None:
    user = await add_user(new_uow, "ada", full_name="Ada", is_verified=True)
    changes = ProfileUpdate(
        email="lovelace@example.com", username="Lovelace", password_hash="new-hash"
    )

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).update_profile(
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
    assert not after.is_verified  # a new address is unconfirmed until its link is followed


async def test_update_profile_without_a_new_email_keeps_it_confirmed(new_uow: UowFactory) -> None:
    user = await add_user(new_uow, "ada", is_verified=True)

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).update_profile(
            user.id or 0,
            ProfileUpdate(username="lovelace", full_name="Ada", set_full_name=True),
            if_current=Credentials.of(user),
        )
        await uow.commit()

    after = await stored(new_uow, user)
    assert (after.username, after.full_name, after.is_verified) == ("lovelace", "Ada", True)


async def test_update_profile_may_clear_the_full_name(new_uow: UowFactory) -> None:
    user = await add_user(new_uow, "ada", full_name="Ada")
    changes = ProfileUpdate(full_name=None, set_full_name=True)

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).update_profile(
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
    new_uow: UowFactory, meanwhile: dict[str, object]
) -> None:
    before = await add_user(new_uow, "ada")
    current = Credentials.of(before)
    async with new_uow() as uow:
        await uow.repository(UserRepository).delete(before.id or 0)
        user = await uow.repository(UserRepository).add(make_user("ada", **meanwhile))
        await uow.commit()

    async with new_uow() as uow:
        written = await uow.repository(UserRepository).update_profile(
            user.id or 0, ProfileUpdate(username="mallory"), if_current=current
        )
        await uow.commit()

    assert not written
    assert (await stored(new_uow, user)).username == "ada"


async def test_update_profile_of_an_unknown_user_writes_nothing(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")

    async with new_uow() as uow:
        assert not await uow.repository(UserRepository).update_profile(
            (ada.id or 0) + 1000, ProfileUpdate(username="mallory"), if_current=Credentials.of(ada)
        )


async def test_update_profile_with_nothing_to_write_succeeds_without_a_check(
    new_uow: UowFactory,
) -> None:
    # What the SQL adapter does (it runs no statement); a use case that must know the
    # credentials are still current checks them itself.
    ada = await add_user(new_uow, "ada", is_active=False)
    stale = Credentials(password_hash="stale", token_version=7)

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).update_profile(
            ada.id or 0, ProfileUpdate(), if_current=stale
        )

    assert fields(await stored(new_uow, ada)) == fields(ada)


async def test_update_profile_may_change_the_case_of_ones_own_username(
    new_uow: UowFactory,
) -> None:
    user = await add_user(new_uow, "ada")

    async with new_uow() as uow:
        await uow.repository(UserRepository).update_profile(
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
    new_uow: UowFactory, changes: ProfileUpdate, error: type[Exception]
) -> None:
    await add_user(new_uow, "ada")
    bob = await add_user(new_uow, "bob")

    with pytest.raises(error):
        async with new_uow() as uow:
            await uow.repository(UserRepository).update_profile(
                bob.id or 0, changes, if_current=Credentials.of(bob)
            )

    after = await stored(new_uow, bob)
    assert (after.email, after.username) == ("bob@example.com", "bob")


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
async def test_an_email_change_to_a_look_alike_of_a_taken_one_is_refused(
    new_uow: UowFactory, look_alike: str
) -> None:
    await add_user(new_uow, "kelvin", email=TAKEN)
    bob = await add_user(new_uow, "bob")

    with pytest.raises(EmailTaken):
        async with new_uow() as uow:
            await uow.repository(UserRepository).update_profile(
                bob.id or 0, ProfileUpdate(email=look_alike), if_current=Credentials.of(bob)
            )
    with pytest.raises(EmailTaken):
        async with new_uow() as uow:
            await uow.repository(UserRepository).update_details(
                bob.id or 0, ProfileUpdate(email=look_alike)
            )

    assert (await stored(new_uow, bob)).email == "bob@example.com"


async def test_an_email_change_moves_the_comparison_key_with_it(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")

    async with new_uow() as uow:
        changes = ProfileUpdate(email="lovelace@example.com")
        assert await uow.repository(UserRepository).update_profile(
            ada.id or 0, changes, if_current=Credentials.of(ada)
        )
        await uow.commit()

    async with new_uow() as uow:
        assert not await uow.repository(UserRepository).email_taken(
            full_width("ADA") + "@example.com"
        )
        assert await uow.repository(UserRepository).email_taken(
            full_width("LOVELACE") + "@example.com"
        )
        found = await uow.repository(UserRepository).get_by_email(
            full_width("Lovelace") + "@example.com"
        )
    assert found is not None
    assert found.id == ada.id


# set_password_hash, mark_verified


async def test_set_password_hash_over_an_expected_hash_is_conditional(
    new_uow: UowFactory,
) -> None:
    user = await add_user(new_uow, "ada")

    async with new_uow() as uow:
        assert not await uow.repository(UserRepository).set_password_hash(
            user.id or 0, "x", if_hash="not-the-hash"
        )
        assert await uow.repository(UserRepository).set_password_hash(
            user.id or 0, "rehashed", if_hash=user.password_hash
        )
        await uow.commit()
    assert (await stored(new_uow, user)).password_hash == "rehashed"

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).set_password_hash(user.id or 0, "set")
        assert not await uow.repository(UserRepository).set_password_hash(12345, "set")
        await uow.commit()
    assert (await stored(new_uow, user)).password_hash == "set"


async def test_set_password_hash_leaves_everything_else_as_it_was(new_uow: UowFactory) -> None:
    user = await add_user(new_uow, "ada", token_version=2, is_verified=True)

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).set_password_hash(user.id or 0, "new-hash")
        await uow.commit()

    assert fields(await stored(new_uow, user)) == {**fields(user), "password_hash": "new-hash"}


async def test_mark_verified_confirms_the_address_the_active_user_still_has(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).mark_verified(
            ada.id or 0, if_email="ada@example.com"
        )
        # Confirmed already: still written.
        assert await uow.repository(UserRepository).mark_verified(
            ada.id or 0, if_email="ada@example.com"
        )
        await uow.commit()

    assert (await stored(new_uow, ada)).is_verified


@pytest.mark.parametrize(
    ("state", "if_email"),
    [
        ({}, "old@example.com"),  # the address changed since the link was mailed
        ({}, "ADA@example.com"),  # not the stored address, however alike
        ({"is_active": False}, "ada@example.com"),
    ],
)
async def test_mark_verified_writes_nothing_for_another_address_or_an_inactive_user(
    new_uow: UowFactory, state: dict[str, object], if_email: str
) -> None:
    ada = await add_user(new_uow, "ada", **state)

    async with new_uow() as uow:
        assert not await uow.repository(UserRepository).mark_verified(
            ada.id or 0, if_email=if_email
        )
        assert not await uow.repository(UserRepository).mark_verified(
            (ada.id or 0) + 1000, if_email="ada@example.com"
        )
        await uow.commit()

    assert not (await stored(new_uow, ada)).is_verified


# update_details, set_verified


async def test_update_details_writes_the_given_fields_whatever_the_users_state(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(
        new_uow, "ada", full_name="Ada", is_active=False, is_verified=True, token_version=3
    )

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).update_details(
            ada.id or 0, ProfileUpdate(email="lovelace@example.com", username="Lovelace")
        )
        await uow.commit()

    assert fields(await stored(new_uow, ada)) == {
        **fields(ada),
        "email": "lovelace@example.com",
        "username": "Lovelace",
        "is_verified": False,  # a new address is unconfirmed until its link is followed
    }

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).update_details(
            ada.id or 0, ProfileUpdate(full_name=None, set_full_name=True, password_hash="h")
        )
        await uow.commit()

    after = await stored(new_uow, ada)
    assert (after.full_name, after.password_hash, after.username) == (None, "h", "Lovelace")


async def test_update_details_tells_whether_the_user_exists(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    missing = (ada.id or 0) + 1000

    async with new_uow() as uow:
        assert not await uow.repository(UserRepository).update_details(
            missing, ProfileUpdate(username="mallory")
        )
        assert not await uow.repository(UserRepository).update_details(missing, ProfileUpdate())
        assert await uow.repository(UserRepository).update_details(ada.id or 0, ProfileUpdate())
        await uow.commit()

    assert fields(await stored(new_uow, ada)) == fields(ada)


async def test_update_details_to_another_users_username_in_any_case_is_refused(
    new_uow: UowFactory,
) -> None:
    await add_user(new_uow, "ada")
    bob = await add_user(new_uow, "bob")

    with pytest.raises(UsernameTaken):
        async with new_uow() as uow:
            await uow.repository(UserRepository).update_details(
                bob.id or 0, ProfileUpdate(username="ADA")
            )

    assert (await stored(new_uow, bob)).username == "bob"


async def test_set_verified_marks_the_address_confirmed_or_not(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada", is_active=False)

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).set_verified(ada.id or 0, True)
        await uow.commit()
    assert (await stored(new_uow, ada)).is_verified

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).set_verified(ada.id or 0, False)
        assert not await uow.repository(UserRepository).set_verified((ada.id or 0) + 1000, True)
        await uow.commit()
    assert not (await stored(new_uow, ada)).is_verified


# set_active, set_superuser, revoke_tokens


async def test_set_active_reports_whether_it_changed_anything(new_uow: UowFactory) -> None:
    user = await add_user(new_uow, "ada")

    async with new_uow() as uow:
        assert not await uow.repository(UserRepository).set_active(user.id or 0, True)
        assert await uow.repository(UserRepository).set_active(user.id or 0, False)
        assert not await uow.repository(UserRepository).set_active(user.id or 0, False)
        await uow.commit()

    assert not (await stored(new_uow, user)).is_active

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).set_active(user.id or 0, True)
        assert not await uow.repository(UserRepository).set_active(12345, True)
        assert not await uow.repository(UserRepository).set_active(12345, False)
        await uow.commit()

    assert (await stored(new_uow, user)).is_active


async def test_set_superuser_reports_whether_it_changed_anything(new_uow: UowFactory) -> None:
    # An active superuser besides ada, so revoking hers is no last one's demotion.
    await add_user(new_uow, "root", is_superuser=True)
    ada = await add_user(new_uow, "ada", is_active=False)

    async with new_uow() as uow:
        assert not await uow.repository(UserRepository).set_superuser(ada.id or 0, False)
        assert await uow.repository(UserRepository).set_superuser(ada.id or 0, True)
        assert not await uow.repository(UserRepository).set_superuser(ada.id or 0, True)
        assert not await uow.repository(UserRepository).set_superuser(12345, True)
        await uow.commit()
    assert (await stored(new_uow, ada)).is_superuser

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).set_superuser(ada.id or 0, False)
        await uow.commit()
    assert not (await stored(new_uow, ada)).is_superuser


async def test_the_last_active_superuser_is_never_deactivated_demoted_or_deleted(
    new_uow: UowFactory,
) -> None:
    root = await add_user(new_uow, "root", is_superuser=True)
    # Neither an inactive superuser nor an active user stands in for the last one.
    await add_user(new_uow, "old", is_superuser=True, is_active=False)
    await add_user(new_uow, "ada")

    async with new_uow() as uow:
        assert not await uow.repository(UserRepository).set_active(root.id or 0, False)
        assert not await uow.repository(UserRepository).set_superuser(root.id or 0, False)
        assert not await uow.repository(UserRepository).delete(root.id or 0)

    assert fields(await stored(new_uow, root)) == fields(root)


async def test_the_last_superusers_refused_delete_leaves_it_to_the_caller_to_roll_back(
    new_uow: UowFactory,
) -> None:
    # The SQL adapter removes the sessions and tokens before the guard refuses the
    # user's row; all of it is undone with the transaction, which the caller rolls back.
    root = await add_user(new_uow, "root", is_superuser=True)
    token = await add_token(new_uow, await add_session(new_uow, root))

    async with new_uow() as uow:
        assert not await uow.repository(UserRepository).delete(root.id or 0)
        assert await uow.repository(SessionRepository).list_for_user(root.id or 0) == []
        assert await uow.repository(UserRepository).get(root.id or 0) is not None

    assert await count_stored(new_uow) == {"users": 1, "sessions": 1, "refresh_tokens": 1}
    assert await token_reachable(new_uow, token.id)


async def test_with_another_active_superuser_the_guarded_writes_go_ahead(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada", is_superuser=True)
    bob = await add_user(new_uow, "bob", is_superuser=True)
    carol = await add_user(new_uow, "carol", is_superuser=True)

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).set_active(ada.id or 0, False)
        assert await uow.repository(UserRepository).set_superuser(bob.id or 0, False)
        # carol is the last active superuser now.
        assert not await uow.repository(UserRepository).delete(carol.id or 0)
        # An inactive superuser may be deleted, whatever the others.
        assert await uow.repository(UserRepository).delete(ada.id or 0)
        await uow.commit()

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).get(ada.id or 0) is None
    after = await stored(new_uow, bob)
    assert (after.is_active, after.is_superuser) == (True, False)


async def test_an_inactive_superuser_may_be_demoted_while_one_other_is_active(
    new_uow: UowFactory,
) -> None:
    await add_user(new_uow, "root", is_superuser=True)
    old = await add_user(new_uow, "old", is_superuser=True, is_active=False)

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).set_superuser(old.id or 0, False)
        await uow.commit()

    assert not (await stored(new_uow, old)).is_superuser


async def test_revoke_tokens_bumps_the_token_version(new_uow: UowFactory) -> None:
    user = await add_user(new_uow, "ada", token_version=4)

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).revoke_tokens(user.id or 0)
        assert await uow.repository(UserRepository).revoke_tokens(user.id or 0)
        assert not await uow.repository(UserRepository).revoke_tokens(12345)
        await uow.commit()

    assert (await stored(new_uow, user)).token_version == 6


# delete


async def test_delete_removes_the_user_its_sessions_and_tokens_and_frees_its_names(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "ada")
    bob = await add_user(new_uow, "bob")
    for _ in range(2):
        session = await add_session(new_uow, ada)
        await add_token(new_uow, session)
        await add_token(new_uow, session, rotated_at=NOW)
    bobs_token = await add_token(new_uow, await add_session(new_uow, bob))

    async with new_uow() as uow:
        assert await uow.repository(UserRepository).delete(ada.id or 0)
        await uow.commit()

    assert await count_stored(new_uow) == {"users": 1, "sessions": 1, "refresh_tokens": 1}
    assert await token_reachable(new_uow, bobs_token.id)
    async with new_uow() as uow:
        assert await uow.repository(UserRepository).get(ada.id or 0) is None
        # Its email and username are free again.
        await uow.repository(UserRepository).add(make_user("ada"))
        await uow.commit()


async def test_delete_of_an_unknown_user_changes_nothing(new_uow: UowFactory) -> None:
    ada = await add_user(new_uow, "ada")
    await add_token(new_uow, await add_session(new_uow, ada))

    async with new_uow() as uow:
        assert not await uow.repository(UserRepository).delete((ada.id or 0) + 1000)
        await uow.commit()

    assert await count_stored(new_uow) == {"users": 1, "sessions": 1, "refresh_tokens": 1}


# list_page


async def test_list_page_orders_by_id_and_counts_all_users(new_uow: UowFactory) -> None:
    names = ["erin", "carol", "ada", "dave", "bob"]
    added = [await add_user(new_uow, name, is_active=name != "carol") for name in names]
    ids = [user.id for user in added]

    async with new_uow() as uow:
        first, total = await uow.repository(UserRepository).list_page(
            PageRequest(page=1, size=2), active_only=False
        )
        second, _ = await uow.repository(UserRepository).list_page(
            PageRequest(page=2, size=2), active_only=False
        )
        third, _ = await uow.repository(UserRepository).list_page(
            PageRequest(page=3, size=2), active_only=False
        )

    assert total == 5
    assert [u.id for u in first + second + third] == sorted(ids)  # type: ignore[type-var]
    assert [len(first), len(second), len(third)] == [2, 2, 1]
    assert [fields(u) for u in first + second + third] == [
        fields(u) for u in sorted(added, key=lambda u: u.id or 0)
    ]


async def test_list_page_active_only_skips_inactive_users_in_items_and_total(
    new_uow: UowFactory,
) -> None:
    for name in ["ada", "bob", "carol", "dave"]:
        await add_user(new_uow, name, is_active=name in {"ada", "dave"})

    async with new_uow() as uow:
        items, total = await uow.repository(UserRepository).list_page(
            PageRequest(page=1, size=10), active_only=True
        )
        second, _ = await uow.repository(UserRepository).list_page(
            PageRequest(page=2, size=1), active_only=True
        )

    assert total == 2
    assert [u.username for u in items] == ["ada", "dave"]
    assert [u.username for u in second] == ["dave"]


async def test_list_page_past_the_end_is_empty_with_the_total(new_uow: UowFactory) -> None:
    await add_user(new_uow, "ada")
    async with new_uow() as uow:
        items, total = await uow.repository(UserRepository).list_page(
            PageRequest(page=5, size=10), active_only=False
        )
    assert items == []
    assert total == 1


async def test_list_page_of_no_users_is_empty(new_uow: UowFactory) -> None:
    async with new_uow() as uow:
        assert await uow.repository(UserRepository).list_page(PageRequest(), active_only=True) == (
            [],
            0,
        )


# search_page


async def test_search_page_matches_a_substring_of_the_email_or_username_in_any_case(
    new_uow: UowFactory,
) -> None:
    ada = await add_user(new_uow, "AdaL", email="lovelace@example.com")
    bob = await add_user(new_uow, "bob", email="bob@adamant.org")
    await add_user(new_uow, "carol")

    async with new_uow() as uow:
        found, total = await uow.repository(UserRepository).search_page(
            UserFilter(q="ADA"), PageRequest()
        )
        by_email, _ = await uow.repository(UserRepository).search_page(
            UserFilter(q="LoveLace@"), PageRequest()
        )
        none, no_total = await uow.repository(UserRepository).search_page(
            UserFilter(q="nobody"), PageRequest()
        )

    assert [u.id for u in found] == [ada.id, bob.id]
    assert total == 2
    assert [fields(u) for u in by_email] == [fields(ada)]
    assert (none, no_total) == ([], 0)


async def test_search_page_ignores_the_case_of_letters_beyond_ascii(
    new_uow: UowFactory, request: pytest.FixtureRequest
) -> None:
    # Stored emails have only their ASCII letters lower-cased (normalize_email).
    xfail_on(request, {"sqlite"}, "SQLite's lower() and LIKE fold the case of ASCII only")
    upper = await add_user(new_uow, "emile", email="Émile@example.com")
    lower = await add_user(new_uow, "other", email="émile@example.org")

    async with new_uow() as uow:
        found, total = await uow.repository(UserRepository).search_page(
            UserFilter(q="éMILE"), PageRequest()
        )

    assert [u.id for u in found] == [upper.id, lower.id]
    assert total == 2


@pytest.mark.parametrize("q", ["%", "_", "\\"])
async def test_search_page_takes_wildcards_literally(new_uow: UowFactory, q: str) -> None:
    await add_user(new_uow, "ada")
    odd = await add_user(new_uow, "odd_one", email="100%\\odd@example.com")

    async with new_uow() as uow:
        found, total = await uow.repository(UserRepository).search_page(
            UserFilter(q=q), PageRequest()
        )

    assert [u.id for u in found] == [odd.id]
    assert total == 1


async def test_search_page_matches_the_flags_given(new_uow: UowFactory) -> None:
    flags = {
        "ada": {"is_active": True, "is_superuser": True, "is_verified": True},
        "bob": {"is_active": True, "is_superuser": False, "is_verified": False},
        "carol": {"is_active": False, "is_superuser": True, "is_verified": False},
        "dave": {"is_active": False, "is_superuser": False, "is_verified": True},
    }
    for name, state in flags.items():
        await add_user(new_uow, name, **state)

    async def names(where: UserFilter) -> list[str]:
        async with new_uow() as uow:
            found, total = await uow.repository(UserRepository).search_page(where, PageRequest())
        assert total == len(found)
        return [u.username for u in found]

    assert await names(UserFilter()) == ["ada", "bob", "carol", "dave"]
    assert await names(UserFilter(is_active=False)) == ["carol", "dave"]
    assert await names(UserFilter(is_superuser=True)) == ["ada", "carol"]
    assert await names(UserFilter(is_verified=False)) == ["bob", "carol"]
    assert await names(UserFilter(is_active=True, is_verified=True)) == ["ada"]
    assert await names(UserFilter(q="d", is_superuser=False)) == ["dave"]
    assert await names(UserFilter(is_active=False, is_superuser=False, is_verified=False)) == []


async def test_search_page_pages_by_id_and_counts_every_match(new_uow: UowFactory) -> None:
    added = [await add_user(new_uow, name) for name in ["erin", "ada", "dave", "bob", "carol"]]
    await add_user(new_uow, "mallory", email="mallory@elsewhere.org")

    async with new_uow() as uow:
        pages = [
            await uow.repository(UserRepository).search_page(
                UserFilter(q="@example."), PageRequest(page=page, size=2)
            )
            for page in (1, 2, 3, 4)
        ]

    assert [total for _, total in pages] == [5, 5, 5, 5]
    assert [len(items) for items, _ in pages] == [2, 2, 1, 0]
    assert [u.id for items, _ in pages for u in items] == sorted(u.id or 0 for u in added)
