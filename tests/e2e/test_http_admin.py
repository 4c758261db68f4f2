"""``/api/v1/admin``: accounts and the audit trail, for superusers only (the HTTP
contract: Admin), on SQLite and PostgreSQL.

Admins are made through the use case the CLI uses (``UpdateUser``), then log in over
HTTP like anybody else.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from application.admin import DeleteUser, SetActive, UpdateUser, UserChanges
from application.outbox import ListOutbox
from domain.errors import LastSuperuser
from domain.outbox import OutboxMessage, Template
from tests.e2e.conftest import (
    LOGIN,
    LOGOUT_ALL,
    ME,
    PASSWORD,
    REFRESH,
    SESSION_FIELDS,
    USER_FIELDS,
    USERS,
    Api,
    assert_problem,
    bearer,
    claims,
)

ADMIN = "/api/v1/admin"
ADMIN_USERS = f"{ADMIN}/users"
AUDIT = f"{ADMIN}/audit-events"
PAGE_FIELDS = {"items", "total", "page", "size", "pages"}
AUDIT_FIELDS = {
    "id",
    "org_id",
    "occurred_at",
    "action",
    "actor_type",
    "actor_id",
    "target_user_id",
    "request_id",
    "ip",
    "details",
}
NEW_PASSWORD = "a different passphrase"
UNKNOWN_ID = 987_654

# Every admin endpoint: method, path (``{id}`` is a user's id) and a body.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/users", None),
    ("GET", "/users/{id}", None),
    ("PATCH", "/users/{id}", {"full_name": "Changed"}),
    ("DELETE", "/users/{id}", None),
    ("POST", "/users/{id}/password-reset", None),
    ("GET", "/users/{id}/sessions", None),
    ("DELETE", "/users/{id}/sessions", None),
    ("GET", "/audit-events", None),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _ in ENDPOINTS]
# The endpoints about one user, for "unknown id".
USER_ENDPOINTS = [e for e in ENDPOINTS if "{id}" in e[1]]
USER_ENDPOINT_IDS = [f"{method} {path}" for method, path, _ in USER_ENDPOINTS]


@dataclass
class Admin:
    user: dict[str, Any]
    tokens: dict[str, Any]

    @property
    def id(self) -> int:
        return int(self.user["id"])

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.tokens["access_token"])


async def make_admin(api: Api, username: str = "root") -> Admin:
    """A registered user made superuser by the operator's use case, logged in."""
    user = await api.register(username)
    promoted = await api.services.get(UpdateUser)(user["id"], UserChanges(is_superuser=True))
    assert promoted.is_superuser
    user["is_superuser"] = True
    return Admin(user, await api.login(username))


