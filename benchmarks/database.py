"""The throwaway PostgreSQL database: created, migrated, seeded, dropped."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from adapters.orm import email_key
from benchmarks.reference.app import HASHER

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-Password-2048"
EMAIL_DOMAIN = "example.com"
# Users past the login pool: every INACTIVE_EVERY-th one is inactive, so the public
# list (active users only) filters something.
INACTIVE_EVERY = 100
EXPIRED_TOKENS_PER_SESSION = 10
# The admin cases' caller: the first seeded account, made a superuser before any login.
SUPERUSER = 1
# What the seeded audit trail holds, in turn: (action, actor_type, details) as the use
# cases record them (application/admin.py, users.py, email.py, auth.py).
AUDIT_EVENTS: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("user.registered", "user", {}),
    ("user.email_verified", "user", {}),
    ("user.updated", "user", {"fields": ["full_name"]}),
    ("user.password_changed", "user", {}),
    ("user.sessions_revoked", "user", {}),
    ("user.updated", "user", {"fields": ["email", "username"]}),
    ("user.deactivated", "operator", {"os_user": "ops"}),
    ("user.password_reset", "system", {}),
)


def username(n: int) -> str:
    return f"bench{n:06d}"


def email(n: int) -> str:
    return f"{username(n)}@{EMAIL_DOMAIN}"


def login_names(count: int) -> list[str]:
    """What the login load types: usernames and upper-cased emails, alternately, so
    both halves of the case-insensitive lookup are used."""
    return [username(n) if n % 2 else email(n).upper() for n in range(1, count + 1)]


def venv_script(name: str) -> Path:
    """A console script next to this interpreter (``.venv/bin/…``)."""
    here = Path(sys.executable).parent / name
    return here if here.exists() else ROOT / ".venv" / "bin" / name


QUIET_TIMEOUT_SECONDS = 120
ACTIVE_QUERIES_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid() AND state = 'active'
  AND backend_type = 'client backend'
"""


