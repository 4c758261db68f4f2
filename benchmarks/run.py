"""`make bench`: the API against a lean reference, side by side, under wrk.

One run: a throwaway PostgreSQL database, migrated and seeded; the API (`app serve`,
1 worker) and the reference (`benchmarks/reference/app.py`, 1 worker) on two ports;
every case measured against both, alternating; a table on the terminal and
`benchmarks/results/latest.json`. See benchmarks/README.md.

    python -m benchmarks.run [--duration 10] [--only users_me,login] [--api-only]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import client, report, servers, wrk
from benchmarks.cases import (
    ADMIN_PATHS,
    CASES,
    KEY_CASE_TOKENS,
    KEY_CASES,
    LARGE_LIST_CASES,
    LIST_PAGES,
    ORG_COUNT,
    ORG_MEMBERS,
    ORG_PATHS,
    PAGE_SIZE,
    Bench,
    Shape,
)
from benchmarks.database import (
    PASSWORD,
    SUPERUSER,
    BenchDatabase,
    email,
    hash_password,
    login_names,
    username,
)

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TOKEN_CASES = {"users_me", "refresh", "users_me_pat", "org_list", "org_members"}
LOGIN_CASES = {"login", "health_under_login", "purge"}
ADMIN_CASES = set(ADMIN_PATHS)
# A run writes results/latest.json only with every case, both targets, these sizes and
# at least this duration; any other run is a partial one, written next to it.
FULL_RUN = {
    "duration": 10,
    "users": 10_000,
    "list_users": 100_000,
    "purge_rows": 1_000_000,
    "audit_events": 10_000,
}


class BenchError(Exception):
    """The run cannot go on; the message says why and what to do."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark the API against the lean reference app (see benchmarks/README.md).",
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run (10)")
    parser.add_argument(
        "--warmup", type=float, default=2, help="seconds of warm-up before each (2)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs per case and target; the median is kept (1)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--connections", type=int, default=64, help="wrk connections for the fast endpoints (64)"
    )
    parser.add_argument(
        "--login-connections", type=int, default=16, help="wrk connections for logins (16)"
    )
    parser.add_argument(
        "--health-connections",
        type=int,
        default=4,
        help="connections of /health/live behind logins (4)",
    )
    parser.add_argument("--only", help=f"comma-separated cases, of: {', '.join(CASES)}")
    parser.add_argument("--skip", help="comma-separated cases to leave out")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--api-only", action="store_true", help="no reference app")
    which.add_argument(
        "--reference-only", action="store_true", help="no API (e.g. before it exists)"
    )
    parser.add_argument("--users", type=int, default=10_000, help="seeded users (10,000)")
    parser.add_argument(
        "--list-users", type=int, default=100_000, help="users for the list cases (100,000)"
    )
    parser.add_argument(
        "--large-list-users",
        type=int,
        default=1_000_000,
        help="users for the list cases ending in _1m (1,000,000)",
    )
    parser.add_argument(
        "--purge-rows", type=int, default=1_000_000, help="expired tokens to purge (1,000,000)"
    )
    parser.add_argument(
        "--audit-events", type=int, default=10_000, help="audit events seeded (10,000)"
    )
    parser.add_argument(
        "--tokens", type=int, default=256, help="logins per target for the token pools (256)"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL),
        help=f"an existing PostgreSQL database to create the throwaway one from ({DEFAULT_PG_URL})",
    )
    parser.add_argument(
        "--output", type=Path, help="the JSON file (default: results/latest.json for a full run)"
    )
    parser.add_argument(
        "--start-timeout", type=float, default=60, help="seconds for a server to come up (60)"
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="do not drop the database at the end"
    )
    parser.add_argument("--no-install", action="store_true", help="never install wrk")
    args = parser.parse_args(argv)

    cases = list(CASES)
    if args.only:
        cases = _case_list(parser, args.only)
    if args.skip:
        skipped = set(_case_list(parser, args.skip))
        cases = [c for c in cases if c not in skipped]
    if not cases:
        parser.error("no case left to run")
    args.cases = cases
    if args.threads < 1 or args.connections < args.threads or args.login_connections < args.threads:
        parser.error("connections must be at least the number of threads (and threads ≥ 1)")
    if min(args.duration, args.rounds, args.health_connections, args.purge_rows) <= 0:
        parser.error("--duration, --rounds, --health-connections and --purge-rows must be positive")
    if args.audit_events < 0:
        parser.error("--audit-events must not be negative")
    if args.users < max(args.tokens, 2) or args.list_users < args.users:
        parser.error("need --tokens ≤ --users ≤ --list-users")
    if args.list_users < LIST_PAGES["list_page_2500"] * PAGE_SIZE and "list_page_2500" in cases:
        parser.error(
            f"page 2,500 needs --list-users ≥ {LIST_PAGES['list_page_2500'] * PAGE_SIZE:,}"
        )
    args.targets = (
        ["api"] if args.api_only else ["reference"] if args.reference_only else ["api", "reference"]
    )
    return args