async def call(
    api: Api,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    json_body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Any:
    return await api.client.request(
        method, f"{ADMIN}{path}", headers=headers, json=json_body, params=params
    )


async def patch(api: Api, admin: Admin, user_id: int, body: dict[str, Any]) -> Any:
    return await call(api, "PATCH", f"/users/{user_id}", admin.headers, json_body=body)


async def patched(api: Api, admin: Admin, user_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """PATCH (200 asserted); the User body."""
    response = await patch(api, admin, user_id, body)
    assert response.status_code == 200, response.text
    found = dict(response.json())
    assert set(found) == USER_FIELDS
    return found


async def get_user(api: Api, admin: Admin, user_id: int) -> dict[str, Any]:
    response = await call(api, "GET", f"/users/{user_id}", admin.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def search(api: Api, admin: Admin, **params: Any) -> dict[str, Any]:
    response = await call(api, "GET", "/users", admin.headers, params=params)
    assert response.status_code == 200, response.text
    page = dict(response.json())
    assert set(page) == PAGE_FIELDS
    return page


async def usernames(api: Api, admin: Admin, **params: Any) -> list[str]:
    page = await search(api, admin, size=100, **params)
    return [user["username"] for user in page["items"]]


async def audit_page(api: Api, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await api.client.get(AUDIT, params={"size": 100, **params}, headers=headers)
    assert response.status_code == 200, response.text
    page = dict(response.json())
    assert set(page) == PAGE_FIELDS
    for event in page["items"]:
        assert set(event) == AUDIT_FIELDS
    return page


async def audit(api: Api, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """The audit events (newest first), as the admin API lists them."""
    return list((await audit_page(api, headers, **params))["items"])


async def actions_about(api: Api, admin: Admin, user_id: int) -> list[str]:
    return [e["action"] for e in await audit(api, admin.headers, target_user_id=user_id)]


async def outbox(api: Api) -> list[OutboxMessage]:
    messages: list[OutboxMessage] = await api.services.get(ListOutbox)(limit=500)
    return messages


def sent_to(messages: list[OutboxMessage], template: Template, recipient: str) -> int:
    return sum(1 for m in messages if m.template is template and m.recipient == recipient)


async def assert_token_dead(api: Api, tokens: dict[str, Any]) -> None:
    """Neither the access token nor the refresh token works any more."""
    assert_problem(await api.me(tokens["access_token"]), 401, "invalid_token")
    refreshed = await api.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert_problem(refreshed, 401, "invalid_token")


# --- who may call ----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_every_admin_endpoint_without_a_token_is_401_with_www_authenticate(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    user = await api.register("ada")

    response = await call(api, method, path.format(id=user["id"]), json_body=body)

    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_every_admin_endpoint_with_a_forged_token_is_401(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    user = await api.register("ada")

    response = await call(
        api, method, path.format(id=user["id"]), bearer("not.a.token"), json_body=body
    )

    assert_problem(response, 401, "invalid_token")


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
async def test_every_admin_endpoint_with_a_normal_users_token_is_403_and_changes_nothing(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    admin = await make_admin(api)
    bob, bobs_tokens = await api.user_with_tokens("bob")
    _, adas_tokens = await api.user_with_tokens("ada")
    events_before = (await audit_page(api, admin.headers))["total"]
    outbox_before = len(await outbox(api))

    response = await call(
        api, method, path.format(id=bob["id"]), bearer(adas_tokens["access_token"]), json_body=body
    )

    assert_problem(response, 403, "forbidden")
    assert await get_user(api, admin, bob["id"]) == bob
    assert (await api.me(bobs_tokens["access_token"])).status_code == 200
    assert (await audit_page(api, admin.headers))["total"] == events_before
    assert len(await outbox(api)) == outbox_before


async def test_an_inactive_superusers_token_is_refused(api: Api) -> None:
    admin = await make_admin(api)
    other = await make_admin(api, "other_root")

    await patched(api, admin, other.id, {"is_active": False})

    assert_problem(await call(api, "GET", "/users", other.headers), 401, "invalid_token")


async def test_granting_superuser_opens_the_admin_api_to_the_users_existing_token(
    api: Api,
) -> None:
    admin = await make_admin(api)
    ada, tokens = await api.user_with_tokens("ada")
    before = await call(api, "GET", "/users", bearer(tokens["access_token"]))
    assert_problem(before, 403, "forbidden")

    body = await patched(api, admin, ada["id"], {"is_superuser": True})

    assert body["is_superuser"] is True
    after = await call(api, "GET", "/users", bearer(tokens["access_token"]))
    assert after.status_code == 200, after.text


# --- GET /users --------------------------------------------------------------------------


async def test_list_shows_every_user_by_id_with_exactly_the_user_fields_inactive_included(
    api: Api,
) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada", full_name="Ada Lovelace")
    bob = await api.register("bob")
    await api.services.get(SetActive)(bob["id"], active=False)

    page = await search(api, admin)

    assert (page["total"], page["page"], page["size"], page["pages"]) == (3, 1, 20, 1)
    assert [u["id"] for u in page["items"]] == sorted([admin.id, ada["id"], bob["id"]])
    for user in page["items"]:
        assert set(user) == USER_FIELDS
        assert datetime.fromisoformat(user["created_at"]).utcoffset() is not None
    by_name = {u["username"]: u for u in page["items"]}
    assert by_name["ada"] == ada
    assert by_name["bob"]["is_active"] is False
    assert by_name["bob"]["email"] == "bob@example.com"
    assert by_name["root"]["is_superuser"] is True
    assert "$argon2" not in json.dumps(page)
    assert "password" not in json.dumps(page)


async def test_q_matches_the_email_or_the_username_as_a_substring_in_any_case(api: Api) -> None:
    admin = await make_admin(api)
    await api.register("alice", email="wonder@example.org")
    await api.register("bob_w", email="bob@wonderland.example.com")
    await api.register("Carol", email="carol@example.com")

    assert await usernames(api, admin, q="WONDER") == ["alice", "bob_w"]
    assert await usernames(api, admin, q="aLi") == ["alice"]
    assert await usernames(api, admin, q="cAROL") == ["Carol"]
    assert await usernames(api, admin, q="@example.org") == ["alice"]
    assert await usernames(api, admin, q="nobody-has-this") == []
    page = await search(api, admin, q="wonder")
    assert (page["total"], page["pages"]) == (2, 1)


async def test_percent_underscore_and_backslash_in_q_match_literally(api: Api) -> None:
    admin = await make_admin(api)
    await api.register("a_b", email="ab@example.com")
    await api.register("axb", email="axb@example.com")
    await api.register("pct", email="100%off@example.com")
    await api.register("ten", email="10o@example.com")

    assert await usernames(api, admin, q="a_b") == ["a_b"]
    assert await usernames(api, admin, q="_") == ["a_b"]
    assert await usernames(api, admin, q="0%o") == ["pct"]
    assert await usernames(api, admin, q="%") == ["pct"]
    assert await usernames(api, admin, q="\\") == []
    assert await usernames(api, admin, q="%%") == []


async def test_the_state_filters_match_and_combine_with_q(api: Api) -> None:
    admin = await make_admin(api)  # root: active superuser, unverified
    ada = await api.register("ada")
    bob = await api.register("bob")
    await api.services.get(UpdateUser)(ada["id"], UserChanges(is_verified=True))
    await api.services.get(SetActive)(bob["id"], active=False)

    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({}, ["root", "ada", "bob"]),
        ({"is_active": "false"}, ["bob"]),
        ({"is_active": "true"}, ["root", "ada"]),
        ({"is_superuser": "true"}, ["root"]),
        ({"is_superuser": "false"}, ["ada", "bob"]),
        ({"is_verified": "true"}, ["ada"]),
        ({"is_verified": "false"}, ["root", "bob"]),
        ({"is_active": "true", "is_verified": "false"}, ["root"]),
        ({"is_active": "false", "is_superuser": "true"}, []),
        ({"q": "o", "is_active": "true"}, ["root", "ada"]),  # example.com has an "o"
        ({"q": "b", "is_active": "true"}, []),
    ]
    for params, expected in cases:
        assert await usernames(api, admin, **params) == expected, params


async def test_the_list_pages_like_the_public_list(api: Api) -> None:
    admin = await make_admin(api)
    for name in ("ada", "bob", "cid", "dan"):
        await api.register(name)
    everyone = [u["id"] for u in (await search(api, admin))["items"]]
    assert len(everyone) == 5

    pages = [await search(api, admin, page=n, size=2) for n in (1, 2, 3)]

    assert [[u["id"] for u in p["items"]] for p in pages] == [
        everyone[0:2],
        everyone[2:4],
        everyone[4:5],
    ]
    for number, page in enumerate(pages, start=1):
        assert (page["total"], page["page"], page["size"], page["pages"]) == (5, number, 2, 3)
    past = await search(api, admin, page=4, size=2)
    assert past["items"] == []
    assert (past["total"], past["page"], past["pages"]) == (5, 4, 3)
    filtered_past = await search(api, admin, page=9, size=100, q="a")
    assert filtered_past["items"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"size": 101},
        {"size": 0},
        {"page": 0},
        {"page": -1},
        {"page": "x"},
        {"page": 10**30},
        {"is_active": "maybe"},
        {"q": ""},
        {"q": "a\x00b"},
    ],
    ids=str,
)
async def test_out_of_range_list_queries_are_422(api: Api, params: dict[str, Any]) -> None:
    admin = await make_admin(api)

    response = await call(api, "GET", "/users", admin.headers, params=params)

    assert_problem(response, 422, "validation_error")


# --- GET / PATCH / DELETE /users/{id} ------------------------------------------------


async def test_get_returns_the_user_inactive_ones_too(api: Api) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada", full_name="Ada")
    await api.services.get(SetActive)(ada["id"], active=False)

    body = await get_user(api, admin, ada["id"])

    assert set(body) == USER_FIELDS
    assert body == {**ada, "is_active": False}


@pytest.mark.parametrize(("method", "path", "body"), USER_ENDPOINTS, ids=USER_ENDPOINT_IDS)
async def test_an_unknown_user_id_is_404_not_found(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    admin = await make_admin(api)
    events_before = (await audit_page(api, admin.headers))["total"]

    response = await call(api, method, path.format(id=UNKNOWN_ID), admin.headers, json_body=body)

    assert_problem(response, 404, "not_found")
    assert (await audit_page(api, admin.headers))["total"] == events_before


@pytest.mark.parametrize("user_id", ["0", "-1", "abc", str(2**63), "1.5"])
async def test_a_malformed_user_id_is_422(api: Api, user_id: str) -> None:
    admin = await make_admin(api)

    response = await call(api, "GET", f"/users/{user_id}", admin.headers)

    assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"full_name": "Ada Lovelace"}, {"full_name": "Ada Lovelace"}),
        ({"full_name": None}, {"full_name": None}),
        ({"username": "countess"}, {"username": "countess"}),
        ({"is_verified": True}, {"is_verified": True}),
        ({"is_active": False}, {"is_active": False}),
        ({"is_superuser": True}, {"is_superuser": True}),
        (
            {"full_name": "A", "username": "ada2", "is_verified": True},
            {"full_name": "A", "username": "ada2", "is_verified": True},
        ),
    ],
    ids=str,
)
async def test_patch_changes_each_field_and_returns_the_user(
    api: Api, change: dict[str, Any], expected: dict[str, Any]
) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada", full_name="Ada")

    body = await patched(api, admin, ada["id"], change)

    assert body == {**ada, **expected}
    assert await get_user(api, admin, ada["id"]) == body


async def test_patch_can_undo_each_state_flag(api: Api) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada")
    await patched(api, admin, ada["id"], {"is_active": False, "is_superuser": True})
    await patched(api, admin, ada["id"], {"is_verified": True})

    body = await patched(
        api, admin, ada["id"], {"is_active": True, "is_superuser": False, "is_verified": False}
    )

    assert (body["is_active"], body["is_superuser"], body["is_verified"]) == (True, False, False)
    assert await get_user(api, admin, ada["id"]) == body
    # Active again: the user can log in.
    await api.login("ada")


async def test_an_empty_patch_changes_nothing_and_records_nothing(api: Api) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada", full_name="Ada")
    before = await actions_about(api, admin, ada["id"])

    for body in ({}, {"full_name": "Ada", "username": "ada", "email": "ADA@example.com"}):
        assert await patched(api, admin, ada["id"], body) == ada

    assert await actions_about(api, admin, ada["id"]) == before


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"email": "BOB@Example.com"}, "email_taken"),
        ({"username": "BOB"}, "username_taken"),
    ],
    ids=["email", "username"],
)
async def test_patch_to_a_taken_email_or_username_is_409_and_changes_nothing(
    api: Api, change: dict[str, Any], code: str
) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada")
    await api.register("bob")
    events_before = (await audit_page(api, admin.headers))["total"]
    outbox_before = len(await outbox(api))

    response = await patch(api, admin, ada["id"], {**change, "full_name": "Changed"})

    assert_problem(response, 409, code)
    assert await get_user(api, admin, ada["id"]) == ada
    assert (await audit_page(api, admin.headers))["total"] == events_before
    assert len(await outbox(api)) == outbox_before


