"""``/api/v1/auth``: logging in (form and JSON), token pairs and their claims, refresh
rotation and reuse, logging out (the HTTP contract: Tokens and Auth)."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
import pytest
from dependency_injector import providers

from application.admin import GetUser, SetActive
from tests.e2e.conftest import (
    FAST_HASHER,
    LOGIN,
    LOGOUT,
    LOGOUT_ALL,
    ME,
    PASSWORD,
    REFRESH,
    TOKEN_PAIR_FIELDS,
    Api,
    AppFactory,
    CountingHasher,
    GatedHasher,
    assert_problem,
    bearer,
    claims,
    sign,
)

ACCESS_CLAIMS = {"sub", "type", "sid", "iat", "exp", "jti", "ver"}
REFRESH_CLAIMS = {"sub", "type", "sid", "iat", "exp", "jti"}


async def _refresh(api: Api, refresh_token: str) -> Any:
    return await api.client.post(REFRESH, json={"refresh_token": refresh_token})


async def _logout(api: Api, refresh_token: str) -> Any:
    return await api.client.post(LOGOUT, json={"refresh_token": refresh_token})


def _assert_token_pair(response: Any, expires_in: int = 30 * 60) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == TOKEN_PAIR_FIELDS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == expires_in
    assert isinstance(body["access_token"], str)
    assert isinstance(body["refresh_token"], str)
    return dict(body)


# --- Login ------------------------------------------------------------------------------


async def test_login_with_the_oauth2_password_form_returns_a_token_pair(api: Api) -> None:
    await api.register("ada")
    response = await api.client.post(
        LOGIN, data={"grant_type": "password", "username": "ada", "password": PASSWORD}
    )
    tokens = _assert_token_pair(response)
    assert (await api.me(tokens["access_token"])).json()["username"] == "ada"


async def test_login_with_a_multipart_form_works_too(api: Api) -> None:
    await api.register("ada")
    response = await api.client.post(
        LOGIN, files={"username": (None, "ada"), "password": (None, PASSWORD)}
    )
    _assert_token_pair(response)


async def test_login_with_json_returns_a_token_pair(api: Api) -> None:
    await api.register("ada")
    response = await api.client.post(LOGIN, json={"username": "ada", "password": PASSWORD})
    tokens = _assert_token_pair(response)
    assert (await api.me(tokens["access_token"])).json()["username"] == "ada"


LOGINS = ["ada_L", "ADA_l", "ada_l", "Ada.L@Example.com", "ADA.L@EXAMPLE.COM", " ada_l "]


@pytest.mark.parametrize("kind", ["form", "json"])
async def test_login_by_username_or_email_in_any_case(api: Api, kind: str) -> None:
    await api.client.post(
        "/api/v1/users/",
        json={"email": "ada.l@example.com", "username": "Ada_L", "password": PASSWORD},
    )
    for login in LOGINS:
        credentials = {"username": login, "password": PASSWORD}
        if kind == "form":
            response = await api.client.post(LOGIN, data=credentials)
        else:
            response = await api.client.post(LOGIN, json=credentials)
        assert response.status_code == 200, (login, response.text)
        tokens = _assert_token_pair(response)
        assert (await api.me(tokens["access_token"])).json()["username"] == "Ada_L"


async def test_unknown_user_wrong_password_and_inactive_user_get_the_same_401(
    api: Api,
) -> None:
    await api.register("ada")
    await api.register("ina")
    await api.services.get(SetActive)("ina", active=False)
    attempts = {
        "unknown user": {"username": "nobody", "password": PASSWORD},
        "wrong password": {"username": "ada", "password": "wrong password!"},
        "password in another case": {"username": "ada", "password": PASSWORD.upper()},
        "inactive user": {"username": "ina", "password": PASSWORD},
    }
    bodies = []
    for credentials in attempts.values():
        for response in (
            await api.client.post(LOGIN, data=credentials),
            await api.client.post(LOGIN, json=credentials),
        ):
            bodies.append(assert_problem(response, 401, "invalid_credentials"))
    assert all(body == bodies[0] for body in bodies), bodies


async def test_login_of_an_unknown_user_still_costs_one_hash_verification(
    app_factory: AppFactory,
) -> None:
    hasher = CountingHasher(**FAST_HASHER)

    def configure(container: Any) -> None:
        container.adapters.hasher.override(providers.Object(hasher))

    async with app_factory(configure=configure) as api:
        await api.register("ada")
        before = hasher.verifications
        response = await api.client.post(LOGIN, data={"username": "nobody", "password": PASSWORD})
        assert_problem(response, 401, "invalid_credentials")
        assert hasher.verifications == before + 1
        response = await api.client.post(LOGIN, data={"username": "ada", "password": "nope-nope"})
        assert_problem(response, 401, "invalid_credentials")
        assert hasher.verifications == before + 2


async def test_login_rehashes_a_password_stored_with_outdated_parameters(
    app_factory: AppFactory,
) -> None:
    async with app_factory() as old:
        await old.register("ada")
        old_hash = (await old.services.get(GetUser)("ada")).password_hash
    assert "t=1" in old_hash

    def stronger(container: Any) -> None:
        container.adapters.hasher.override(
            providers.Singleton(CountingHasher, time_cost=2, memory_cost=1024)
        )

    async with app_factory(configure=stronger) as new:
        await new.login("ada")
        new_hash = (await new.services.get(GetUser)("ada")).password_hash
        assert new_hash != old_hash
        assert "t=2" in new_hash
        # The re-hashed password still logs in, and is not re-hashed again.
        await new.login("ada")
        assert (await new.services.get(GetUser)("ada")).password_hash == new_hash


INCOMPLETE_LOGINS: dict[str, tuple[dict[str, Any], str]] = {
    "json without password": ({"json": {"username": "ada"}}, "password"),
    "json without username": ({"json": {"password": PASSWORD}}, "username"),
    "json with an unknown field": (
        {"json": {"username": "ada", "password": PASSWORD, "scope": "admin"}},
        "scope",
    ),
    "json username not a string": ({"json": {"username": 1, "password": PASSWORD}}, "username"),
    "json empty username": ({"json": {"username": "", "password": PASSWORD}}, "username"),
    "json NUL in password": ({"json": {"username": "ada", "password": "x\x00y"}}, "password"),
    "form without password": ({"data": {"username": "ada"}}, "password"),
    "form without username": ({"data": {"password": PASSWORD}}, "username"),
}


async def test_login_with_an_incomplete_body_is_422(api: Api) -> None:
    for case, (kwargs, field) in INCOMPLETE_LOGINS.items():
        response = await api.client.post(LOGIN, **kwargs)
        assert response.status_code == 422, (case, response.text)
        problem = assert_problem(response, 422, "validation_error")
        assert any(field in error["loc"] for error in problem["errors"]), (case, problem)


async def test_login_without_a_body_is_422(api: Api) -> None:
    assert_problem(await api.client.post(LOGIN), 422, "validation_error")


# --- Token pairs and claims --------------------------------------------------------------


async def test_token_claims_follow_the_contract(api: Api) -> None:
    user, tokens = await api.user_with_tokens("ada")
    access = claims(tokens["access_token"])
    refresh = claims(tokens["refresh_token"])
    assert set(access) == ACCESS_CLAIMS
    assert set(refresh) == REFRESH_CLAIMS
    assert access["sub"] == str(user["id"])
    assert refresh["sub"] == str(user["id"])
    assert access["type"] == "access"
    assert refresh["type"] == "refresh"
    assert access["sid"] == refresh["sid"]
    assert isinstance(access["ver"], int)
    assert not isinstance(access["ver"], bool)
    for payload in (access, refresh):
        assert isinstance(payload["iat"], int)
        assert isinstance(payload["exp"], int)
        assert isinstance(payload["jti"], str)
        assert payload["jti"]
    assert access["exp"] - access["iat"] == 30 * 60
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600
    assert access["jti"] != refresh["jti"]


async def test_tokens_are_signed_with_the_configured_algorithm(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    for token in tokens["access_token"], tokens["refresh_token"]:
        assert jwt.get_unverified_header(token)["alg"] == "HS256"
        jwt.decode(token, api.settings.secret_key, algorithms=["HS256"])


async def test_each_login_opens_its_own_session(api: Api) -> None:
    await api.register("ada")
    first = await api.login("ada")
    second = await api.login("ada")
    assert claims(first["access_token"])["sid"] != claims(second["access_token"])["sid"]


async def test_expires_in_follows_access_token_expire_minutes(app_factory: AppFactory) -> None:
    async with app_factory(access_token_expire_minutes=5, refresh_token_expire_days=2) as api:
        await api.register("ada")
        response = await api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD})
        tokens = _assert_token_pair(response, expires_in=300)
        access = claims(tokens["access_token"])
        refresh = claims(tokens["refresh_token"])
        assert access["exp"] - access["iat"] == 300
        assert refresh["exp"] - refresh["iat"] == 2 * 24 * 3600


async def test_issuer_and_audience_are_issued_and_required_when_configured(
    app_factory: AppFactory,
) -> None:
    async with app_factory(jwt_issuer="https://auth.example", jwt_audience="example-api") as api:
        _, tokens = await api.user_with_tokens("ada")
        access = claims(tokens["access_token"])
        refresh = claims(tokens["refresh_token"])
        for payload in (access, refresh):
            assert payload["iss"] == "https://auth.example"
            assert payload["aud"] == "example-api"
        assert (await api.me(tokens["access_token"])).status_code == 200

        key = api.settings.secret_key
        variants = {
            "without iss": {k: v for k, v in access.items() if k != "iss"},
            "without aud": {k: v for k, v in access.items() if k != "aud"},
            "another iss": {**access, "iss": "https://evil.example"},
            "another aud": {**access, "aud": "other-api"},
        }
        for name, payload in variants.items():
            response = await api.me(sign(payload, key))
            assert response.status_code == 401, name
            assert_problem(response, 401, "invalid_token")
        without_iss = sign({k: v for k, v in refresh.items() if k != "iss"}, key)
        assert_problem(await _refresh(api, without_iss), 401, "invalid_token")
        wrong_aud = sign({**refresh, "aud": "other-api"}, key)
        assert_problem(await _refresh(api, wrong_aud), 401, "invalid_token")
        # The genuine refresh token still works.
        _assert_token_pair(await _refresh(api, tokens["refresh_token"]))


async def test_tokens_without_issuer_are_refused_once_an_issuer_is_configured(
    app_factory: AppFactory,
) -> None:
    async with app_factory() as plain:
        _, tokens = await plain.user_with_tokens("ada")
    async with app_factory(jwt_issuer="https://auth.example") as strict:
        assert_problem(await strict.me(tokens["access_token"]), 401, "invalid_token")
        assert_problem(await _refresh(strict, tokens["refresh_token"]), 401, "invalid_token")


# --- Refresh ----------------------------------------------------------------------------


async def test_refresh_rotates_within_the_same_session(api: Api) -> None:
    user, tokens = await api.user_with_tokens("ada")
    response = await _refresh(api, tokens["refresh_token"])
    new = _assert_token_pair(response)
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["access_token"] != tokens["access_token"]
    old_claims, new_claims = claims(tokens["refresh_token"]), claims(new["refresh_token"])
    assert new_claims["sid"] == old_claims["sid"]
    assert new_claims["jti"] != old_claims["jti"]
    assert claims(new["access_token"])["sid"] == old_claims["sid"]
    assert (await api.me(new["access_token"])).json()["id"] == user["id"]
    # The new refresh token rotates in turn.
    _assert_token_pair(await _refresh(api, new["refresh_token"]))


async def test_refresh_reuse_is_401_and_revokes_the_whole_session(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    other_session = await api.login("ada")
    new = _assert_token_pair(await _refresh(api, tokens["refresh_token"]))
    # The rotated token is presented again (a thief's copy).
    reuse = await _refresh(api, tokens["refresh_token"])
    assert_problem(reuse, 401, "invalid_token")
    # The whole family dies: the legitimate new pair too, access and refresh.
    assert_problem(await _refresh(api, new["refresh_token"]), 401, "invalid_token")
    assert_problem(await api.me(new["access_token"]), 401, "invalid_token")
    assert_problem(await api.me(tokens["access_token"]), 401, "invalid_token")
    # Other sessions of the user are untouched.
    assert (await api.me(other_session["access_token"])).status_code == 200
    _assert_token_pair(await _refresh(api, other_session["refresh_token"]))


async def test_refresh_with_a_token_of_a_logged_out_session_is_401(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    assert (await _logout(api, tokens["refresh_token"])).status_code == 204
    assert_problem(await _refresh(api, tokens["refresh_token"]), 401, "invalid_token")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"refresh_token": ""},
        {"refresh_token": None},
        {"refresh_token": 5},
        {"token": "x"},
        {"refresh_token": "x.y.z", "extra": 1},
    ],
    ids=["empty", "empty string", "null", "number", "wrong field", "unknown field"],
)
async def test_refresh_with_a_malformed_body_is_422(api: Api, body: dict[str, Any]) -> None:
    response = await api.client.post(REFRESH, json=body)
    assert_problem(response, 422, "validation_error")


async def test_refresh_with_garbage_is_401(api: Api) -> None:
    assert_problem(await _refresh(api, "garbage"), 401, "invalid_token")


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_refreshes_of_one_token_exactly_one_succeeds(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    responses = await asyncio.gather(*(_refresh(api, tokens["refresh_token"]) for _ in range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 7, [r.text for r in responses]
    for response in responses:
        if response.status_code == 401:
            assert_problem(response, 401, "invalid_token")
        else:
            _assert_token_pair(response)


# --- Logout -----------------------------------------------------------------------------


async def test_logout_is_204_and_ends_the_sessions_access_token_at_once(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    other_session = await api.login("ada")
    response = await _logout(api, tokens["refresh_token"])
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await api.me(tokens["access_token"]), 401, "invalid_token")
    assert_problem(await _refresh(api, tokens["refresh_token"]), 401, "invalid_token")
    assert (await api.me(other_session["access_token"])).status_code == 200


async def test_logout_with_a_rotated_token_ends_the_session(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    new = _assert_token_pair(await _refresh(api, tokens["refresh_token"]))
    assert (await _logout(api, tokens["refresh_token"])).status_code == 204
    assert_problem(await api.me(new["access_token"]), 401, "invalid_token")


async def test_logout_of_an_already_revoked_token_is_204(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    assert (await _logout(api, tokens["refresh_token"])).status_code == 204
    assert (await _logout(api, tokens["refresh_token"])).status_code == 204


async def test_logout_after_logout_all_is_204(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.post(LOGOUT_ALL, headers=bearer(tokens["access_token"]))
    assert response.status_code == 204
    assert (await _logout(api, tokens["refresh_token"])).status_code == 204


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "x" * 4000, "eyJhbGciOiJIUzI1NiJ9.e30.", "Bearer abc"],
    ids=["garbage", "three dots", "long", "empty payload", "with scheme"],
)
async def test_logout_with_a_malformed_token_is_401(api: Api, token: str) -> None:
    assert_problem(await _logout(api, token), 401, "invalid_token")


async def test_logout_with_a_forged_token_is_401_and_ends_nothing(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    forged = sign(claims(tokens["refresh_token"]), key="f" * 64)
    assert_problem(await _logout(api, forged), 401, "invalid_token")
    assert (await api.me(tokens["access_token"])).status_code == 200


async def test_logout_with_an_access_token_is_401_and_ends_nothing(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    assert_problem(await _logout(api, tokens["access_token"]), 401, "invalid_token")
    assert (await api.me(tokens["access_token"])).status_code == 200


async def test_logout_with_a_malformed_body_is_422(api: Api) -> None:
    assert_problem(await api.client.post(LOGOUT, json={}), 422, "validation_error")
    response = await api.client.post(LOGOUT, json={"refresh_token": "x.y.z", "extra": 1})
    assert_problem(response, 422, "validation_error")


async def test_logout_of_a_deleted_users_token_is_204(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    assert (await api.client.delete(ME, headers=bearer(tokens["access_token"]))).status_code == 204
    assert (await _logout(api, tokens["refresh_token"])).status_code == 204


async def test_logout_all_ends_every_session_of_the_user_only(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    second = await api.login("ada")
    _, bob = await api.user_with_tokens("bob")
    response = await api.client.post(LOGOUT_ALL, headers=bearer(tokens["access_token"]))
    assert response.status_code == 204
    assert response.content == b""
    for pair in (tokens, second):
        assert_problem(await api.me(pair["access_token"]), 401, "invalid_token")
        assert_problem(await _refresh(api, pair["refresh_token"]), 401, "invalid_token")
    assert (await api.me(bob["access_token"])).status_code == 200
    # Logging in again works, with the next token version.
    fresh = await api.login("ada")
    assert (await api.me(fresh["access_token"])).status_code == 200
    assert claims(fresh["access_token"])["ver"] == claims(tokens["access_token"])["ver"] + 1


async def test_logout_all_without_a_token_is_401(api: Api) -> None:
    assert_problem(await api.client.post(LOGOUT_ALL), 401, "not_authenticated")


async def test_deactivation_kills_access_and_refresh_tokens(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    await api.services.get(SetActive)("ada", active=False)
    assert_problem(await api.me(tokens["access_token"]), 401, "invalid_token")
    assert_problem(await _refresh(api, tokens["refresh_token"]), 401, "invalid_token")
    # Reactivation does not resurrect the old tokens.
    await api.services.get(SetActive)("ada", active=True)
    assert_problem(await api.me(tokens["access_token"]), 401, "invalid_token")
    assert_problem(await _refresh(api, tokens["refresh_token"]), 401, "invalid_token")
    fresh = await api.login("ada")
    assert (await api.me(fresh["access_token"])).status_code == 200


# --- Logins racing a revocation -----------------------------------------------------------


async def _login_paused_around(api: Api, hasher: GatedHasher, change: Any) -> Any:
    """Start a login, let ``change()`` run while the login is past its password check,
    then let the login finish; returns the login's response."""
    hasher.arm()
    login = asyncio.create_task(
        api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD})
    )
    await hasher.paused.wait()
    try:
        await change()
    finally:
        hasher.release.set()
    return await login


