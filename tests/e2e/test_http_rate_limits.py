"""Rate limits: per client IP for login, refresh, logout and registration; failed logins
per account; ``TRUSTED_PROXIES`` for ``X-Forwarded-For``; shared through Redis
(the HTTP contract: Auth)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tests.e2e.conftest import (
    LOGIN,
    LOGOUT,
    PASSWORD,
    REFRESH,
    USERS,
    AppFactory,
    assert_problem,
)

WRONG = {"password": "not the password"}


def _assert_rate_limited(response: httpx.Response, window_seconds: int) -> None:
    assert_problem(response, 429, "rate_limited")
    assert response.json()["title"] == "Too Many Requests"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window_seconds


async def _login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> Any:
    return await client.post(LOGIN, data={"username": username, "password": password})


def _random_ip() -> str:
    """A TEST-NET-2 address of its own, so that limit keys never collide between runs."""
    return f"198.51.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


# --- Per client IP ------------------------------------------------------------------------


async def test_login_is_limited_to_5_per_minute_per_ip(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True) as api:
        await api.register("ada")
        # Successful logins count too: the per-IP limit is about attempts.
        for attempt in range(5):
            response = await _login(api.client, "ada")
            assert response.status_code == 200, (attempt, response.text)
        sixth = await _login(api.client, "ada")
        _assert_rate_limited(sixth, 60)
        # Failed, JSON and malformed attempts are refused alike once limited.
        _assert_rate_limited(await api.client.post(LOGIN, json={"username": "ada", **WRONG}), 60)
        _assert_rate_limited(await api.client.post(LOGIN, content=b"junk"), 60)
        # Another address is not affected.
        async with api.client_from("192.0.2.7") as other:
            assert (await _login(other, "ada")).status_code == 200


async def test_refresh_is_limited_to_10_per_minute_per_ip(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True) as api:
        _, tokens = await api.user_with_tokens("ada")
        refresh_token = tokens["refresh_token"]
        for attempt in range(10):
            response = await api.client.post(REFRESH, json={"refresh_token": refresh_token})
            assert response.status_code == 200, (attempt, response.text)
            refresh_token = response.json()["refresh_token"]
        response = await api.client.post(REFRESH, json={"refresh_token": refresh_token})
        _assert_rate_limited(response, 60)
        # The refused attempt did not consume the token: from elsewhere it still works.
        async with api.client_from("192.0.2.8") as other:
            response = await other.post(REFRESH, json={"refresh_token": refresh_token})
            assert response.status_code == 200, response.text


async def test_logout_is_limited_to_10_per_minute_per_ip(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True) as api:
        _, tokens = await api.user_with_tokens("ada")
        for attempt in range(10):
            response = await api.client.post(LOGOUT, json={"refresh_token": "garbage"})
            assert response.status_code == 401, (attempt, response.text)
        response = await api.client.post(LOGOUT, json={"refresh_token": tokens["refresh_token"]})
        _assert_rate_limited(response, 60)
        assert (await api.me(tokens["access_token"])).status_code == 200


async def test_registration_is_limited_to_10_per_minute_per_ip(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True) as api:
        for number in range(10):
            await api.register(f"user{number}")
        response = await api.client.post(
            USERS, json={"email": "late@example.com", "username": "late", "password": PASSWORD}
        )
        _assert_rate_limited(response, 60)
        async with api.client_from("192.0.2.9") as other:
            response = await other.post(
                USERS,
                json={"email": "late@example.com", "username": "late", "password": PASSWORD},
            )
            assert response.status_code == 201, response.text


async def test_limits_are_configurable(app_factory: AppFactory) -> None:
    async with app_factory(
        rate_limit_enabled=True,
        rate_limit_login="2/minute",
        rate_limit_refresh="1/hour",
        rate_limit_logout="1/minute",
        rate_limit_register="3/minute",
    ) as api:
        for number in range(3):
            await api.register(f"user{number}")
        response = await api.client.post(
            USERS, json={"email": "x@example.com", "username": "xx_x", "password": PASSWORD}
        )
        _assert_rate_limited(response, 60)
        assert (await _login(api.client, "user0")).status_code == 200
        assert (await _login(api.client, "user1")).status_code == 200
        _assert_rate_limited(await _login(api.client, "user2"), 60)
        assert (await api.client.post(REFRESH, json={"refresh_token": "x"})).status_code == 401
        _assert_rate_limited(await api.client.post(REFRESH, json={"refresh_token": "x"}), 3600)
        assert (await api.client.post(LOGOUT, json={"refresh_token": "x"})).status_code == 401
        _assert_rate_limited(await api.client.post(LOGOUT, json={"refresh_token": "x"}), 60)


async def test_rate_limits_can_be_disabled(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=False, rate_limit_login_account="2/hour") as api:
        await api.register("ada")
        for _ in range(8):
            assert_problem(
                await _login(api.client, "ada", WRONG["password"]), 401, "invalid_credentials"
            )
        assert (await _login(api.client, "ada")).status_code == 200


async def test_endpoints_without_a_limit_are_never_rate_limited(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True, rate_limit_login="1/minute") as api:
        _, tokens = await api.user_with_tokens("ada")
        for _ in range(15):
            assert (await api.me(tokens["access_token"])).status_code == 200
            assert (await api.client.get(USERS)).status_code == 200


# --- Failed logins per account ------------------------------------------------------------


async def test_failed_logins_are_limited_per_account_across_ips(app_factory: AppFactory) -> None:
    async with app_factory(
        rate_limit_enabled=True,
        rate_limit_login="100/minute",
        rate_limit_login_account="3/15minutes",
    ) as api:
        await api.register("ada")
        await api.register("bob")
        # Three failures, each from another address, under the two spellings of the login.
        for number, login in enumerate(["ada", "ADA@example.com", "Ada"]):
            async with api.client_from(f"203.0.113.{number + 1}") as attacker:
                response = await _login(attacker, login, WRONG["password"])
                assert_problem(response, 401, "invalid_credentials")
        # The account is now throttled from anywhere, even with the right password...
        async with api.client_from("203.0.113.50") as fresh_address:
            _assert_rate_limited(await _login(fresh_address, "ada"), 15 * 60)
            _assert_rate_limited(await _login(fresh_address, "ada@example.com"), 15 * 60)
            # ...but other accounts are not.
            assert (await _login(fresh_address, "bob")).status_code == 200


async def test_successful_logins_do_not_count_against_the_account(
    app_factory: AppFactory,
) -> None:
    async with app_factory(
        rate_limit_enabled=True, rate_limit_login="100/minute", rate_limit_login_account="2/hour"
    ) as api:
        await api.register("ada")
        for _ in range(6):
            assert (await _login(api.client, "ada")).status_code == 200
        assert_problem(await _login(api.client, "ada", "wrong one!"), 401, "invalid_credentials")
        assert (await _login(api.client, "ada")).status_code == 200


async def test_failed_logins_of_an_unknown_account_are_limited_too(
    app_factory: AppFactory,
) -> None:
    async with app_factory(
        rate_limit_enabled=True, rate_limit_login="100/minute", rate_limit_login_account="2/hour"
    ) as api:
        for _ in range(2):
            assert_problem(await _login(api.client, "ghost"), 401, "invalid_credentials")
        _assert_rate_limited(await _login(api.client, "ghost"), 3600)


async def test_the_account_limit_is_no_permanent_lock_out(app_factory: AppFactory) -> None:
    async with app_factory(
        rate_limit_enabled=True, rate_limit_login="100/minute", rate_limit_login_account="2/second"
    ) as api:
        await api.register("ada")
        for _ in range(2):
            assert_problem(
                await _login(api.client, "ada", "wrong one!"), 401, "invalid_credentials"
            )
        _assert_rate_limited(await _login(api.client, "ada"), 1)
        await asyncio.sleep(1.5)  # past the window, however slow the machine
        assert (await _login(api.client, "ada")).status_code == 200


# --- Client address -----------------------------------------------------------------------


async def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True, trusted_proxies=["127.0.0.1"]) as api:
        await api.register("ada")
        first = {"X-Forwarded-For": "203.0.113.10"}
        credentials = {"username": "ada", "password": PASSWORD}
        for _ in range(5):
            response = await api.client.post(LOGIN, data=credentials, headers=first)
            assert response.status_code == 200
        response = await api.client.post(LOGIN, data=credentials, headers=first)
        _assert_rate_limited(response, 60)
        # Another client behind the same proxy has its own allowance.
        response = await api.client.post(
            LOGIN,
            data={"username": "ada", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.11"},
        )
        assert response.status_code == 200


async def test_a_client_cannot_escape_the_limit_by_prepending_forwarded_addresses(
    app_factory: AppFactory,
) -> None:
    async with app_factory(rate_limit_enabled=True, trusted_proxies=["127.0.0.1"]) as api:
        await api.register("ada")
        statuses = []
        for number in range(7):
            # The client writes a fresh address each time; the proxy appends the real one.
            forged = {"X-Forwarded-For": f"10.9.9.{number}, 203.0.113.20"}
            response = await api.client.post(
                LOGIN, data={"username": "ada", "password": PASSWORD}, headers=forged
            )
            statuses.append(response.status_code)
        assert statuses == [200] * 5 + [429] * 2


async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True, trusted_proxies=["10.0.0.1"]) as api:
        await api.register("ada")
        statuses = []
        for number in range(7):
            response = await api.client.post(
                LOGIN,
                data={"username": "ada", "password": PASSWORD},
                headers={"X-Forwarded-For": f"203.0.113.{number + 30}"},
            )
            statuses.append(response.status_code)
        assert statuses == [200] * 5 + [429] * 2


async def test_x_forwarded_for_is_ignored_without_trusted_proxies(app_factory: AppFactory) -> None:
    async with app_factory(rate_limit_enabled=True) as api:
        await api.register("ada")
        statuses = []
        for number in range(6):
            response = await api.client.post(
                LOGIN,
                data={"username": "ada", "password": PASSWORD},
                headers={"X-Forwarded-For": f"203.0.113.{number + 40}"},
            )
            statuses.append(response.status_code)
        assert statuses == [200] * 5 + [429]


async def test_a_trusted_proxy_network_and_garbage_forwarded_values(
    app_factory: AppFactory,
) -> None:
    async with app_factory(rate_limit_enabled=True, trusted_proxies=["127.0.0.0/8"]) as api:
        await api.register("ada")
        for value in ["not-an-ip", "", ",,,", "999.1.1.1", "1.2.3.4" * 1000]:
            response = await api.client.post(
                LOGIN,
                data={"username": "ada", "password": PASSWORD},
                headers={"X-Forwarded-For": value},
            )
            assert response.status_code in {200, 429}, (value, response.text)


# --- Shared through Redis -----------------------------------------------------------------


class RedisKeys:
    """The limit keys a test uses in the shared Redis: client addresses of its own, and
    the accounts it names; every key of theirs is deleted before use and afterwards, so
    runs before or beside this one cannot interfere."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.from_url(url)
        self.patterns: list[str] = []

    def new_ip(self) -> str:
        ip = _random_ip()
        self.patterns.append(f"*/{ip}/*")
        return ip

    async def forget_account(self, user_id: int) -> None:
        self.patterns.append(f"*login-failures/user:{user_id}/*")
        await self.clean()

    async def clean(self) -> None:
        for pattern in self.patterns:
            async for key in self.client.scan_iter(match=pattern, count=1000):
                await self.client.delete(key)


