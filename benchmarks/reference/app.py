"""The lean reference: the real API's hot paths with nothing in between.

Starlette + asyncpg + PyJWT + argon2-cffi on the project's own schema (the tables of
``adapters/orm.py``, migrated by ``app db upgrade``). It does the same work per request
as the API contract asks, and no more:

- ``GET /api/v1/users/me``: verify the HS256 access token (same claims), one indexed
  query over ``users`` joined with ``sessions``, the User JSON.
- ``POST /api/v1/auth/login`` (JSON): the user by ``lower(email)`` or ``lower(username)``,
  argon2id verification in a bounded thread pool (same parameters), a session row and
  a refresh token row in one statement, a token pair.
- ``POST /api/v1/auth/refresh``: decode, a conditional ``UPDATE … SET rotated_at`` that
  also checks the session and the user, the new token row and the session's new expiry,
  all in one statement.
- ``GET /api/v1/users/?page=N&size=M``: ``LIMIT``/``OFFSET`` plus a ``count(*)`` over the
  active users.
- ``GET /api/v1/admin/users?page&size&q``: the caller checked as for ``/users/me`` and
  then as a superuser (403 otherwise), the exact ``count(*)`` of the users whose
  lower-cased email or username is ``LIKE '%q%'`` (the API's statement), and that page
  in id order. (``q`` only: the bench sends no other filter.)
- ``GET /api/v1/admin/audit-events?page&size``: the same caller check, the exact
  ``count(*)`` and the page newest (highest id) first.
- ``POST /api/v1/auth/password-reset/request``: the address checked and the outbox row
  the API writes (a pending ``password_reset`` message to it, no user), 202.
- ``GET /api/v1/orgs?page&size`` and ``GET /api/v1/orgs/{slug}/members?page&size``: the
  caller checked as for ``/users/me``, then the API's statements (the caller's
  organizations with their role by slug; the membership, then the members by user id),
  each with its exact ``count(*)``.
- ``GET /.well-known/jwks.json``: no public keys under HS256.
- ``GET /health/live``.

Configuration from the environment: ``DATABASE_URL`` (``postgresql+asyncpg://…`` or
``postgresql://…``), ``SECRET_KEY``, ``DATABASE_POOL_SIZE`` (default 10, like the API).
``make bench`` serves it with ``uvicorn --factory benchmarks.reference.app:create_app
--workers 1 --loop uvloop --http httptools``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import secrets
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import argon2
import asyncpg
import jwt
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ALGORITHM = "HS256"
ACCESS_TTL = timedelta(minutes=30)
REFRESH_TTL = timedelta(days=7)
CLOCK_SKEW_SECONDS = 2
USER_AGENT_MAX_LENGTH = 255
MAX_PAGE_SIZE = 100
MAX_PAGE = 10_000_000
SEARCH_MAX_LENGTH = 320
# The API's address check (domain/rules.py), after stripping and lower-casing.
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
EMAIL_MAX_LENGTH = 320
JWKS_CACHE_CONTROL = "public, max-age=300"

# The API's parameters (adapters/hasher.py): OWASP's argon2id minimum.
HASHER = argon2.PasswordHasher(
    time_cost=2,
    memory_cost=19_456,
    parallelism=1,
    hash_len=32,
    salt_len=16,
    type=argon2.Type.ID,
)

_ACCESS_OPTIONS: Any = {
    "require": ["sub", "type", "sid", "iat", "exp", "jti", "ver"],
    "verify_iat": False,
    "verify_nbf": False,
}
_REFRESH_OPTIONS: Any = {
    "require": ["sub", "type", "sid", "iat", "exp", "jti"],
    "verify_iat": False,
    "verify_nbf": False,
}

ME_SQL = """
SELECT u.id, u.email, u.username, u.full_name, u.is_active, u.is_superuser,
       u.created_at, u.token_version, s.revoked_at
FROM users AS u JOIN sessions AS s ON s.user_id = u.id
WHERE u.id = $1 AND s.id = $2
"""

LOGIN_SQL = """
SELECT id, password_hash, is_active, token_version
FROM users
WHERE email_key = $1 OR lower(username) = $2
LIMIT 1
"""

OPEN_SESSION_SQL = """
WITH opened AS (
    INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent,
                          authenticated_at)
    VALUES ($1, $2, $3, $3, $4, $5, $3)
)
INSERT INTO refresh_tokens (id, session_id, user_id, created_at, expires_at)
VALUES ($6, $1, $2, $3, $4)
"""

REHASH_SQL = "UPDATE users SET password_hash = $2 WHERE id = $1"

# A refresh is the plain transaction any lean app would write: read the token with its
# session and user, rotate it with a conditional update (the database decides which of
# two racing refreshes wins), store the new token, extend the session.
REFRESH_READ_SQL = """
SELECT t.rotated_at, t.revoked_at, s.revoked_at AS session_revoked_at,
       s.token_version AS session_version, u.is_active, u.token_version
