"""``/api/v1/users``: registration, the public list, and one's own profile (the HTTP
contract: Users)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from application.admin import SetActive
from tests.e2e.conftest import (
    LOGIN,
    ME,
    PASSWORD,
    PUBLIC_USER_FIELDS,
    REFRESH,
    USER_FIELDS,
    USERS,
    Api,
    assert_problem,
    bearer,
)

NEW_PASSWORD = "a different passphrase"


def _assert_no_secret(body: object) -> None:
    text = str(body).lower()
    assert "password" not in text
    assert "hash" not in text
    assert "$argon2" not in text


# --- POST / (register) ---------------------------------------------------------------


async def test_register_returns_201_with_the_user_fields_and_no_password(api: Api) -> None:
    response = await api.client.post(
        USERS,
        json={
            "email": "ada@example.com",
            "username": "ada",
            "password": PASSWORD,
            "full_name": "Ada Lovelace",
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == USER_FIELDS
    assert isinstance(body["id"], int)
    assert body["email"] == "ada@example.com"
    assert body["username"] == "ada"
    assert body["full_name"] == "Ada Lovelace"
    assert body["is_active"] is True
    assert body["is_superuser"] is False
    created = datetime.fromisoformat(body["created_at"])
    assert created.utcoffset() is not None, "created_at carries an offset"
    _assert_no_secret(body)
    assert PASSWORD not in response.text


async def test_register_without_full_name_gives_null_full_name(api: Api) -> None:
    body = await api.register("bob")
    assert body["full_name"] is None


async def test_register_accepts_explicit_null_full_name(api: Api) -> None:
    body = await api.register("bob", full_name=None)
    assert body["full_name"] is None


async def test_register_stores_the_email_lower_cased(api: Api) -> None:
    response = await api.client.post(
        USERS, json={"email": "Ada.Lovelace@EXAMPLE.Com", "username": "ada", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    assert response.json()["email"] == "ada.lovelace@example.com"
    tokens = await api.login("ada.lovelace@example.com")
    me = await api.me(tokens["access_token"])
    assert me.json()["email"] == "ada.lovelace@example.com"


async def test_register_keeps_the_username_as_sent(api: Api) -> None:
    body = await api.register("Ada.Love-lace_1")
    assert body["username"] == "Ada.Love-lace_1"


async def test_register_duplicate_email_in_any_case_is_409_email_taken(api: Api) -> None:
    await api.register("ada")
    response = await api.client.post(
        USERS, json={"email": "ADA@Example.COM", "username": "other", "password": PASSWORD}
    )
    body = assert_problem(response, 409, "email_taken")
    assert body["title"] == "Conflict"


async def test_register_duplicate_username_in_any_case_is_409_username_taken(api: Api) -> None:
    await api.register("ada")
    response = await api.client.post(
        USERS, json={"email": "other@example.com", "username": "ADA", "password": PASSWORD}
    )
    assert_problem(response, 409, "username_taken")


UNKNOWN_FIELDS = ["id", "is_active", "is_superuser", "token_version", "password_hash", "role"]


async def test_register_refuses_unknown_fields_with_422(api: Api) -> None:
    for field in UNKNOWN_FIELDS:
        body = {"email": "ada@example.com", "username": "ada", "password": PASSWORD, field: True}
        response = await api.client.post(USERS, json=body)
        problem = assert_problem(response, 422, "validation_error")
        assert any(field in error["loc"] for error in problem["errors"]), problem
    # Nothing was created.
    assert (await api.client.get(USERS)).json()["total"] == 0


INVALID_REGISTRATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "email missing": ({"email": None}, "email"),
    "email not an address": ({"email": "not-an-email"}, "email"),
    "email without domain": ({"email": "ada@"}, "email"),
    "email with two at signs": ({"email": "a@b@example.com"}, "email"),
    "email not a string": ({"email": 42}, "email"),
    "username too short": ({"username": "ab"}, "username"),
    "username too long": ({"username": "a" * 33}, "username"),
    "username with a space": ({"username": "ada lovelace"}, "username"),
    "username with a slash": ({"username": "ada/x"}, "username"),
    "username with a non-ascii letter": ({"username": "adé"}, "username"),
    "username empty": ({"username": ""}, "username"),
    "username missing": ({"username": None}, "username"),
    "password too short": ({"password": "short12"}, "password"),
    "password too long": ({"password": "x" * 129}, "password"),
    "password missing": ({"password": None}, "password"),
    "password not a string": ({"password": 12345678}, "password"),
    "password common": ({"password": "password123"}, "password"),
    "password common in another case": ({"password": "PassWord123"}, "password"),
    "password all digits common": ({"password": "12345678"}, "password"),
    "full_name too long": ({"full_name": "x" * 101}, "full_name"),
    "full_name not a string": ({"full_name": ["Ada"]}, "full_name"),
    "NUL in email": ({"email": "ada\x00@example.com"}, "email"),
    "NUL in username": ({"username": "ada\x00x"}, "username"),
    "NUL in password": ({"password": "correct horse\x00battery"}, "password"),
    "NUL in full_name": ({"full_name": "Ada\x00Lovelace"}, "full_name"),
}


async def test_register_invalid_field_is_422_naming_the_field(api: Api) -> None:
    for case, (change, field) in INVALID_REGISTRATIONS.items():
        body: dict[str, object] = {
            "email": "ada@example.com",
            "username": "ada",
            "password": PASSWORD,
        }
        body.update(change)
        body = {k: v for k, v in body.items() if v is not None}
        response = await api.client.post(USERS, json=body)
        assert response.status_code == 422, (case, response.text)
        problem = assert_problem(response, 422, "validation_error")
        assert any(field in error["loc"] for error in problem["errors"]), (case, problem)
    assert (await api.client.get(USERS)).json()["total"] == 0


async def test_validation_errors_never_echo_the_input(api: Api) -> None:
    secret = "Secret\x00Password-9f3a"
    response = await api.client.post(
        USERS, json={"email": "ada@example.com", "username": "ada", "password": secret}
    )
    assert_problem(response, 422, "validation_error")
    assert "Secret" not in response.text
    assert "9f3a" not in response.text
    response = await api.client.post(
        USERS, json={"email": "ada@example.com", "username": "ada", "password": "Zq-9f3b"}
    )
    assert_problem(response, 422, "validation_error")
    assert "Zq-9f3b" not in response.text
    assert '"input"' not in response.text


@pytest.mark.parametrize(
    ("username", "password", "full_name"),
    [
        ("abc", "x" * 7 + "Q", None),  # the shortest of each
        ("a" * 32, "Qx" * 64, "n" * 100),  # the longest of each
        ("a.b-c_D9", "  spaces around  ", ""),
    ],
    ids=["minimum lengths", "maximum lengths", "edge characters"],
)
async def test_register_accepts_values_at_the_limits(
    api: Api, username: str, password: str, full_name: str | None
) -> None:
    body = await api.register(username, password=password, full_name=full_name)
    assert body["username"] == username
    assert body["full_name"] == full_name
    await api.login(username, password)


async def test_password_is_taken_exactly_as_sent_without_trimming(api: Api) -> None:
    await api.register("ada", password="  padded passphrase  ")
    response = await api.client.post(
        LOGIN, data={"username": "ada", "password": "padded passphrase"}
    )
    assert_problem(response, 401, "invalid_credentials")
    response = await api.client.post(
        LOGIN, data={"username": "ada", "password": "  PADDED PASSPHRASE  "}
    )
    assert_problem(response, 401, "invalid_credentials")
    await api.login("ada", "  padded passphrase  ")


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_registrations_of_one_email_give_one_201_and_409s(api: Api) -> None:
    bodies = [
        {"email": f"{'RACE' if i % 2 else 'race'}@example.com", "username": f"racer{i}"}
        for i in range(8)
    ]
    responses = await asyncio.gather(
        *(api.client.post(USERS, json={**body, "password": PASSWORD}) for body in bodies)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "email_taken")
    assert (await api.client.get(USERS)).json()["total"] == 1


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_registrations_of_one_username_give_one_201_and_409s(api: Api) -> None:
    responses = await asyncio.gather(
        *(
            api.client.post(
                USERS,
                json={"email": f"r{i}@example.com", "username": "Racer", "password": PASSWORD},
            )
            for i in range(8)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "username_taken")


# --- GET / (list) ---------------------------------------------------------------------


async def test_list_shows_public_fields_only_and_never_emails(api: Api) -> None:
    await api.register("ada", full_name="Ada")
    response = await api.client.get(USERS)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "total", "page", "size", "pages"}
    assert len(body["items"]) == 1
    item = body["items"][0]
    assert set(item) == PUBLIC_USER_FIELDS
    assert item["username"] == "ada"
    assert item["full_name"] == "Ada"
    assert datetime.fromisoformat(item["created_at"]).utcoffset() is not None
    assert "@" not in response.text
    _assert_no_secret(body)


async def test_list_defaults_to_page_1_of_size_20(api: Api) -> None:
    body = (await api.client.get(USERS)).json()
    assert body == {"items": [], "total": 0, "page": 1, "size": 20, "pages": 0}


async def test_list_is_ordered_by_id_and_paginated(api: Api) -> None:
    ids = [(await api.register(f"user{i}"))["id"] for i in range(5)]
    first = (await api.client.get(USERS, params={"page": 1, "size": 2})).json()
    second = (await api.client.get(USERS, params={"page": 2, "size": 2})).json()
    third = (await api.client.get(USERS, params={"page": 3, "size": 2})).json()
    assert [u["id"] for u in first["items"]] == ids[0:2]
    assert [u["id"] for u in second["items"]] == ids[2:4]
    assert [u["id"] for u in third["items"]] == ids[4:5]
    for page_number, page in enumerate((first, second, third), start=1):
        assert page["total"] == 5
        assert page["pages"] == 3
        assert page["page"] == page_number
        assert page["size"] == 2
    everything = (await api.client.get(USERS, params={"size": 100})).json()
    assert [u["id"] for u in everything["items"]] == sorted(ids)


async def test_list_page_past_the_end_has_empty_items(api: Api) -> None:
    await api.register("ada")
    body = (await api.client.get(USERS, params={"page": 50, "size": 10})).json()
    assert body == {"items": [], "total": 1, "page": 50, "size": 10, "pages": 1}
    # Far past the end, the offset still fits every database's integers.
    far = await api.client.get(USERS, params={"page": 10_000_000, "size": 100})
    assert far.status_code == 200, far.text
    assert far.json()["items"] == []


async def test_list_shows_active_users_only(api: Api) -> None:
    await api.register("ada")
    await api.register("bob")
    await api.services.get(SetActive)("bob", active=False)
    body = (await api.client.get(USERS)).json()
    assert [u["username"] for u in body["items"]] == ["ada"]
    assert body["total"] == 1
    assert body["pages"] == 1


BAD_PAGE_QUERIES: list[dict[str, Any]] = [
    {"page": 0},
    {"page": -1},
    {"size": 0},
    {"size": 101},
    {"size": -1},
    {"page": "abc"},
    {"size": "ten"},
    {"page": 10**30},
    {"size": 10**30},
    {"page": "1.5"},
    {"page": ""},
    {"page": "NaN"},
]


async def test_list_out_of_range_or_malformed_query_is_422(api: Api) -> None:
    for params in BAD_PAGE_QUERIES:
        response = await api.client.get(USERS, params=params)
        assert response.status_code == 422, (params, response.text)
        problem = assert_problem(response, 422, "validation_error")
        name = next(iter(params))
        assert any(error["loc"] == ["query", name] for error in problem["errors"]), problem


async def test_list_accepts_the_bounds_of_size(api: Api) -> None:
    for size in (1, 100):
        response = await api.client.get(USERS, params={"size": size})
        assert response.status_code == 200
        assert response.json()["size"] == size


# --- GET /me ----------------------------------------------------------------------------


async def test_me_returns_the_callers_user(api: Api) -> None:
    user, tokens = await api.user_with_tokens("ada")
    response = await api.me(tokens["access_token"])
    assert response.status_code == 200
    assert response.json() == user
    _assert_no_secret(response.json())


async def test_me_without_a_token_is_401_not_authenticated(api: Api) -> None:
    response = await api.client.get(ME)
    assert_problem(response, 401, "not_authenticated")


async def test_me_with_a_malformed_authorization_header_is_401(api: Api) -> None:
    for authorization in [
        "Basic YWRhOnBhc3N3b3Jk",
        "Bearer",
        "Bearer ",
        "Token abc",
        "bearer-x",
        "",
    ]:
        response = await api.client.get(ME, headers={"Authorization": authorization})
        assert response.status_code == 401, authorization
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] in {"not_authenticated", "invalid_token"}


async def test_me_with_a_garbage_bearer_token_is_401_invalid_token(api: Api) -> None:
    response = await api.client.get(ME, headers=bearer("not.a.jwt"))
    assert_problem(response, 401, "invalid_token")


# --- PATCH /me --------------------------------------------------------------------------


async def test_patch_username_and_full_name_without_current_password(api: Api) -> None:
    user, tokens = await api.user_with_tokens("ada")
    response = await api.client.patch(
        ME, json={"username": "ada2", "full_name": "Ada L."}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == USER_FIELDS
    assert body["username"] == "ada2"
    assert body["full_name"] == "Ada L."
    assert body["email"] == user["email"]
    assert body["id"] == user["id"]
    _assert_no_secret(body)
    # The change is stored, and the token still works (no password change).
    assert (await api.me(tokens["access_token"])).json()["username"] == "ada2"
    await api.login("ada2")


async def test_patch_full_name_to_null(api: Api) -> None:
    await api.register("ada", full_name="Ada")
    tokens = await api.login("ada")
    response = await api.client.patch(
        ME, json={"full_name": None}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] is None
    assert (await api.me(tokens["access_token"])).json()["full_name"] is None


async def test_patch_with_an_empty_body_changes_nothing(api: Api) -> None:
    user, tokens = await api.user_with_tokens("ada")
    response = await api.client.patch(ME, json={}, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.json() == user


async def test_patch_email_with_current_password_lower_cases_it(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.patch(
        ME,
        json={"email": "New.Ada@Example.com", "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "new.ada@example.com"
    await api.login("NEW.ADA@example.com")


@pytest.mark.parametrize("field", ["email", "password"])
async def test_patch_email_or_password_without_current_password_is_422(
    api: Api, field: str
) -> None:
    _, tokens = await api.user_with_tokens("ada")
    value = "new@example.com" if field == "email" else NEW_PASSWORD
    response = await api.client.patch(
        ME, json={field: value}, headers=bearer(tokens["access_token"])
    )
    problem = assert_problem(response, 422, "validation_error")
    assert any("current_password" in error["loc"] for error in problem["errors"]), problem
    assert (await api.me(tokens["access_token"])).json()["email"] == "ada@example.com"


@pytest.mark.parametrize("field", ["email", "password"])
async def test_patch_email_or_password_with_wrong_current_password_is_403(
    api: Api, field: str
) -> None:
    _, tokens = await api.user_with_tokens("ada")
    value = "new@example.com" if field == "email" else NEW_PASSWORD
    response = await api.client.patch(
        ME,
        json={field: value, "current_password": "not the password"},
        headers=bearer(tokens["access_token"]),
    )
    body = assert_problem(response, 403, "wrong_password")
    assert body["title"] == "Forbidden"
    me = await api.me(tokens["access_token"])
    assert me.status_code == 200
    assert me.json()["email"] == "ada@example.com"
    await api.login("ada", PASSWORD)


async def test_patch_password_kills_existing_access_and_refresh_tokens(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    other_session = await api.login("ada")
    response = await api.client.patch(
        ME,
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 200, response.text
    _assert_no_secret(response.json())
    for pair in (tokens, other_session):
        assert_problem(await api.me(pair["access_token"]), 401, "invalid_token")
        refreshed = await api.client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
        assert_problem(refreshed, 401, "invalid_token")
    # The old password no longer works; the new one does, and its tokens work.
    old = await api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD})
    assert_problem(old, 401, "invalid_credentials")
    fresh = await api.login("ada", NEW_PASSWORD)
    assert (await api.me(fresh["access_token"])).status_code == 200


async def test_patch_password_to_a_common_one_is_422(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.patch(
        ME,
        json={"password": "iloveyou1", "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert_problem(response, 422, "validation_error")
    assert (await api.me(tokens["access_token"])).status_code == 200


async def test_patch_to_a_taken_email_is_409_email_taken(api: Api) -> None:
    await api.register("bob")
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.patch(
        ME,
        json={"email": "BOB@example.com", "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert_problem(response, 409, "email_taken")


async def test_patch_to_a_taken_username_in_another_case_is_409_username_taken(api: Api) -> None:
    await api.register("bob")
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.patch(
        ME, json={"username": "BOB"}, headers=bearer(tokens["access_token"])
    )
    assert_problem(response, 409, "username_taken")


async def test_patch_own_username_to_another_case_is_allowed(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.patch(
        ME, json={"username": "ADA"}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "ADA"


INVALID_PATCHES = [
    {"is_superuser": True},
    {"is_active": False},
    {"id": 99},
    {"username": "ok_name", "role": "admin"},
    {"username": "ab"},
    {"username": None},
    {"email": None, "current_password": PASSWORD},
    {"email": "not-an-email", "current_password": PASSWORD},
    {"password": None, "current_password": PASSWORD},
    {"password": "short", "current_password": PASSWORD},
    {"current_password": None},
    {"full_name": "x" * 101},
    {"full_name": "nul\x00"},
    {"username": "nul\x00nul"},
    {"current_password": "nul\x00", "password": "another passphrase"},
]


async def test_patch_invalid_or_unknown_fields_are_422_and_change_nothing(api: Api) -> None:
    user, tokens = await api.user_with_tokens("ada")
    for body in INVALID_PATCHES:
        response = await api.client.patch(ME, json=body, headers=bearer(tokens["access_token"]))
        assert response.status_code == 422, (body, response.text)
        assert_problem(response, 422, "validation_error")
    me = await api.me(tokens["access_token"])
    assert me.status_code == 200
    assert me.json() == user


async def test_patch_me_without_a_token_is_401(api: Api) -> None:
    response = await api.client.patch(ME, json={"full_name": "x"})
    assert_problem(response, 401, "not_authenticated")


# --- DELETE /me -------------------------------------------------------------------------


async def test_delete_me_kills_the_tokens_and_frees_email_and_username(api: Api) -> None:
    user, tokens = await api.user_with_tokens("ada")
    second = await api.login("ada")
    response = await api.client.delete(ME, headers=bearer(tokens["access_token"]))
    assert response.status_code == 204
    assert response.content == b""
    for pair in (tokens, second):
        assert_problem(await api.me(pair["access_token"]), 401, "invalid_token")
        refreshed = await api.client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
        assert_problem(refreshed, 401, "invalid_token")
    login = await api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD})
    assert_problem(login, 401, "invalid_credentials")
    assert (await api.client.get(USERS)).json()["total"] == 0
    # The email and the username are free again.
    again = await api.register("ADA", password="another passphrase")
    assert again["email"] == user["email"]
    # The old tokens do not come back to life with the new account (even where the
    # database hands out the freed id again).
    assert (await api.me(tokens["access_token"])).status_code == 401


async def test_delete_me_twice_with_the_same_token_is_401(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    assert (await api.client.delete(ME, headers=bearer(tokens["access_token"]))).status_code == 204
    again = await api.client.delete(ME, headers=bearer(tokens["access_token"]))
    assert_problem(again, 401, "invalid_token")


async def test_delete_me_without_a_token_is_401(api: Api) -> None:
    assert_problem(await api.client.delete(ME), 401, "not_authenticated")
