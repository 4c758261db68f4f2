"""Passkeys in a real browser: Debian's Chromium, driven by Playwright, with Chromium's
virtual authenticator (the DevTools protocol's ``WebAuthn`` domain: a platform
authenticator with resident keys and user verification). From a page of the API's own
origin: register a passkey, log out, log in with the passkey alone, then use it as the
second step of a password login.

Where Chromium is not installed these tests skip, saying so; ``.ci/run`` installs it
(``apt-get install chromium``), so CI runs them. Playwright never downloads a browser
here: it launches ``/usr/bin/chromium``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import CDPSession, Page, async_playwright

from tests.e2e.conftest import LOGIN, LOGOUT, ME, PASSWORD, SECRET_KEY, bearer
from tests.e2e.servers import free_port, running

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and os.environ.get("TEST_REQUIRE_CHROMIUM"):
    # CI installs it and must not skip these tests silently.
    raise RuntimeError("TEST_REQUIRE_CHROMIUM is set, and /usr/bin/chromium is missing")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's Chromium is not installed (apt-get install chromium); .ci/run installs it",
)

REGISTER = """
async ({token}) => {
  const headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"};
  const start = await (await fetch("/api/v1/auth/passkeys/registration/options",
                                   {method: "POST", headers})).json();
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(start.options);
  const credential = await navigator.credentials.create({publicKey});
  const body = {challenge_id: start.challenge_id, credential: credential.toJSON()};
  const done = await fetch("/api/v1/auth/passkeys", {method: "POST", headers,
                                                     body: JSON.stringify(body)});
  return {status: done.status, body: await done.json()};
}
"""

# With ``mfaToken``: the options for the second step, and the assertion goes to
# /login/mfa; without: a passwordless login.
AUTHENTICATE = """
async ({mfaToken}) => {
  const headers = {"Content-Type": "application/json"};
  const ask = mfaToken ? {mfa_token: mfaToken} : {};
  const start = await (await fetch("/api/v1/auth/passkeys/authentication/options",
                                   {method: "POST", headers, body: JSON.stringify(ask)})).json();
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(start.options);
  const credential = await navigator.credentials.get({publicKey});
  const body = {challenge_id: start.challenge_id, credential: credential.toJSON()};
  if (mfaToken) body.mfa_token = mfaToken;
  const url = mfaToken ? "/api/v1/auth/login/mfa" : "/api/v1/auth/passkeys/authentication";
  const done = await fetch(url, {method: "POST", headers, body: JSON.stringify(body)});
  return {status: done.status, body: await done.json(),
          allowed: start.options.allowCredentials.length};
}
"""


@pytest.fixture
async def origin(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A live API whose relying party is ``localhost`` on its own origin."""
    port = free_port()
    origin = f"http://localhost:{port}"
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "WEBAUTHN_RP_ID": "localhost",
        "WEBAUTHN_ORIGINS": json.dumps([origin]),
    }
    async with running("passkeys", env, tmp_path, port=port):
        yield origin


@pytest.fixture
async def browser_page(origin: str) -> AsyncIterator[tuple[Page, CDPSession, str]]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            context = await browser.new_context()
            page = await context.new_page()
            devtools = await context.new_cdp_session(page)
            await devtools.send("WebAuthn.enable")
            added = await devtools.send(
                "WebAuthn.addVirtualAuthenticator",
                {
                    "options": {
                        "protocol": "ctap2",
                        "transport": "internal",
                        "hasResidentKey": True,
                        "hasUserVerification": True,
                        "isUserVerified": True,
                        "automaticPresenceSimulation": True,
                    }
                },
            )
            # A page of the API's origin: the ceremonies run there.
            response = await page.goto(origin + "/health/live")
            assert response is not None
            assert response.ok
            yield page, devtools, added["authenticatorId"]
        finally:
            await browser.close()


async def run(page: Page, script: str, arg: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(script, arg)
    return result


async def test_register_a_passkey_then_log_in_with_it_alone_and_as_a_second_step(
    origin: str, browser_page: tuple[Page, CDPSession, str]
) -> None:
    page, devtools, authenticator = browser_page
    async with httpx.AsyncClient(base_url=origin.replace("localhost", "127.0.0.1")) as api:
        body = {"email": "ada@example.com", "username": "ada", "password": PASSWORD}
        assert (await api.post("/api/v1/users/", json=body)).status_code == 201
        login = await api.post(LOGIN, data={"username": "ada", "password": PASSWORD})
        tokens = login.json()

        registered = await run(page, REGISTER, {"token": tokens["access_token"]})
        assert registered["status"] == 201, registered
        assert set(registered["body"]) == {"id", "name", "created_at", "last_used_at", "backed_up"}
        # A discoverable credential for this RP, held by the (virtual) authenticator.
        held = await devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        (credential,) = held["credentials"]
        assert credential["isResidentCredential"] is True
        assert credential["rpId"] == "localhost"
        listed = await api.get("/api/v1/auth/passkeys", headers=bearer(tokens["access_token"]))
        assert [p["id"] for p in listed.json()] == [registered["body"]["id"]]

        # Log out; the passkey alone logs in (discoverable: no user named).
        out = await api.post(LOGOUT, json={"refresh_token": tokens["refresh_token"]})
        assert out.status_code == 204
        alone = await run(page, AUTHENTICATE, {"mfaToken": None})
        assert alone["status"] == 200, alone
        assert alone["allowed"] == 0
        me = await api.get(ME, headers=bearer(alone["body"]["access_token"]))
        assert me.json()["username"] == "ada"

        # A password login now asks for the second step; the passkey gives it.
        first = await api.post(LOGIN, data={"username": "ada", "password": PASSWORD})
        assert first.status_code == 403
        assert first.json()["methods"] == ["passkey"]
        second = await run(page, AUTHENTICATE, {"mfaToken": first.json()["mfa_token"]})
        assert second["status"] == 200, second
        assert second["allowed"] == 1
        me = await api.get(ME, headers=bearer(second["body"]["access_token"]))
        assert me.status_code == 200

        listed = await api.get(
            "/api/v1/auth/passkeys", headers=bearer(second["body"]["access_token"])
        )
        (passkey,) = listed.json()
        assert passkey["last_used_at"] is not None
