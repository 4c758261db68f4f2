"""Look-alike emails and usernames (the HTTP contract, General and Users): a full-width
or otherwise compatibility-equivalent look-alike of a taken email or username is taken
too, logging in with a look-alike finds the account, and an email's local part is never
rewritten beyond ASCII lower-casing."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ME, PASSWORD, USERS, Api, assert_problem, bearer

KELVIN = "\u212a"  # the Kelvin sign, NFKC-equivalent to a 'K'


def full_width(text: str) -> str:
    """``text`` with each printable ASCII character in its full-width form."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


EMAIL_LOOK_ALIKES = [
    full_width("ALICE") + "@example.com",
    full_width("alice") + "@EXAMPLE.com",
    "\ufb01" + "ona@example.com",  # the ligature 'fi', for fiona's address
]
TAKEN_EMAILS = ["alice@example.com", "alice@example.com", "fiona@example.com"]


@pytest.mark.parametrize(
    ("taken", "look_alike"), list(zip(TAKEN_EMAILS, EMAIL_LOOK_ALIKES, strict=True))
)
async def test_register_with_a_look_alike_of_a_taken_email_is_409_email_taken(
    api: Api, taken: str, look_alike: str
) -> None:
    await api.register("first", email=taken)

    response = await api.client.post(
        USERS, json={"email": look_alike, "username": "second", "password": PASSWORD}
    )

    assert_problem(response, 409, "email_taken")


@pytest.mark.parametrize(
    ("taken", "look_alike"), [("alice", full_width("alice")), ("kate", f"{KELVIN}ate")]
)
async def test_register_with_a_look_alike_of_a_taken_username_is_409_username_taken(
    api: Api, taken: str, look_alike: str
) -> None:
    await api.register(taken)

    response = await api.client.post(
        USERS, json={"email": "other@example.com", "username": look_alike, "password": PASSWORD}
    )

    assert_problem(response, 409, "username_taken")


async def test_a_full_width_username_is_stored_in_its_normal_form(api: Api) -> None:
    body = await api.register(full_width("Bob"), email="bob@example.com")

    assert body["username"] == "Bob"


async def test_a_change_of_email_to_a_look_alike_of_a_taken_one_is_409_email_taken(
    api: Api,
) -> None:
    await api.register("alice")
    bob = await api.register("bob")
    tokens = await api.login(bob["username"])

    response = await api.client.patch(
        ME,
        json={"email": full_width("ALICE") + "@example.com", "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )

    assert_problem(response, 409, "email_taken")


@pytest.mark.parametrize(
    "typed",
    [full_width("ALICE") + "@example.com", full_width("alice@example.com"), full_width("alice")],
)
async def test_logging_in_with_a_look_alike_finds_the_account(api: Api, typed: str) -> None:
    alice = await api.register("alice")

    tokens = await api.login(typed)
    me = await api.me(tokens["access_token"])

    assert me.status_code == 200
    assert me.json()["id"] == alice["id"]


async def test_logging_in_with_a_look_alike_and_a_wrong_password_is_401(api: Api) -> None:
    await api.register("alice")

    response = await api.client.post(
        "/api/v1/auth/login",
        data={"username": full_width("ALICE") + "@example.com", "password": "not the password"},
    )

    assert_problem(response, 401, "invalid_credentials")


async def test_only_the_ascii_letters_of_an_email_are_lower_cased(api: Api) -> None:
    body = await api.register("ivan", email="İvan@Example.com")

    assert body["email"] == "İvan@example.com"  # 'İ'.lower() would be two code points
    tokens = await api.login("İVAN@example.com")
    assert (await api.me(tokens["access_token"])).json()["id"] == body["id"]
