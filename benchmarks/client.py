"""A small HTTP client for what wrk does not do: logging in for tokens beforehand, and
checking that an endpoint answers as the contract says before it is measured (a fast
stream of 401s or 404s would otherwise look like a fast endpoint)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

USER_FIELDS = {"id", "email", "username", "full_name", "is_active", "is_superuser", "created_at"}
PUBLIC_USER_FIELDS = {"id", "username", "full_name", "created_at"}
ADMIN_USER_FIELDS = USER_FIELDS | {"is_verified"}
AUDIT_EVENT_FIELDS = {
    "id",
    "occurred_at",
    "action",
    "actor_type",
    "actor_id",
    "target_user_id",
    "request_id",
    "ip",
    "details",
}
PAGE_FIELDS = {"items", "total", "page", "size", "pages"}
PAIR_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in"}
LOGIN_PATH = "/api/v1/auth/login"
REFRESH_PATH = "/api/v1/auth/refresh"
ME_PATH = "/api/v1/users/me"
ACCESS_TOKENS_PATH = "/api/v1/auth/tokens"
REAUTHENTICATE_PATH = "/api/v1/auth/reauthenticate"
USERS_PATH = "/api/v1/users/"
HEALTH_PATH = "/health/live"
ADMIN_USERS_PATH = "/api/v1/admin/users"
AUDIT_EVENTS_PATH = "/api/v1/admin/audit-events"
JWKS_PATH = "/.well-known/jwks.json"
JWKS_CACHE_CONTROL = "public, max-age=300"
RESET_REQUEST_PATH = "/api/v1/auth/password-reset/request"
# The admin search's term: a prefix of the first 9,999 seeded usernames (and emails).
ADMIN_QUERY = "bench00"
# A seeded account's address (benchmarks.database.email(42)) for the reset check.
RESET_EMAIL = "bench000042@example.com"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str


class LoginFailed(Exception):
    pass


def _describe(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {request.url.path} → {response.status_code} {response.text[:200]!r}"


def _pair(response: httpx.Response) -> TokenPair:
    if response.status_code != 200:
        raise LoginFailed(_describe(response))
    body = response.json()
    if not isinstance(body, dict) or not body.keys() >= PAIR_FIELDS:
        raise LoginFailed(f"not a TokenPair: {_describe(response)}")
    return TokenPair(body["access_token"], body["refresh_token"])


async def login_many(
    base_url: str, logins: list[str], password: str, concurrency: int = 4
) -> list[TokenPair]:
    """Log every one of ``logins`` in (JSON body); each opens a session of its own."""
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(login: str) -> TokenPair:
            async with limit:
                response = await client.post(
                    LOGIN_PATH, json={"username": login, "password": password}
                )
                return _pair(response)

        # The first alone, so that a broken endpoint fails once, with its answer.
        first = await one(logins[0])
        rest = await asyncio.gather(*(one(login) for login in logins[1:]))
    return [first, *rest]


async def personal_tokens(
    base_url: str, pairs: list[TokenPair], password: str, concurrency: int = 4
) -> list[str]:
    """One personal access token (profile:read) per session of ``pairs``, each made
    after a re-authentication (a token needs a recent one)."""
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(pair: TokenPair) -> str:
            headers = {"Authorization": f"Bearer {pair.access_token}"}
            async with limit:
                again = await client.post(
                    REAUTHENTICATE_PATH, json={"password": password}, headers=headers
                )
                if again.status_code != 204:
                    raise LoginFailed(f"re-authentication: {_describe(again)}")
                body = {"name": "bench", "scopes": ["profile:read"], "expires_in_days": 1}
                made = await client.post(ACCESS_TOKENS_PATH, json=body, headers=headers)
                if made.status_code != 201:
                    raise LoginFailed(f"token creation: {_describe(made)}")
                return str(made.json()["token"])

        return list(await asyncio.gather(*(one(pair) for pair in pairs)))


async def check(
    base_url: str,
    case: str,
    tokens: TokenPair | None,
    *,
    admin: TokenPair | None = None,
    total: int | None = None,
) -> str | None:
    """None if ``case``'s endpoint answers as the contract says, else what is wrong.

    The admin cases take the superuser's tokens (``admin``), check that a plain user's
    (``tokens``) gets 403, and compare the page's total with ``total``, the database's.
    """
    if case in ("login", "purge"):
        return None  # the logins beforehand checked the endpoint
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        if case in ("admin_users", "audit_events"):
            return await _check_admin(client, case, tokens, admin, total)
        if case == "jwks":
            response = await client.get(JWKS_PATH)
            if response.status_code != 200 or response.json() != {"keys": []}:
                return f"not an empty key set (HS256): {_describe(response)}"
            if response.headers.get("cache-control") != JWKS_CACHE_CONTROL:
                return f"Cache-Control is {response.headers.get('cache-control')!r}"
            return None
        if case == "reset_request":
            response = await client.post(RESET_REQUEST_PATH, json={"email": RESET_EMAIL})
            if response.status_code != 202 or response.content:
                return f"not an empty 202: {_describe(response)}"
            return None
        if case.startswith("health"):
            response = await client.get(HEALTH_PATH)
            if response.status_code != 200 or response.json() != {"status": "ok"}:
                return _describe(response)
            return None
        if case.startswith("list"):
            response = await client.get(USERS_PATH, params={"page": 1, "size": 20})
            body = response.json() if response.status_code == 200 else None
            if not isinstance(body, dict) or not body.keys() >= PAGE_FIELDS:
                return f"not a Page: {_describe(response)}"
            items = body["items"]
            if len(items) != 20 or not all(item.keys() == PUBLIC_USER_FIELDS for item in items):
                return f"not 20 PublicUsers: {_describe(response)}"
            return None
        if tokens is None:
            return "no tokens: the logins beforehand failed"
        if case == "users_me":
            response = await client.get(
                ME_PATH, headers={"Authorization": f"Bearer {tokens.access_token}"}
            )
            body = response.json() if response.status_code == 200 else None
            if not isinstance(body, dict) or not body.keys() >= USER_FIELDS:
                return f"not a User: {_describe(response)}"
            if "password_hash" in body:
                return "the User carries its password hash"
            return None
        if case == "refresh":
            response = await client.post(REFRESH_PATH, json={"refresh_token": tokens.refresh_token})
            try:
                _pair(response)
            except LoginFailed as exc:
                return str(exc)
            return None
        return None


async def _check_admin(
    client: httpx.AsyncClient,
    case: str,
    tokens: TokenPair | None,
    admin: TokenPair | None,
    total: int | None,
) -> str | None:
    if admin is None:
        return "no admin token: the superuser's login beforehand failed"
    if case == "admin_users":
        path, params, fields = ADMIN_USERS_PATH, {"q": ADMIN_QUERY}, ADMIN_USER_FIELDS
    else:
        path, params, fields = AUDIT_EVENTS_PATH, {}, AUDIT_EVENT_FIELDS
    params = {"page": "1", "size": "20", **params}
    if tokens is not None:  # the superuser check must be there, not only the token's
        response = await client.get(
            path, params=params, headers={"Authorization": f"Bearer {tokens.access_token}"}
        )
        if response.status_code != 403:
            return f"a plain user is not refused with 403: {_describe(response)}"
    response = await client.get(
        path, params=params, headers={"Authorization": f"Bearer {admin.access_token}"}
    )
    body = response.json() if response.status_code == 200 else None
    if not isinstance(body, dict) or not body.keys() >= PAGE_FIELDS:
        return f"not a Page: {_describe(response)}"
    items = body["items"]
    if total is not None and body["total"] != total:
        return f"total {body['total']} where the database has {total}"
    if len(items) != min(20, body["total"]) or not all(item.keys() == fields for item in items):
        return f"not {min(20, body['total'])} of {sorted(fields)}: {_describe(response)}"
    ids = [item["id"] for item in items]
    if case == "admin_users":
        if ids != sorted(ids) or not all(
            ADMIN_QUERY in item["username"].lower() or ADMIN_QUERY in item["email"].lower()
            for item in items
        ):
            return f"not users matching {ADMIN_QUERY!r} in id order: {_describe(response)}"
    elif ids != sorted(ids, reverse=True) or not all(isinstance(i["details"], dict) for i in items):
        return f"not events newest first with their details: {_describe(response)}"
    return None


async def login_count(base_url: str) -> float | None:
    """Successful logins the server has counted so far, from its /metrics; None when it
    has no such counter (the reference exposes none)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        try:
            response = await client.get("/metrics")
        except httpx.HTTPError:
            return None
    if response.status_code != 200:
        return None
    wanted = {"method": "POST", "route": LOGIN_PATH, "status": "200"}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels == wanted:
                return float(sample.value)
    return None