@pytest.mark.parametrize("revocation", ["password change", "logout-all"])
async def test_a_login_racing_a_revocation_keeps_no_working_refresh_token(
    app_factory: AppFactory, revocation: str
) -> None:
    hasher = GatedHasher(**FAST_HASHER)

    def configure(container: Any) -> None:
        container.adapters.hasher.override(providers.Object(hasher))

    async with app_factory(configure=configure) as api:
        await api.register("ada")
        victim = await api.login("ada")

        async def revoke() -> None:
            if revocation == "password change":
                response = await api.client.patch(
                    ME,
                    json={"password": "brand new passphrase", "current_password": PASSWORD},
                    headers=bearer(victim["access_token"]),
                )
            else:
                response = await api.client.post(LOGOUT_ALL, headers=bearer(victim["access_token"]))
            assert response.status_code in {200, 204}, response.text

        raced = await _login_paused_around(api, hasher, revoke)
        if raced.status_code == 200:
            tokens = raced.json()
            assert_problem(await api.me(tokens["access_token"]), 401, "invalid_token")
            assert_problem(await _refresh(api, tokens["refresh_token"]), 401, "invalid_token")
        else:
            assert_problem(raced, 401, "invalid_credentials")


async def test_a_login_racing_account_deletion_is_refused_without_a_500(
    app_factory: AppFactory,
) -> None:
    hasher = GatedHasher(**FAST_HASHER)

    def configure(container: Any) -> None:
        container.adapters.hasher.override(providers.Object(hasher))

    async with app_factory(configure=configure) as api:
        await api.register("ada")
        victim = await api.login("ada")

        async def delete() -> None:
            response = await api.client.delete(ME, headers=bearer(victim["access_token"]))
            assert response.status_code == 204

        raced = await _login_paused_around(api, hasher, delete)
        assert_problem(raced, 401, "invalid_credentials")