def _case_list(parser: argparse.ArgumentParser, text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    return [c for c in CASES if c in names]


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return run(args)
    except BenchError as exc:
        print(f"\nbench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench: interrupted", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    started_at = report.now_iso()
    try:
        wrk_path = wrk.ensure_wrk(install=not args.no_install)
    except wrk.WrkMissing as exc:
        raise BenchError(str(exc)) from None
    name = f"bench_{datetime.now(UTC):%Y%m%d_%H%M%S}_{os.getpid()}"
    db = BenchDatabase(args.pg_url, name)
    try:
        postgres_version = asyncio.run(db.server_version())
    except Exception as exc:
        raise BenchError(
            f"PostgreSQL is not reachable at {args.pg_url} ({exc}). Start it, or point"
            " --pg-url (or BENCH_PG_URL) at a database this user may CREATE DATABASE from."
        ) from None

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    running: dict[str, servers.Server] = {}
    ok = False
    print(f"bench: cases {', '.join(args.cases)}; targets {', '.join(args.targets)}")
    try:
        asyncio.run(db.create())
        keys = {t: secrets.token_hex(32) for t in ("api", "reference")}  # 64 characters
        api_env = {
            **os.environ,
            "DATABASE_URL": db.sqlalchemy_url,
            "ENVIRONMENT": "production",
            "SECRET_KEY": keys["api"],
            "RATE_LIMIT_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
        }
        migrated_with = db.migrate(api_env)
        print(f"bench: database {name} migrated with {migrated_with}")

        password_hash = hash_password()
        seed_seconds = {"users": asyncio.run(db.seed_users(1, args.users, password_hash))}
        print(f"bench: seeded {args.users:,} users in {seed_seconds['users']:.1f} s")
        asyncio.run(db.make_superuser(SUPERUSER))
        if "audit_events" in args.cases:
            seconds = asyncio.run(db.seed_audit_events(args.audit_events, args.users))
            seed_seconds["audit_events"] = seconds
            print(f"bench: seeded {args.audit_events:,} audit events in {seconds:.1f} s")

        running = start_servers(args, api_env, keys["reference"], db, workdir)
        logins_file = workdir / "logins.txt"
        logins_file.write_text("".join(f"{n}\n" for n in login_names(args.users)))
        emails_file = workdir / "emails.txt"
        emails_file.write_text("".join(f"{email(n)}\n" for n in range(1, args.users + 1)))
        shape = Shape(
            duration=args.duration,
            warmup=args.warmup,
            threads=args.threads,
            connections=args.connections,
            login_connections=args.login_connections,
            health_connections=args.health_connections,
            rounds=args.rounds,
        )
        bench = Bench(wrk_path, shape, db, workdir, running, api_env, logins_file, emails_file)
        collect_tokens(bench, args)
        if ADMIN_CASES & set(args.cases):
            collect_admin_tokens(bench)

        orgs_seeded = False
        for case in args.cases:
            print(f"bench: {case}")
            if case in LIST_PAGES:
                wanted = args.large_list_users if case in LARGE_LIST_CASES else args.list_users
                present = asyncio.run(db.user_count())
                if wanted > present:
                    seconds = asyncio.run(
                        db.seed_users(max(args.users, present) + 1, wanted, password_hash)
                    )
                    seed_seconds[f"users_to_{wanted}"] = seconds
                    print(f"  seeded users up to {wanted:,} in {seconds:.1f} s")
                page = LIST_PAGES[case]
                bench.measure(case, bench.list_load(page))
            elif case == "health":
                bench.measure(case, lambda target, _phase: bench.health_load(target))
            elif case == "users_me":
                bench.measure(case, lambda target, _phase: bench.users_me_load(target))
            elif case == "users_me_pat":
                bench.measure(
                    case,
                    lambda target, _phase: bench.users_me_pat_load(target),
                    ["personal access tokens (profile:read); compare with users_me"],
                )
            elif case in ORG_PATHS:
                if not orgs_seeded:
                    members = min(ORG_MEMBERS, args.users)
                    seconds = asyncio.run(db.seed_orgs(members, ORG_COUNT))
                    seed_seconds["orgs"] = seconds
                    orgs_seeded = True
                    print(
                        f"  seeded {ORG_COUNT} organizations of {members:,} members"
                        f" in {seconds:.1f} s"
                    )
                path = ORG_PATHS[case]
                bench.measure(
                    case,
                    lambda target, _phase, path=path: bench.bearer_load(target, path),  # type: ignore[misc]
                    [f"{ORG_COUNT} organizations of {min(ORG_MEMBERS, args.users):,} members"],
                )
            elif case == "login":
                bench.measure(case, lambda target, _phase: bench.login_load(target))
            elif case == "refresh":
                bench.measure(case, bench.refresh_load)
            elif case == "health_under_login":
                bench.health_under_login()
            elif case in ADMIN_CASES:
                bench.run_admin(case)
            elif case == "jwks":
                bench.measure(case, lambda target, _phase: bench.jwks_load(target))
            elif case == "reset_request":
                bench.measure(
                    case,
                    lambda target, _phase: bench.reset_load(target),
                    ["one outbox row per request"],
                )
                dropped = asyncio.run(db.drop_pending_resets())
                print(f"  [{case}] {dropped:,} queued reset mails deleted")
            elif case == "purge":
                bench.run_purge(args.purge_rows)
            elif case == "mail":
                bench.run_mail()
            elif case in KEY_CASES and "api" in args.targets:
                names = login_names(args.users)
                step = max(1, len(names) // KEY_CASE_TOKENS)
                bench.run_users_me_with_keys(case, names[::step], args.start_timeout)

        memory = {target: server.memory() for target, server in running.items()}
        finish(
            args, bench, memory, started_at, postgres_version, wrk_path, migrated_with, seed_seconds
        )
        ok = True
        return 0
    except (servers.ServerFailed, wrk.WrkFailed) as exc:
        raise BenchError(str(exc)) from None
    finally:
        for server in running.values():
            server.stop()
        if args.keep_db:
            print(f"bench: kept database {name} ({db.dsn})")
        else:
            try:
                asyncio.run(db.drop())
            except Exception as exc:
                print(f"bench: could not drop database {name}: {exc}", file=sys.stderr)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"bench: server logs kept in {workdir}", file=sys.stderr)


def start_servers(
    args: argparse.Namespace,
    api_env: dict[str, str],
    reference_key: str,
    db: BenchDatabase,
    workdir: Path,
) -> dict[str, servers.Server]:
    running: dict[str, servers.Server] = {}
    try:
        if "api" in args.targets:
            port = servers.free_port()
            try:
                running["api"] = servers.start(
                    "api", servers.api_command(port), api_env, port, workdir, args.start_timeout
                )
            except servers.ServerFailed as exc:
                hint = ""
                if not (
                    Path(__file__).resolve().parent.parent / "entrypoints/http/app.py"
                ).exists():
                    hint = (
                        "\n  (entrypoints/http/app.py does not exist yet: is the HTTP API built?)"
                    )
                raise BenchError(
                    f"the API did not start: {exc}{hint}\n"
                    "  Use --reference-only to measure the reference app alone."
                ) from None
            print(f"bench: API on {running['api'].base_url} (pid {running['api'].process.pid})")
        if "reference" in args.targets:
            port = servers.free_port()
            env = {
                **os.environ,
                "DATABASE_URL": db.sqlalchemy_url,
                "SECRET_KEY": reference_key,
            }
            running["reference"] = servers.start(
                "reference", servers.reference_command(port), env, port, workdir, args.start_timeout
            )
            print(f"bench: reference on {running['reference'].base_url}")
    except BaseException:
        for server in running.values():
            server.stop()
        raise
    return running


def collect_tokens(bench: Bench, args: argparse.Namespace) -> None:
    """Log in beforehand: token pools for /users/me and refresh, and one pair per target
    for the checks. Spread over the seeded accounts."""
    cases = set(args.cases)
    if cases & TOKEN_CASES:
        refresh_needed = args.rounds * 2 * 2 * args.connections if "refresh" in cases else 0
        count = max(args.tokens, refresh_needed)
    elif cases & LOGIN_CASES:
        count = 0
    else:
        return
    names = login_names(args.users)
    step = max(1, len(names) // (count + 1))
    chosen = [names[i * step] for i in range(count + 1)]
    for target, server in bench.servers.items():
        started = time.perf_counter()
        try:
            pairs = asyncio.run(client.login_many(server.base_url, chosen, PASSWORD))
        except client.LoginFailed as exc:
            bench.login_errors[target] = str(exc)
            print(f"bench: logging in to {target} fails: {exc}")
            continue
        bench.check_tokens[target] = pairs[-1]
        bench.tokens[target] = pairs[:-1]
        seconds = time.perf_counter() - started
        print(f"bench: {len(pairs)} logins to {target} in {seconds:.1f} s")


def collect_admin_tokens(bench: Bench) -> None:
    """The superuser's tokens per target, and a plain user's for the checks' 403 when
    the logins beforehand made none."""
    for target, server in bench.servers.items():
        try:
            admin, plain = asyncio.run(
                client.login_many(server.base_url, [username(SUPERUSER), username(2)], PASSWORD)
            )
        except client.LoginFailed as exc:
            print(f"bench: logging the superuser in to {target} fails: {exc}")
            continue
        bench.admin_tokens[target] = admin
        bench.check_tokens.setdefault(target, plain)


def is_partial(args: argparse.Namespace) -> bool:
    """Whether this run is less than the full benchmark (it then leaves latest.json be)."""
    return (
        args.cases != list(CASES)
        or len(args.targets) < 2
        or args.duration < FULL_RUN["duration"]
        or any(
            getattr(args, name) != value for name, value in FULL_RUN.items() if name != "duration"
        )
    )


def finish(
    args: argparse.Namespace,
    bench: Bench,
    memory: dict[str, Any],
    started_at: str,
    postgres_version: str,
    wrk_path: str,
    migrated_with: str,
    seed_seconds: dict[str, float],
) -> None:
    found = report.targets(bench.measurements, bench.purge, memory)
    if bench.measurements:
        print()
        print(report.table(bench.measurements))
    if memory:
        print()
        for target, m in memory.items():
            if "peak_rss_mb" in m:
                pid, rss, peak = m["worker_pid"], m["rss_mb"], m["peak_rss_mb"]
                print(f"{target} worker (pid {pid}): RSS {rss} MB, peak {peak} MB")
    print()
    print(report.targets_table(found))

    partial = is_partial(args)
    output = args.output or RESULTS / (
        f"partial-{datetime.now(UTC):%Y%m%d-%H%M%S}.json" if partial else "latest.json"
    )
    document = {
        "benchmark": "make bench: the API against the lean reference",
        "started_at": started_at,
        "finished_at": report.now_iso(),
        "partial": partial,
        "machine": report.machine(postgres_version, wrk.version(wrk_path)),
        "config": {
            "cases": args.cases,
            "targets": args.targets,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "wrk_threads": args.threads,
            "connections": args.connections,
            "login_connections": args.login_connections,
            "health_connections": args.health_connections,
            "users": args.users,
            "list_users": args.list_users,
            "purge_rows": args.purge_rows,
            "audit_events": args.audit_events,
            "token_pool": args.tokens,
            "page_size": PAGE_SIZE,
        },
        "setup": {"migrated_with": migrated_with, "seed_seconds": seed_seconds},
        "measurements": [m.as_dict() for m in bench.measurements],
        "purge": bench.purge,
        "mail": bench.mail,
        "memory": memory,
        "targets": [t.as_dict() for t in found],
    }
    report.write_json(output, document)
    print(f"\nbench: results in {output}")


if __name__ == "__main__":
    sys.exit(main())
