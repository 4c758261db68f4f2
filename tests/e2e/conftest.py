"""Shared fixtures of the HTTP end-to-end tests: the real app (real container, real
database, real rate limiter) driven through httpx's ASGI transport.

Every test that takes ``api`` runs once on SQLite and once on PostgreSQL (through the
``database_url`` fixture of tests/conftest.py). Settings are built explicitly, from a
temporary working directory and with every setting's environment variable removed, so
neither a developer's ``.env`` nor their shell can change what a test sees.

Each app has a container of its own; ``app_factory`` overrides its providers with the
library's own ``override`` (a fast hasher; ``configure`` and ``use_cases`` for more).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from dependency_injector import providers
from fastapi import FastAPI

from adapters.hasher import Argon2Hasher
from entrypoints.container import Container, ContainerServices, create_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.e2e.cli_fixtures import Cli, clean_env
from tests.forged import forge

SECRET_KEY = "s" * 64
OTHER_KEY = "o" * 64
BASE_URL = "http://testserver"
PASSWORD = "correct horse battery staple"
PROBLEM_JSON = "application/problem+json"
USERS = "/api/v1/users/"
ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
LOGOUT_ALL = "/api/v1/auth/logout-all"
SESSIONS = "/api/v1/auth/sessions"
REAUTHENTICATE = "/api/v1/auth/reauthenticate"
USER_FIELDS = {
    "id",
    "email",
    "username",
    "full_name",
    "is_active",
    "is_superuser",
    "is_verified",
    "created_at",
}
PUBLIC_USER_FIELDS = {"id", "username", "full_name", "created_at"}
TOKEN_PAIR_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in"}
SESSION_FIELDS = {"id", "created_at", "last_used_at", "user_agent", "current"}

# Passed as a setting's value: leave that setting to the environment instead.
FROM_ENV = object()
# A fast argon2id for tests: the real parameters cost ~50 ms per hash.
FAST_HASHER = {"time_cost": 1, "memory_cost": 1024}


class CountingHasher(Argon2Hasher):
    """The real hasher, counting its verifications."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.verifications = 0

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.verifications += 1
        return await super().verify(password_hash, password)