@pytest.mark.parametrize(
    "body",
    [
        {"password": NEW_PASSWORD},
        {"password_hash": "x"},
        {"id": 5},
        {"token_version": 3},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"role": "admin"},
        {"email": None},
        {"username": None},
        {"is_active": None},
        {"is_superuser": None},
        {"is_verified": None},
        {"email": "not-an-email"},
        {"username": "a b"},
        {"full_name": "x" * 101},
        {"is_active": [True]},
    ],
    ids=str,
)
async def test_patch_with_an_unknown_field_or_bad_value_is_422_and_changes_nothing(
    api: Api, body: dict[str, Any]
) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada")
    events_before = (await audit_page(api, admin.headers))["total"]

    response = await patch(api, admin, ada["id"], body)

    assert_problem(response, 422, "validation_error")
    assert await get_user(api, admin, ada["id"]) == ada
    assert (await audit_page(api, admin.headers))["total"] == events_before


async def test_patch_email_unverifies_and_mails_the_new_address_and_tells_the_old(
    api: Api,
) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada")
    await patched(api, admin, ada["id"], {"is_verified": True})
    before = await outbox(api)

    body = await patched(api, admin, ada["id"], {"email": "Ada.New@Example.com"})

    assert body["email"] == "ada.new@example.com"
    assert body["is_verified"] is False
    messages = await outbox(api)
    new = [m for m in messages if m.id not in {b.id for b in before}]
    assert sorted((m.template, m.recipient) for m in new) == sorted(
        [
            (Template.VERIFY_EMAIL, "ada.new@example.com"),
            (Template.EMAIL_CHANGED, "ada@example.com"),
        ]
    )
    assert {m.user_id for m in new} == {ada["id"]}
    # The old address can no longer log in; the new one can.
    refused = await api.client.post(
        LOGIN, data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert_problem(refused, 401, "invalid_credentials")
    await api.login("ada.new@example.com")


async def test_patch_email_marked_verified_in_the_same_change_is_422_and_changes_nothing(
    api: Api,
) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada")
    before = {m.id for m in await outbox(api)}

    response = await patch(api, admin, ada["id"], {"email": "new@example.com", "is_verified": True})

    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["loc"] == ["body", "is_verified"]
    assert [m for m in await outbox(api) if m.id not in before] == []
    assert (await get_user(api, admin, ada["id"]))["email"] == "ada@example.com"


# --- ending sessions ---------------------------------------------------------------------


async def test_deactivating_a_user_ends_their_sessions_at_once(api: Api) -> None:
    admin = await make_admin(api)
    ada, first = await api.user_with_tokens("ada")
    second = await api.login("ada")

    await patched(api, admin, ada["id"], {"is_active": False})

    await assert_token_dead(api, first)
    await assert_token_dead(api, second)
    refused = await api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD})
    assert_problem(refused, 401, "invalid_credentials")


