"""Two-factor authentication over HTTP (the contract: "Two-factor authentication"):
TOTP set-up with a real authenticator's algorithm (pyotp as the phone), the two-step
login, recovery codes, re-authentication with a factor, and the admin's reset."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pyotp
import pytest
from dependency_injector import providers

from entrypoints.container import Container
from tests.e2e.conftest import (
    LOGIN,
    ME,
    PASSWORD,
    REAUTHENTICATE,
    TOKEN_PAIR_FIELDS,
    Api,
    AppFactory,
    assert_problem,
    bearer,
)
from tests.e2e.test_http_admin import make_admin
from tests.fakes import FakeClock

MFA = "/api/v1/auth/mfa"
TOTP = f"{MFA}/totp"
CONFIRM = f"{TOTP}/confirm"
RECOVERY_CODES = f"{MFA}/recovery-codes"
LOGIN_MFA = "/api/v1/auth/login/mfa"


class Phone:
    """The authenticator app: pyotp over the secret, on the server's (fake) clock."""

    def __init__(self, secret: str, clock: FakeClock) -> None:
        self.totp = pyotp.TOTP(secret)
        self.clock = clock

    def code(self) -> str:
        return self.totp.at(self.clock.now())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture
async def mfa_api(app_factory: AppFactory, clock: FakeClock) -> AsyncIterator[Api]:
    def with_clock(container: Container) -> None:
        container.adapters.clock.override(providers.Object(clock))

    async with app_factory(configure=with_clock) as api:
        yield api


async def turn_on_totp(api: Api, access_token: str, clock: FakeClock) -> tuple[Phone, list[str]]:
    headers = bearer(access_token)
    response = await api.client.post(TOTP, headers=headers)
    assert response.status_code == 200, response.text
    phone = Phone(response.json()["secret"], clock)
    response = await api.client.post(CONFIRM, json={"code": phone.code()}, headers=headers)
    assert response.status_code == 200, response.text
    # The confirmation used this step's code: the next login waits for the next one.
    clock.advance(seconds=30)
    return phone, response.json()["recovery_codes"]


async def first_step(api: Api, username: str = "ada") -> dict[str, Any]:
    response = await api.client.post(LOGIN, data={"username": username, "password": PASSWORD})
    return assert_problem(response, 403, "mfa_required")


