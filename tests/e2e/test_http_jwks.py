"""Asymmetric tokens through the HTTP API, on SQLite and PostgreSQL: the JWKS, logins
under ES256 and EdDSA, a rotation that kills no live token, a revocation that kills
every token of its key, a job runner of another algorithm that leaves the API signing,
and every way a token can be bent to get past the key set."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from application.audit import ListAuditEvents
from application.signing_keys import (
    EnsureSigningKey,
    RevokeSigningKey,
    RotateSigningKeys,
    RunKeyLifecycle,
)
from domain.audit import Actor, ActorType, AuditFilter, acting_as
from domain.model import PageRequest
from domain.ports import Clock, UnitOfWork
from domain.signing_keys import KeyPolicy, KeySetCache, SigningKeyUnreadable
from entrypoints.container import build_services
from entrypoints.scheduler.jobs import JobLock
from entrypoints.scheduler.runner import scheduled_jobs
from tests.e2e.conftest import (
    OTHER_KEY,
    REFRESH,
    Api,
    AppFactory,
    assert_problem,
    claims,
)
from tests.fakes import FakeClock

JWKS = "/.well-known/jwks.json"
CACHE_CONTROL = "public, max-age=300"
PUBLIC_MEMBERS = {"EC": {"crv", "x", "y"}, "OKP": {"crv", "x"}}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture(params=["ES256", "EdDSA"])
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def keyed(app_factory: AppFactory, algorithm: str) -> AsyncIterator[Api]:
    """The app with an asymmetric ALGORITHM, on SQLite and on PostgreSQL."""
    async with app_factory(algorithm=algorithm, jwt_key_activation_delay_seconds=0) as running:
        yield running


async def jwks(api: Api) -> list[dict[str, Any]]:
    response = await api.client.get(JWKS)
    assert response.status_code == 200, response.text
    return list(response.json()["keys"])


def header(token: str) -> dict[str, Any]:
    return dict(jwt.get_unverified_header(token))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_header(token: str, **changes: Any) -> str:
    """``token`` with its header changed, the payload and signature kept."""
    _, payload, signature = token.split(".")
    values = {**header(token), **changes}
    raw = json.dumps(values, separators=(",", ":"), sort_keys=True).encode()
    return f"{b64(raw)}.{payload}.{signature}"


async def rotate(api: Api) -> str:
    """``app keys rotate`` as the use case; the new key's kid. This replica reloads
    at once rather than within its refresh period."""
    kid = (await api.services.get(RotateSigningKeys)()).kid
    await api.services.get(KeySetCache).reload()
    return kid


def lifecycle_at(api: Api, clock: Clock) -> RunKeyLifecycle:
    """The job runner's lifecycle use case, at another time."""

    def uow() -> UnitOfWork:
        made: UnitOfWork = api.container.adapters.uow()
        return made

    return RunKeyLifecycle(uow, clock, api.services.get(KeyPolicy))


# --- the JWKS --------------------------------------------------------------------------


async def test_with_hs256_the_jwks_is_empty_and_cacheable(api: Api) -> None:
    response = await api.client.get(JWKS)

    assert response.status_code == 200
    assert response.json() == {"keys": []}
    assert response.headers["cache-control"] == CACHE_CONTROL
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_jwks_publishes_the_signing_key_and_no_private_part(
    keyed: Api, algorithm: str
) -> None:
    response = await keyed.client.get(JWKS)

    assert response.headers["cache-control"] == CACHE_CONTROL
    [key] = response.json()["keys"]
    assert key["alg"] == algorithm
    assert key["use"] == "sig"
    assert set(key) == {"kty", "kid", "alg", "use"} | PUBLIC_MEMBERS[key["kty"]]
    assert not PRIVATE_MEMBERS & set(key)
    assert jwt.PyJWK(key).algorithm_name == algorithm