async def test_reactivating_a_user_lets_them_log_in_but_revives_no_old_token(api: Api) -> None:
    admin = await make_admin(api)
    ada, old = await api.user_with_tokens("ada")
    await patched(api, admin, ada["id"], {"is_active": False})

    await patched(api, admin, ada["id"], {"is_active": True})

    await assert_token_dead(api, old)
    fresh = await api.login("ada")
    assert (await api.me(fresh["access_token"])).status_code == 200


async def test_demoting_an_admin_ends_their_sessions_and_a_new_login_is_forbidden(
    api: Api,
) -> None:
    admin = await make_admin(api)
    other = await make_admin(api, "deputy")
    assert (await call(api, "GET", "/users", other.headers)).status_code == 200

    body = await patched(api, admin, other.id, {"is_superuser": False})

    assert body["is_superuser"] is False
    assert_problem(await call(api, "GET", "/users", other.headers), 401, "invalid_token")
    await assert_token_dead(api, other.tokens)
    again = await api.login("deputy")
    response = await call(api, "GET", "/users", bearer(again["access_token"]))
    assert_problem(response, 403, "forbidden")
    assert (await api.me(again["access_token"])).status_code == 200


async def test_granting_superuser_or_changing_details_keeps_the_users_sessions(api: Api) -> None:
    admin = await make_admin(api)
    ada, tokens = await api.user_with_tokens("ada")

    await patched(api, admin, ada["id"], {"is_superuser": True, "full_name": "Ada"})
    await patched(api, admin, ada["id"], {"is_verified": True, "username": "countess"})

    me = await api.me(tokens["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "countess"


async def test_deleting_a_user_ends_their_sessions_and_frees_their_names(api: Api) -> None:
    admin = await make_admin(api)
    ada, tokens = await api.user_with_tokens("ada")

    response = await call(api, "DELETE", f"/users/{ada['id']}", admin.headers)

    assert response.status_code == 204, response.text
    assert response.content == b""
    await assert_token_dead(api, tokens)
    assert_problem(await call(api, "GET", f"/users/{ada['id']}", admin.headers), 404, "not_found")
    again = await api.register("ada")
    assert again["id"] != ada["id"]


async def test_deleting_an_admin_ends_their_sessions(api: Api) -> None:
    admin = await make_admin(api)
    other = await make_admin(api, "deputy")

    response = await call(api, "DELETE", f"/users/{other.id}", admin.headers)

    assert response.status_code == 204, response.text
    assert_problem(await call(api, "GET", "/users", other.headers), 401, "invalid_token")
    await assert_token_dead(api, other.tokens)


async def test_an_admin_may_demote_deactivate_and_delete_an_inactive_superuser(api: Api) -> None:
    admin = await make_admin(api)
    other = await make_admin(api, "dormant")
    await patched(api, admin, other.id, {"is_active": False})

    body = await patched(api, admin, other.id, {"is_superuser": False})
    assert (body["is_active"], body["is_superuser"]) == (False, False)
    await patched(api, admin, other.id, {"is_superuser": True})
    response = await call(api, "DELETE", f"/users/{other.id}", admin.headers)

    assert response.status_code == 204, response.text


# --- guards ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("PATCH", {"is_active": False}),
        ("PATCH", {"is_superuser": False}),
        ("PATCH", {"is_active": False, "is_superuser": False}),
        ("PATCH", {"full_name": "New", "is_superuser": False}),
        ("DELETE", None),
    ],
    ids=["deactivate", "demote", "both", "demote with a detail", "delete"],
)
@pytest.mark.parametrize("another_admin", [False, True], ids=["alone", "with another admin"])
async def test_an_admin_cannot_remove_their_own_access(
    api: Api, method: str, body: dict[str, Any] | None, another_admin: bool
) -> None:
    admin = await make_admin(api)
    if another_admin:
        await make_admin(api, "deputy")
    events_before = (await audit_page(api, admin.headers))["total"]

    response = await call(api, method, f"/users/{admin.id}", admin.headers, json_body=body)

    assert_problem(response, 409, "cannot_change_own_access")
    assert await get_user(api, admin, admin.id) == admin.user
    assert (await api.me(admin.tokens["access_token"])).status_code == 200
    assert (await audit_page(api, admin.headers))["total"] == events_before


