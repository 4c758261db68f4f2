"""Security hardening under concurrency, on SQLite and PostgreSQL: the per-account limit
holds against parallel attempts, password checks of PATCH /me are limited, a flood of
hashing is refused rather than queued, and a slow login never undoes a deactivation."""

from __future__ import annotations

import asyncio
import threading

import argon2
import pytest
from dependency_injector import providers

from adapters.hasher import Argon2Hasher
from application.admin import SetActive, SetPassword
from domain.ports import UserRepository
from entrypoints.container import Container
from entrypoints.settings import PUBLISHED_SECRET_KEYS
from tests.e2e.conftest import (
    FAST_HASHER,
    LOGIN,
    ME,
    PASSWORD,
    SESSIONS,
    USERS,
    Api,
    AppFactory,
    CountingHasher,
    GatedHasher,
    assert_problem,
    bearer,
    claims,
    sign,
)

WRONG = "not the password at all"


async def test_parallel_wrong_passwords_never_pass_the_account_limit(
    app_factory: AppFactory,
) -> None:
    hasher = CountingHasher(**FAST_HASHER)

    def configure(container: Container) -> None:
        container.adapters.hasher.override(providers.Object(hasher))

    # The per-IP limit is out of the way, as for an attacker with many addresses.
    async with app_factory(
        configure,
        rate_limit_enabled=True,
        rate_limit_login="1000/minute",
        rate_limit_login_account="5/15minutes",
    ) as api:
        await api.register("ada")
        before = hasher.verifications

        responses = await asyncio.gather(
            *(
                api.client.post(LOGIN, data={"username": "ada", "password": WRONG})
                for _ in range(40)
            )
        )

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [401] * 5 + [429] * 35
        assert hasher.verifications - before == 5
        for response in responses:
            code = "invalid_credentials" if response.status_code == 401 else "rate_limited"
            assert_problem(response, response.status_code, code)
        # The account is closed to the right password too until the window passes.
        right = await api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD})
        assert_problem(right, 429, "rate_limited")


async def test_wrong_current_passwords_are_limited_per_account(app_factory: AppFactory) -> None:
    async with app_factory(
        rate_limit_enabled=True,
        rate_limit_login="1000/minute",
        rate_limit_login_account="3/15minutes",
    ) as api:
        _, tokens = await api.user_with_tokens("ada")
        guess = {"email": "mallory@example.com", "current_password": WRONG}

        for _ in range(3):
            response = await api.client.patch(
                ME, json=guess, headers=bearer(tokens["access_token"])
            )
            assert_problem(response, 403, "wrong_password")
        response = await api.client.patch(ME, json=guess, headers=bearer(tokens["access_token"]))
        assert_problem(response, 429, "rate_limited")
        # Logging in is closed as well: both guess the same password.
        login = await api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD})
        assert_problem(login, 429, "rate_limited")


async def test_current_password_checks_are_limited_per_ip(app_factory: AppFactory) -> None:
    async with app_factory(
        rate_limit_enabled=True,
        rate_limit_login="3/minute",
        rate_limit_login_account="100/15minutes",
    ) as api:
        users = [await api.register(f"user{n}") for n in range(2)]
        async with api.client_from("203.0.113.9") as attacker:
            tokens = [
                (
                    await attacker.post(
                        LOGIN, data={"username": u["username"], "password": PASSWORD}
                    )
                ).json()
                for u in users
            ]
            guess = {"password": "a brand new password", "current_password": WRONG}
            headers = bearer(tokens[0]["access_token"])
            # Two logins and one guess fill 3/minute; the next guess is refused unchecked.
            assert_problem(
                await attacker.patch(ME, json=guess, headers=headers), 403, "wrong_password"
            )
            assert_problem(
                await attacker.patch(ME, json=guess, headers=headers), 429, "rate_limited"
            )
            # A change that checks no password is not limited.
            rename = await attacker.patch(
                ME, json={"full_name": "Ada"}, headers=bearer(tokens[1]["access_token"])
            )
            assert rename.status_code == 200, rename.text


