"""The token endpoint speaks OAuth2 (RFC 6749) to stock clients, unchanged: Authlib and
requests-oauthlib log in, refresh, and see every failure as an OAuth2 error (never a
problem document taken for a token) against a live ``app serve``; and every error of
``/login`` and ``/refresh`` carries the ``error`` member."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from oauthlib.oauth2 import InvalidGrantError, LegacyApplicationClient
from requests_oauthlib import OAuth2Session as RequestsOAuthSession

from tests.e2e.conftest import (
    LOGIN,
    ME,
    PASSWORD,
    REFRESH,
    SECRET_KEY,
    Api,
    AppFactory,
    assert_problem,
    bearer,
)
from tests.e2e.servers import Server, running


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    async with running("oauth2", env, tmp_path) as live:
        async with httpx.AsyncClient(base_url=live.url) as client:
            body = {"email": "ada@example.com", "username": "ada", "password": PASSWORD}
            assert (await client.post("/api/v1/users/", json=body)).status_code == 201
        yield live


def test_authlib_logs_in_refreshes_and_sees_each_failure_as_an_oauth2_error(
    server: Server,
) -> None:
    token_url = server.url + LOGIN
    client = AuthlibSession(client_id="a-script", token_endpoint_auth_method="none")

    token = client.fetch_token(token_url, username="ada", password=PASSWORD)

    assert token["token_type"] == "bearer"
    assert client.get(server.url + ME).json()["username"] == "ada"
    # Refreshing at the token URL (the grant) and at /refresh (its twin), with the form.
    for url in (token_url, server.url + REFRESH):
        previous = client.token["refresh_token"]
        refreshed = client.refresh_token(url)
        assert refreshed["refresh_token"] != previous
        assert client.get(server.url + ME).status_code == 200

    kept = dict(client.token)
    with pytest.raises(OAuthError) as wrong:
        AuthlibSession(client_id="a-script", token_endpoint_auth_method="none").fetch_token(
            token_url, username="ada", password="not the password"
        )
    assert wrong.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as failed:
        client.refresh_token(token_url, refresh_token="not.a.token")
    assert failed.value.error == "invalid_grant"
    assert client.token == kept  # a failed refresh never replaces the stored token
    with pytest.raises(OAuthError) as unsupported:
        client.fetch_token(token_url, grant_type="client_credentials")
    assert unsupported.value.error == "unsupported_grant_type"


def test_requests_oauthlib_logs_in_refreshes_and_sees_a_wrong_password_as_invalid_grant(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # a plain-HTTP test server
    token_url = server.url + LOGIN
    session = RequestsOAuthSession(client=LegacyApplicationClient(client_id="a-script"))

    token = session.fetch_token(token_url, username="ada", password=PASSWORD)

    assert session.get(server.url + ME).json()["username"] == "ada"
    refreshed = session.refresh_token(token_url, refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    with pytest.raises(InvalidGrantError):
        RequestsOAuthSession(client=LegacyApplicationClient(client_id="a-script")).fetch_token(
            token_url, username="ada", password="not the password"
        )
    with pytest.raises(InvalidGrantError):
        session.refresh_token(token_url, refresh_token=token["refresh_token"])  # reused


# --- every error of the token endpoints names its OAuth2 error ------------------------


def assert_oauth2_problem(
    response: httpx.Response, status: int, code: str, error: str
) -> dict[str, Any]:
    body = assert_problem(response, status, code)
    assert body["error"] == error, body
    assert body["error_description"] == body["detail"]
    return body


async def test_every_error_of_the_token_endpoints_carries_the_oauth2_error_member(
    api: Api,
) -> None:
    await api.register("ada")
    tokens = await api.login("ada")
    client = api.client

    wrong = await client.post(LOGIN, data={"username": "ada", "password": "nope-nope"})
    assert_oauth2_problem(wrong, 401, "invalid_credentials", "invalid_grant")
    for url in (LOGIN, REFRESH):
        form = {"grant_type": "refresh_token", "refresh_token": "x.y.z"}
        bad = await client.post(url, data=form)
        assert_oauth2_problem(bad, 401, "invalid_token", "invalid_grant")
        grant = await client.post(url, data={"grant_type": "client_credentials"})
        assert_oauth2_problem(grant, 400, "unsupported_grant_type", "unsupported_grant_type")
        empty = await client.post(url, json={})
        assert_oauth2_problem(empty, 422, "validation_error", "invalid_request")
    password_at_refresh = await client.post(
        REFRESH, data={"grant_type": "password", "username": "ada", "password": PASSWORD}
    )
    assert_oauth2_problem(
        password_at_refresh, 400, "unsupported_grant_type", "unsupported_grant_type"
    )
    missing = await client.post(LOGIN, data={"grant_type": "refresh_token"})
    body = assert_oauth2_problem(missing, 422, "validation_error", "invalid_request")
    assert body["errors"][0]["loc"] == ["body", "refresh_token"]

    # Other endpoints speak problem details alone.
    other = await client.post("/api/v1/auth/logout", json={"refresh_token": "x.y.z"})
    assert "error" not in assert_problem(other, 401, "invalid_token")
    assert (await api.me(tokens["access_token"])).status_code == 200


async def test_a_form_refresh_at_either_url_rotates_like_a_json_one(api: Api) -> None:
    await api.register("ada")
    first = await api.login("ada")

    by_grant = await api.client.post(
        LOGIN, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert by_grant.status_code == 200, by_grant.text
    assert by_grant.headers["cache-control"] == "no-store"
    second = by_grant.json()
    by_form = await api.client.post(REFRESH, data={"refresh_token": second["refresh_token"]})
    assert by_form.status_code == 200, by_form.text
    # The first token was rotated: presenting it again is reuse, and ends the session.
    reused = await api.client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert_oauth2_problem(reused, 401, "invalid_token", "invalid_grant")
    assert (await api.me(by_form.json()["access_token"])).status_code == 401


async def test_limits_and_outages_of_the_token_endpoint_are_invalid_request(
    app_factory: AppFactory,
) -> None:
    async with app_factory(rate_limit_enabled=True, rate_limit_login="1/minute") as api:
        form = {"username": "nobody", "password": "whatever-it-is"}
        await api.client.post(LOGIN, data=form)
        limited = await api.client.post(LOGIN, data=form)
        assert_oauth2_problem(limited, 429, "rate_limited", "invalid_request")
        # A bearer token sent along to the token endpoint changes nothing.
        sent = await api.client.post(LOGIN, data=form, headers=bearer("x"))
        assert_oauth2_problem(sent, 429, "rate_limited", "invalid_request")