async def test_the_openapi_document_describes_the_jwks(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()

    operation = document["paths"][JWKS]["get"]
    assert operation["tags"] == ["keys"]
    ok = operation["responses"]["200"]
    assert "Cache-Control" in ok["headers"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Jwks"}
    jwk = document["components"]["schemas"]["Jwk"]
    assert "d" not in jwk["properties"]
    assert {"kty", "kid", "alg", "use"} <= set(jwk["required"])


# --- logins --------------------------------------------------------------------------------


async def test_login_and_me_work_with_tokens_signed_by_the_published_key(
    keyed: Api, algorithm: str
) -> None:
    user, tokens = await keyed.user_with_tokens()
    [key] = await jwks(keyed)

    for token, typ in ((tokens["access_token"], "at+jwt"), (tokens["refresh_token"], "JWT")):
        assert header(token) == {"alg": algorithm, "kid": key["kid"], "typ": typ}
    me = await keyed.me(tokens["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user["id"]
    # Anyone with the JWKS alone verifies it.
    verified = jwt.decode(tokens["access_token"], jwt.PyJWK(key).key, algorithms=[algorithm])
    assert verified["sub"] == str(user["id"])
    refreshed = await keyed.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert (await keyed.me(refreshed.json()["access_token"])).status_code == 200


async def test_a_restart_keeps_the_key_and_the_tokens_it_signed(
    app_factory: AppFactory, algorithm: str
) -> None:
    async with app_factory(algorithm=algorithm) as first:
        _, tokens = await first.user_with_tokens("ada")
        before = await jwks(first)

    async with app_factory(algorithm=algorithm) as second:
        assert await jwks(second) == before
        assert (await second.me(tokens["access_token"])).status_code == 200


async def test_a_secret_key_that_cannot_decrypt_the_key_stops_the_start(
    app_factory: AppFactory, algorithm: str
) -> None:
    async with app_factory(algorithm=algorithm) as first:
        [key] = await jwks(first)

    with pytest.raises(SigningKeyUnreadable) as refused:
        async with app_factory(algorithm=algorithm, secret_key=OTHER_KEY):
            pytest.fail("the app must not start")

    message = str(refused.value)
    assert message == (
        f"SECRET_KEY cannot decrypt the signing key {key['kid']}: it is not the SECRET_KEY"
        " the signing keys were encrypted with"
    )
    assert OTHER_KEY not in message


# --- tokens bent to get past the key set ---------------------------------------------------


async def assert_refused(api: Api, token: str) -> None:
    response = await api.me(token)
    assert_problem(response, 401, "invalid_token")


async def test_a_tampered_payload_is_refused(keyed: Api) -> None:
    user, tokens = await keyed.user_with_tokens()
    head, _, signature = tokens["access_token"].split(".")
    forged = {**claims(tokens["access_token"]), "sub": str(user["id"] + 1)}
    payload = b64(json.dumps(forged).encode())

    await assert_refused(keyed, f"{head}.{payload}.{signature}")


async def test_a_token_with_a_swapped_kid_is_refused(keyed: Api) -> None:
    _, tokens = await keyed.user_with_tokens()
    old_token = tokens["access_token"]
    new_kid = await rotate(keyed)  # a second published key to swap in

    await assert_refused(keyed, with_header(old_token, kid=new_kid))
    assert (await keyed.me(with_header(old_token))).status_code == 200  # unchanged: fine


async def test_an_unknown_kid_is_refused(keyed: Api) -> None:
    _, tokens = await keyed.user_with_tokens()

    await assert_refused(keyed, with_header(tokens["access_token"], kid="not-a-known-key"))
    await assert_refused(keyed, with_header(tokens["access_token"], kid=None))


async def test_hs256_with_the_public_key_as_the_secret_is_refused(keyed: Api) -> None:
    _, tokens = await keyed.user_with_tokens()
    [key] = await jwks(keyed)
    public = jwt.PyJWK(key).key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    payload = tokens["access_token"].split(".")[1]

    for secret in (pem, json.dumps(key).encode(), key["x"].encode()):
        head = b64(json.dumps({"alg": "HS256", "kid": key["kid"], "typ": "JWT"}).encode())
        mac = hmac.new(secret, f"{head}.{payload}".encode(), hashlib.sha256).digest()
        await assert_refused(keyed, f"{head}.{payload}.{b64(mac)}")


async def test_alg_none_is_refused(keyed: Api) -> None:
    _, tokens = await keyed.user_with_tokens()
    [key] = await jwks(keyed)
    head = b64(json.dumps({"alg": "none", "kid": key["kid"], "typ": "JWT"}).encode())
    _, payload, signature = tokens["access_token"].split(".")

    await assert_refused(keyed, f"{head}.{payload}.")
    await assert_refused(keyed, f"{head}.{payload}.{signature}")


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c"])
async def test_a_token_naming_a_key_elsewhere_is_refused(keyed: Api, name: str) -> None:
    _, tokens = await keyed.user_with_tokens()
    [key] = await jwks(keyed)
    value: Any = key if name == "jwk" else "https://attacker.example/keys"

    await assert_refused(keyed, with_header(tokens["access_token"], **{name: value}))


async def test_a_refresh_token_with_a_swapped_kid_is_refused(keyed: Api) -> None:
    _, tokens = await keyed.user_with_tokens()
    new_kid = await rotate(keyed)

    response = await keyed.client.post(
        REFRESH, json={"refresh_token": with_header(tokens["refresh_token"], kid=new_kid)}
    )

    assert_problem(response, 401, "invalid_token")


# --- rotation ------------------------------------------------------------------------------


async def test_a_rotation_kills_no_live_token_and_the_old_key_goes_once_its_tokens_have(
    keyed: Api, algorithm: str
) -> None:
    _, before = await keyed.user_with_tokens("ada")
    [old] = await jwks(keyed)

    new_kid = await rotate(keyed)

    assert [key["kid"] for key in await jwks(keyed)] == [old["kid"], new_kid]
    _, during = await keyed.user_with_tokens("bob")
    assert header(during["access_token"])["kid"] == new_kid
    for tokens in (before, during):
        assert (await keyed.me(tokens["access_token"])).status_code == 200

    # Days later, once every token the old key signed has expired, the job runner runs.
    clock = FakeClock(keyed.services.get(Clock).now() + timedelta(days=8))
    result = await lifecycle_at(keyed, clock)()

    assert (result.retired, result.deleted) == (1, 1)
    assert [key["kid"] for key in await jwks(keyed)] == [new_kid]
    await keyed.services.get(KeySetCache).reload()
    await assert_refused(keyed, before["access_token"])  # verified before, cached: gone too
    assert (await keyed.me(during["access_token"])).status_code == 200


async def test_tokens_keep_verifying_while_the_new_key_is_pending(
    app_factory: AppFactory, algorithm: str
) -> None:
    async with app_factory(algorithm=algorithm) as api:  # the default delay, 600 s
        _, before = await api.user_with_tokens("ada")
        [old] = await jwks(api)

        new_kid = await rotate(api)
        _, during = await api.user_with_tokens("bob")

        assert {key["kid"] for key in await jwks(api)} == {old["kid"], new_kid}
        assert header(during["access_token"])["kid"] == old["kid"]  # not signing yet
        for tokens in (before, during):
            assert (await api.me(tokens["access_token"])).status_code == 200


# --- revocation ----------------------------------------------------------------------------


async def revoke(api: Api, kid: str) -> str | None:
    """``app keys revoke KID --yes`` as the use case; the kid of the key made in its
    place, if any."""
    with acting_as(Actor(ActorType.OPERATOR, name="ops")):
        done = await api.services.get(RevokeSigningKey)(kid)
    return done.successor.kid if done.successor is not None else None


async def audited(api: Api, action: str) -> list[dict[str, object]]:
    page = await api.services.get(ListAuditEvents)(AuditFilter(action=action), PageRequest())
    return [event.details for event in page.items]


async def test_a_revoked_signing_key_leaves_the_jwks_and_its_tokens_are_refused_after_the_refresh(
    keyed: Api, algorithm: str
) -> None:
    _, before = await keyed.user_with_tokens("ada")
    [old] = await jwks(keyed)
    assert (await keyed.me(before["access_token"])).status_code == 200  # now cached

    new_kid = await revoke(keyed, old["kid"])

    assert new_kid is not None
    [listed] = await jwks(keyed)  # at once
    assert (listed["kid"], listed["alg"]) == (new_kid, algorithm)
    # This replica's key set refreshes (every replica's does, within a minute).
    await keyed.services.get(KeySetCache).reload()
    await assert_refused(keyed, before["access_token"])
    refreshed = await keyed.client.post(REFRESH, json={"refresh_token": before["refresh_token"]})
    assert_problem(refreshed, 401, "invalid_token")
    # The service signs on, with the key made in its place.
    _, after = await keyed.user_with_tokens("bob")
    assert header(after["access_token"])["kid"] == new_kid
    assert (await keyed.me(after["access_token"])).status_code == 200
    revoked = await audited(keyed, "key.revoked")
    assert revoked == [
        {"kid": old["kid"], "algorithm": algorithm, "replaced_by": new_kid, "os_user": "ops"}
    ]
    assert [details["kid"] for details in await audited(keyed, "key.rotated")] == [new_kid]


async def test_a_revoked_key_that_no_longer_signs_takes_only_its_own_tokens(
    keyed: Api,
) -> None:
    _, before = await keyed.user_with_tokens("ada")
    [old] = await jwks(keyed)
    new_kid = await rotate(keyed)  # signs at once (no activation delay here)
    _, during = await keyed.user_with_tokens("bob")

    assert await revoke(keyed, old["kid"]) is None  # the signer is another key

    assert [key["kid"] for key in await jwks(keyed)] == [new_kid]
    await keyed.services.get(KeySetCache).reload()
    await assert_refused(keyed, before["access_token"])
    assert (await keyed.me(during["access_token"])).status_code == 200


# --- a job runner configured with another algorithm ------------------------------------------


@pytest.mark.parametrize(("algorithm", "other"), [("ES256", "EdDSA"), ("EdDSA", "ES256")])
async def test_a_job_runner_of_another_algorithm_never_takes_the_apis_signer_away(
    keyed: Api, algorithm: str, other: str
) -> None:
    _, before = await keyed.user_with_tokens("ada")
    published = await jwks(keyed)
    runner = build_services(keyed.settings.model_copy(update={"algorithm": other}))
    try:
        # ``app jobs run``: the start-up check, then the signing-key job.
        await runner.get(EnsureSigningKey)()
        jobs = scheduled_jobs(runner.container.settings(), runner, runner.get(JobLock))
        [job] = [job for job, _ in jobs if job.name == "signing_keys"]
        await job.run()
    finally:
        await runner.close()

    # The API's next refresh of its key set: it signs and verifies as before.
    await keyed.services.get(KeySetCache).reload()
    assert await jwks(keyed) == published
    _, after = await keyed.user_with_tokens("bob")
    assert header(after["access_token"])["kid"] == published[0]["kid"]
    for tokens in (before, after):
        assert (await keyed.me(tokens["access_token"])).status_code == 200
