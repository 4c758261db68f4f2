"""Personal access tokens over HTTP (the contract: "Personal access tokens"): creating,
using, listing and revoking them; what ends them; and, over the whole route table, that
every route declares the one scope it needs and a token gets no further."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from fastapi.routing import APIRoute

from application.audit import ListAuditEvents
from application.outbox import ListOutbox
from domain.access_tokens import MAX_LIVE_TOKENS, checksum_ok
from domain.audit import AuditFilter
from domain.model import PageRequest
from domain.outbox import Template
from domain.scopes import Scope
from entrypoints.container import Container
from entrypoints.http import dependencies
from entrypoints.http.dependencies import declared_access
from tests.e2e.conftest import (
    LOGOUT_ALL,
    ME,
    PASSWORD,
    REAUTHENTICATE,
    Api,
    AppFactory,
    assert_problem,
    bearer,
)
from tests.e2e.test_http_admin import ADMIN, make_admin
from tests.fakes import FakeClock

TOKENS = "/api/v1/auth/tokens"
TOKEN_FIELDS = {"id", "name", "scopes", "created_at", "expires_at", "last_used_at"}
ALL = [scope.value for scope in Scope]
USER_SCOPES = [s.value for s in Scope if not s.needs_superuser]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 8, 9, 30, 20, tzinfo=UTC))


@pytest.fixture
async def clocked(app_factory: AppFactory, clock: FakeClock) -> AsyncIterator[Api]:
    """The app on ``clock``."""

    def with_clock(container: Container) -> None:
        container.adapters.clock.override(providers.Object(clock))

    async with app_factory(configure=with_clock) as api:
        yield api


async def create(
    api: Api, access_token: str, scopes: list[str], name: str = "ci", days: int = 30
) -> httpx.Response:
    return await api.client.post(
        TOKENS,
        json={"name": name, "scopes": scopes, "expires_in_days": days},
        headers=bearer(access_token),
    )


async def new_token(api: Api, access_token: str, scopes: list[str], **kwargs: Any) -> str:
    response = await create(api, access_token, scopes, **kwargs)
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def assert_insufficient_scope(response: httpx.Response, scope: str | None) -> None:
    assert_problem(response, 403, "insufficient_scope")
    needed = f', scope="{scope}"' if scope else ""
    assert response.headers["www-authenticate"] == f'Bearer error="insufficient_scope"{needed}'


async def test_a_token_is_shown_once_and_works_on_what_its_scopes_allow(api: Api) -> None:
    _, pair = await api.user_with_tokens("ada")

    response = await create(api, pair["access_token"], ["profile:read", "profile:read"])

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == TOKEN_FIELDS | {"token"}
    token = body["token"]
    assert re.fullmatch(r"app_pat_[0-9A-Za-z]{49}", token)
    assert checksum_ok(token)
    assert body["scopes"] == ["profile:read"]
    assert body["last_used_at"] is None
    created = datetime.fromisoformat(body["created_at"])
    assert datetime.fromisoformat(body["expires_at"]) - created == timedelta(days=30)

    me = await api.me(token)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "ada"
    # The list never shows the token again.
    listed = await api.client.get(TOKENS, headers=bearer(pair["access_token"]))
    assert listed.status_code == 200
    (item,) = listed.json()
    assert set(item) == TOKEN_FIELDS
    assert token not in listed.text
    assert item["id"] == body["id"]

    # What its scope does not allow: profile:write.
    response = await api.client.patch(ME, json={"full_name": "Ada"}, headers=bearer(token))
    assert_insufficient_scope(response, "profile:write")


async def test_a_token_writes_the_profile_but_never_the_email_or_the_password(
    api: Api,
) -> None:
    _, pair = await api.user_with_tokens("ada")
    token = await new_token(api, pair["access_token"], ["profile:read", "profile:write"])
    headers = bearer(token)

    renamed = await api.client.patch(ME, json={"full_name": "Ada L."}, headers=headers)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["full_name"] == "Ada L."

    for change in (
        {"email": "new@example.com", "current_password": PASSWORD},
        {"password": "another long passphrase", "current_password": PASSWORD},
    ):
        response = await api.client.patch(ME, json=change, headers=headers)
        assert_insufficient_scope(response, None)
    assert (await api.me(token)).json()["email"] == "ada@example.com"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", TOKENS),
        ("GET", TOKENS),
        ("DELETE", f"{TOKENS}/{'0' * 32}"),
        ("GET", "/api/v1/auth/sessions"),
        ("POST", LOGOUT_ALL),
        ("POST", REAUTHENTICATE),
        ("DELETE", ME),
        ("GET", "/api/v1/auth/mfa"),
        ("GET", "/api/v1/auth/passkeys"),
        ("POST", "/api/v1/auth/verify-email/resend"),
    ],
)
async def test_what_no_token_may_do_whatever_its_scopes(api: Api, method: str, path: str) -> None:
    _, pair = await api.user_with_tokens("ada")
    token = await new_token(api, pair["access_token"], USER_SCOPES)
    body = {"name": "x", "scopes": ["profile:read"], "expires_in_days": 1}
    response = await api.client.request(
        method, path, headers=bearer(token), json=body if method == "POST" else None
    )
    assert_insufficient_scope(response, None)
    assert (await api.me(token)).status_code == 200  # and it still works where it may


async def test_only_a_superuser_may_ask_for_the_admin_scopes_which_end_with_the_role(
    api: Api,
) -> None:
    _, pair = await api.user_with_tokens("ada")
    for scope in ("admin:read", "admin:write"):
        response = await create(api, pair["access_token"], ["profile:read", scope])
        problem = assert_problem(response, 422, "validation_error")
        assert problem["errors"][0]["loc"] == ["body", "scopes"]

    root = await make_admin(api)
    token = await new_token(api, root.tokens["access_token"], ["admin:read"])
    assert (await api.client.get(f"{ADMIN}/users", headers=bearer(token))).status_code == 200
    # admin:read reads; it never writes.
    response = await api.client.patch(
        f"{ADMIN}/users/{root.id}", json={"full_name": "x"}, headers=bearer(token)
    )
    assert_insufficient_scope(response, "admin:write")

    second = await make_admin(api, "second")
    demoted = await api.client.patch(
        f"{ADMIN}/users/{root.id}", json={"is_superuser": False}, headers=second.headers
    )
    assert demoted.status_code == 200, demoted.text
    # Losing the role ends the sessions, and the tokens with them (``Principal.allows``
    # refuses the admin scopes of a user who is not a superuser, too: tests/unit).
    response = await api.client.get(f"{ADMIN}/users", headers=bearer(token))
    assert_problem(response, 401, "invalid_token")


async def test_creating_a_token_needs_a_recent_session(clocked: Api, clock: FakeClock) -> None:
    api = clocked
    _, pair = await api.user_with_tokens("ada")
    clock.advance(minutes=11)
    response = await create(api, pair["access_token"], ["profile:read"])
    assert_problem(response, 403, "reauthentication_required")
    await api.client.post(
        REAUTHENTICATE, json={"password": PASSWORD}, headers=bearer(pair["access_token"])
    )
    assert (await create(api, pair["access_token"], ["profile:read"])).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"name": "ci", "scopes": ["profile:read"]},  # expiry required
        {"name": "ci", "scopes": ["profile:read"], "expires_in_days": 0},
        {"name": "ci", "scopes": ["profile:read"], "expires_in_days": 366},
        {"name": "ci", "scopes": [], "expires_in_days": 1},
        {"name": "ci", "scopes": ["repo"], "expires_in_days": 1},
        {"name": "", "scopes": ["profile:read"], "expires_in_days": 1},
        {"name": "   ", "scopes": ["profile:read"], "expires_in_days": 1},
        {"name": "x" * 65, "scopes": ["profile:read"], "expires_in_days": 1},
        {"name": "ci", "scopes": ["profile:read"], "expires_in_days": 1, "token": "mine"},
    ],
)
async def test_malformed_creations_are_422(api: Api, body: dict[str, Any]) -> None:
    _, pair = await api.user_with_tokens("ada")
    response = await api.client.post(TOKENS, json=body, headers=bearer(pair["access_token"]))
    assert_problem(response, 422, "validation_error")


async def test_a_revoked_token_an_expired_one_and_look_alikes_are_401(
    clocked: Api, clock: FakeClock
) -> None:
    api = clocked
    _, pair = await api.user_with_tokens("ada")
    revoked = await create(api, pair["access_token"], ["profile:read"])
    expiring = await new_token(api, pair["access_token"], ["profile:read"], days=1)

    token_id = revoked.json()["id"]
    gone = await api.client.delete(f"{TOKENS}/{token_id}", headers=bearer(pair["access_token"]))
    assert gone.status_code == 204
    assert_problem(await api.me(revoked.json()["token"]), 401, "invalid_token")
    again = await api.client.delete(f"{TOKENS}/{token_id}", headers=bearer(pair["access_token"]))
    assert_problem(again, 404, "not_found")

    assert (await api.me(expiring)).status_code == 200
    clock.advance(days=1)
    assert_problem(await api.me(expiring), 401, "invalid_token")

    body = expiring[8:-6]
    for look_alike in (
        expiring[:-1] + ("A" if expiring[-1] != "A" else "B"),  # checksum off
        "app_pat_" + body[::-1] + expiring[-6:],
        "app_pat_",
        "app_pat_" + "0" * 49,
    ):
        response = await api.me(look_alike)
        assert_problem(response, 401, "invalid_token")
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_another_users_token_cannot_be_revoked(api: Api) -> None:
    _, ada = await api.user_with_tokens("ada")
    _, bob = await api.user_with_tokens("bob")
    created = await create(api, ada["access_token"], ["profile:read"])
    token_id = created.json()["id"]
    response = await api.client.delete(f"{TOKENS}/{token_id}", headers=bearer(bob["access_token"]))
    assert_problem(response, 404, "not_found")
    assert (await api.me(created.json()["token"])).status_code == 200
    malformed = await api.client.delete(f"{TOKENS}/nope", headers=bearer(ada["access_token"]))
    assert_problem(malformed, 404, "not_found")


async def test_everything_that_ends_the_sessions_ends_the_tokens(api: Api) -> None:
    _, pair = await api.user_with_tokens("ada")
    token = await new_token(api, pair["access_token"], ["profile:read"])

    response = await api.client.post(LOGOUT_ALL, headers=bearer(pair["access_token"]))
    assert response.status_code == 204

    assert_problem(await api.me(token), 401, "invalid_token")
    fresh = await api.login("ada")
    listed = await api.client.get(TOKENS, headers=bearer(fresh["access_token"]))
    assert listed.json() == []


async def test_an_admin_ending_the_sessions_or_deactivating_ends_the_tokens(api: Api) -> None:
    root = await make_admin(api)
    ada, pair = await api.user_with_tokens("ada")
    first = await new_token(api, pair["access_token"], ["profile:read"])
    ended = await api.client.delete(f"{ADMIN}/users/{ada['id']}/sessions", headers=root.headers)
    assert ended.status_code == 204, ended.text
    assert_problem(await api.me(first), 401, "invalid_token")

    second = await new_token(api, (await api.login("ada"))["access_token"], ["profile:read"])
    off = await api.client.patch(
        f"{ADMIN}/users/{ada['id']}", json={"is_active": False}, headers=root.headers
    )
    assert off.status_code == 200, off.text
    assert_problem(await api.me(second), 401, "invalid_token")


async def test_last_use_is_kept_to_the_minute_without_a_write_per_request(
    clocked: Api, clock: FakeClock
) -> None:
    api = clocked
    _, pair = await api.user_with_tokens("ada")
    token = await new_token(api, pair["access_token"], ["profile:read"])

    async def last_used() -> str | None:
        listed = await api.client.get(TOKENS, headers=bearer(pair["access_token"]))
        return listed.json()[0]["last_used_at"]  # type: ignore[no-any-return]

    assert await last_used() is None
    await api.me(token)
    assert await last_used() == "2026-12-08T09:30:00+00:00"
    clock.advance(seconds=30)
    await api.me(token)
    assert await last_used() == "2026-12-08T09:30:00+00:00"
    clock.advance(seconds=15)
    await api.me(token)
    assert await last_used() == "2026-12-08T09:31:00+00:00"


async def test_creation_mails_a_notice_and_both_changes_are_audited(api: Api) -> None:
    ada, pair = await api.user_with_tokens("ada")
    created = await create(api, pair["access_token"], ["profile:write", "profile:read"], "deploy")
    token_id = created.json()["id"]
    revoked = await api.client.delete(f"{TOKENS}/{token_id}", headers=bearer(pair["access_token"]))
    assert revoked.status_code == 204

    messages = await api.services.get(ListOutbox)()
    (notice,) = [m for m in messages if m.template == Template.SECURITY_NOTICE]
    assert notice.recipient == "ada@example.com"
    assert notice.context["change"] == "token_created"
    assert notice.context["token_name"] == "deploy"
    assert notice.context["token_scopes"] == "profile:read, profile:write"
    assert created.json()["token"] not in str(notice.context)

    page = await api.services.get(ListAuditEvents)(
        AuditFilter(target_user_id=ada["id"]), PageRequest(page=1, size=50)
    )
    events = {e.action.value: e for e in page.items}
    assert events["token.created"].details["token_id"] == token_id
    assert events["token.created"].details["scopes"] == ["profile:read", "profile:write"]
    assert events["token.revoked"].details == {"token_id": token_id}
    assert created.json()["token"] not in str([vars(e) for e in page.items])


async def test_at_most_fifty_live_tokens(api: Api) -> None:
    _, pair = await api.user_with_tokens("ada")
    created = [
        await create(api, pair["access_token"], ["profile:read"], name=f"t{n}")
        for n in range(MAX_LIVE_TOKENS)
    ]
    assert {r.status_code for r in created} == {201}
    response = await create(api, pair["access_token"], ["profile:read"])
    assert_problem(response, 409, "too_many_tokens")
    # Revoking one makes room for one.
    first = created[0].json()["id"]
    await api.client.delete(f"{TOKENS}/{first}", headers=bearer(pair["access_token"]))
    assert (await create(api, pair["access_token"], ["profile:read"])).status_code == 201
    listed = await api.client.get(TOKENS, headers=bearer(pair["access_token"]))
    names = [t["name"] for t in listed.json()]
    assert len(names) == MAX_LIVE_TOKENS
    assert (names[0], names[-1]) == ("ci", "t1")  # newest first


async def test_concurrent_uses_of_one_token_all_succeed(api: Api) -> None:
    _, pair = await api.user_with_tokens("ada")
    token = await new_token(api, pair["access_token"], ["profile:read"])
    responses = await asyncio.gather(*(api.me(token) for _ in range(8)))
    assert [r.status_code for r in responses] == [200] * 8


# --- every route declares its access ---------------------------------------------------

SESSIONS_ONLY = None
# The contract's table (API.md, "Personal access tokens"): each route with a bearer token,
# and the scope a personal access token needs for it (None: sessions only).
ACCESS: dict[tuple[str, str], Scope | None] = {
    ("GET", "/api/v1/users/me"): Scope.PROFILE_READ,
    ("PATCH", "/api/v1/users/me"): Scope.PROFILE_WRITE,
    ("DELETE", "/api/v1/users/me"): SESSIONS_ONLY,
    ("GET", "/api/v1/admin/users"): Scope.ADMIN_READ,
    ("GET", "/api/v1/admin/users/{user_id}"): Scope.ADMIN_READ,
    ("GET", "/api/v1/admin/users/{user_id}/sessions"): Scope.ADMIN_READ,
    ("GET", "/api/v1/admin/audit-events"): Scope.ADMIN_READ,
    ("PATCH", "/api/v1/admin/users/{user_id}"): Scope.ADMIN_WRITE,
    ("DELETE", "/api/v1/admin/users/{user_id}"): Scope.ADMIN_WRITE,
    ("POST", "/api/v1/admin/users/{user_id}/password-reset"): Scope.ADMIN_WRITE,
    ("DELETE", "/api/v1/admin/users/{user_id}/sessions"): Scope.ADMIN_WRITE,
    ("DELETE", "/api/v1/admin/users/{user_id}/mfa"): Scope.ADMIN_WRITE,
    ("POST", "/api/v1/auth/tokens"): SESSIONS_ONLY,
    ("GET", "/api/v1/auth/tokens"): SESSIONS_ONLY,
    ("DELETE", "/api/v1/auth/tokens/{token_id}"): SESSIONS_ONLY,
    ("POST", "/api/v1/auth/logout-all"): SESSIONS_ONLY,
    ("POST", "/api/v1/auth/reauthenticate"): SESSIONS_ONLY,
    ("GET", "/api/v1/auth/sessions"): SESSIONS_ONLY,
    ("DELETE", "/api/v1/auth/sessions/{session_id}"): SESSIONS_ONLY,
    ("POST", "/api/v1/auth/verify-email/resend"): SESSIONS_ONLY,
    ("GET", "/api/v1/auth/mfa"): SESSIONS_ONLY,
    ("POST", "/api/v1/auth/mfa/totp"): SESSIONS_ONLY,
    ("POST", "/api/v1/auth/mfa/totp/confirm"): SESSIONS_ONLY,
    ("DELETE", "/api/v1/auth/mfa/totp"): SESSIONS_ONLY,
    ("POST", "/api/v1/auth/mfa/recovery-codes"): SESSIONS_ONLY,
    ("POST", "/api/v1/auth/passkeys/registration/options"): SESSIONS_ONLY,
    ("POST", "/api/v1/auth/passkeys"): SESSIONS_ONLY,
    ("GET", "/api/v1/auth/passkeys"): SESSIONS_ONLY,
    ("PATCH", "/api/v1/auth/passkeys/{passkey_id}"): SESSIONS_ONLY,
    ("DELETE", "/api/v1/auth/passkeys/{passkey_id}"): SESSIONS_ONLY,
    ("POST", "/api/v1/orgs"): Scope.ORGS_WRITE,
    ("GET", "/api/v1/orgs"): Scope.ORGS_READ,
    ("GET", "/api/v1/orgs/{slug}"): Scope.ORGS_READ,
    ("PATCH", "/api/v1/orgs/{slug}"): Scope.ORGS_WRITE,
    ("DELETE", "/api/v1/orgs/{slug}"): Scope.ORGS_WRITE,
    ("GET", "/api/v1/orgs/{slug}/members"): Scope.ORGS_READ,
    ("PATCH", "/api/v1/orgs/{slug}/members/{user_id}"): Scope.ORGS_WRITE,
    ("DELETE", "/api/v1/orgs/{slug}/members/{user_id}"): Scope.ORGS_WRITE,
    ("POST", "/api/v1/orgs/{slug}/invitations"): Scope.ORGS_WRITE,
    ("GET", "/api/v1/orgs/{slug}/invitations"): Scope.ORGS_READ,
    ("DELETE", "/api/v1/orgs/{slug}/invitations/{invitation_id}"): Scope.ORGS_WRITE,
    ("GET", "/api/v1/orgs/{slug}/audit-events"): Scope.ORGS_READ,
    ("POST", "/api/v1/invitations/accept"): Scope.ORGS_WRITE,
}
# Routes that take no bearer token at all.
PUBLIC = {
    ("POST", "/api/v1/users/"),
    ("GET", "/api/v1/users/"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/login/mfa"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/verify-email"),
    ("POST", "/api/v1/auth/password-reset/request"),
    ("POST", "/api/v1/auth/password-reset"),
    ("POST", "/api/v1/auth/passkeys/authentication/options"),
    ("POST", "/api/v1/auth/passkeys/authentication"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/metrics"),
}


def routes(api: Api) -> dict[tuple[str, str], APIRoute]:
    return {
        (method, route.path): route
        for route in api.app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }


def uses_a_bearer_token(route: APIRoute) -> bool:
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if dependant.call is dependencies.bearer:
            return True
        pending.extend(dependant.dependencies)
    return False


async def test_every_route_with_a_bearer_token_declares_its_access_once(api: Api) -> None:
    """A route that reads the bearer token without an ``access`` declaration (one that
    asks for ``authenticated`` itself, say) fails here, whatever its module."""
    for key, route in routes(api).items():
        declared = declared_access(route)
        if uses_a_bearer_token(route):
            assert len(declared) == 1, f"{key} declares its access {len(declared)} times"
        else:
            assert declared == [], f"{key} declares access but reads no token"


async def test_the_routes_of_the_contract_need_the_scopes_it_names(api: Api) -> None:
    found = routes(api)
    for key, scope in ACCESS.items():
        assert declared_access(found[key]) == [scope], key
    for key in PUBLIC:
        assert not uses_a_bearer_token(found[key]), f"{key} reads a bearer token"
    api_routes = {key for key in found if key[1].startswith("/api/v1/")}
    unknown = sorted(api_routes - set(ACCESS) - PUBLIC)
    assert not unknown or all(declared_access(found[key]) == [None] for key in unknown), (
        f"routes beyond the contract that a token may use: {unknown}"
    )


def concrete(path: str, user_id: int) -> str:
    return (
        path.replace("{user_id}", str(user_id))
        .replace("{token_id}", "0" * 32)
        .replace("{session_id}", "0" * 32)
        .replace("{passkey_id}", "0" * 32)
        .replace("{slug}", "no-such-org")
        .replace("{invitation_id}", "0" * 32)
    )


async def test_each_scope_against_each_route(api: Api) -> None:
    """A token lacking a route's scope (holding every other) is refused with the scope
    named; one holding only that scope is let through to the route itself."""
    root = await make_admin(api)
    target = await api.register("target")
    session = root.tokens["access_token"]
    by_scope = {scope: await new_token(api, session, [scope.value]) for scope in Scope}
    all_but = {
        scope: await new_token(api, session, [s.value for s in Scope if s != scope])
        for scope in Scope
    }
    every = await new_token(api, session, ALL)
    for (method, path), scope in ACCESS.items():
        url = concrete(path, target["id"])
        if scope is None:
            response = await api.client.request(method, url, headers=bearer(every), json={})
            assert_insufficient_scope(response, None)
            continue
        response = await api.client.request(method, url, headers=bearer(all_but[scope]), json={})
        assert_insufficient_scope(response, scope.value)
        response = await api.client.request(method, url, headers=bearer(by_scope[scope]), json={})
        assert response.status_code not in (401, 403), (method, path, response.text)