class BenchDatabase:
    """A PostgreSQL database of its own, next to ``admin_url``'s, for one bench run."""

    def __init__(self, admin_url: str, name: str) -> None:
        self.admin_url = admin_url
        self.name = name
        parts = urlsplit(admin_url)
        self.dsn = urlunsplit(parts._replace(path=f"/{name}"))
        self.sqlalchemy_url = urlunsplit(
            parts._replace(scheme="postgresql+asyncpg", path=f"/{name}")
        )
        self.created = False

    async def server_version(self) -> str:
        conn = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    async def create(self) -> None:
        conn = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
            self.created = True
        finally:
            await conn.close()

    async def drop(self) -> None:
        if not self.created:
            return
        conn = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False
        finally:
            await conn.close()

    def migrate(self, env: dict[str, str]) -> str:
        """Apply the migrations with ``app db upgrade``, or with ``adapters.migrations``
        while the CLI is not there yet. Returns which one did it."""
        app = venv_script("app")
        if app.exists():
            done = subprocess.run(
                [str(app), "db", "upgrade"],
                env={**env, "DATABASE_URL": self.sqlalchemy_url},
                capture_output=True,
                text=True,
                check=False,
                cwd=ROOT,
            )
            if done.returncode == 0:
                return "app db upgrade"
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            print(f"  `app db upgrade` failed ({last}); using adapters.migrations.upgrade")
        from adapters.migrations import upgrade  # noqa: PLC0415 - only as a fallback

        upgrade(self.sqlalchemy_url)
        return "adapters.migrations.upgrade"

    async def seed_users(self, first: int, last: int, password_hash: str) -> float:
        """Users ``first``…``last`` (ids in that order on a fresh table); returns seconds."""
        started = time.perf_counter()
        base = datetime(2025, 1, 1, tzinfo=UTC)

        def rows() -> Iterator[tuple[object, ...]]:
            for n in range(first, last + 1):
                active = n <= 10_000 or n % INACTIVE_EVERY != 0
                yield (
                    email(n),
                    email_key(email(n)),
                    username(n),
                    password_hash,
                    f"Bench User {n}",
                    active,
                    False,
                    0,
                    base + timedelta(seconds=n),
                )

        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.copy_records_to_table(
                "users",
                records=rows(),
                columns=[
                    "email",
                    "email_key",
                    "username",
                    "password_hash",
                    "full_name",
                    "is_active",
                    "is_superuser",
                    "token_version",
                    "created_at",
                ],
            )
            await conn.execute("ANALYZE users")
        finally:
            await conn.close()
        return time.perf_counter() - started

    async def make_superuser(self, n: int) -> None:
        """Seeded user ``n`` becomes a superuser (before logging in: the checks read it)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                "UPDATE users SET is_superuser = true WHERE username = $1", username(n)
            )
        finally:
            await conn.close()

    async def users_matching(self, q: str) -> int:
        """How many users have ``q`` in their email or username, in any case: the total
        the admin search must report (worded apart from its LIKE, as a cross-check)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM users"
                    " WHERE strpos(lower(email), $1) > 0 OR strpos(lower(username), $1) > 0",
                    q.lower(),
                )
            )
        finally:
            await conn.close()

    async def wait_until_quiet(self, at_most: float = QUIET_TIMEOUT_SECONDS) -> float:
        """Wait until no other backend of this database runs a query (a server keeps
        working off requests that wrk gave up on: the reference's slow counts can keep
        PostgreSQL busy for half a minute after its run). The seconds waited."""
        conn = await asyncpg.connect(self.dsn)
        started = time.perf_counter()
        try:
            while time.perf_counter() - started < at_most:
                if not await conn.fetchval(ACTIVE_QUERIES_SQL, self.name):
                    break
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
        return time.perf_counter() - started

    async def user_count(self) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM users"))
        finally:
            await conn.close()

    async def seed_expired_tokens(self, count: int, users: int) -> float:
        """``count`` refresh tokens past their expiry, ten to a (likewise expired)
        session, nine of ten rotated like a real family; returns seconds."""
        started = time.perf_counter()
        now = datetime.now(UTC)
        created, expired = now - timedelta(days=8), now - timedelta(days=1)
        sessions = -(-count // EXPIRED_TOKENS_PER_SESSION)

        def session_rows() -> Iterator[tuple[object, ...]]:
            for i in range(sessions):
                yield (f"e{i:031x}", i % users + 1, created, created, expired, created)

        def token_rows() -> Iterator[tuple[object, ...]]:
            for j in range(count):
                i = j // EXPIRED_TOKENS_PER_SESSION
                last_of_family = j % EXPIRED_TOKENS_PER_SESSION == EXPIRED_TOKENS_PER_SESSION - 1
                rotated = None if last_of_family else created
                yield (f"f{j:031x}", f"e{i:031x}", i % users + 1, created, expired, rotated)

        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.copy_records_to_table(
                "sessions",
                records=session_rows(),
                columns=[
                    "id",
                    "user_id",
                    "created_at",
                    "last_used_at",
                    "expires_at",
                    "authenticated_at",
                ],
            )
            await conn.copy_records_to_table(
                "refresh_tokens",
                records=token_rows(),
                columns=["id", "session_id", "user_id", "created_at", "expires_at", "rotated_at"],
            )
            await conn.execute("ANALYZE sessions")
            await conn.execute("ANALYZE refresh_tokens")
        finally:
            await conn.close()
        return time.perf_counter() - started

    async def seed_audit_events(self, count: int, users: int) -> float:
        """``count`` audit events over the last days, oldest first (so ids follow time),
        about ``users`` users; returns seconds."""
        started = time.perf_counter()
        now = datetime.now(UTC)

        def rows() -> Iterator[tuple[object, ...]]:
            for i in range(count):
                action, actor_type, details = AUDIT_EVENTS[i % len(AUDIT_EVENTS)]
                target = i % users + 1
                by_user = actor_type == "user"
                yield (
                    now - timedelta(seconds=30 * (count - i)),
                    action,
                    actor_type,
                    target if by_user else None,
                    target,
                    f"{i:032x}" if by_user else None,
                    f"203.0.113.{i % 250 + 1}" if by_user else None,
                    json.dumps(details, sort_keys=True),
                )

        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.copy_records_to_table(
                "audit_events",
                records=rows(),
                columns=[
                    "occurred_at",
                    "action",
                    "actor_type",
                    "actor_id",
                    "target_user_id",
                    "request_id",
                    "ip",
                    "details",
                ],
            )
            await conn.execute("ANALYZE audit_events")
        finally:
            await conn.close()
        return time.perf_counter() - started

    async def seed_orgs(self, members: int, orgs: int) -> float:
        """``orgs`` organizations ("big", then "org-01"…), each with users 1…``members``
        as members (user 1 its owner); returns seconds."""
        started = time.perf_counter()
        base = datetime(2025, 1, 1, tzinfo=UTC)
        slugs = ["big", *(f"org-{n:02d}" for n in range(1, orgs))]
        conn = await asyncpg.connect(self.dsn)
        try:
            ids = [
                await conn.fetchval(
                    "INSERT INTO orgs (slug, name, created_at, created_by)"
                    " VALUES ($1, $2, $3, 1) RETURNING id",
                    slug,
                    slug.title(),
                    base,
                )
                for slug in slugs
            ]

            def rows() -> Iterator[tuple[object, ...]]:
                for org_id in ids:
                    for n in range(1, members + 1):
                        yield (org_id, n, "owner" if n == 1 else "member", base)

            await conn.copy_records_to_table(
                "org_members", records=rows(), columns=["org_id", "user_id", "role", "joined_at"]
            )
            await conn.execute("ANALYZE orgs")
            await conn.execute("ANALYZE org_members")
        finally:
            await conn.close()
        return time.perf_counter() - started

    async def audit_event_count(self) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM audit_events"))
        finally:
            await conn.close()

    async def drop_pending_resets(self) -> int:
        """Delete the reset mails ``reset_request`` queued: nothing sends them during
        the run (the API does not relay in production), and the relay of the ``mail``
        case would otherwise deliver them all before its own messages."""
        conn = await asyncpg.connect(self.dsn)
        try:
            done = await conn.execute(
                "DELETE FROM outbox WHERE template = 'password_reset' AND status = 'pending'"
            )
        finally:
            await conn.close()
        return int(done.split()[-1])

    async def outbox_state(self) -> tuple[int, tuple[str, str, str] | None]:
        """How many messages the outbox holds, and the newest one's template, recipient
        and status."""
        conn = await asyncpg.connect(self.dsn)
        try:
            count = int(await conn.fetchval("SELECT count(*) FROM outbox"))
            row = await conn.fetchrow(
                "SELECT template, recipient, status FROM outbox"
                " ORDER BY created_at DESC, id DESC LIMIT 1"
            )
        finally:
            await conn.close()
        return count, (row["template"], row["recipient"], row["status"]) if row else None

    async def expired_counts(self) -> tuple[int, int]:
        """Refresh tokens and sessions past their expiry now."""
        conn = await asyncpg.connect(self.dsn)
        try:
            tokens = await conn.fetchval(
                "SELECT count(*) FROM refresh_tokens WHERE expires_at < now()"
            )
            sessions = await conn.fetchval("SELECT count(*) FROM sessions WHERE expires_at < now()")
            return int(tokens), int(sessions)
        finally:
            await conn.close()


def hash_password() -> str:
    """One real argon2id hash with the API's parameters, shared by every seeded user.

    If the API's hasher would consider it outdated, every login would re-hash: say so.
    """
    password_hash = HASHER.hash(PASSWORD)
    try:
        from adapters.hasher import Argon2Hasher  # noqa: PLC0415 - an optional cross-check

        hasher = Argon2Hasher()
        try:
            outdated = hasher.needs_rehash(password_hash)
        finally:
            hasher.close()
    except Exception as exc:  # the API's hasher changed shape: say so, go on
        print(f"  note: could not compare with the API's hasher ({exc!r})")
        return password_hash
    if outdated:
        print("  warning: the API considers the seeded hash outdated; every login will re-hash")
    return password_hash