@pytest.fixture
async def redis_keys(redis_url: str) -> AsyncIterator[RedisKeys]:
    keys = RedisKeys(redis_url)
    try:
        yield keys
    finally:
        try:
            await keys.clean()
        finally:
            await keys.client.aclose()


@pytest.mark.redis
async def test_two_app_instances_share_the_login_limit_through_redis(
    app_factory: AppFactory, redis_url: str, redis_keys: RedisKeys
) -> None:
    ip = redis_keys.new_ip()
    shared = {"rate_limit_enabled": True, "rate_limit_storage_uri": redis_url}
    async with app_factory(client_ip=ip, **shared) as first:
        await first.register("ada")
        for _ in range(3):
            assert (await _login(first.client, "ada")).status_code == 200
    async with app_factory(client_ip=ip, **shared) as second:
        for _ in range(2):
            assert (await _login(second.client, "ada")).status_code == 200
        _assert_rate_limited(await _login(second.client, "ada"), 60)


@pytest.mark.redis
async def test_two_app_instances_share_the_failed_login_limit_through_redis(
    app_factory: AppFactory, redis_url: str, redis_keys: RedisKeys
) -> None:
    shared = {
        "rate_limit_enabled": True,
        "rate_limit_storage_uri": redis_url,
        "rate_limit_login": "100/minute",
        "rate_limit_login_account": "3/15minutes",
    }
    async with app_factory(client_ip=redis_keys.new_ip(), **shared) as first:
        user = await first.register("ada")
        await redis_keys.forget_account(user["id"])
        for _ in range(2):
            response = await _login(first.client, "ada", "wrong one!")
            assert_problem(response, 401, "invalid_credentials")
    async with app_factory(client_ip=redis_keys.new_ip(), **shared) as second:
        response = await _login(second.client, "ada", "wrong one!")
        assert_problem(response, 401, "invalid_credentials")
        _assert_rate_limited(await _login(second.client, "ada"), 15 * 60)


