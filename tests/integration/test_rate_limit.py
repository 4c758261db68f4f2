"""RateLimiter over ``limits`` (in memory and in Redis) and the failed-login counter."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest
from limits import parse

from adapters.rate_limit import (
    LimitsFailedLoginCounter,
    NamedRateLimits,
    RateLimiter,
    async_storage_uri,
)
from domain.errors import LimitsUnavailable

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def unique(name: str) -> str:
    """A key no other test (or earlier run against a shared Redis) has used."""
    return f"unit-{name}-{secrets.token_hex(8)}"


@pytest.fixture
def limiter() -> RateLimiter:
    return RateLimiter("memory://")


@pytest.mark.parametrize(
    ("configured", "used"),
    [
        ("memory://", "async+memory://"),
        ("redis://h:6379/0", "async+redis://h:6379/0"),
        ("async+redis://h:6379/0", "async+redis://h:6379/0"),
    ],
)
def test_storage_uris_are_used_in_their_async_form(configured: str, used: str) -> None:
    assert async_storage_uri(configured) == used


async def test_hits_within_the_limit_pass_and_the_next_one_must_wait(
    limiter: RateLimiter,
) -> None:
    limit = parse("2/minute")

    assert await limiter.hit(limit, "login", "10.0.0.1") is None
    assert await limiter.hit(limit, "login", "10.0.0.1") is None
    retry_after = await limiter.hit(limit, "login", "10.0.0.1")

    assert retry_after is not None
    assert 1 <= retry_after <= 60


async def test_clearing_a_key_forgets_its_hits_only(limiter: RateLimiter) -> None:
    limit = parse("1/minute")
    await limiter.hit(limit, "login", "10.0.0.1")
    await limiter.hit(limit, "login", "10.0.0.2")

    await limiter.clear(limit, "login", "10.0.0.1")

    assert await limiter.hit(limit, "login", "10.0.0.1") is None
    assert await limiter.hit(limit, "login", "10.0.0.2") is not None


async def test_each_key_has_its_own_count(limiter: RateLimiter) -> None:
    limit = parse("1/minute")
    await limiter.hit(limit, "login", "10.0.0.1")

    assert await limiter.hit(limit, "login", "10.0.0.2") is None
    assert await limiter.hit(limit, "refresh", "10.0.0.1") is None
    assert await limiter.hit(limit, "login", "10.0.0.1") is not None


async def test_a_disabled_limiter_never_limits() -> None:
    limiter = RateLimiter("memory://", enabled=False)
    limit = parse("1/hour")

    for _ in range(5):
        assert await limiter.hit(limit, "login", "10.0.0.1") is None
    await limiter.clear(limit, "login", "10.0.0.1")  # nothing to clear, no error


async def test_named_limits_count_per_name_and_key(limiter: RateLimiter) -> None:
    limits = NamedRateLimits(limiter, {"login": "1/minute", "register": "2/minute"})

    assert limits.names() == {"login", "register"}
    assert await limits.hit("login", "10.0.0.1") is None
    assert await limits.hit("login", "10.0.0.1") is not None
    assert await limits.hit("login", "10.0.0.2") is None
    assert await limits.hit("register", "10.0.0.1") is None


async def test_two_in_memory_limiters_do_not_share_counts() -> None:
    limit = parse("1/minute")
    await RateLimiter("memory://").hit(limit, "login", "10.0.0.1")

    assert await RateLimiter("memory://").hit(limit, "login", "10.0.0.1") is None


@pytest.mark.parametrize("bad", ["lots", "5/fortnight", ""])
def test_a_malformed_limit_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"parse|granularity"):
        NamedRateLimits(RateLimiter("memory://"), {"login": bad})


class Ticks:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "adapters.rate_limit" and record.levelno == logging.WARNING
    ]


async def test_an_unreachable_store_refuses_every_limited_request() -> None:
    limiter = RateLimiter(UNREACHABLE_REDIS)

    for _ in range(3):
        with pytest.raises(LimitsUnavailable) as refused:
            await limiter.hit(parse("1/hour"), "login", "10.0.0.1")
        assert refused.value.retry_after is not None
        assert refused.value.retry_after >= 1
    with pytest.raises(LimitsUnavailable):
        await NamedRateLimits(limiter, {"login": "5/minute"}).hit("login", "10.0.0.1")


async def test_an_unreachable_store_never_skips_the_failed_login_count() -> None:
    counter = LimitsFailedLoginCounter(RateLimiter(UNREACHABLE_REDIS), "10/15minutes")

    with pytest.raises(LimitsUnavailable):
        await counter.acquire("user:1")


async def test_forgiving_an_account_on_an_unreachable_store_does_not_fail() -> None:
    limiter = RateLimiter(UNREACHABLE_REDIS)

    await LimitsFailedLoginCounter(limiter, "10/15minutes").succeeded("user:1")
    await limiter.clear(parse("1/hour"), "login", "10.0.0.1")


async def test_the_outage_is_logged_once_a_minute_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = Ticks()
    limiter = RateLimiter(UNREACHABLE_REDIS, monotonic=ticks)
    limit = parse("1/hour")

    for _ in range(5):
        with pytest.raises(LimitsUnavailable):
            await limiter.hit(limit, "login", "10.0.0.1")
        await limiter.clear(limit, "login", "10.0.0.1")
        ticks.now += 10  # 40 seconds in all: still the same minute
    assert len(outage_warnings(caplog)) == 1

    ticks.now += 21
    with pytest.raises(LimitsUnavailable):
        await limiter.hit(limit, "login", "10.0.0.1")

    warnings = outage_warnings(caplog)
    assert len(warnings) == 2
    for record in warnings:
        assert record.getMessage() == (
            "rate limit store unreachable (ConnectionError); limited requests are refused"
        )
        assert record.exc_info is None
        assert record.exc_text is None


async def test_every_store_error_is_reported() -> None:
    errors: list[None] = []
    limiter = RateLimiter(UNREACHABLE_REDIS, on_store_error=lambda: errors.append(None))
    limit = parse("1/hour")

    for _ in range(3):
        with pytest.raises(LimitsUnavailable):
            await limiter.hit(limit, "login", "10.0.0.1")
    await limiter.clear(limit, "login", "10.0.0.1")

    assert len(errors) == 4


async def test_a_disabled_limiter_never_asks_the_store() -> None:
    errors: list[None] = []
    limiter = RateLimiter(
        UNREACHABLE_REDIS, enabled=False, on_store_error=lambda: errors.append(None)
    )

    assert await limiter.hit(parse("1/hour"), "login", "10.0.0.1") is None
    await limiter.clear(parse("1/hour"), "login", "10.0.0.1")
    assert errors == []


# --- Redis ---------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_limits_are_shared_between_limiters(redis_url: str) -> None:
    limit = parse("2/minute")
    key = unique("shared")
    first, second = RateLimiter(redis_url), RateLimiter(redis_url)

    assert await first.hit(limit, "login", key) is None
    assert await second.hit(limit, "login", key) is None
    retry_after = await first.hit(limit, "login", key)

    assert retry_after is not None
    assert 1 <= retry_after <= 60
    assert (await second.hit(limit, "login", key) or 0) >= 1


@pytest.mark.redis
async def test_redis_keys_are_separate_and_clearing_forgets_one(redis_url: str) -> None:
    limiter = RateLimiter(redis_url)
    limit = parse("1/minute")
    key, other = unique("test"), unique("other")

    assert await limiter.hit(limit, "login", key) is None
    assert await limiter.hit(limit, "login", other) is None
    assert await limiter.hit(limit, "login", key) is not None
    await limiter.clear(limit, "login", key)
    assert await limiter.hit(limit, "login", key) is None
    assert await limiter.hit(limit, "login", other) is not None


# --- failed logins -------------------------------------------------------------------


async def test_an_account_may_try_until_its_attempts_reach_the_limit(
    limiter: RateLimiter,
) -> None:
    counter = LimitsFailedLoginCounter(limiter, "3/15minutes")

    for _ in range(3):
        assert await counter.acquire("ada") is None

    retry_after = await counter.acquire("ada")
    assert retry_after is not None
    assert 1 <= retry_after <= 15 * 60


async def test_parallel_attempts_never_pass_the_limit(limiter: RateLimiter) -> None:
    counter = LimitsFailedLoginCounter(limiter, "5/15minutes")

    outcomes = await asyncio.gather(*(counter.acquire("ada") for _ in range(40)))

    assert sum(outcome is None for outcome in outcomes) == 5


async def test_a_right_password_forgives_the_accounts_failures(limiter: RateLimiter) -> None:
    counter = LimitsFailedLoginCounter(limiter, "2/15minutes")
    assert await counter.acquire("ada") is None
    assert await counter.acquire("ada") is None

    await counter.succeeded("ada")

    assert await counter.acquire("ada") is None


async def test_failures_of_one_account_do_not_throttle_another(limiter: RateLimiter) -> None:
    counter = LimitsFailedLoginCounter(limiter, "1/15minutes")
    await counter.acquire("ada")

    assert await counter.acquire("ada") is not None
    assert await counter.acquire("bob") is None


async def test_failed_logins_do_not_share_a_count_with_per_ip_limits(
    limiter: RateLimiter,
) -> None:
    counter = LimitsFailedLoginCounter(limiter, "1/15minutes")
    limit = parse("1/15minutes")
    await limiter.hit(limit, "login", "ada")

    assert await counter.acquire("ada") is None


def test_a_malformed_failed_login_limit_is_refused(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError, match="parse"):
        LimitsFailedLoginCounter(limiter, "ten per forever")


@pytest.mark.redis
async def test_failed_logins_are_counted_in_redis(redis_url: str) -> None:
    account = unique("account")
    counter = LimitsFailedLoginCounter(RateLimiter(redis_url), "2/15minutes")
    elsewhere = LimitsFailedLoginCounter(RateLimiter(redis_url), "2/15minutes")

    assert await counter.acquire(account) is None
    assert await elsewhere.acquire(account) is None

    assert (await counter.acquire(account) or 0) >= 1
