"""Proof from outside: a separate process that knows only the JWKS URL of a live
``app serve`` verifies its access tokens with a standard client (PyJWT's
``PyJWKClient``) before a rotation, during one (old and new tokens both), and after
the old key is gone."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from adapters.database import Database
from adapters.key_crypto import AesGcmKeyMaker
from adapters.unit_of_work import unit_of_work
from application.signing_keys import RunKeyLifecycle
from domain.ports import UnitOfWork
from domain.signing_keys import KeyPolicy, SigningKey, SigningKeyRepository
from tests.e2e.cli_fixtures import APP
from tests.e2e.servers import Server, running, server_env
from tests.fakes import FakeClock

pytestmark = pytest.mark.slow

SECRET_KEY = "verifier-test-secret-key-" + "v" * 40
PASSWORD = "correct horse battery staple"
# The verifier: a process of its own, with nothing of this project but a URL.
VERIFIER = """
import json, sys
import jwt

url, token = sys.argv[1], sys.stdin.read().strip()
key = jwt.PyJWKClient(url, cache_jwk_set=False).get_signing_key_from_jwt(token)
options = {"require": ["exp", "sub"]}
claims = jwt.decode(token, key.key, algorithms=[key.algorithm_name], options=options)
print(json.dumps({"sub": claims["sub"], "kid": key.key_id, "alg": key.algorithm_name}))
"""
TIMEOUT = 60


@pytest.fixture(params=["ES256", "EdDSA"])
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def verify_elsewhere(url: str, token: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 (the caller checks)
        [sys.executable, "-I", "-c", VERIFIER, url],
        input=token,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=workdir,
        env={},
    )


def run_app(env: dict[str, str], workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 (the caller checks)
        [str(APP), *args],
        env=server_env(env),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def verified(url: str, token: str, workdir: Path) -> dict[str, Any]:
    done = verify_elsewhere(url, token, workdir)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


async def log_in(server: Server, username: str) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        created = await client.post(
            "/api/v1/users/",
            json={"email": f"{username}@example.com", "username": username, "password": PASSWORD},
        )
        assert created.status_code in (201, 409), created.text
        login = await client.post(
            "/api/v1/auth/login", data={"username": username, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        return str(login.json()["access_token"])


async def stored_keys(database_url: str) -> list[SigningKey]:
    database = Database(database_url)
    try:
        async with unit_of_work(database, read_only=True) as uow:
            return await uow.repository(SigningKeyRepository).list_all()
    finally:
        await database.dispose()


def re_signed(token: str, key: SigningKey) -> str:
    """``token``'s claims signed with ``key``, as a replica that already signs with it
    would have."""
    payload = jwt.decode(token, options={"verify_signature": False})
    private = AesGcmKeyMaker(SECRET_KEY).open(key)
    header = jwt.get_unverified_header(token)
    headers = {"kid": key.kid, "typ": header["typ"]}
    return jwt.encode(payload, private, algorithm=key.algorithm, headers=headers)


async def until_signed_by(server: Server, kid: str, username: str) -> str:
    for _ in range(200):
        token = await log_in(server, username)
        if jwt.get_unverified_header(token)["kid"] == kid:
            return token
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server never signed with {kid}")


async def run_lifecycle_at(database_url: str, moment: datetime, algorithm: str) -> tuple[int, int]:
    database = Database(database_url)

    def uow() -> UnitOfWork:
        return unit_of_work(database)

    try:
        policy = KeyPolicy(algorithm=algorithm, token_lifetime=timedelta(days=7))
        result = await RunKeyLifecycle(uow, FakeClock(moment), policy)()
        return result.retired, result.deleted
    finally:
        await database.dispose()


async def test_an_outside_verifier_with_only_the_jwks_url_follows_a_rotation(
    database_url: str, algorithm: str, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET_KEY,
        "ALGORITHM": algorithm,
        "JWT_KEY_ACTIVATION_DELAY_SECONDS": "0",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    async with running("keys", env, tmp_path) as server:
        jwks_url = f"{server.url}/.well-known/jwks.json"

        # Before: the first key, made at the first start, signs and verifies.
        before = await log_in(server, "ada")
        seen = verified(jwks_url, before, tmp_path)
        [old] = await stored_keys(database_url)
        assert (seen["kid"], seen["alg"]) == (old.kid, algorithm)

        # During: `app keys rotate`, as an operator runs it, from another process.
        rotated = await asyncio.to_thread(run_app, env, tmp_path, "keys", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        [new] = [key for key in await stored_keys(database_url) if key.kid != old.kid]
        assert new.kid in rotated.stdout
        # A token from a replica that already signs with the new key: refused by this
        # one for now (unknown kid), which makes it reload its key set at once.
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            me = await client.get(
                "/api/v1/users/me", headers={"Authorization": f"Bearer {re_signed(before, new)}"}
            )
            assert me.status_code in (200, 401)
        during = await until_signed_by(server, new.kid, "bob")
        assert verified(jwks_url, before, tmp_path)["kid"] == old.kid
        assert verified(jwks_url, during, tmp_path)["kid"] == new.kid

        # After: once every token the old key signed has expired, the job runner's
        # lifecycle deletes it; tokens of the new key verify, the old key is gone.
        later = datetime.now(UTC) + timedelta(days=8)
        assert await run_lifecycle_at(database_url, later, algorithm) == (1, 1)
        assert [key.kid for key in await stored_keys(database_url)] == [new.kid]
        assert verified(jwks_url, during, tmp_path)["kid"] == new.kid
        refused = verify_elsewhere(jwks_url, before, tmp_path)
        assert refused.returncode != 0
        assert "Unable to find a signing key" in refused.stderr
