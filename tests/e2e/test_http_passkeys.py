"""Passkeys over HTTP with an authenticator in software (the contract: "Two-factor
authentication"): statuses, bodies and limits. The rules are tested in
tests/unit/test_passkeys.py, the real browser in tests/e2e/test_passkeys_browser.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dependency_injector import providers

from entrypoints.container import Container
from tests.authenticator import SoftAuthenticator
from tests.e2e.conftest import LOGIN, PASSWORD, Api, AppFactory, assert_problem, bearer
from tests.fakes import FakeClock

PASSKEYS = "/api/v1/auth/passkeys"
REGISTRATION_OPTIONS = f"{PASSKEYS}/registration/options"
LOGIN_OPTIONS = f"{PASSKEYS}/authentication/options"
PASSKEY_LOGIN = f"{PASSKEYS}/authentication"
ORIGIN = "http://localhost:3000"  # WEBAUTHN_ORIGINS' default


async def add_passkey(
    api: Api, access_token: str, key: SoftAuthenticator, **body: Any
) -> dict[str, Any]:
    headers = bearer(access_token)
    start = await api.client.post(REGISTRATION_OPTIONS, headers=headers)
    assert start.status_code == 200, start.text
    assert start.headers["cache-control"] == "no-store"
    ceremony = start.json()
    credential = key.create(ceremony["options"])
    response = await api.client.post(
        PASSKEYS,
        json={"challenge_id": ceremony["challenge_id"], "credential": credential, **body},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_add_list_rename_and_remove_a_passkey(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    headers = bearer(tokens["access_token"])
    key = SoftAuthenticator(ORIGIN)

    added = await add_passkey(api, tokens["access_token"], key, name="Laptop")
    assert set(added) == {"id", "name", "created_at", "last_used_at", "backed_up"}
    assert (added["name"], added["last_used_at"], added["backed_up"]) == ("Laptop", None, False)
    status = await api.client.get("/api/v1/auth/mfa", headers=headers)
    assert status.json() == {"totp": False, "passkeys": 1, "recovery_codes_left": 0}

    renamed = await api.client.patch(
        f"{PASSKEYS}/{added['id']}", json={"name": "Work laptop"}, headers=headers
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Work laptop"
    listed = await api.client.get(PASSKEYS, headers=headers)
    assert [p["name"] for p in listed.json()] == ["Work laptop"]

    # Recovery codes, made by hand for a passkey-first user, go with the last factor.
    codes = await api.client.post("/api/v1/auth/mfa/recovery-codes", headers=headers)
    assert len(codes.json()["recovery_codes"]) == 10
    assert (
        await api.client.delete(f"{PASSKEYS}/{added['id']}", headers=headers)
    ).status_code == 204
    status = await api.client.get("/api/v1/auth/mfa", headers=headers)
    assert status.json() == {"totp": False, "passkeys": 0, "recovery_codes_left": 0}
    missing = await api.client.delete(f"{PASSKEYS}/{added['id']}", headers=headers)
    assert_problem(missing, 404, "not_found")


async def test_a_passkey_registered_twice_is_409(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    key = SoftAuthenticator(ORIGIN)
    await add_passkey(api, tokens["access_token"], key)
    headers = bearer(tokens["access_token"])
    ceremony = (await api.client.post(REGISTRATION_OPTIONS, headers=headers)).json()
    response = await api.client.post(
        PASSKEYS,
        json={
            "challenge_id": ceremony["challenge_id"],
            "credential": key.create(ceremony["options"]),
        },
        headers=headers,
    )
    assert_problem(response, 409, "passkey_already_registered")


async def test_a_passkey_logs_in_alone_and_a_wrong_one_is_401(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    key = SoftAuthenticator(ORIGIN)
    await add_passkey(api, tokens["access_token"], key)

    ceremony = (await api.client.post(LOGIN_OPTIONS, json={})).json()
    assertion = key.get(ceremony["options"])
    body = {"challenge_id": ceremony["challenge_id"], "credential": assertion}
    response = await api.client.post(PASSKEY_LOGIN, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert (await api.me(response.json()["access_token"])).status_code == 200

    # The same assertion again: its challenge is used.
    assert_problem(await api.client.post(PASSKEY_LOGIN, json=body), 401, "invalid_passkey")
    ceremony = (await api.client.post(LOGIN_OPTIONS, json={})).json()
    wrong = key.get(ceremony["options"], origin="http://evil.example")
    response = await api.client.post(
        PASSKEY_LOGIN, json={"challenge_id": ceremony["challenge_id"], "credential": wrong}
    )
    assert_problem(response, 401, "invalid_passkey")


async def test_a_passkey_as_the_second_step(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    key = SoftAuthenticator(ORIGIN)
    await add_passkey(api, tokens["access_token"], key)

    first = await api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD})
    step = assert_problem(first, 403, "mfa_required")
    assert step["methods"] == ["passkey"]
    ceremony = await api.client.post(LOGIN_OPTIONS, json={"mfa_token": step["mfa_token"]})
    assert ceremony.status_code == 200, ceremony.text
    options = ceremony.json()
    assert len(options["options"]["allowCredentials"]) == 1
    response = await api.client.post(
        "/api/v1/auth/login/mfa",
        json={
            "mfa_token": step["mfa_token"],
            "challenge_id": options["challenge_id"],
            "credential": key.get(options["options"]),
        },
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (LOGIN_OPTIONS, {"mfa_token": None}),
        (LOGIN_OPTIONS, {"other": 1}),
        (PASSKEY_LOGIN, {"challenge_id": "x"}),
        (PASSKEY_LOGIN, {"challenge_id": "x", "credential": "not an object"}),
        ("/api/v1/auth/login/mfa", {"mfa_token": "t", "challenge_id": "x"}),
    ],
)
async def test_malformed_passkey_bodies_are_422(api: Api, path: str, body: dict[str, Any]) -> None:
    assert_problem(await api.client.post(path, json=body), 422, "validation_error")


async def test_an_unknown_login_step_token_gets_no_passkey_options(api: Api) -> None:
    response = await api.client.post(LOGIN_OPTIONS, json={"mfa_token": "x" * 43})
    assert_problem(response, 401, "invalid_token")


async def test_passkey_logins_are_limited_per_ip(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True, rate_limit_mfa="2/minute") as api:
        for _ in range(2):
            assert (await api.client.post(LOGIN_OPTIONS, json={})).status_code == 200
        assert_problem(await api.client.post(LOGIN_OPTIONS, json={}), 429, "rate_limited")
        assert_problem(
            await api.client.post(PASSKEY_LOGIN, json={"challenge_id": "x", "credential": {}}),
            429,
            "rate_limited",
        )


async def test_adding_a_passkey_needs_a_recent_authentication(app_factory: AppFactory) -> None:
    async with app_factory(reauth_window_minutes=1) as api:
        _, tokens = await api.user_with_tokens("ada")
        later = FakeClock(datetime.now(UTC) + timedelta(minutes=2))
        api.container.adapters.clock.override(providers.Object(later))
        headers = bearer(tokens["access_token"])
        response = await api.client.post(REGISTRATION_OPTIONS, headers=headers)
        assert_problem(response, 403, "reauthentication_required")
        assert (await api.client.get(PASSKEYS, headers=headers)).status_code == 200


@pytest.mark.parametrize(
    "wrong",
    [
        "origin",
        "rp_id",
        "replayed_assertion",
        "reused_challenge",
        "expired_challenge",
        "counter_backwards",
    ],
)
async def test_each_wrong_passkey_login_is_401_invalid_passkey(
    app_factory: AppFactory, wrong: str
) -> None:
    clock = FakeClock(datetime.now(UTC))

    def with_clock(container: Container) -> None:
        container.adapters.clock.override(providers.Object(clock))

    async with app_factory(configure=with_clock) as api:
        _, tokens = await api.user_with_tokens("ada")
        key = SoftAuthenticator(ORIGIN)
        await add_passkey(api, tokens["access_token"], key)

        async def attempt(**tamper: Any) -> httpx.Response:
            ceremony = (await api.client.post(LOGIN_OPTIONS, json={})).json()
            credential = key.get(ceremony["options"], **tamper)
            body = {"challenge_id": ceremony["challenge_id"], "credential": credential}
            answer: httpx.Response = await api.client.post(PASSKEY_LOGIN, json=body)
            return answer

        ceremony = (await api.client.post(LOGIN_OPTIONS, json={})).json()
        first = key.get(ceremony["options"])
        used = {"challenge_id": ceremony["challenge_id"], "credential": first}
        assert (await api.client.post(PASSKEY_LOGIN, json=used)).status_code == 200

        if wrong == "origin":
            response = await attempt(origin="https://evil.example")
        elif wrong == "rp_id":
            response = await attempt(rp_id="evil.example")
        elif wrong == "replayed_assertion":
            response = await api.client.post(PASSKEY_LOGIN, json=used)
        elif wrong == "reused_challenge":
            again = {**used, "credential": key.get(ceremony["options"])}
            response = await api.client.post(PASSKEY_LOGIN, json=again)
        elif wrong == "expired_challenge":
            late = (await api.client.post(LOGIN_OPTIONS, json={})).json()
            clock.advance(minutes=5)
            credential = key.get(late["options"])
            body = {"challenge_id": late["challenge_id"], "credential": credential}
            response = await api.client.post(PASSKEY_LOGIN, json=body)
        else:
            response = await attempt(sign_count=1)  # it was 1 at the login above
        assert_problem(response, 401, "invalid_passkey")
        # And the right one still works.
        assert (await attempt()).status_code == 200
