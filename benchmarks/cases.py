"""The measured cases, each run against every target, alternating which goes first."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from application.retention import PurgeTokens
from benchmarks import client, mail, servers, wrk
from benchmarks.database import PASSWORD, ROOT, BenchDatabase, venv_script
from benchmarks.report import Measurement
from benchmarks.servers import Server

CASES = (
    "health",
    "users_me",
    "login",
    "refresh",
    "health_under_login",
    # Before the list cases top the users up: the admin search counts its matches with
    # a scan, as any exact total over a substring must.
    "admin_users",
    "audit_events",
    "jwks",
    "reset_request",
    "list_first",
    "list_page_2500",
    "list_first_1m",
    "list_page_2500_1m",
    "purge",
    "mail",
    "users_me_es256",
    "users_me_eddsa",
    "users_me_pat",
    "org_list",
    "org_members",
)
# /users/me under an asymmetric ALGORITHM: an API of its own, on the same database.
KEY_CASES = {"users_me_es256": "ES256", "users_me_eddsa": "EdDSA"}
KEY_CASE_TOKENS = 200
# The organization cases: the caller's organizations (ORG_COUNT of them, by slug), and
# the first page of the members of "big" (every seeded user up to ORG_MEMBERS).
ORG_COUNT = 20
ORG_MEMBERS = 10_000
ORG_PATHS = {
    "org_list": f"/api/v1/orgs?page=1&size={20}",
    "org_members": "/api/v1/orgs/big/members?page=1&size=20",
}
# /users/me with personal access tokens: the API's alone (the reference has none).
PAT_CASE_TOKENS = 64
LIST_PAGES = {
    "list_first": 1,
    "list_page_2500": 2500,
    "list_first_1m": 1,
    "list_page_2500_1m": 2500,
}
# The same pages over --large-list-users (1,000,000): the list's cost must not grow.
LARGE_LIST_CASES = {"list_first_1m": "list_first", "list_page_2500_1m": "list_page_2500"}
PAGE_SIZE = 20
# The admin pages, fetched as the seeded superuser.
ADMIN_PATHS = {
    "admin_users": f"{client.ADMIN_USERS_PATH}?page=1&size={PAGE_SIZE}&q={client.ADMIN_QUERY}",
    "audit_events": f"{client.AUDIT_EVENTS_PATH}?page=1&size={PAGE_SIZE}",
}
PURGE_TIMEOUT_SECONDS = 900
# A backend of the bench database deleting refresh tokens (its last query, if idle).
DELETE_SEEN_SQL = r"""
SELECT EXISTS (
    SELECT 1 FROM pg_stat_activity
    WHERE datname = $1 AND pid <> pg_backend_pid()
      AND query ~* 'delete\s+from\s+"?refresh_tokens'
)
"""


class Skip(Exception):
    """This case cannot be measured against this target; the message says why."""


@dataclass(frozen=True)
class Shape:
    """How hard to push: the knobs of the command line."""

    duration: float
    warmup: float
    threads: int
    connections: int
    login_connections: int
    health_connections: int
    rounds: int


@dataclass
class Bench:
    """Everything the cases share during one run."""

    wrk_path: str
    shape: Shape
    db: BenchDatabase
    workdir: Path
    servers: dict[str, Server]
    cli_env: dict[str, str]
    logins_file: Path
    emails_file: Path
    tokens: dict[str, list[client.TokenPair]] = field(default_factory=dict)
    check_tokens: dict[str, client.TokenPair] = field(default_factory=dict)
    admin_tokens: dict[str, client.TokenPair] = field(default_factory=dict)
    # What the database says an admin page's total must be, by case.
    expected_totals: dict[str, int] = field(default_factory=dict)
    login_errors: dict[str, str] = field(default_factory=dict)
    refresh_used: dict[str, int] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    purge: dict[str, Any] | None = None
    mail: dict[str, Any] | None = None

    @property
    def targets(self) -> list[str]:
        return list(self.servers)

    def order(self, case: str, round_: int) -> list[str]:
        """Alternate which target goes first from one case (and round) to the next."""
        flip = (CASES.index(case) + round_) % 2 == 1
        return list(reversed(self.targets)) if flip else self.targets

    # Loads.

    def _load(
        self,
        target: str,
        script: str,
        *args: str,
        connections: int | None = None,
        threads: int | None = None,
    ) -> wrk.Load:
        return wrk.Load(
            url=self.servers[target].base_url,
            script=script,
            args=args,
            threads=threads or self.shape.threads,
            connections=connections or self.shape.connections,
            duration=self.shape.duration,
        )

    def health_load(
        self, target: str, *, connections: int | None = None, threads: int | None = None
    ) -> wrk.Load:
        return self._load(
            target, "get.lua", client.HEALTH_PATH, connections=connections, threads=threads
        )

    def login_load(self, target: str, *, threads: int | None = None) -> wrk.Load:
        threads = threads or self.shape.threads
        return self._load(
            target,
            "login.lua",
            client.LOGIN_PATH,
            str(self.logins_file),
            PASSWORD,
            str(threads),
            connections=self.shape.login_connections,
            threads=threads,
        )

    def users_me_load(self, target: str) -> wrk.Load:
        return self.bearer_load(target, client.ME_PATH)

    def bearer_load(self, target: str, path: str) -> wrk.Load:
        """``path`` with the access tokens of the pool (each a member of every seeded
        organization),
        each in turn."""
        pairs = self.tokens.get(target)
        if not pairs:
            raise Skip(f"no access tokens: {self.login_errors.get(target, 'no logins')}")
        tokens = self.workdir / f"access-{target}.txt"
        if not tokens.exists():
            tokens.write_text("".join(f"{p.access_token}\n" for p in pairs))
        return self._load(target, "get.lua", path, str(tokens), str(self.shape.threads))

    def users_me_pat_load(self, target: str) -> wrk.Load:
        """/users/me with personal access tokens, one per session of the token pool."""
        if target != "api":
            raise Skip("the reference has no personal access tokens")
        path = self.workdir / f"pat-{target}.txt"
        if not path.exists():
            pairs = self.tokens.get(target)
            if not pairs:
                raise Skip(f"no sessions: {self.login_errors.get(target, 'no logins')}")
            base_url = self.servers[target].base_url
            try:
                made = asyncio.run(
                    client.personal_tokens(base_url, pairs[:PAT_CASE_TOKENS], PASSWORD)
                )
            except client.LoginFailed as exc:
                raise Skip(str(exc)) from None
            path.write_text("".join(f"{token}\n" for token in made))
        return self._load(target, "get.lua", client.ME_PATH, str(path), str(self.shape.threads))

    def refresh_load(self, target: str, phase: str) -> wrk.Load:
        """Every run gets refresh tokens never used before: two per connection."""
        pairs = self.tokens.get(target)
        if not pairs:
            raise Skip(f"no refresh tokens: {self.login_errors.get(target, 'no logins')}")
        wanted = 2 * self.shape.connections
        used = self.refresh_used.get(target, 0)
        fresh = pairs[used : used + wanted]
        if len(fresh) < self.shape.connections:
            raise Skip(f"only {len(fresh)} unused refresh tokens left (raise --tokens)")
        self.refresh_used[target] = used + len(fresh)
        path = self.workdir / f"refresh-{target}-{phase}-{used}.txt"
        path.write_text("".join(f"{p.refresh_token}\n" for p in fresh))
        return self._load(
            target, "refresh.lua", client.REFRESH_PATH, str(path), str(self.shape.threads)
        )

    def list_load(self, page: int) -> Callable[[str, str], wrk.Load]:
        """The load for one page of the user list, whatever the phase."""
        path = f"{client.USERS_PATH}?page={page}&size={PAGE_SIZE}"
        return lambda target, _phase: self._load(target, "get.lua", path)

    def jwks_load(self, target: str) -> wrk.Load:
        return self._load(target, "get.lua", client.JWKS_PATH)

    def admin_load(self, target: str, path: str) -> wrk.Load:
        """``path`` with the superuser's access token: one session, as an admin has."""
        pair = self.admin_tokens.get(target)
        if pair is None:
            raise Skip("no admin token: the superuser's login failed")
        tokens = self.workdir / f"admin-{target}.txt"
        if not tokens.exists():  # once per thread: get.lua gives each thread its share
            tokens.write_text(f"{pair.access_token}\n" * self.shape.threads)
        return self._load(target, "get.lua", path, str(tokens), str(self.shape.threads))

    def reset_load(self, target: str) -> wrk.Load:
        return self._load(
            target,
            "reset.lua",
            client.RESET_REQUEST_PATH,
            str(self.emails_file),
            str(self.shape.threads),
        )

    # Running.

    def check(self, case: str, target: str) -> None:
        if case in ("login", "health_under_login", "purge") and target in self.login_errors:
            raise Skip(f"login fails: {self.login_errors[target]}")
        if case == "reset_request":
            self.check_reset(target)
            return
        problem = asyncio.run(
            client.check(
                self.servers[target].base_url,
                case,
                self.check_tokens.get(target),
                admin=self.admin_tokens.get(target),
                total=self.expected_totals.get(case),
            )
        )
        if problem:
            raise Skip(problem)

    def check_reset(self, target: str) -> None:
        """The 202, and the one outbox row behind it: a pending reset to the address."""
        count, _newest = asyncio.run(self.db.outbox_state())
        problem = asyncio.run(client.check(self.servers[target].base_url, "reset_request", None))
        if problem:
            raise Skip(problem)
        after, newest = asyncio.run(self.db.outbox_state())
        wanted = ("password_reset", client.RESET_EMAIL, "pending")
        if after != count + 1 or newest != wanted:
            raise Skip(f"the outbox went from {count} to {after} rows, newest {newest}")

    def measure(
        self,
        case: str,
        load_for: Callable[[str, str], wrk.Load],
        notes: list[str] | None = None,
    ) -> None:
        """Warm up, then measure, each target in turn, for ``rounds`` rounds; keep the
        median round."""
        runs: dict[str, list[wrk.Result]] = {t: [] for t in self.targets}
        skipped: dict[str, str] = {}
        for target in self.targets:
            try:
                self.check(case, target)
            except Skip as exc:
                skipped[target] = str(exc)
        for round_ in range(self.shape.rounds):
            for target in self.order(case, round_):
                if target in skipped:
                    continue
                try:
                    if self.shape.warmup > 0:
                        wrk.run(
                            self.wrk_path, load_for(target, "warmup").lasting(self.shape.warmup)
                        )
                    result = wrk.run(self.wrk_path, load_for(target, "main"))
                except Skip as exc:
                    skipped[target] = str(exc)
                    continue
                finally:
                    # The next run starts on a database that has finished this one's work.
                    asyncio.run(self.db.wait_until_quiet())
                runs[target].append(result)
                _progress(case, target, result)
        for target in self.targets:
            if target in skipped and not runs[target]:
                print(f"  [{case}] {target}: skipped: {skipped[target]}")
                self.measurements.append(Measurement(case, target, skipped=skipped[target]))
                continue
            results = sorted(runs[target], key=lambda r: r.requests_per_s)
            extra: dict[str, Any] = {"notes": notes} if notes else {}
            if len(results) > 1:
                extra["rounds"] = [r.as_dict() for r in runs[target]]
            self.measurements.append(
                Measurement(case, target, results[(len(results) - 1) // 2], extra=extra)
            )

    def run_admin(self, case: str) -> None:
        """An admin page as the superuser, over what the database holds now; the check
        compares the page's total with the database's count."""
        if case == "admin_users":
            total = asyncio.run(self.db.users_matching(client.ADMIN_QUERY))
            users = asyncio.run(self.db.user_count())
            note = f"q={client.ADMIN_QUERY}: {total:,} of {users:,} users"
        else:
            total = asyncio.run(self.db.audit_event_count())
            note = f"{total:,} audit events"
        self.expected_totals[case] = total
        path = ADMIN_PATHS[case]
        self.measure(case, lambda target, _phase: self.admin_load(target, path), [note])

    def health_under_login(self) -> None:
        """/health/live at low concurrency, quiet and then while logins saturate the CPU."""
        case = "health_under_login"
        connections = self.shape.health_connections
        for target in self.order(case, 0):
            try:
                self.check(case, target)
            except Skip as exc:
                print(f"  [{case}] {target}: skipped: {exc}")
                self.measurements.append(Measurement(case, target, skipped=str(exc)))
                continue
            health = self.health_load(target, connections=connections, threads=1)
            quiet = wrk.run(self.wrk_path, health)
            logins = wrk.Running(
                self.wrk_path,
                self.login_load(target, threads=1).lasting(self.shape.duration + 3),
            )
            try:
                time.sleep(1.5)  # let the login load reach its stride
                loaded = wrk.run(self.wrk_path, health)
            finally:
                logins.interrupt()
            login_result = logins.result()
            _progress(case, target, loaded, f"quiet p99 {quiet.p99_ms:.2f} ms")
            self.measurements.append(
                Measurement(
                    case,
                    target,
                    loaded,
                    extra={
                        "quiet": quiet.as_dict(),
                        "logins": login_result.as_dict(),
                        "notes": [
                            f"quiet p99 {quiet.p99_ms:.2f} ms",
                            f"behind {login_result.requests_per_s:.0f} logins/s",
                        ],
                    },
                )
            )

    def run_purge(self, rows: int) -> None:
        """The purge over ``rows`` expired tokens, while logins run against the API (or
        the reference, without an API)."""
        target = "api" if "api" in self.servers else "reference"
        try:
            self.check("purge", target)
        except Skip as exc:
            self.purge = {"skipped": str(exc)}
            print(f"  [purge] skipped: {exc}")
            return
        seeded = asyncio.run(self.db.seed_expired_tokens(rows, users=10_000))
        tokens_before, sessions_before = asyncio.run(self.db.expired_counts())
        print(f"  [purge] seeded {tokens_before:,} expired tokens in {seeded:.1f} s")

        asyncio.run(self.db.wait_until_quiet())
        load = self.login_load(target, threads=1)
        baseline = wrk.run(self.wrk_path, load)
        logins = wrk.Running(self.wrk_path, load.lasting(PURGE_TIMEOUT_SECONDS))
        try:
            time.sleep(2)
            timing = _purge(self.cli_env, self.db, self.servers[target].base_url)
        except Skip as exc:
            self.purge = {"skipped": str(exc)}
            print(f"  [purge] skipped: {exc}")
            return
        finally:
            logins.interrupt()
        during = logins.result()
        tokens_after, sessions_after = asyncio.run(self.db.expired_counts())
        deleted = tokens_before - tokens_after
        # The logins over the purge's own timed window (from its first DELETE), where
        # the server counts them; else over the whole command, start-up included.
        purging = None
        if timing.logins is not None and timing.seconds > 0:
            purging = {"requests": timing.logins, "requests_per_s": timing.logins / timing.seconds}
        kept = purging or during.as_dict()
        stalled = (
            during.failed > 0
            or during.requests_per_s < 0.25 * baseline.requests_per_s
            or during.max_ms > max(2000.0, 5 * baseline.p99_ms)
        )
        self.purge = {
            "method": timing.method,
            "seconds": timing.seconds,
            "wall_seconds": timing.wall_seconds,
            "timed_from": timing.timed_from,
            "tokens_deleted": deleted,
            "tokens_left": tokens_after,
            "sessions_deleted": sessions_before - sessions_after,
            "rows_per_s": deleted / timing.seconds if timing.seconds else None,
            "seed_seconds": seeded,
            "logins_target": target,
            "logins_before": baseline.as_dict(),
            "logins_during": kept,
            "logins_during_command": during.as_dict(),
            "logins_stalled": stalled,
            "logins_note": (
                f"{target} logins {kept['requests_per_s']:.0f}/s from the first DELETE"
                if purging
                else f"{target} logins {during.requests_per_s:.0f}/s"
            )
            + (
                f" ({during.requests_per_s:.0f}/s over the command and the 2 s before it,"
                f" p99 {during.p99_ms:.0f} ms, max {during.max_ms:.0f} ms);"
                f" {baseline.requests_per_s:.0f}/s, p99 {baseline.p99_ms:.0f} ms before"
            ),
        }
        print(
            f"  [purge] {deleted:,} tokens in {timing.seconds:.1f} s"
            f" ({self.purge['rows_per_s']:,.0f} rows/s) via {timing.method}, timed from"
            f" {timing.timed_from} ({timing.wall_seconds:.1f} s in all);"
            f" {self.purge['logins_note']}"
        )

    def run_users_me_with_keys(self, case: str, logins: list[str], start_timeout: float) -> None:
        """/users/me against an API signing with ES256 or EdDSA keys (a server started
        for the case), to set beside the HS256 API's ``users_me``."""
        algorithm = KEY_CASES[case]
        port = servers.free_port()
        env = {**self.cli_env, "ALGORITHM": algorithm}
        try:
            server = servers.start(
                case, servers.api_command(port), env, port, self.workdir, start_timeout
            )
        except servers.ServerFailed as exc:
            print(f"  [{case}] api: skipped: {exc}")
            self.measurements.append(Measurement(case, "api", skipped=str(exc)))
            return
        try:
            pairs = asyncio.run(client.login_many(server.base_url, logins, PASSWORD))
            tokens = self.workdir / f"access-{case}.txt"
            tokens.write_text("".join(f"{p.access_token}\n" for p in pairs))
            load = wrk.Load(
                url=server.base_url,
                script="get.lua",
                args=(client.ME_PATH, str(tokens), str(self.shape.threads)),
                threads=self.shape.threads,
                connections=self.shape.connections,
                duration=self.shape.duration,
            )
            results = []
            for _ in range(self.shape.rounds):
                if self.shape.warmup > 0:
                    wrk.run(self.wrk_path, load.lasting(self.shape.warmup))
                result = wrk.run(self.wrk_path, load)
                _progress(case, "api", result, f"{algorithm} signing keys")
                results.append(result)
        finally:
            server.stop()
        results.sort(key=lambda r: r.requests_per_s)
        notes = {"notes": [f"ALGORITHM={algorithm}; compare with users_me (HS256)"]}
        self.measurements.append(
            Measurement(case, "api", results[(len(results) - 1) // 2], extra=notes)
        )

    def run_mail(self) -> None:
        """The relay's throughput to a local SMTP sink, and what queueing the
        verification mail adds to a registration."""
        relay = mail.relay_throughput(self.cli_env)
        cost = mail.registration_cost(self.cli_env)
        self.mail = {"relay": relay, "registration": cost}
        print(
            f"  [mail] relay: {relay['messages']:,} messages in {relay['seconds']:.1f} s"
            f" ({relay['messages_per_s']:,.0f}/s), {relay['received']:,} received;"
            f" registration: {cost['median_ms_without_mail']:.2f} ms without the mail,"
            f" {cost['median_ms_with_mail']:.2f} ms with it (+{cost['added_ms']:.2f} ms;"
            f" {cost['note']})"
        )


def _progress(case: str, target: str, result: wrk.Result, note: str = "") -> None:
    failed = f", {result.failed:,} failed" if result.failed else ""
    starved = f", {result.starved:,} starved" if result.starved else ""
    print(
        f"  [{case}] {target}: {result.requests_per_s:,.1f} req/s, p50 {result.p50_ms:.2f} ms,"
        f" p99 {result.p99_ms:.2f} ms{failed}{starved}{'; ' + note if note else ''}"
    )


@dataclass(frozen=True)
class PurgeTiming:
    method: str
    seconds: float  # the purge's own work
    wall_seconds: float  # including the CLI's start-up, when it ran as one
    timed_from: str
    # Successful logins the server counted over ``seconds`` (None: it counts none).
    logins: float | None = None


def _purge(env: dict[str, str], db: BenchDatabase, server_url: str) -> PurgeTiming:
    """Purge with ``app tokens purge``, or through the container while the CLI is not
    there; ``server_url``'s login counter is read where the timing starts and ends."""
    app = venv_script("app")
    if app.exists():
        probe = subprocess.run(
            [str(app), "tokens", "purge", "--help"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            command = [str(app), "tokens", "purge"]
            return asyncio.run(_purge_with_cli(command, env, db, server_url))
    seconds = asyncio.run(_purge_in_process(env))
    return PurgeTiming("PurgeTokens via entrypoints.container", seconds, seconds, "the use case")


async def _purge_with_cli(
    command: list[str], env: dict[str, str], db: BenchDatabase, server_url: str
) -> PurgeTiming:
    """Run the CLI; its work is timed from its first DELETE (seen in pg_stat_activity,
    polled every 20 ms) to its exit, so that the interpreter's start-up is left out,
    and the server's successful logins are counted over the same window."""
    conn = await asyncpg.connect(db.dsn)
    logins_at_first_delete = None
    try:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        finished = asyncio.ensure_future(process.communicate())
        first_delete = None
        deadline = started + PURGE_TIMEOUT_SECONDS
        while not finished.done():
            if first_delete is None and await conn.fetchval(DELETE_SEEN_SQL, db.name):
                first_delete = time.perf_counter()
                logins_at_first_delete = await client.login_count(server_url)
            if time.perf_counter() > deadline:
                process.kill()
            await asyncio.wait({finished}, timeout=0.02)
        _out, err = finished.result()
        ended = time.perf_counter()
        logins_at_end = await client.login_count(server_url)
    finally:
        await conn.close()
    if process.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or ["(no output)"])[-1]
        raise Skip(f"`app tokens purge` failed (status {process.returncode}): {last}")
    if first_delete is None:
        return PurgeTiming("app tokens purge", ended - started, ended - started, "the command")
    logins = None
    if logins_at_first_delete is not None and logins_at_end is not None:
        logins = logins_at_end - logins_at_first_delete
    return PurgeTiming(
        "app tokens purge", ended - first_delete, ended - started, "its first DELETE", logins
    )


async def _purge_in_process(env: dict[str, str]) -> float:
    from entrypoints.container import build_services  # noqa: PLC0415
    from entrypoints.settings import Settings  # noqa: PLC0415

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=env["DATABASE_URL"],
        environment="production",
        secret_key=env["SECRET_KEY"],
    )
    services = build_services(settings)
    try:
        purge = services.get(PurgeTokens)
        started = time.perf_counter()
        await purge()
        return time.perf_counter() - started
    finally:
        await services.close()
