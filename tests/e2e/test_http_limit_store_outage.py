"""The rate-limit store going away: every request a limit guards gets 503
``service_unavailable`` with ``Retry-After`` (never an unlimited pass), requests no limit
guards are served as usual, the outage is logged once and counted in /metrics, and the
limits apply again without a restart when the store comes back (the HTTP contract: Auth,
"Limits fail closed").

The store is a ``redis-server`` of the test's own, on a free loopback port, that the test
stops and starts: the shared Redis of TEST_REDIS_URL is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import RedisError

from tests.conftest import _unavailable
from tests.e2e.conftest import (
    LOGIN,
    PASSWORD,
    SESSIONS,
    USERS,
    Api,
    AppFactory,
    assert_problem,
    bearer,
)

STARTUP_DEADLINE = 30.0  # seconds: generous, for a busy machine
OUTAGE_LOGINS = 12  # more than both the per-IP (5/minute) and per-account (10) limits
STORE_ERRORS = "rate_limit_store_errors_total"
LIMITER_LOGGER = "adapters.rate_limit"
# The error's class name only (redis-py's ConnectionError here): no traceback, no address.
UNREACHABLE = re.compile(r"rate limit store unreachable \(\w+\); limited requests are refused")
ANSWERS_AGAIN = "rate limit store answers again; limits apply"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A ``redis-server`` that keeps nothing on disk, on one loopback port across its
    restarts."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._command = [
            executable,
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            *("--dir", str(directory)),
        ]
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the server and wait (bounded) until it answers."""
        self._process = await asyncio.create_subprocess_exec(
            *self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await self._wait_until_it_answers(self._process)

    async def stop(self) -> None:
        """Terminate the server and wait until it has exited: its port is closed."""
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await asyncio.wait_for(self._process.wait(), STARTUP_DEADLINE)
        self._process = None

    async def _wait_until_it_answers(self, process: asyncio.subprocess.Process) -> None:
        client = aioredis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + STARTUP_DEADLINE
        try:
            while True:
                if process.returncode is not None:
                    pytest.fail(f"redis-server on port {self.port} exited ({process.returncode})")
                try:
                    if await client.ping():
                        return
                except RedisError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"redis-server on port {self.port} did not answer in time")
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    executable = shutil.which("redis-server")
    if executable is None:
        _unavailable("the limit store outage test needs redis-server on PATH")
    assert executable is not None
    server = RedisServer(executable, tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _login(api: Api, password: str) -> httpx.Response:
    return await api.client.post(LOGIN, data={"username": "ada", "password": password})


async def _store_errors(api: Api) -> float:
    response = await api.client.get("/metrics")
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == STORE_ERRORS:
                return float(sample.value)
    return 0.0


def _assert_refused(response: httpx.Response) -> None:
    assert_problem(response, 503, "service_unavailable")
    assert int(response.headers["retry-after"]) >= 1


def _limiter_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LIMITER_LOGGER]


async def test_limited_requests_get_503_while_the_store_is_down_and_limits_resume_after(
    app_factory: AppFactory, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LIMITER_LOGGER)
    async with app_factory(rate_limit_enabled=True, rate_limit_storage_uri=redis_server.url) as api:
        await api.register("ada")
        tokens = await api.login("ada")
        assert_problem(await _login(api, "a wrong password"), 401, "invalid_credentials")
        errors_before = await _store_errors(api)

        await redis_server.stop()
        # Neither a wrong nor a right password gets past a limit that cannot be counted.
        for _ in range(OUTAGE_LOGINS):
            _assert_refused(await _login(api, "a wrong password"))
        _assert_refused(await _login(api, PASSWORD))
        _assert_refused(
            await api.client.post(
                "/api/v1/auth/password-reset/request", json={"email": "ada@example.com"}
            )
        )
        _assert_refused(
            await api.client.post(
                USERS, json={"email": "bob@example.com", "username": "bob", "password": PASSWORD}
            )
        )
        # What no limit guards is served as usual.
        live = await api.client.get("/health/live")
        assert live.status_code == 200, live.text
        me = await api.me(tokens["access_token"])
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "ada"
        sessions = await api.client.get(SESSIONS, headers=bearer(tokens["access_token"]))
        assert sessions.status_code == 200, sessions.text

        # One line for the whole outage.
        [outage] = _limiter_lines(caplog)
        assert UNREACHABLE.fullmatch(outage), outage
        assert await _store_errors(api) >= errors_before + OUTAGE_LOGINS + 3

        await redis_server.start()
        # The same app, not rebuilt: its connection pool reconnects by itself.
        assert_problem(await _login(api, "a wrong password"), 401, "invalid_credentials")
        assert (await _login(api, PASSWORD)).status_code == 200
        assert _limiter_lines(caplog) == [outage, ANSWERS_AGAIN]
    # No request logged a traceback.
    assert not [record for record in caplog.records if record.exc_info]