async def test_a_flood_of_hashing_is_refused_with_503_and_retry_after(
    app_factory: AppFactory,
) -> None:
    hasher = Argon2Hasher(**FAST_HASHER, max_concurrency=1, max_waiting=0)
    gate = threading.Event()

    def configure(container: Container) -> None:
        container.adapters.hasher.override(providers.Object(hasher))

    async with app_factory(configure) as api:
        busy = asyncio.ensure_future(hasher._run(gate.wait, 30))
        await asyncio.sleep(0)
        try:
            body = {"email": "ada@example.com", "username": "ada", "password": PASSWORD}
            response = await api.client.post(USERS, json=body)
            problem = assert_problem(response, 503, "service_unavailable")
            assert int(response.headers["retry-after"]) >= 1
            assert "busy" in problem["detail"].lower()
        finally:
            gate.set()
            await busy
        assert (await api.client.post(USERS, json=body)).status_code == 201
    hasher.close()


@pytest.mark.parametrize("change", ["deactivate", "set-password"])
async def test_a_slow_login_that_rehashes_never_undoes_an_operators_change(
    app_factory: AppFactory, change: str
) -> None:
    hasher = GatedHasher(**FAST_HASHER)

    def configure(container: Container) -> None:
        container.adapters.hasher.override(providers.Object(hasher))

    async with app_factory(configure) as api:
        user = await api.register("ada")
        before = await api.login("ada")
        # An outdated hash: the next login re-hashes, and stops there.
        outdated = argon2.PasswordHasher(time_cost=2, memory_cost=1024).hash(PASSWORD)
        async with api.container.adapters.uow() as uow:
            await uow.repository(UserRepository).set_password_hash(user["id"], outdated)
            await uow.commit()
        hasher.arm("hash")
        login = asyncio.ensure_future(
            api.client.post(LOGIN, data={"username": "ada", "password": PASSWORD})
        )
        await asyncio.wait_for(hasher.paused.wait(), 30)

        if change == "deactivate":
            await api.services.get(SetActive)("ada", active=False)
        else:
            await api.services.get(SetPassword)("ada", "an operator's new password")
        hasher.release.set()

        assert_problem(await login, 401, "invalid_credentials")
        async with api.container.adapters.uow() as uow:
            stored = await uow.repository(UserRepository).get(user["id"])
        assert stored is not None
        assert stored.token_version == 1
        if change == "deactivate":
            assert not stored.is_active
            assert stored.password_hash == outdated
        else:
            assert stored.is_active
            assert await hasher.verify(stored.password_hash, "an operator's new password")
        assert_problem(await api.me(before["access_token"]), 401, "invalid_token")


async def test_without_a_secret_key_no_published_key_signs_tokens(
    app_factory: AppFactory,
) -> None:
    async with app_factory(environment="development", secret_key="") as api:
        await api.register("ada")
        tokens = await api.login("ada")
        payload = claims(tokens["access_token"])

        for published in sorted(PUBLISHED_SECRET_KEYS):
            forged = sign({**payload, "exp": payload["exp"] + 10 * 365 * 86400}, key=published)
            assert_problem(await api.me(forged), 401, "invalid_token")
        assert (await api.me(tokens["access_token"])).status_code == 200
        assert api.settings.key_file.is_file()


@pytest.mark.parametrize("session_id", ["%00", "abc%00def", "x" * 32, "A" * 32, "0" * 31])
async def test_a_malformed_session_id_is_404_on_every_database(api: Api, session_id: str) -> None:
    _, tokens = await api.user_with_tokens()

    response = await api.client.delete(
        f"{SESSIONS}/{session_id}", headers=bearer(tokens["access_token"])
    )

    assert_problem(response, 404, "not_found")


async def test_addresses_of_one_ipv6_64_share_a_limit(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True, rate_limit_login="2/minute") as api:
        for host in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9"):
            async with api.client_from(host) as client:
                response = await client.post(LOGIN, data={"username": "x", "password": WRONG})
                assert_problem(response, 401, "invalid_credentials")
        async with api.client_from("2001:db8:1:2:abcd::5") as same_64:
            response = await same_64.post(LOGIN, data={"username": "x", "password": WRONG})
            assert_problem(response, 429, "rate_limited")
        async with api.client_from("2001:db8:1:3::1") as next_64:
            response = await next_64.post(LOGIN, data={"username": "x", "password": WRONG})
            assert_problem(response, 401, "invalid_credentials")


@pytest.mark.parametrize("path", ["/health/live", "/docs", ME, "/api/v1/nowhere", USERS])
async def test_every_response_carries_the_security_headers(api: Api, path: str) -> None:
    response = await api.client.get(path)

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    if path.startswith("/api/"):
        assert response.headers["cache-control"] == "no-store"
    else:
        assert "cache-control" not in response.headers or path == "/docs"
