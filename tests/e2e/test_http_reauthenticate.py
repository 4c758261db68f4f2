"""``POST /api/v1/auth/reauthenticate`` and the recent-authentication check (the HTTP
contract: "Recent authentication")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from dependency_injector import providers
from fastapi import Depends

from domain.model import Principal
from entrypoints.container import Container
from entrypoints.http.dependencies import recent_principal
from tests.e2e.conftest import (
    LOGIN,
    LOGOUT_ALL,
    PASSWORD,
    REAUTHENTICATE,
    Api,
    AppFactory,
    assert_problem,
    bearer,
)
from tests.fakes import FakeClock

RECENT_ONLY = "/test/recent-only"


async def test_the_right_password_answers_204(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.post(
        REAUTHENTICATE, json={"password": PASSWORD}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 204, response.text
    assert response.content == b""


async def test_a_wrong_password_is_403_and_counts_like_a_failed_login(
    app_factory: AppFactory,
) -> None:
    async with app_factory(
        rate_limit_enabled=True, rate_limit_login="100/minute", rate_limit_login_account="3/hour"
    ) as api:
        _, tokens = await api.user_with_tokens("ada")
        headers = bearer(tokens["access_token"])
        for _ in range(3):
            response = await api.client.post(
                REAUTHENTICATE, json={"password": "wrong"}, headers=headers
            )
            assert_problem(response, 403, "wrong_password")
        response = await api.client.post(
            REAUTHENTICATE, json={"password": PASSWORD}, headers=headers
        )
        assert_problem(response, 429, "rate_limited")
        # The same account's count as at login.
        response = await api.client.post(LOGIN, json={"username": "ada", "password": PASSWORD})
        assert_problem(response, 429, "rate_limited")


async def test_without_a_live_session_it_is_401(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    headers = bearer(tokens["access_token"])
    response = await api.client.post(REAUTHENTICATE, json={"password": PASSWORD})
    assert_problem(response, 401, "not_authenticated")
    assert (await api.client.post(LOGOUT_ALL, headers=headers)).status_code == 204
    response = await api.client.post(REAUTHENTICATE, json={"password": PASSWORD}, headers=headers)
    assert_problem(response, 401, "invalid_token")


async def test_a_body_without_the_password_is_422(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.post(
        REAUTHENTICATE, json={"pass": PASSWORD}, headers=bearer(tokens["access_token"])
    )
    assert_problem(response, 422, "validation_error")


async def test_an_operation_that_needs_it_is_403_after_the_window_until_reauthentication(
    app_factory: AppFactory,
) -> None:
    clock = FakeClock(datetime.now(UTC))

    def with_clock(container: Container) -> None:
        container.adapters.clock.override(providers.Object(clock))

    async with app_factory(configure=with_clock, reauth_window_minutes=10) as api:

        async def recent_only(
            principal: Annotated[Principal, Depends(recent_principal)],
        ) -> dict[str, int]:
            return {"user": principal.user_id}

        api.app.add_api_route(RECENT_ONLY, recent_only, methods=["GET"])
        _, tokens = await api.user_with_tokens("ada")
        headers = bearer(tokens["access_token"])

        assert (await api.client.get(RECENT_ONLY, headers=headers)).status_code == 200
        clock.advance(minutes=10, seconds=1)
        response = await api.client.get(RECENT_ONLY, headers=headers)
        body = assert_problem(response, 403, "reauthentication_required")
        assert "/api/v1/auth/reauthenticate" in body["detail"]

        response = await api.client.post(
            REAUTHENTICATE, json={"password": PASSWORD}, headers=headers
        )
        assert response.status_code == 204, response.text
        assert (await api.client.get(RECENT_ONLY, headers=headers)).status_code == 200