FROM refresh_tokens AS t
JOIN sessions AS s ON s.id = t.session_id
JOIN users AS u ON u.id = t.user_id
WHERE t.id = $1 AND t.user_id = $2 AND t.session_id = $3
"""
ROTATE_SQL = """
UPDATE refresh_tokens SET rotated_at = $2
WHERE id = $1 AND rotated_at IS NULL AND revoked_at IS NULL
"""
ISSUE_SQL = """
INSERT INTO refresh_tokens (id, session_id, user_id, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5)
"""
EXTEND_SQL = "UPDATE sessions SET last_used_at = $2, expires_at = $3 WHERE id = $1"

# The cold path of a refresh that failed: a rotated token presented again revokes its
# whole session. (Simplified: a lost race is treated as reuse too; the benchmark never
# presents a token twice.)
REVOKE_REUSED_SQL = """
WITH reused AS (
    SELECT session_id FROM refresh_tokens
    WHERE id = $1 AND user_id = $2 AND rotated_at IS NOT NULL AND revoked_at IS NULL
), tokens AS (
    UPDATE refresh_tokens SET revoked_at = $3
    WHERE session_id IN (SELECT session_id FROM reused) AND revoked_at IS NULL
)
UPDATE sessions SET revoked_at = $3
WHERE id IN (SELECT session_id FROM reused) AND revoked_at IS NULL
"""

LIST_SQL = """
SELECT id, username, full_name, created_at
FROM users WHERE is_active
ORDER BY id LIMIT $1 OFFSET $2
"""

COUNT_SQL = "SELECT count(*) FROM users WHERE is_active"

# The API's admin search (adapters/user_repository.py): a substring of the lower-cased
# email or username, its wildcards escaped; every user, inactive ones too; exact count.
SEARCH_WHERE = "lower(email) LIKE $1 ESCAPE '\\' OR lower(username) LIKE $1 ESCAPE '\\'"
SEARCH_COUNT_SQL = f"SELECT count(*) FROM users WHERE {SEARCH_WHERE}"
SEARCH_SQL = f"""
SELECT id, email, username, full_name, is_active, is_superuser, is_verified, created_at
FROM users WHERE {SEARCH_WHERE}
ORDER BY id LIMIT $2 OFFSET $3
"""

AUDIT_COUNT_SQL = "SELECT count(*) FROM audit_events"
AUDIT_SQL = """
SELECT id, occurred_at, action, actor_type, actor_id, target_user_id, request_id, ip, details
FROM audit_events
ORDER BY id DESC LIMIT $1 OFFSET $2
"""

# The API's organization statements (adapters/org_repository.py): the caller's
# organizations with their role, by slug; an organization's members by user id, once the
# caller is known to be one of them.
MY_ORGS_COUNT_SQL = "SELECT count(*) FROM org_members WHERE user_id = $1"
MY_ORGS_SQL = """
SELECT orgs.id, orgs.slug, orgs.name, orgs.created_at, org_members.role
FROM orgs JOIN org_members ON org_members.org_id = orgs.id AND org_members.user_id = $1
ORDER BY orgs.slug LIMIT $2 OFFSET $3
"""
MEMBERSHIP_SQL = """
SELECT orgs.id, org_members.role
FROM orgs JOIN org_members ON org_members.org_id = orgs.id AND org_members.user_id = $2
WHERE orgs.slug = $1
"""
MEMBER_COUNT_SQL = "SELECT count(*) FROM org_members WHERE org_id = $1"
MEMBERS_SQL = """
SELECT org_members.user_id, users.username, users.full_name, org_members.role,
       org_members.joined_at
FROM org_members JOIN users ON users.id = org_members.user_id
WHERE org_members.org_id = $1
ORDER BY org_members.user_id LIMIT $2 OFFSET $3
"""

# The row RequestPasswordReset queues (domain/outbox.py): the address only; the relay
# looks the account up when it sends.
QUEUE_RESET_SQL = """
INSERT INTO outbox (id, template, recipient, user_id, context, status, attempts,
                    created_at, next_attempt_at)
