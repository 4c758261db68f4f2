"""Attacks on the tokens: every forged, tampered, stale or misused JWT is a 401
``invalid_token`` with ``WWW-Authenticate: Bearer`` (the HTTP contract: Tokens)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt

from tests.e2e.conftest import (
    LOGOUT,
    LOGOUT_ALL,
    ME,
    OTHER_KEY,
    REFRESH,
    SECRET_KEY,
    SESSIONS,
    Api,
    AppFactory,
    assert_problem,
    bearer,
    claims,
    sign,
    unsigned,
)

HOUR = 3600
Tamper = Callable[[dict[str, Any]], str]


def _without(claim: str) -> Tamper:
    return lambda payload: sign({k: v for k, v in payload.items() if k != claim})


def _with(**changes: Any) -> Tamper:
    return lambda payload: sign({**payload, **changes})


ACCESS_ATTACKS: dict[str, Tamper] = {
    "alg none": unsigned,
    "alg none with the real signature": lambda payload: unsigned(payload) + "x",
    "signed with another key": lambda payload: sign(payload, OTHER_KEY),
    "HS512 with the right key": lambda payload: sign(payload, SECRET_KEY, "HS512"),
    "HS384 with the right key": lambda payload: sign(payload, SECRET_KEY, "HS384"),
    "expired": lambda payload: sign({**payload, "exp": int(time.time()) - HOUR}),
    "expired long ago": lambda payload: sign({**payload, "exp": 1}),
    "issued in the future": lambda payload: sign(
        {**payload, "iat": int(time.time()) + HOUR, "exp": int(time.time()) + 2 * HOUR}
    ),
    "not valid before a future time": _with(nbf=int(time.time()) + HOUR),
    "type refresh": _with(type="refresh"),
    "type missing": _without("type"),
    "type other": _with(type="id"),
    "sub missing": _without("sub"),
    "sid missing": _without("sid"),
    "iat missing": _without("iat"),
    "exp missing": _without("exp"),
    "jti missing": _without("jti"),
    "ver missing": _without("ver"),
    "stale ver": lambda payload: sign({**payload, "ver": payload["ver"] - 1}),
    "future ver": lambda payload: sign({**payload, "ver": payload["ver"] + 1}),
    "ver as a string": lambda payload: sign({**payload, "ver": str(payload["ver"])}),
    "ver as a boolean": _with(ver=False),
    "unknown sub": _with(sub="999999"),
    "sub as an integer": lambda payload: sign({**payload, "sub": int(payload["sub"])}),
    "sub not a number": _with(sub="ada"),
    "sub negative": _with(sub="-1"),
    "sub huge": _with(sub="9" * 40),
    "sub with non-ascii digits": _with(sub="\u0661"),  # str.isdigit(), yet not ASCII
    "unknown sid": _with(sid="0" * 32),
    "sid not a string": _with(sid=12345),
    "sid huge": _with(sid="s" * 5000),
    "exp not a number": _with(exp="tomorrow"),
    "iat not a number": _with(iat="yesterday"),
    "exp absurd": _with(exp=10**30),
}


async def test_unchanged_claims_re_signed_with_the_key_are_accepted(api: Api) -> None:
    """The control for the attacks below: the forging itself is sound, so each 401
    there comes from the one thing the attack changed."""
    _, tokens = await api.user_with_tokens("ada")
    assert (await api.me(sign(claims(tokens["access_token"])))).status_code == 200
    response = await api.client.post(
        REFRESH, json={"refresh_token": sign(claims(tokens["refresh_token"]))}
    )
    assert response.status_code == 200, response.text


async def test_tampered_access_tokens_are_401_invalid_token_and_change_nothing(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    genuine = claims(tokens["access_token"])
    for name, attack in ACCESS_ATTACKS.items():
        forged = attack(dict(genuine))
        for response in (
            await api.client.get(ME, headers=bearer(forged)),
            await api.client.get(SESSIONS, headers=bearer(forged)),
            await api.client.patch(ME, json={"full_name": "pwned"}, headers=bearer(forged)),
            await api.client.post(LOGOUT_ALL, headers=bearer(forged)),
            await api.client.delete(ME, headers=bearer(forged)),
        ):
            assert response.status_code == 401, (name, response.request.method, response.text)
            assert_problem(response, 401, "invalid_token")
    # Nothing happened to the account: the genuine token still works, unchanged.
    me = await api.me(tokens["access_token"])
    assert me.status_code == 200
    assert me.json()["full_name"] is None


REFRESH_ATTACKS: dict[str, Tamper] = {
    "alg none": unsigned,
    "signed with another key": lambda payload: sign(payload, OTHER_KEY),
    "HS512 with the right key": lambda payload: sign(payload, SECRET_KEY, "HS512"),
    "expired": lambda payload: sign({**payload, "exp": int(time.time()) - HOUR}),
    "issued in the future": lambda payload: sign(
        {**payload, "iat": int(time.time()) + HOUR, "exp": int(time.time()) + 2 * HOUR}
    ),
    "not valid before a future time": _with(nbf=int(time.time()) + HOUR),
    "type access": _with(type="access"),
    "type missing": _without("type"),
    "sub missing": _without("sub"),
    "sid missing": _without("sid"),
    "jti missing": _without("jti"),
    "iat missing": _without("iat"),
    "exp missing": _without("exp"),
    "unknown jti": _with(jti="f" * 32),
    "unknown sub": _with(sub="999999"),
    "another sid": _with(sid="0" * 32),
}


async def test_tampered_refresh_tokens_are_401_on_refresh_and_rotate_nothing(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    genuine = claims(tokens["refresh_token"])
    for name, attack in REFRESH_ATTACKS.items():
        response = await api.client.post(REFRESH, json={"refresh_token": attack(dict(genuine))})
        assert response.status_code == 401, (name, response.text)
        assert_problem(response, 401, "invalid_token")
    # The genuine token was neither rotated nor revoked by any attempt (were it rotated,
    # presenting it now would count as reuse and fail).
    response = await api.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200, response.text


LOGOUT_ATTACKS = {
    name: REFRESH_ATTACKS[name]
    for name in (
        "alg none",
        "signed with another key",
        "HS512 with the right key",
        "type access",
        "sub missing",
        "sid missing",
        "jti missing",
    )
}


async def test_forged_refresh_tokens_are_401_on_logout_and_end_nothing(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    genuine = claims(tokens["refresh_token"])
    for name, attack in LOGOUT_ATTACKS.items():
        response = await api.client.post(LOGOUT, json={"refresh_token": attack(dict(genuine))})
        assert response.status_code == 401, (name, response.text)
        assert_problem(response, 401, "invalid_token")
    assert (await api.me(tokens["access_token"])).status_code == 200


async def test_refresh_token_used_as_an_access_token_is_401(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    assert_problem(await api.me(tokens["refresh_token"]), 401, "invalid_token")


async def test_access_token_used_as_a_refresh_token_is_401(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.post(REFRESH, json={"refresh_token": tokens["access_token"]})
    assert_problem(response, 401, "invalid_token")


async def test_access_token_of_another_user_with_a_swapped_sub_is_401(api: Api) -> None:
    """A genuine token whose ``sub`` is changed to another user fails the signature;
    even re-signed with the key, the session does not belong to that user."""
    _, ada = await api.user_with_tokens("ada")
    bob, _ = await api.user_with_tokens("bob")
    payload = claims(ada["access_token"])
    header, _, signature = ada["access_token"].split(".")
    swapped_payload = unsigned({**payload, "sub": str(bob["id"])}).split(".")[1]
    swapped = f"{header}.{swapped_payload}.{signature}"
    assert_problem(await api.me(swapped), 401, "invalid_token")
    assert_problem(await api.me(sign({**payload, "sub": str(bob["id"])})), 401, "invalid_token")


async def test_stale_token_version_after_logout_all_is_401(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    assert (
        await api.client.post(LOGOUT_ALL, headers=bearer(tokens["access_token"]))
    ).status_code == 204
    fresh = await api.login("ada")
    # The old token, even re-attached to the new session, carries the old version.
    stale = sign({**claims(tokens["access_token"]), "sid": claims(fresh["access_token"])["sid"]})
    assert_problem(await api.me(stale), 401, "invalid_token")
    assert (await api.me(fresh["access_token"])).status_code == 200


MALFORMED_BEARER_TOKENS = ["", " ", "a", "a.b", "a.b.c", "....", "eyJ" * 2000, "é.é.é", "Bearer x"]


async def test_malformed_bearer_tokens_are_401(api: Api) -> None:
    for token in MALFORMED_BEARER_TOKENS:
        headers = {"Authorization": f"Bearer {token}".encode()}
        response = await api.client.get(ME, headers=headers)  # type: ignore[arg-type]
        assert response.status_code == 401, (token, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] in {"not_authenticated", "invalid_token"}


async def test_only_the_configured_algorithm_is_accepted(app_factory: AppFactory) -> None:
    async with app_factory(algorithm="HS512") as api:
        _, tokens = await api.user_with_tokens("ada")
        assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "HS512"
        assert (await api.me(tokens["access_token"])).status_code == 200
        payload = claims(tokens["access_token"])
        for algorithm in ("HS256", "HS384"):
            response = await api.me(sign(payload, SECRET_KEY, algorithm))
            assert_problem(response, 401, "invalid_token")
        assert_problem(await api.me(unsigned(payload)), 401, "invalid_token")
        refresh = claims(tokens["refresh_token"])
        response = await api.client.post(
            REFRESH, json={"refresh_token": sign(refresh, SECRET_KEY, "HS256")}
        )
        assert_problem(response, 401, "invalid_token")


async def test_tokens_signed_with_a_previous_secret_key_are_refused(
    app_factory: AppFactory,
) -> None:
    async with app_factory(secret_key=OTHER_KEY) as before:
        _, tokens = await before.user_with_tokens("ada")
    async with app_factory() as after:
        assert_problem(await after.me(tokens["access_token"]), 401, "invalid_token")
        response = await after.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
        assert_problem(response, 401, "invalid_token")