class GatedHasher(CountingHasher):
    """Holds the next ``verify`` or ``hash`` (whichever ``arm()`` names) until ``release``
    is set: a use case can be paused at its slow step while the test changes the world."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._armed: str | None = None
        self.paused = asyncio.Event()
        self.release = asyncio.Event()

    def arm(self, step: str = "verify") -> None:
        self._armed = step

    async def _pause_at(self, step: str) -> None:
        if self._armed == step:
            self._armed = None
            self.paused.set()
            await self.release.wait()

    async def verify(self, password_hash: str | None, password: str) -> bool:
        matched = await super().verify(password_hash, password)
        await self._pause_at("verify")
        return matched

    async def hash(self, password: str) -> str:
        await self._pause_at("hash")
        return await super().hash(password)


@dataclass
class Api:
    """A running app and a client speaking to it."""

    app: FastAPI
    container: Container
    services: ContainerServices
    settings: Settings
    client: httpx.AsyncClient
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def client_from(self, ip: str) -> httpx.AsyncClient:
        """Another client for the same app, whose socket address is ``ip``. Close it."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=(ip, 4321)), base_url=BASE_URL
        )

    async def register(
        self, username: str | None = None, password: str = PASSWORD, **fields: Any
    ) -> dict[str, Any]:
        """Register a user (201 asserted) and return its body."""
        username = username or f"user{next(self._names)}"
        body = {"email": f"{username.lower()}@example.com", "username": username}
        body.update(password=password, **fields)
        response = await self.client.post(USERS, json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def login(self, login: str, password: str = PASSWORD, **kwargs: Any) -> dict[str, Any]:
        """Log in with the form (200 asserted) and return the token pair."""
        response = await self.client.post(
            LOGIN, data={"username": login, "password": password}, **kwargs
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def user_with_tokens(
        self, username: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        user = await self.register(username)
        return user, await self.login(user["username"])

    async def me(self, access_token: str) -> httpx.Response:
        return await self.client.get(ME, headers=bearer(access_token))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str)
    assert body["title"]
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["code"] == code
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    if status == 429:
        assert response.headers["retry-after"].isdigit()
        assert int(response.headers["retry-after"]) >= 1
    if status == 422:
        assert body["errors"], body
        for error in body["errors"]:
            assert set(error) == {"loc", "msg", "type"}
            assert isinstance(error["loc"], list)
            assert isinstance(error["msg"], str)
            assert isinstance(error["type"], str)
    text = response.text.lower()
    for leak in ("traceback", "sqlalchemy", "select ", "insert ", "asyncpg", SECRET_KEY):
        assert leak not in text, response.text
    return dict(body)


def claims(token: str) -> dict[str, Any]:
    """A JWT's payload, read without checking anything."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


def sign(
    payload: dict[str, Any],
    key: str = SECRET_KEY,
    algorithm: str = "HS256",
    typ: str | None = None,
) -> str:
    return forge(payload, key, algorithm, typ)


def unsigned(payload: dict[str, Any]) -> str:
    """An ``alg: none`` token, as an attacker would hand-craft it."""

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def _clear_setting_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in list(os.environ):
        if name.upper() in fields:
            monkeypatch.delenv(name)


@pytest.fixture
def settings_factory(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    """Builds test settings on this test's database; keyword arguments override, and
    ``FROM_ENV`` leaves a setting to the (test's own) environment variables."""
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    _clear_setting_variables(monkeypatch)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "environment": "test",
            "secret_key": SECRET_KEY,
            "algorithm": "HS256",
            "jwt_issuer": None,
            "jwt_audience": None,
            "allowed_origins": [],
            "trusted_proxies": [],
            "rate_limit_enabled": False,
            "rate_limit_storage_uri": "memory://",
            "log_level": "WARNING",
            "log_format": "json",
        }
        values.update(overrides)
        return Settings(**{k: v for k, v in values.items() if v is not FROM_ENV})

    return make


AppFactory = Callable[..., Any]


@pytest.fixture
def app_factory(settings_factory: Callable[..., Settings]) -> AppFactory:
    """``async with app_factory(**settings) as api``: a fresh app with its lifespan
    running. ``configure(container)`` may override providers before the app is built, and
    ``use_cases`` stands instances in for use cases (through their providers)."""

    @asynccontextmanager
    async def start(
        configure: Callable[[Container], None] | None = None,
        client_ip: str = "127.0.0.1",
        use_cases: Mapping[type, Any] | None = None,
        **overrides: Any,
    ) -> AsyncIterator[Api]:
        settings = settings_factory(**overrides)
        container = create_container(settings)
        container.adapters.hasher.override(providers.Singleton(Argon2Hasher, **FAST_HASHER))
        if configure is not None:
            configure(container)
        services = ContainerServices(container)
        for kind, instance in (use_cases or {}).items():
            services.provider(kind).override(providers.Object(instance))
        app = create_app(settings, services)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=(client_ip, 4321))
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                yield Api(
                    app=app,
                    container=container,
                    services=services,
                    settings=settings,
                    client=client,
                )

    return start


@pytest.fixture
async def api(app_factory: AppFactory) -> AsyncIterator[Api]:
    """The app with rate limits off, on SQLite and on PostgreSQL."""
    async with app_factory() as running:
        yield running


# The `app` command's fixtures (helpers in tests/e2e/cli_fixtures.py).


@pytest.fixture(name="_restore_logging", autouse=True)
def restore_logging_fixture() -> Iterator[None]:
    """Commands point the root logger at CliRunner's streams, which close after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(name="cli")
def cli_fixture(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    return Cli(database_url, clean_env(database_url))