@pytest.mark.redis
async def test_a_fresh_redis_limit_lets_requests_through(
    app_factory: AppFactory, redis_url: str, redis_keys: RedisKeys
) -> None:
    """The control for the two tests above: a new address starts with a full quota."""
    async with app_factory(
        client_ip=redis_keys.new_ip(), rate_limit_enabled=True, rate_limit_storage_uri=redis_url
    ) as api:
        await api.register("ada")
        for _ in range(5):
            assert (await _login(api.client, "ada")).status_code == 200


async def test_an_unreachable_limit_storage_refuses_limited_requests(
    app_factory: AppFactory,
) -> None:
    """Limits fail closed: a store at a closed port counts nothing, so every limited
    request is 503 with Retry-After, never an unlimited pass (a real store stopped and
    started again: test_http_limit_store_outage.py)."""
    async with app_factory(
        rate_limit_enabled=True, rate_limit_storage_uri="redis://127.0.0.1:1/0"
    ) as api:
        for _ in range(7):
            response = await _login(api.client, "ada")
            assert_problem(response, 503, "service_unavailable")
            assert int(response.headers["retry-after"]) >= 1
        assert (await api.client.get("/health/live")).status_code == 200


async def test_failed_logins_per_account_default_to_10_per_15_minutes(
    app_factory: AppFactory,
) -> None:
    async with app_factory(rate_limit_enabled=True, rate_limit_login="1000/minute") as api:
        await api.register("ada")
        for number in range(10):
            async with api.client_from(f"203.0.113.{number + 100}") as attacker:
                response = await _login(attacker, "ada", "wrong one!")
                assert_problem(response, 401, "invalid_credentials")
        async with api.client_from("203.0.113.200") as owner:
            _assert_rate_limited(await _login(owner, "ada"), 15 * 60)