async def test_a_user_without_a_factor_has_none_and_logs_in_in_one_step(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.get(MFA, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.text
    assert response.json() == {"totp": False, "passkeys": 0, "recovery_codes_left": 0}


async def test_totp_set_up_then_a_two_step_login(mfa_api: Api, clock: FakeClock) -> None:
    api = mfa_api
    _, tokens = await api.user_with_tokens("ada")
    headers = bearer(tokens["access_token"])

    response = await api.client.post(TOTP, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    setup = response.json()
    assert set(setup) == {"secret", "otpauth_uri"}
    assert setup["otpauth_uri"].startswith("otpauth://totp/Backend%20Template:ada?")
    # Pending: not in force until confirmed.
    assert (await api.client.get(MFA, headers=headers)).json()["totp"] is False

    phone = Phone(setup["secret"], clock)
    response = await api.client.post(CONFIRM, json={"code": phone.code()}, headers=headers)
    assert response.status_code == 200, response.text
    codes = response.json()["recovery_codes"]
    assert len(codes) == 10
    response = await api.client.get(MFA, headers=headers)
    assert response.json() == {"totp": True, "passkeys": 0, "recovery_codes_left": 10}

    clock.advance(seconds=30)
    body = await first_step(api)
    assert body["methods"] == ["totp", "recovery_code"]
    assert len(body["mfa_token"]) >= 43
    assert body["error"] == "mfa_required"  # the token endpoint's OAuth2 member

    response = await api.client.post(
        LOGIN_MFA, json={"mfa_token": body["mfa_token"], "code": phone.code()}
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == TOKEN_PAIR_FIELDS
    assert response.headers["cache-control"] == "no-store"
    assert (await api.me(response.json()["access_token"])).status_code == 200

    # The token was used; the code too.
    response = await api.client.post(
        LOGIN_MFA, json={"mfa_token": body["mfa_token"], "code": phone.code()}
    )
    assert_problem(response, 401, "invalid_token")
    again = await first_step(api)
    response = await api.client.post(
        LOGIN_MFA, json={"mfa_token": again["mfa_token"], "code": phone.code()}
    )
    assert_problem(response, 401, "invalid_mfa_code")


async def test_a_json_login_gets_the_same_step_and_a_wrong_password_says_nothing_of_it(
    mfa_api: Api, clock: FakeClock
) -> None:
    _, tokens = await mfa_api.user_with_tokens("ada")
    await turn_on_totp(mfa_api, tokens["access_token"], clock)

    response = await mfa_api.client.post(LOGIN, json={"username": "ada", "password": PASSWORD})
    assert assert_problem(response, 403, "mfa_required")["mfa_token"]
    response = await mfa_api.client.post(LOGIN, json={"username": "ada", "password": "wrong"})
    body = assert_problem(response, 401, "invalid_credentials")
    assert "mfa_token" not in body
    assert "methods" not in body


async def test_a_recovery_code_logs_in_once(mfa_api: Api, clock: FakeClock) -> None:
    api = mfa_api
    _, tokens = await api.user_with_tokens("ada")
    _, codes = await turn_on_totp(api, tokens["access_token"], clock)

    step = await first_step(api)
    typed = codes[3].upper().replace("-", " ")
    response = await api.client.post(
        LOGIN_MFA, json={"mfa_token": step["mfa_token"], "recovery_code": typed}
    )
    assert response.status_code == 200, response.text
    headers = bearer(response.json()["access_token"])
    assert (await api.client.get(MFA, headers=headers)).json()["recovery_codes_left"] == 9

    step = await first_step(api)
    response = await api.client.post(
        LOGIN_MFA, json={"mfa_token": step["mfa_token"], "recovery_code": codes[3]}
    )
    assert_problem(response, 401, "invalid_mfa_code")


async def test_five_wrong_codes_kill_the_login_step(mfa_api: Api, clock: FakeClock) -> None:
    api = mfa_api
    _, tokens = await api.user_with_tokens("ada")
    phone, _ = await turn_on_totp(api, tokens["access_token"], clock)
    step = await first_step(api)
    for _ in range(5):
        response = await api.client.post(
            LOGIN_MFA, json={"mfa_token": step["mfa_token"], "code": "000000"}
        )
        assert_problem(response, 401, "invalid_mfa_code")
    response = await api.client.post(
        LOGIN_MFA, json={"mfa_token": step["mfa_token"], "code": phone.code()}
    )
    assert_problem(response, 401, "invalid_token")


async def test_a_login_step_token_expires_after_five_minutes(
    mfa_api: Api, clock: FakeClock
) -> None:
    _, tokens = await mfa_api.user_with_tokens("ada")
    phone, _ = await turn_on_totp(mfa_api, tokens["access_token"], clock)
    step = await first_step(mfa_api)
    clock.advance(minutes=5)
    response = await mfa_api.client.post(
        LOGIN_MFA, json={"mfa_token": step["mfa_token"], "code": phone.code()}
    )
    assert_problem(response, 401, "invalid_token")


@pytest.mark.parametrize(
    "body",
    [
        {"mfa_token": "t"},
        {"mfa_token": "t", "code": "123456", "recovery_code": "aaaaa-aaaaa"},
        {"mfa_token": "t", "code": None},
        {"code": "123456"},
        {"mfa_token": "t", "code": "123456", "extra": 1},
    ],
)
async def test_a_malformed_second_step_is_422(api: Api, body: dict[str, Any]) -> None:
    assert_problem(await api.client.post(LOGIN_MFA, json=body), 422, "validation_error")


async def test_an_unknown_login_step_token_is_401(api: Api) -> None:
    response = await api.client.post(LOGIN_MFA, json={"mfa_token": "x" * 43, "code": "123456"})
    assert_problem(response, 401, "invalid_token")


async def test_the_second_step_is_limited_per_ip(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True, rate_limit_mfa="2/minute") as api:
        for _ in range(2):
            response = await api.client.post(
                LOGIN_MFA, json={"mfa_token": "x" * 43, "code": "123456"}
            )
            assert_problem(response, 401, "invalid_token")
        response = await api.client.post(LOGIN_MFA, json={"mfa_token": "x" * 43, "code": "1"})
        assert_problem(response, 429, "rate_limited")


async def test_changing_totp_needs_a_recent_authentication(mfa_api: Api, clock: FakeClock) -> None:
    _, tokens = await mfa_api.user_with_tokens("ada")
    headers = bearer(tokens["access_token"])
    clock.advance(minutes=11)
    for method, path in (("POST", TOTP), ("DELETE", TOTP), ("POST", RECOVERY_CODES)):
        response = await mfa_api.client.request(method, path, headers=headers)
        assert_problem(response, 403, "reauthentication_required")
    response = await mfa_api.client.post(CONFIRM, json={"code": "123456"}, headers=headers)
    assert_problem(response, 403, "reauthentication_required")
    assert (await mfa_api.client.get(MFA, headers=headers)).status_code == 200


async def test_set_up_refusals(mfa_api: Api, clock: FakeClock) -> None:
    api = mfa_api
    _, tokens = await api.user_with_tokens("ada")
    headers = bearer(tokens["access_token"])
    response = await api.client.post(CONFIRM, json={"code": "123456"}, headers=headers)
    assert_problem(response, 409, "mfa_not_enabled")
    assert_problem(await api.client.delete(TOTP, headers=headers), 409, "mfa_not_enabled")
    assert_problem(await api.client.post(RECOVERY_CODES, headers=headers), 409, "mfa_not_enabled")
    assert (await api.client.post(TOTP, headers=headers)).status_code == 200
    response = await api.client.post(CONFIRM, json={"code": "000000"}, headers=headers)
    assert_problem(response, 401, "invalid_mfa_code")
    assert (await api.client.get(MFA, headers=headers)).json()["totp"] is False

    await turn_on_totp(api, tokens["access_token"], clock)
    assert_problem(await api.client.post(TOTP, headers=headers), 409, "mfa_already_enabled")


async def test_new_recovery_codes_and_turning_totp_off(mfa_api: Api, clock: FakeClock) -> None:
    api = mfa_api
    _, tokens = await api.user_with_tokens("ada")
    headers = bearer(tokens["access_token"])
    _, old = await turn_on_totp(api, tokens["access_token"], clock)

    response = await api.client.post(RECOVERY_CODES, headers=headers)
    assert response.status_code == 200, response.text
    new = response.json()["recovery_codes"]
    assert len(new) == 10
    assert not set(new) & set(old)

    assert (await api.client.delete(TOTP, headers=headers)).status_code == 204
    response = await api.client.get(MFA, headers=headers)
    assert response.json() == {"totp": False, "passkeys": 0, "recovery_codes_left": 0}
    assert (
        await api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD})
    ).status_code == 200


async def test_reauthentication_of_a_user_with_totp_needs_the_code(
    mfa_api: Api, clock: FakeClock
) -> None:
    api = mfa_api
    _, tokens = await api.user_with_tokens("ada")
    headers = bearer(tokens["access_token"])
    phone, _ = await turn_on_totp(api, tokens["access_token"], clock)

    response = await api.client.post(REAUTHENTICATE, json={"password": PASSWORD}, headers=headers)
    body = assert_problem(response, 403, "mfa_required")
    assert body["methods"] == ["totp", "recovery_code"]
    assert "mfa_token" not in body
    response = await api.client.post(
        REAUTHENTICATE, json={"password": PASSWORD, "code": "000000"}, headers=headers
    )
    assert_problem(response, 401, "invalid_mfa_code")
    response = await api.client.post(
        REAUTHENTICATE, json={"password": PASSWORD, "code": phone.code()}, headers=headers
    )
    assert response.status_code == 204, response.text


async def test_an_admin_resets_a_users_factors(mfa_api: Api, clock: FakeClock) -> None:
    api = mfa_api
    admin = await make_admin(api)
    ada, tokens = await api.user_with_tokens("ada")
    await turn_on_totp(api, tokens["access_token"], clock)

    path = f"/api/v1/admin/users/{ada['id']}/mfa"
    assert_problem(
        await api.client.delete(path, headers=bearer(tokens["access_token"])), 403, "forbidden"
    )
    response = await api.client.delete(path, headers=admin.headers)
    assert response.status_code == 204, response.text

    # Sessions ended; the password alone logs in again.
    assert_problem(await api.me(tokens["access_token"]), 401, "invalid_token")
    fresh = await api.login("ada")
    response = await api.client.get(MFA, headers=bearer(fresh["access_token"]))
    assert response.json() == {"totp": False, "passkeys": 0, "recovery_codes_left": 0}
    response = await api.client.get(
        "/api/v1/admin/audit-events",
        params={"target_user_id": ada["id"]},
        headers=bearer((await api.login("root"))["access_token"]),
    )
    assert [e["action"] for e in response.json()["items"]][:1] == ["mfa.reset_by_admin"]
    unknown = "/api/v1/admin/users/999999/mfa"
    assert_problem(await api.client.delete(unknown, headers=admin.headers), 404, "not_found")


async def test_me_still_works_for_the_session_opened_by_the_second_step(
    mfa_api: Api, clock: FakeClock
) -> None:
    _, tokens = await mfa_api.user_with_tokens("ada")
    phone, _ = await turn_on_totp(mfa_api, tokens["access_token"], clock)
    step = await first_step(mfa_api)
    response = await mfa_api.client.post(
        LOGIN_MFA,
        json={"mfa_token": step["mfa_token"], "code": phone.code()},
        headers={"User-Agent": "curl/8"},
    )
    assert response.status_code == 200, response.text
    sessions = await mfa_api.client.get(
        "/api/v1/auth/sessions", headers=bearer(response.json()["access_token"])
    )
    assert {s["user_agent"] for s in sessions.json()} >= {"curl/8"}
    assert (
        await mfa_api.client.get(ME, headers=bearer(response.json()["access_token"]))
    ).status_code == 200


async def test_one_code_sent_to_two_login_steps_at_once_opens_one_session(
    mfa_api: Api, clock: FakeClock
) -> None:
    _, tokens = await mfa_api.user_with_tokens("ada")
    phone, _ = await turn_on_totp(mfa_api, tokens["access_token"], clock)
    steps = [await first_step(mfa_api), await first_step(mfa_api)]
    code = phone.code()

    responses = await asyncio.gather(
        *(
            mfa_api.client.post(LOGIN_MFA, json={"mfa_token": step["mfa_token"], "code": code})
            for step in steps
        )
    )

    assert sorted(r.status_code for r in responses) == [200, 401]
    refused = next(r for r in responses if r.status_code == 401)
    assert_problem(refused, 401, "invalid_mfa_code")