async def test_an_admin_may_change_their_own_details(api: Api) -> None:
    admin = await make_admin(api)

    body = await patched(
        api, admin, admin.id, {"full_name": "Root", "is_active": True, "is_superuser": True}
    )

    assert (body["full_name"], body["is_active"], body["is_superuser"]) == ("Root", True, True)
    assert (await call(api, "GET", "/users", admin.headers)).status_code == 200


@pytest.mark.parametrize("other", ["none", "inactive", "demoted"])
async def test_the_last_active_superuser_cannot_delete_their_account(api: Api, other: str) -> None:
    admin = await make_admin(api)
    if other != "none":
        deputy = await make_admin(api, "deputy")
        change = {"is_active": False} if other == "inactive" else {"is_superuser": False}
        await patched(api, admin, deputy.id, change)
    events_before = (await audit_page(api, admin.headers))["total"]

    response = await api.client.delete(ME, headers=admin.headers)

    assert_problem(response, 409, "last_superuser")
    assert (await api.me(admin.tokens["access_token"])).status_code == 200
    assert (await audit_page(api, admin.headers))["total"] == events_before
    # Refreshing still works: nothing of the refused deletion was kept.
    refreshed = await api.client.post(
        REFRESH, json={"refresh_token": admin.tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_a_superuser_may_delete_their_account_while_another_active_one_remains(
    api: Api,
) -> None:
    admin = await make_admin(api)
    deputy = await make_admin(api, "deputy")

    response = await api.client.delete(ME, headers=admin.headers)

    assert response.status_code == 204, response.text
    assert_problem(await api.me(admin.tokens["access_token"]), 401, "invalid_token")
    actions = await actions_about(api, deputy, admin.id)
    assert actions[0] == "user.deleted"


@pytest.mark.parametrize("other", ["none", "inactive", "demoted"])
async def test_the_last_active_superuser_keeps_access_whoever_asks(api: Api, other: str) -> None:
    """The operator's use cases (as the CLI runs them, acting for nobody in the API)
    refuse too: the guard is the database's, not the caller's."""
    admin = await make_admin(api)
    if other != "none":
        deputy = await make_admin(api, "deputy")
        change = {"is_active": False} if other == "inactive" else {"is_superuser": False}
        await patched(api, admin, deputy.id, change)
    events_before = (await audit_page(api, admin.headers))["total"]
    update = api.services.get(UpdateUser)

    with pytest.raises(LastSuperuser):
        await update(admin.id, UserChanges(is_active=False))
    with pytest.raises(LastSuperuser):
        await update(admin.id, UserChanges(is_superuser=False))
    with pytest.raises(LastSuperuser):
        await update(admin.id, UserChanges(full_name="Changed", is_superuser=False))
    with pytest.raises(LastSuperuser):
        await api.services.get(SetActive)(admin.id, active=False)
    with pytest.raises(LastSuperuser):
        await api.services.get(DeleteUser)(admin.id)

    assert await get_user(api, admin, admin.id) == admin.user
    assert (await audit_page(api, admin.headers))["total"] == events_before


# --- POST /users/{id}/password-reset --------------------------------------------------


async def test_password_reset_is_202_and_queues_a_reset_mail_for_that_user(api: Api) -> None:
    admin = await make_admin(api)
    ada, tokens = await api.user_with_tokens("ada")
    before = {m.id for m in await outbox(api)}

    response = await call(api, "POST", f"/users/{ada['id']}/password-reset", admin.headers)

    assert response.status_code == 202, response.text
    assert response.content == b""
    new = [m for m in await outbox(api) if m.id not in before]
    assert [(m.template, m.recipient, m.user_id) for m in new] == [
        (Template.PASSWORD_RESET, "ada@example.com", ada["id"])
    ]
    assert "token" not in json.dumps(new[0].context)
    # Nothing about the account changes until the user follows the link.
    assert (await api.me(tokens["access_token"])).status_code == 200
    await api.login("ada")


# --- GET / DELETE /users/{id}/sessions ---------------------------------------------------


async def test_list_user_sessions_shows_their_active_sessions_newest_first(api: Api) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada")
    first = await api.login("ada", headers={"User-Agent": "first/1"})
    second = await api.login("ada", headers={"User-Agent": "second/2"})
    ended = await api.login("ada", headers={"User-Agent": "ended/3"})
    await api.client.post("/api/v1/auth/logout", json={"refresh_token": ended["refresh_token"]})

    response = await call(api, "GET", f"/users/{ada['id']}/sessions", admin.headers)

    assert response.status_code == 200, response.text
    listed = response.json()
    for session in listed:
        assert set(session) == SESSION_FIELDS
        assert datetime.fromisoformat(session["created_at"]).utcoffset() is not None
    assert [s["id"] for s in listed] == [
        claims(second["access_token"])["sid"],
        claims(first["access_token"])["sid"],
    ]
    assert [s["user_agent"] for s in listed] == ["second/2", "first/1"]
    assert [s["current"] for s in listed] == [False, False]
    # Their sessions only; the admin's own is "current" in the admin's own list.
    own = await call(api, "GET", f"/users/{admin.id}/sessions", admin.headers)
    assert [s["current"] for s in own.json()] == [True]


async def test_a_user_without_sessions_has_an_empty_list(api: Api) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada")

    response = await call(api, "GET", f"/users/{ada['id']}/sessions", admin.headers)

    assert response.status_code == 200, response.text
    assert response.json() == []


async def test_ending_a_users_sessions_kills_all_their_tokens_and_only_theirs(api: Api) -> None:
    admin = await make_admin(api)
    ada, first = await api.user_with_tokens("ada")
    second = await api.login("ada")
    _, bobs = await api.user_with_tokens("bob")

    response = await call(api, "DELETE", f"/users/{ada['id']}/sessions", admin.headers)

    assert response.status_code == 204, response.text
    assert response.content == b""
    await assert_token_dead(api, first)
    await assert_token_dead(api, second)
    assert (await api.me(bobs["access_token"])).status_code == 200
    listed = await call(api, "GET", f"/users/{ada['id']}/sessions", admin.headers)
    assert listed.json() == []
    # The account itself is untouched: the user logs in again.
    assert (await get_user(api, admin, ada["id"]))["is_active"] is True
    await api.login("ada")


# --- GET /audit-events ---------------------------------------------------------------------


def assert_event(
    event: dict[str, Any],
    action: str,
    *,
    actor_id: int | None,
    target: int | None,
    request_id: str | None = None,
    client_request_id: str | None = None,
    ip: str = "127.0.0.1",
    details: dict[str, Any] | None = None,
) -> None:
    """``request_id``: the server's id for the request as its response echoed it; when
    the client sent an id of its own (``client_request_id``), the server's is another,
    kept in ``request_id``, and the client's is only a detail."""
    assert set(event) == AUDIT_FIELDS
    assert isinstance(event["id"], int)
    assert datetime.fromisoformat(event["occurred_at"]).utcoffset() is not None
    expected: dict[str, Any] = {
        "action": action,
        "actor_type": "user",
        "actor_id": actor_id,
        "target_user_id": target,
        "ip": ip,
        "details": details or {},
    }
    if client_request_id is None:
        expected["request_id"] = request_id
    else:
        expected["details"] = {**expected["details"], "client_request_id": client_request_id}
        assert re.fullmatch(r"[0-9a-f]{32}", event["request_id"]), event
    assert {k: event[k] for k in expected} == expected, event


async def test_a_self_registration_is_recorded_with_the_request_and_no_actor(api: Api) -> None:
    admin = await make_admin(api)
    async with api.client_from("203.0.113.7") as client:
        response = await client.post(
            USERS,
            json={"email": "ada@example.com", "username": "ada", "password": PASSWORD},
            headers={"X-Request-ID": "signup-42"},
        )
    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == "signup-42"
    ada = response.json()

    [event] = await audit(api, admin.headers, target_user_id=ada["id"])

    assert_event(
        event,
        "user.registered",
        actor_id=None,
        target=ada["id"],
        client_request_id="signup-42",
        ip="203.0.113.7",
    )


async def test_an_admin_change_is_recorded_with_the_admin_the_request_and_the_address(
    api: Api,
) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada")
    async with api.client_from("198.51.100.4") as client:
        response = await client.patch(
            f"{ADMIN_USERS}/{ada['id']}",
            json={"full_name": "Ada Lovelace", "username": "countess"},
            headers=admin.headers,
        )
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    assert request_id

    [event, *_] = await audit(api, admin.headers, target_user_id=ada["id"])

    assert_event(
        event,
        "user.updated",
        actor_id=admin.id,
        target=ada["id"],
        request_id=request_id,
        ip="198.51.100.4",
        details={"fields": ["full_name", "username"]},
    )
    assert "Ada Lovelace" not in json.dumps(event)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"is_active": False}, [("user.updated", ["is_active"]), ("user.deactivated", None)]),
        (
            {"is_superuser": True},
            [("user.updated", ["is_superuser"]), ("user.superuser_granted", None)],
        ),
        (
            {"email": "new@example.com"},
            [("user.updated", ["email"]), ("user.email_changed", None)],
        ),
        (
            {"is_active": False, "is_superuser": True, "full_name": "X"},
            [
                ("user.updated", ["full_name", "is_active", "is_superuser"]),
                ("user.superuser_granted", None),
                ("user.deactivated", None),
            ],
        ),
    ],
    ids=["deactivate", "grant", "email", "several"],
)
async def test_each_admin_change_records_its_actions_newest_first(
    api: Api, change: dict[str, Any], expected: list[tuple[str, list[str] | None]]
) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada")

    response = await patch(api, admin, ada["id"], change)
    assert response.status_code == 200, response.text

    events = await audit(api, admin.headers, target_user_id=ada["id"])
    recorded = events[: len(expected)]
    assert [(e["action"], e["details"].get("fields")) for e in recorded] == expected
    for event in recorded:
        assert_event(
            event,
            event["action"],
            actor_id=admin.id,
            target=ada["id"],
            request_id=response.headers["x-request-id"],
            details=event["details"],
        )
    assert [e["action"] for e in events[len(expected) :]] == ["user.registered"]


