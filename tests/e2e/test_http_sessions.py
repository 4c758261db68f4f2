"""``/api/v1/auth/sessions``: one's own active sessions, and ending one (the HTTP
contract: Auth)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.e2e.conftest import (
    PASSWORD,
    REFRESH,
    SESSION_FIELDS,
    SESSIONS,
    Api,
    assert_problem,
    bearer,
    claims,
)


async def _sessions(api: Api, access_token: str) -> list[dict[str, Any]]:
    response = await api.client.get(SESSIONS, headers=bearer(access_token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return list(response.json())


async def test_sessions_lists_the_callers_sessions_newest_first_with_current_flag(
    api: Api,
) -> None:
    await api.register("ada")
    first = await api.login("ada", headers={"User-Agent": "first-browser/1.0"})
    second = await api.login("ada", headers={"User-Agent": "second-phone/2.0"})
    third = await api.login("ada", headers={"User-Agent": "third-cli/3.0"})
    await api.user_with_tokens("bob")  # another user's session is never listed

    listed = await _sessions(api, second["access_token"])
    for session in listed:
        assert set(session) == SESSION_FIELDS
        assert datetime.fromisoformat(session["created_at"]).utcoffset() is not None
        assert datetime.fromisoformat(session["last_used_at"]).utcoffset() is not None
    sids = [claims(pair["access_token"])["sid"] for pair in (third, second, first)]
    assert [s["id"] for s in listed] == sids
    assert [s["user_agent"] for s in listed] == [
        "third-cli/3.0",
        "second-phone/2.0",
        "first-browser/1.0",
    ]
    assert [s["current"] for s in listed] == [False, True, False]
    created = [datetime.fromisoformat(s["created_at"]) for s in listed]
    assert created == sorted(created, reverse=True)

    from_first = await _sessions(api, first["access_token"])
    assert [s["current"] for s in from_first] == [False, False, True]


async def test_sessions_without_user_agent_show_null(api: Api) -> None:
    await api.register("ada")
    request = api.client.build_request(
        "POST", "/api/v1/auth/login", data={"username": "ada", "password": PASSWORD}
    )
    del request.headers["user-agent"]
    without = (await api.client.send(request)).json()
    empty = await api.login("ada", headers={"User-Agent": ""})
    listed = await _sessions(api, without["access_token"])
    assert [s["user_agent"] for s in listed] == [None, None]
    assert {s["id"] for s in listed} == {
        claims(without["access_token"])["sid"],
        claims(empty["access_token"])["sid"],
    }


async def test_sessions_truncates_a_huge_user_agent(api: Api) -> None:
    await api.register("ada")
    tokens = await api.login("ada", headers={"User-Agent": "A" * 10_000})
    listed = await _sessions(api, tokens["access_token"])
    assert listed[0]["user_agent"].startswith("AAAA")
    assert len(listed[0]["user_agent"]) <= 1000


async def test_refresh_keeps_the_session_and_updates_last_used_at(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    before = (await _sessions(api, tokens["access_token"]))[0]
    response = await api.client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    new = response.json()
    after = await _sessions(api, new["access_token"])
    assert len(after) == 1
    assert after[0]["id"] == before["id"]
    assert after[0]["current"] is True
    assert after[0]["created_at"] == before["created_at"]
    assert datetime.fromisoformat(after[0]["last_used_at"]) >= datetime.fromisoformat(
        before["last_used_at"]
    )


async def test_ended_sessions_are_not_listed(api: Api) -> None:
    await api.register("ada")
    kept = await api.login("ada")
    ended = await api.login("ada")
    await api.client.post("/api/v1/auth/logout", json={"refresh_token": ended["refresh_token"]})
    listed = await _sessions(api, kept["access_token"])
    assert [s["id"] for s in listed] == [claims(kept["access_token"])["sid"]]


async def test_delete_session_ends_its_access_and_refresh_tokens(api: Api) -> None:
    await api.register("ada")
    mine = await api.login("ada")
    other = await api.login("ada")
    sid = claims(other["access_token"])["sid"]
    response = await api.client.delete(f"{SESSIONS}/{sid}", headers=bearer(mine["access_token"]))
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await api.me(other["access_token"]), 401, "invalid_token")
    refreshed = await api.client.post(REFRESH, json={"refresh_token": other["refresh_token"]})
    assert_problem(refreshed, 401, "invalid_token")
    # The caller's own session lives on.
    assert (await api.me(mine["access_token"])).status_code == 200
    assert [s["id"] for s in await _sessions(api, mine["access_token"])] == [
        claims(mine["access_token"])["sid"]
    ]


async def test_delete_the_current_session_ends_the_callers_token(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    sid = claims(tokens["access_token"])["sid"]
    response = await api.client.delete(f"{SESSIONS}/{sid}", headers=bearer(tokens["access_token"]))
    assert response.status_code == 204
    assert_problem(await api.me(tokens["access_token"]), 401, "invalid_token")


async def test_delete_another_users_session_is_404_and_leaves_it_alone(api: Api) -> None:
    _, ada = await api.user_with_tokens("ada")
    _, bob = await api.user_with_tokens("bob")
    bobs_sid = claims(bob["access_token"])["sid"]
    response = await api.client.delete(
        f"{SESSIONS}/{bobs_sid}", headers=bearer(ada["access_token"])
    )
    assert_problem(response, 404, "not_found")
    assert (await api.me(bob["access_token"])).status_code == 200


@pytest.mark.parametrize(
    "sid",
    ["0" * 32, "unknown", "1", "%20", "a" * 64],
    ids=["hex", "word", "digit", "space", "long"],
)
async def test_delete_an_unknown_session_is_404(api: Api, sid: str) -> None:
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.delete(f"{SESSIONS}/{sid}", headers=bearer(tokens["access_token"]))
    assert_problem(response, 404, "not_found")


async def test_delete_a_session_id_too_long_is_4xx(api: Api) -> None:
    _, tokens = await api.user_with_tokens("ada")
    response = await api.client.delete(
        f"{SESSIONS}/{'a' * 5000}", headers=bearer(tokens["access_token"])
    )
    assert response.status_code in {404, 422}
    assert response.headers["content-type"] == "application/problem+json"


async def test_delete_an_already_ended_session_is_404(api: Api) -> None:
    await api.register("ada")
    mine = await api.login("ada")
    other = await api.login("ada")
    sid = claims(other["access_token"])["sid"]
    url = f"{SESSIONS}/{sid}"
    assert (await api.client.delete(url, headers=bearer(mine["access_token"]))).status_code == 204
    assert_problem(
        await api.client.delete(url, headers=bearer(mine["access_token"])), 404, "not_found"
    )


async def test_sessions_endpoints_need_a_token(api: Api) -> None:
    assert_problem(await api.client.get(SESSIONS), 401, "not_authenticated")
    assert_problem(await api.client.delete(f"{SESSIONS}/abc"), 401, "not_authenticated")
