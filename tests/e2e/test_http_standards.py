"""HTTP as the standards and the contract have it: no trailing-slash redirects, an
``Allow`` that lists every method of a path, the Host check of ``ALLOWED_HOSTS``, and
``/metrics`` on a port of its own with ``METRICS_PORT``."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from entrypoints.settings import InvalidSettings
from tests.e2e.conftest import (
    LOGIN,
    ME,
    PASSWORD,
    USERS,
    Api,
    AppFactory,
    assert_problem,
)
from tests.e2e.servers import STARTUP_TIMEOUT, Server, free_port, running, server_env

# --- Trailing slashes -----------------------------------------------------------------


async def test_a_path_with_a_missing_or_extra_slash_is_a_404_and_never_a_redirect(
    api: Api,
) -> None:
    await api.register("ada")
    credentials = {"username": "ada", "password": PASSWORD}
    for method, path, form in [
        ("POST", f"{LOGIN}/", credentials),  # a redirect would replay the password
        ("GET", f"{ME}/", None),
        ("GET", USERS.rstrip("/"), None),  # the list is at /api/v1/users/
        ("POST", USERS.rstrip("/"), None),
        ("GET", "/health/live/", None),
        ("GET", "/.well-known/jwks.json/", None),
    ]:
        response = await api.client.request(method, path, data=form)
        assert_problem(response, 404, "not_found")
        assert "location" not in response.headers, (method, path)


# --- 405 and Allow --------------------------------------------------------------------


ALLOWED_METHODS = [
    ("OPTIONS", ME, "DELETE, GET, PATCH"),
    ("PUT", ME, "DELETE, GET, PATCH"),
    ("PUT", USERS, "GET, POST"),
    ("GET", LOGIN, "POST"),
    ("POST", "/health/live", "GET"),
    ("POST", "/api/v1/admin/users/1", "DELETE, GET, PATCH"),
    ("PUT", "/api/v1/admin/users/1/sessions", "DELETE, GET"),
]


async def test_a_405_allows_every_method_of_the_path(api: Api) -> None:
    for method, path, allowed in ALLOWED_METHODS:
        response = await api.client.request(method, path)
        assert_problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == allowed, (method, path)


async def test_every_method_a_405_allows_is_served(api: Api) -> None:
    for method, path, _ in ALLOWED_METHODS:
        allow = (await api.client.request(method, path)).headers["allow"]
        for listed in allow.split(", "):
            response = await api.client.request(listed, path)
            assert response.status_code != 405, (listed, path, allow)


# --- ALLOWED_HOSTS --------------------------------------------------------------------

HOSTS = ["api.example.com", "*.example.org", "[::1]"]


async def test_a_listed_host_is_answered(app_factory: AppFactory) -> None:
    async with app_factory(allowed_hosts=HOSTS) as api:
        for host in (
            "api.example.com",
            "API.Example.COM:8443",  # any case, any port
            "api.example.com.",  # the fully qualified form
            "eu.example.org",
            "a.b.example.org",
            "[::1]:8000",
        ):
            response = await api.client.get("/health/live", headers={"Host": host})
            assert response.status_code == 200, (host, response.text)
        created = await api.client.post(
            USERS,
            json={"email": "ada@example.com", "username": "ada", "password": PASSWORD},
            headers={"Host": "api.example.com"},
        )
        assert created.status_code == 201, created.text


async def test_any_other_host_is_refused_on_every_path(app_factory: AppFactory) -> None:
    async with app_factory(allowed_hosts=HOSTS) as api:
        for host in (
            "testserver",
            "evil.example",
            "example.org",  # *.example.org covers the subdomains only
            "api.example.com.evil.example",
            "evilexample.org",
            "127.0.0.1:8000",
            "[::2]:8000",
        ):
            for method, path in [
                ("GET", "/health/live"),
                ("GET", "/health/ready"),
                ("GET", "/metrics"),
                ("GET", "/nowhere"),
                ("POST", USERS),
            ]:
                response = await api.client.request(
                    method, path, headers={"Host": host, "X-Request-ID": "host-check"}
                )
                body = assert_problem(response, 400, "invalid_host")
                assert body["detail"] == "The Host header is not one this service answers."
                assert response.headers["x-request-id"] == "host-check"
                assert response.headers["x-content-type-options"] == "nosniff"
        listed = await api.client.get(USERS, headers={"Host": "api.example.com"})
        assert listed.json()["total"] == 0  # the refused registrations never ran


async def test_a_request_without_a_host_is_refused(app_factory: AppFactory) -> None:
    async def drop_host(request: httpx.Request) -> None:
        del request.headers["host"]

    async with app_factory(allowed_hosts=HOSTS) as api:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=api.app),
            base_url="http://api.example.com",
            event_hooks={"request": [drop_host]},
        ) as client:
            assert_problem(await client.get("/health/live"), 400, "invalid_host")


async def test_every_host_is_answered_by_default_and_with_a_wildcard(
    app_factory: AppFactory,
) -> None:
    for hosts in ({}, {"allowed_hosts": ["*"]}):
        async with app_factory(**hosts) as api:
            for host in ("evil.example", "127.0.0.1:8000", "testserver"):
                response = await api.client.get("/health/live", headers={"Host": host})
                assert response.status_code == 200, (hosts, host)


# --- METRICS_PORT ---------------------------------------------------------------------


async def _scrape(port: int) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"http://127.0.0.1:{port}/metrics")


async def test_with_a_metrics_port_the_metrics_are_served_there_only(
    app_factory: AppFactory,
) -> None:
    port = free_port()
    async with app_factory(metrics_port=port) as api:
        await api.client.get("/health/live")
        assert_problem(await api.client.get("/metrics"), 404, "not_found")
        scraped = await _scrape(port)
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        assert 'http_requests_total{method="GET",route="/health/live",status="200"}' in (
            scraped.text
        )
        assert "/metrics" not in (await api.client.get("/openapi.json")).text
    # The port is released when the app stops (SO_REUSEADDR: past the scrape's TIME_WAIT).
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


async def test_without_a_metrics_port_the_metrics_are_on_the_api(api: Api) -> None:
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert "http_requests_total" in response.text


@contextmanager
def busy_port() -> Iterator[int]:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield int(busy.getsockname()[1])


async def test_a_metrics_port_in_use_stops_the_start(app_factory: AppFactory) -> None:
    with busy_port() as port:
        with pytest.raises(InvalidSettings, match=f"METRICS_PORT: cannot listen on port {port}"):
            async with app_factory(metrics_port=port):
                pass


# The real server: every worker serves the metrics port; a busy one is one line.


def server_env_for(tmp_path: Path, sqlite_template: Path, **extra: str) -> dict[str, str]:
    database = tmp_path / "app.db"
    shutil.copyfile(sqlite_template, database)
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{database}", "SECRET_KEY": "s" * 64}
    return {**env, "ALLOWED_HOSTS": '["*"]', "METRICS_HOST": "127.0.0.1", **extra}


def start_workers(env: dict[str, str], log_dir: Path, port: int, workers: int) -> Server:
    """What ``app serve --workers N`` becomes (``servers.start_server`` runs one worker)."""
    command = [sys.executable, "-P", "-m", "entrypoints.serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    stderr_path, stdout_path = log_dir / "workers.stderr.log", log_dir / "workers.stdout.log"
    with stderr_path.open("wb") as stderr, stdout_path.open("wb") as stdout:
        process = subprocess.Popen(
            command,
            env=server_env(env),
            cwd=log_dir,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    return Server("workers", port, process, stderr_path, stdout_path, command)


async def test_every_worker_of_the_server_binds_the_metrics_port(
    tmp_path: Path, sqlite_template: Path
) -> None:
    metrics_port = free_port()
    env = server_env_for(tmp_path, sqlite_template, METRICS_PORT=str(metrics_port))
    server = start_workers(env, tmp_path, free_port(), workers=2)
    try:
        await server.wait_until_live()
        await _wait_for_workers(server, 2)
        scraped = await _scrape(metrics_port)
        assert scraped.status_code == 200
        assert "http_requests_total" in scraped.text
        assert_problem(await _get(server, "/metrics"), 404, "not_found")
        await server.stop()
    finally:
        server.kill()
    assert "Traceback" not in server.stderr(), server.describe()


async def _get(server: Server, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        return await client.get(path)


async def _wait_for_workers(server: Server, count: int) -> None:
    """Until ``count`` workers logged their start (each binds the metrics port first)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while server.stderr().count('"api started"') < count:
        assert server.process.poll() is None, server.describe()
        assert time.monotonic() < deadline, server.describe()
        await asyncio.sleep(0.1)


async def test_a_busy_metrics_port_stops_the_server_with_one_line(
    tmp_path: Path, sqlite_template: Path
) -> None:
    with busy_port() as metrics_port:
        env = server_env_for(tmp_path, sqlite_template, METRICS_PORT=str(metrics_port))
        with pytest.raises(RuntimeError, match="server exited") as exited:
            # An explicit port: no retry on "already in use", which is the point here.
            async with running("busy-metrics", env, tmp_path, port=free_port()):
                pass
    output = str(exited.value)
    assert f"METRICS_PORT: cannot listen on port {metrics_port}" in output
    assert "Traceback" not in output