async def test_reactivation_and_demotion_are_recorded(api: Api) -> None:
    admin = await make_admin(api)
    deputy = await make_admin(api, "deputy")
    await patched(api, admin, deputy.id, {"is_active": False})

    activated = await patch(api, admin, deputy.id, {"is_active": True})
    revoked = await patch(api, admin, deputy.id, {"is_superuser": False})

    events = await audit(api, admin.headers, target_user_id=deputy.id)
    by_action = {e["action"]: e for e in events}
    for action, response in (
        ("user.activated", activated),
        ("user.superuser_revoked", revoked),
    ):
        assert_event(
            by_action[action],
            action,
            actor_id=admin.id,
            target=deputy.id,
            request_id=response.headers["x-request-id"],
        )
    assert [e["action"] for e in events[:4]] == [
        "user.updated",
        "user.superuser_revoked",
        "user.updated",
        "user.activated",
    ]


async def test_an_admin_deletion_is_recorded_and_outlives_the_account(api: Api) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada")

    response = await call(api, "DELETE", f"/users/{ada['id']}", admin.headers)
    assert response.status_code == 204

    events = await audit(api, admin.headers, target_user_id=ada["id"])
    assert [e["action"] for e in events] == ["user.deleted", "user.registered"]
    assert_event(
        events[0],
        "user.deleted",
        actor_id=admin.id,
        target=ada["id"],
        request_id=response.headers["x-request-id"],
    )


