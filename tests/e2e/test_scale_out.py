"""Scaling out, on this machine: two real server processes on one PostgreSQL and one
Redis behave as one service; and a server stopped with SIGTERM under load finishes the
requests it accepted before it exits.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis.asyncio as aioredis

from adapters import migrations
from tests.conftest import Postgres
from tests.e2e.servers import Server, running

SECRET_KEY = secrets.token_hex(32)
# A Redis database of its own: the limits' keys are per client IP (127.0.0.1 for every
# test), so this one is flushed around each test. Never database 0.
SCALE_OUT_REDIS_DB = 13
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"


def dedicated_redis(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{SCALE_OUT_REDIS_DB}"))


async def flush(url: str) -> None:
    client = aioredis.from_url(url)
    try:
        assert client.connection_pool.connection_kwargs["db"] == SCALE_OUT_REDIS_DB
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
async def limits_url(redis_url: str) -> AsyncIterator[str]:
    url = dedicated_redis(redis_url)
    await flush(url)
    yield url
    await flush(url)


@pytest.fixture(scope="module")
async def pair(
    postgres: Postgres, limits_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Server, Server]]:
    """Two API processes: one PostgreSQL database, one Redis, one SECRET_KEY."""
    env = {
        "DATABASE_URL": await postgres.new_database(),
        "RATE_LIMIT_STORAGE_URI": limits_url,
        "RATE_LIMIT_LOGIN": "5/minute",
        "SECRET_KEY": SECRET_KEY,
        "LOG_LEVEL": "INFO",
    }
    logs = tmp_path_factory.mktemp("scale_out")
    async with running("a", env, logs) as a, running("b", env, logs) as b:
        assert a.port != b.port
        yield a, b


@pytest.fixture
async def clients(
    pair: tuple[Server, Server], limits_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    await flush(limits_url)  # every test starts with no limit spent
    a, b = pair
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=60) as on_b,
    ):
        yield on_a, on_b


async def new_user(client: httpx.AsyncClient) -> dict[str, str]:
    name = f"scale_{secrets.token_hex(4)}"
    user = {"email": f"{name}@example.com", "username": name, "password": secrets.token_hex(12)}
    response = await client.post("/api/v1/users/", json=user)
    assert response.status_code == 201, response.text
    return {"username": name, "password": user["password"]}


async def log_in(client: httpx.AsyncClient, credentials: dict[str, str]) -> dict[str, Any]:
    response = await client.post(LOGIN, json=credentials)
    assert response.status_code == 200, response.text
    return dict(response.json())


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


@pytest.mark.postgres
@pytest.mark.redis
async def test_the_login_limit_is_shared_by_both_processes(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    on_a, on_b = clients
    credentials = await new_user(on_a)
    for attempt in range(5):
        client = (on_a, on_b)[attempt % 2]
        response = await client.post(LOGIN, json=credentials)
        assert response.status_code == 200, (attempt, response.text)
    for client in (on_b, on_a):
        refused = await client.post(LOGIN, json=credentials)
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_token_issued_by_one_process_is_accepted_by_the_other(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    on_a, on_b = clients
    credentials = await new_user(on_b)
    tokens = await log_in(on_a, credentials)

    me = await on_b.get(ME, headers=bearer(tokens))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == credentials["username"]

    refreshed = await on_b.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert (await on_a.get(ME, headers=bearer(new))).status_code == 200

    # Logging out on A ends the session on B at once.
    assert (
        await on_a.post(LOGOUT, json={"refresh_token": new["refresh_token"]})
    ).status_code == 204
    gone = await on_b.get(ME, headers=bearer(new))
    assert gone.status_code == 401
    assert gone.json()["code"] == "invalid_token"


@pytest.mark.postgres
@pytest.mark.redis
async def test_refresh_reuse_is_caught_across_processes(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    on_a, on_b = clients
    credentials = await new_user(on_a)
    first = await log_in(on_a, credentials)
    rotated = await on_a.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()

    replay = await on_b.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401, replay.text
    assert replay.json()["code"] == "invalid_token"
    assert replay.headers["WWW-Authenticate"] == "Bearer"

    # The whole session is dead, on A as well: the rotated pair too.
    refused = await on_a.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert refused.status_code == 401, refused.text
    assert (await on_a.get(ME, headers=bearer(second))).status_code == 401
    assert (await on_b.get(ME, headers=bearer(second))).status_code == 401
    # Another login opens a new session that works on both.
    fresh = await log_in(on_b, credentials)
    assert (await on_a.get(ME, headers=bearer(fresh))).status_code == 200


# SIGTERM under load --------------------------------------------------------------------

IN_FLIGHT = 48


def server_side_receive_queues(port: int) -> dict[int, int] | None:
    """For each TCP connection to ``port`` on 127.0.0.1: the client's port -> bytes the
    server has not read yet (Linux's /proc/net/tcp); None where that is not available.

    A connection not yet accepted, or accepted but not yet read, holds its request in
    that queue; at 0 the server has read the request, so it is in flight."""
    try:
        table = Path("/proc/net/tcp").read_text()
    except OSError:
        return None
    queues = {}
    for line in table.splitlines()[1:]:
        fields = line.split()
        local, remote, state, queue = fields[1], fields[2], fields[3], fields[4]
        if state != "01" or int(local.split(":")[1], 16) != port:  # ESTABLISHED only
            continue
        queues[int(remote.split(":")[1], 16)] = int(queue.split(":")[1], 16)
    return queues


async def until_read_by_server(port: int, client_ports: set[int]) -> None:
    for _ in range(600):
        queues = server_side_receive_queues(port)
        if queues is None:
            await asyncio.sleep(1.0)  # no /proc: give the server a moment instead
            return
        if all(queues.get(p) == 0 for p in client_ports):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server did not read the requests within 6 seconds")


def raw_login(port: int, body: bytes, request_id: str) -> bytes:
    head = (
        f"POST {LOGIN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return status, {k.lower(): v for k, v in headers.items()}, body


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    migrations.upgrade(url)
    return url


async def test_sigterm_under_load_finishes_the_requests_in_flight(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": sqlite_url,
        "SECRET_KEY": SECRET_KEY,
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "INFO",
    }
    async with running("sigterm", env, tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            credentials = await new_user(client)
        body = json.dumps(credentials).encode()

        # Each login costs an argon2 verification: a batch keeps the server busy.
        connections = [
            await asyncio.open_connection("127.0.0.1", server.port) for _ in range(IN_FLIGHT)
        ]
        try:
            client_ports = set()
            for number, (_reader, writer) in enumerate(connections):
                writer.write(raw_login(server.port, body, f"inflight-{number}"))
                client_ports.add(writer.get_extra_info("sockname")[1])
            for _reader, writer in connections:
                await writer.drain()
            await until_read_by_server(server.port, client_ports)

            server.terminate()
            raw = await asyncio.gather(
                *(asyncio.wait_for(reader.read(), timeout=120) for reader, _ in connections),
                return_exceptions=True,
            )
        finally:
            for _reader, writer in connections:
                writer.close()
        exit_code = await server.wait()

    failures = [r for r in raw if isinstance(r, BaseException) or not r]
    assert not failures, f"{len(failures)} of {IN_FLIGHT} requests got no answer: {failures[:3]}"
    answers = [parse_response(r) for r in raw if isinstance(r, bytes)]
    statuses = sorted({status for status, _headers, _body in answers})
    assert statuses == [200], statuses
    for number, (_status, headers, content) in enumerate(answers):
        assert headers["x-request-id"] == f"inflight-{number}"
        assert json.loads(content)["token_type"] == "bearer"

    events = [json.loads(line) for line in server.stderr().splitlines() if line.strip()]
    names = [e["event"] for e in events]
    shutting_down = names.index("Shutting down")
    logins = [n for n, e in enumerate(events) if e["event"] == "request" and e["route"] == LOGIN]
    # Not a vacuous pass: some of the batch really was in flight when SIGTERM came...
    assert logins[-1] > shutting_down, "every login had finished before SIGTERM"
    # ...and the application shut down only after the last of them.
    assert names.index("api stopped") > logins[-1]
    # uvicorn re-raises the SIGTERM once it has shut down gracefully, which ends the
    # process with -15 unless `app serve` makes that signal a clean exit.
    assert exit_code == 0, f"exit status {exit_code} after a graceful shutdown on SIGTERM"