VALUES ($1, 'password_reset', $2, NULL, '{}', 'pending', 0, $3, $3)
"""


class Problem(Exception):
    """An RFC 9457 error response."""

    def __init__(self, status: int, title: str, code: str) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.code = code


def _unauthorized(code: str = "invalid_token") -> Problem:
    return Problem(401, "Unauthorized", code)


def _forbidden() -> Problem:
    return Problem(403, "Forbidden", "forbidden")


def _invalid(detail: str) -> Problem:
    return Problem(422, detail, "validation_error")


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers, "application/json")


def _problem(problem: Problem) -> Response:
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "code": problem.code,
    }
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return Response(orjson.dumps(body), problem.status, headers, "application/problem+json")


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class Reference:
    """The app's resources (pool, hashing threads, key) and its endpoints."""

    def __init__(self, database_url: str, secret_key: str, pool_size: int) -> None:
        if len(secret_key.encode()) < 32:
            raise SystemExit("SECRET_KEY must be set, at least 32 bytes")
        self._database_url = database_url
        self._key = secret_key.encode()
        self._pool_size = pool_size
        self._jwt = jwt.PyJWT()
        self._executor = ThreadPoolExecutor(
            max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="argon2"
        )
        self._dummy_hash = HASHER.hash(secrets.token_urlsafe(16))
        self._pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._pool = await asyncpg.create_pool(
            self._database_url, min_size=self._pool_size, max_size=self._pool_size
        )
        try:
            yield
        finally:
            await self._pool.close()
            self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "the pool opens in the lifespan"
        return self._pool

    # Endpoints.

    async def live(self, _request: Request) -> Response:
        return _json({"status": "ok"})

    async def me(self, request: Request) -> Response:
        row = await self._caller(request)
        return _json(
            {
                "id": row["id"],
                "email": row["email"],
                "username": row["username"],
                "full_name": row["full_name"],
                "is_active": row["is_active"],
                "is_superuser": row["is_superuser"],
                "created_at": row["created_at"],
            }
        )

    async def login(self, request: Request) -> Response:
        body = await _json_body(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise _invalid("username and password are required strings")
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())
        folded = folded.strip()
        email_key = hashlib.sha256(folded.encode()).hexdigest()
        row = await self.pool.fetchrow(LOGIN_SQL, email_key, folded)
        stored = row["password_hash"] if row is not None else None
        matches = await self._in_thread(self._verify, stored, password)
        if row is None or not matches or not row["is_active"]:
            raise _unauthorized("invalid_credentials")
        if HASHER.check_needs_rehash(row["password_hash"]):
            new_hash = await self._in_thread(HASHER.hash, password)
            await self.pool.execute(REHASH_SQL, row["id"], new_hash)

        now = datetime.now(UTC)
        session_id, token_id = secrets.token_hex(16), secrets.token_hex(16)
        user_agent = request.headers.get("user-agent")
        await self.pool.execute(
            OPEN_SESSION_SQL,
            session_id,
            row["id"],
            now,
            now + REFRESH_TTL,
            user_agent[:USER_AGENT_MAX_LENGTH] if user_agent else None,
            token_id,
        )
        return self._pair(row["id"], row["token_version"], session_id, token_id, now)

    async def refresh(self, request: Request) -> Response:
        body = await _json_body(request)
        token = body.get("refresh_token")
        if not isinstance(token, str):
            raise _invalid("refresh_token is a required string")
        claims = self._decode(token, "refresh", _REFRESH_OPTIONS)
        user_id, session_id = _user_id(claims), _string(claims, "sid")
        token_id = _string(claims, "jti")
        now = datetime.now(UTC)
        new_token_id = secrets.token_hex(16)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(REFRESH_READ_SQL, token_id, user_id, session_id)
            if row is None or row["revoked_at"] is not None:
                raise _unauthorized()
            if row["rotated_at"] is not None:
                # Reuse: the revocation commits (an exception here would roll it back).
                await conn.execute(REVOKE_REUSED_SQL, token_id, user_id, now)
                return _problem(_unauthorized())
            if (
                row["session_revoked_at"] is not None
                or not row["is_active"]
                or row["session_version"] != row["token_version"]
                or await conn.execute(ROTATE_SQL, token_id, now) != "UPDATE 1"
            ):
                raise _unauthorized()
            await conn.execute(ISSUE_SQL, new_token_id, session_id, user_id, now, now + REFRESH_TTL)
            await conn.execute(EXTEND_SQL, session_id, now, now + REFRESH_TTL)
        return self._pair(user_id, row["token_version"], session_id, new_token_id, now)

    async def list_users(self, request: Request) -> Response:
        page = _int_param(request, "page", 1, 1, MAX_PAGE)
        size = _int_param(request, "size", 20, 1, MAX_PAGE_SIZE)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(LIST_SQL, size, (page - 1) * size)
            total = await conn.fetchval(COUNT_SQL)
        items = [
            {
                "id": row["id"],
                "username": row["username"],
                "full_name": row["full_name"],
                "created_at": row["created_at"],
            }
            for row in rows
        ]
        return _json(
            {
                "items": items,
                "total": total,
                "page": page,
                "size": size,
                "pages": math.ceil(total / size),
            }
        )

    async def search_users(self, request: Request) -> Response:
        await self._superuser(request)
        page = _int_param(request, "page", 1, 1, MAX_PAGE)
        size = _int_param(request, "size", 20, 1, MAX_PAGE_SIZE)
        q = request.query_params.get("q")
        if q is None or not 1 <= len(q) <= SEARCH_MAX_LENGTH or "\x00" in q:
            raise _invalid(f"q must be 1 to {SEARCH_MAX_LENGTH} characters")
        pattern = _like_pattern(q)
        rows: list[asyncpg.Record] = []
        async with self.pool.acquire() as conn:
            total = await conn.fetchval(SEARCH_COUNT_SQL, pattern)
            if (page - 1) * size < total:  # past the end: no need to walk the index
                rows = await conn.fetch(SEARCH_SQL, pattern, size, (page - 1) * size)
        return _json(_page([dict(row) for row in rows], total, page, size))

    async def audit_events(self, request: Request) -> Response:
        await self._superuser(request)
        page = _int_param(request, "page", 1, 1, MAX_PAGE)
        size = _int_param(request, "size", 20, 1, MAX_PAGE_SIZE)
        rows: list[asyncpg.Record] = []
        async with self.pool.acquire() as conn:
            total = await conn.fetchval(AUDIT_COUNT_SQL)
            if (page - 1) * size < total:
                rows = await conn.fetch(AUDIT_SQL, size, (page - 1) * size)
        items = [{**row, "details": orjson.loads(row["details"])} for row in rows]
        return _json(_page(items, total, page, size))

    async def my_orgs(self, request: Request) -> Response:
        caller = await self._caller(request)
        page = _int_param(request, "page", 1, 1, MAX_PAGE)
        size = _int_param(request, "size", 20, 1, MAX_PAGE_SIZE)
        rows: list[asyncpg.Record] = []
        async with self.pool.acquire() as conn:
            total = await conn.fetchval(MY_ORGS_COUNT_SQL, caller["id"])
            if (page - 1) * size < total:
                rows = await conn.fetch(MY_ORGS_SQL, caller["id"], size, (page - 1) * size)
        return _json(_page([dict(row) for row in rows], total, page, size))

    async def members(self, request: Request) -> Response:
        caller = await self._caller(request)
        page = _int_param(request, "page", 1, 1, MAX_PAGE)
        size = _int_param(request, "size", 20, 1, MAX_PAGE_SIZE)
        rows: list[asyncpg.Record] = []
        async with self.pool.acquire() as conn:
            org = await conn.fetchrow(MEMBERSHIP_SQL, request.path_params["slug"], caller["id"])
            if org is None:
                raise Problem(404, "Not Found", "not_found")
            total = await conn.fetchval(MEMBER_COUNT_SQL, org["id"])
            if (page - 1) * size < total:
                rows = await conn.fetch(MEMBERS_SQL, org["id"], size, (page - 1) * size)
        return _json(_page([dict(row) for row in rows], total, page, size))

    async def request_reset(self, request: Request) -> Response:
        body = await _json_body(request)
        email = body.get("email")
        if not isinstance(email, str):
            raise _invalid("email is a required string")
        address = email.strip().lower()
        if len(address) > EMAIL_MAX_LENGTH or not EMAIL_PATTERN.fullmatch(address):
            raise _invalid("email is not a valid email address")
        await self.pool.execute(QUEUE_RESET_SQL, secrets.token_hex(16), address, datetime.now(UTC))
        return Response(status_code=202)

    async def jwks(self, _request: Request) -> Response:
        # HS256: nothing public to verify with.
        return _json({"keys": []}, headers={"Cache-Control": JWKS_CACHE_CONTROL})

    # Helpers.

    async def _caller(self, request: Request) -> asyncpg.Record:
        """The user of a valid access token (with its session's state): as /users/me."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("not_authenticated")
        claims = self._decode(token, "access", _ACCESS_OPTIONS)
        version = claims["ver"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise _unauthorized()
        row = await self.pool.fetchrow(ME_SQL, _user_id(claims), _string(claims, "sid"))
        if (
            row is None
            or not row["is_active"]
            or row["token_version"] != version
            or row["revoked_at"] is not None
        ):
            raise _unauthorized()
        return row

    async def _superuser(self, request: Request) -> None:
        if not (await self._caller(request))["is_superuser"]:
            raise _forbidden()

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            matched = HASHER.verify(password_hash or self._dummy_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
        return matched and password_hash is not None

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _decode(self, token: str, expected_type: str, options: Any) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token, self._key, algorithms=[ALGORITHM], options=options
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise _unauthorized() from None
        if claims.get("type") != expected_type:
            raise _unauthorized()
        issued_at = claims["iat"]
        if not _is_number(issued_at) or issued_at > time.time() + CLOCK_SKEW_SECONDS:
            raise _unauthorized()
        return claims

    def _pair(
        self, user_id: int, version: int, session_id: str, token_id: str, now: datetime
    ) -> Response:
        issued = int(now.timestamp())
        access = {
            "sub": str(user_id),
            "type": "access",
            "sid": session_id,
            "ver": version,
            "iat": issued,
            "exp": issued + int(ACCESS_TTL.total_seconds()),
            "jti": secrets.token_hex(16),
        }
        refresh = {
            "sub": str(user_id),
            "type": "refresh",
            "sid": session_id,
            "iat": issued,
            "exp": issued + int(REFRESH_TTL.total_seconds()),
            "jti": token_id,
        }
        return _json(
            {
                "access_token": self._jwt.encode(access, self._key, algorithm=ALGORITHM),
                "refresh_token": self._jwt.encode(refresh, self._key, algorithm=ALGORITHM),
                "token_type": "bearer",
                "expires_in": int(ACCESS_TTL.total_seconds()),
            },
            headers={"Cache-Control": "no-store"},
        )


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise _invalid("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _invalid("the body is not a JSON object")
    return body


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or not low <= int(raw) <= high:
        raise _invalid(f"{name} must be an integer from {low} to {high}")
    return int(raw)


def _like_pattern(text: str) -> str:
    """``text`` as a substring, its LIKE wildcards literal (the API's escaping)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _page(items: list[dict[str, Any]], total: int, page: int, size: int) -> dict[str, Any]:
    return {"items": items, "total": total, "page": page, "size": size, "pages": -(-total // size)}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _string(claims: dict[str, Any], name: str) -> str:
    value = claims[name]
    if not isinstance(value, str) or not value or len(value) > 64:
        raise _unauthorized()
    return value


def _user_id(claims: dict[str, Any]) -> int:
    sub = claims["sub"]
    if not isinstance(sub, str) or not (sub.isascii() and sub.isdigit()) or len(sub) > 18:
        raise _unauthorized()
    return int(sub)


async def _on_problem(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return _problem(exc)


def create_app() -> Starlette:
    reference = Reference(
        _database_url(),
        os.environ.get("SECRET_KEY", ""),
        int(os.environ.get("DATABASE_POOL_SIZE", "10")),
    )
    routes = [
        Route("/health/live", reference.live, methods=["GET"]),
        Route("/api/v1/users/me", reference.me, methods=["GET"]),
        Route("/api/v1/users/", reference.list_users, methods=["GET"]),
        Route("/api/v1/orgs", reference.my_orgs, methods=["GET"]),
        Route("/api/v1/orgs/{slug}/members", reference.members, methods=["GET"]),
        Route("/api/v1/auth/login", reference.login, methods=["POST"]),
        Route("/api/v1/auth/refresh", reference.refresh, methods=["POST"]),
        Route("/api/v1/auth/password-reset/request", reference.request_reset, methods=["POST"]),
        Route("/api/v1/admin/users", reference.search_users, methods=["GET"]),
        Route("/api/v1/admin/audit-events", reference.audit_events, methods=["GET"]),
        Route("/.well-known/jwks.json", reference.jwks, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=reference.lifespan,
        exception_handlers={Problem: _on_problem},
    )