async def test_a_users_own_changes_are_recorded_as_theirs(api: Api) -> None:
    admin = await make_admin(api)
    ada, tokens = await api.user_with_tokens("ada")

    changed = await api.client.patch(
        ME,
        json={"password": NEW_PASSWORD, "current_password": PASSWORD, "full_name": "Ada"},
        headers=bearer(tokens["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    fresh = await api.login("ada", NEW_PASSWORD)
    logged_out = await api.client.post(LOGOUT_ALL, headers=bearer(fresh["access_token"]))
    assert logged_out.status_code == 204, logged_out.text
    again = await api.login("ada", NEW_PASSWORD)
    deleted = await api.client.delete(ME, headers=bearer(again["access_token"]))
    assert deleted.status_code == 204, deleted.text

    events = await audit(api, admin.headers, target_user_id=ada["id"])

    assert [e["action"] for e in events] == [
        "user.deleted",
        "user.sessions_revoked",
        "user.updated",
        "user.password_changed",
        "user.registered",
    ]
    request_ids = {
        "user.deleted": deleted.headers["x-request-id"],
        "user.sessions_revoked": logged_out.headers["x-request-id"],
        "user.updated": changed.headers["x-request-id"],
        "user.password_changed": changed.headers["x-request-id"],
    }
    for event in events[:-1]:
        assert_event(
            event,
            event["action"],
            actor_id=ada["id"],
            target=ada["id"],
            request_id=request_ids[event["action"]],
            details=event["details"],
        )
    assert events[2]["details"] == {"fields": ["full_name", "password"]}
    assert events[3]["details"] == {}


async def test_an_admin_ending_sessions_and_queueing_a_reset_is_recorded(api: Api) -> None:
    admin = await make_admin(api)
    ada = await api.register("ada")

    ended = await call(api, "DELETE", f"/users/{ada['id']}/sessions", admin.headers)
    reset = await call(api, "POST", f"/users/{ada['id']}/password-reset", admin.headers)
    assert (ended.status_code, reset.status_code) == (204, 202)

    events = await audit(api, admin.headers, target_user_id=ada["id"])

    assert [e["action"] for e in events] == [
        "user.password_reset_queued",
        "user.sessions_revoked",
        "user.registered",
    ]
    for event, response in zip(events, (reset, ended), strict=False):
        assert_event(
            event,
            event["action"],
            actor_id=admin.id,
            target=ada["id"],
            request_id=response.headers["x-request-id"],
        )


async def test_refreshing_with_a_rotated_token_is_recorded_as_reuse(api: Api) -> None:
    admin = await make_admin(api)
    ada, tokens = await api.user_with_tokens("ada")
    rotated = await api.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200, rotated.text

    replayed = await api.client.post(
        REFRESH,
        json={"refresh_token": tokens["refresh_token"]},
        headers={"X-Request-ID": "replay-1"},
    )

    assert_problem(replayed, 401, "invalid_token")
    [event, *_] = await audit(api, admin.headers, action="session.reuse_detected")
    assert_event(
        event,
        "session.reuse_detected",
        actor_id=None,
        target=ada["id"],
        client_request_id="replay-1",
        details={"session_id": claims(tokens["access_token"])["sid"]},
    )


async def test_audit_filters_by_action_actor_and_target(api: Api) -> None:
    admin = await make_admin(api)
    deputy = await make_admin(api, "deputy")
    ada = await api.register("ada")
    bob = await api.register("bob")
    await patched(api, admin, ada["id"], {"full_name": "A"})
    await patched(api, deputy, bob["id"], {"full_name": "B"})
    await patched(api, deputy, ada["id"], {"is_active": False})

    by_deputy = await audit(api, admin.headers, actor_id=deputy.id)
    assert [(e["action"], e["target_user_id"]) for e in by_deputy] == [
        ("user.updated", ada["id"]),
        ("user.deactivated", ada["id"]),
        ("user.updated", bob["id"]),
    ]
    about_ada = await audit(api, admin.headers, target_user_id=ada["id"])
    assert [(e["action"], e["actor_id"]) for e in about_ada] == [
        ("user.updated", deputy.id),
        ("user.deactivated", deputy.id),
        ("user.updated", admin.id),
        ("user.registered", None),
    ]
    updates = await audit(api, admin.headers, action="user.updated")
    # The oldest two: the operator's grants to the admins.
    assert [e["target_user_id"] for e in updates] == [
        ada["id"],
        bob["id"],
        ada["id"],
        deputy.id,
        admin.id,
    ]
    assert [e["actor_type"] for e in updates] == ["user"] * 3 + ["system"] * 2
    both = await audit(api, admin.headers, action="user.updated", actor_id=deputy.id)
    assert [e["target_user_id"] for e in both] == [ada["id"], bob["id"]]
    all_three = await audit(
        api, admin.headers, action="user.updated", actor_id=admin.id, target_user_id=ada["id"]
    )
    assert len(all_three) == 1
    assert await audit(api, admin.headers, action="user.deleted") == []
    assert await audit(api, admin.headers, target_user_id=UNKNOWN_ID) == []


async def test_audit_events_are_newest_first_and_paged(api: Api) -> None:
    admin = await make_admin(api)
    for name in ("ada", "bob", "cid"):
        await api.register(name)
    everything = await audit(api, admin.headers)
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)
    times = [datetime.fromisoformat(e["occurred_at"]) for e in everything]
    assert times == sorted(times, reverse=True)
    total = len(everything)
    assert total >= 6  # four registrations, a grant and its update

    first = await audit_page(api, admin.headers, page=1, size=2)
    second = await audit_page(api, admin.headers, page=2, size=2)
    past = await audit_page(api, admin.headers, page=total + 1, size=1)

    assert [e["id"] for e in first["items"] + second["items"]] == ids[:4]
    assert (first["total"], first["page"], first["size"]) == (total, 1, 2)
    assert first["pages"] == (total + 1) // 2
    assert past["items"] == []
    assert past["total"] == total


@pytest.mark.parametrize(
    "params",
    [
        {"size": 101},
        {"size": 0},
        {"page": 0},
        {"action": "user.nonsense"},
        {"actor_id": 0},
        {"actor_id": "x"},
        {"target_user_id": -1},
        {"target_user_id": 2**63},
    ],
    ids=str,
)
async def test_bad_audit_queries_are_422(api: Api, params: dict[str, Any]) -> None:
    admin = await make_admin(api)

    response = await api.client.get(AUDIT, params=params, headers=admin.headers)

    assert_problem(response, 422, "validation_error")


async def test_no_event_holds_a_password_hash_or_token(api: Api) -> None:
    admin = await make_admin(api)
    ada, tokens = await api.user_with_tokens("ada")
    changed = await api.client.patch(
        ME,
        json={"password": NEW_PASSWORD, "current_password": PASSWORD, "email": "a2@example.com"},
        headers=bearer(tokens["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    pair = await api.login("ada", NEW_PASSWORD)
    await api.client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    await api.client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})  # reuse
    await call(api, "POST", f"/users/{ada['id']}/password-reset", admin.headers)
    await patched(api, admin, ada["id"], {"email": "a3@example.com", "is_active": False})
    await call(api, "DELETE", f"/users/{ada['id']}", admin.headers)

    events = await audit(api, admin.headers)

    assert len(events) >= 10
    text = json.dumps([e["details"] for e in events]).lower()
    for secret in (
        PASSWORD,
        NEW_PASSWORD,
        "$argon2",
        "hash",
        "token",
        tokens["access_token"],
        pair["refresh_token"],
    ):
        assert secret.lower() not in text, secret
    assert PASSWORD not in json.dumps(events)
    assert NEW_PASSWORD not in json.dumps(events)


async def test_failed_changes_leave_no_event(api: Api) -> None:
    admin = await make_admin(api)
    ada, adas = await api.user_with_tokens("ada")
    await api.register("bob")
    before = await audit(api, admin.headers)

    refusals = [
        (await patch(api, admin, ada["id"], {"email": "bob@example.com"}), 409),
        (await patch(api, admin, ada["id"], {"username": "bob", "full_name": "X"}), 409),
        (await patch(api, admin, admin.id, {"is_superuser": False}), 409),
        (await patch(api, admin, admin.id, {"full_name": "Me", "is_active": False}), 409),
        (await call(api, "DELETE", f"/users/{admin.id}", admin.headers), 409),
        (await api.client.delete(ME, headers=admin.headers), 409),
        (await patch(api, admin, ada["id"], {"is_active": "sometimes"}), 422),
        (await patch(api, admin, UNKNOWN_ID, {"full_name": "X"}), 404),
        (
            await call(
                api,
                "PATCH",
                f"/users/{ada['id']}",
                bearer(adas["access_token"]),
                json_body={"is_superuser": True},
            ),
            403,
        ),
        (
            await api.client.patch(
                ME,
                json={"password": NEW_PASSWORD, "current_password": "wrong password!"},
                headers=bearer(adas["access_token"]),
            ),
            403,
        ),
    ]

    assert [response.status_code for response, _ in refusals] == [s for _, s in refusals]
    assert await audit(api, admin.headers) == before


async def test_a_patch_of_me_that_changes_nothing_records_no_update(api: Api) -> None:
    admin = await make_admin(api)
    ada, tokens = await api.user_with_tokens("ada")
    await api.client.patch(ME, json={"full_name": "Ada"}, headers=bearer(tokens["access_token"]))
    before = await actions_about(api, admin, ada["id"])

    response = await api.client.patch(
        ME, json={"full_name": "Ada", "username": "ada"}, headers=bearer(tokens["access_token"])
    )

    assert response.status_code == 200, response.text
    assert await actions_about(api, admin, ada["id"]) == before
