"""Where a request's time goes, from a py-spy profile of the API under load.

Record while wrk drives one endpoint (benchmarks/README.md, "Profiling"):

    py-spy record --pid PID --rate 250 --duration 15 --nonblocking --format raw -o me.raw

then ``python -m benchmarks.profile me.raw --rps 4200`` prints the share of the
samples in each part of the request path and, with the run's req/s, the microseconds
per request (the worker is at 100 % of one core under the bench's load, so a second of
samples is a second of one core).

Each sample is charged to the first frame, from the innermost outwards, that a rule
claims: time in structlog called from the middleware is the log event's, not the
middleware's; time in asyncpg called from a repository is the database's.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

# (part, rule): a rule is a regular expression over "function (file)". Checked in order
# for each frame, innermost frame first.
RULES: tuple[tuple[str, str], ...] = (
    ("log event", r"structlog/|entrypoints/logging\.py|/logging/__init__\.py"),
    ("metrics", r"prometheus_client/|entrypoints/metrics\.py"),
    (
        "database (driver, pool, unit of work)",
        r"asyncpg/|sqlalchemy/|greenlet|adapters/(executors|hot_statements|database|fair_pool|unit_of_work|rows)\.py",
    ),
    ("token signature (PyJWT)", r"jwt/|cryptography/"),
    ("validation", r"pydantic|request_params_to_args|_validate_value|request_body_to_args"),
    (
        "serialisation",
        r"serialize_response|jsonable_encoder|orjson|json_response|presenters\.py"
        r"|Response\.(__init__|render|init_headers)|JSONResponse",
    ),
    ("use case and domain", r"application/|domain/|adapters/"),
    ("endpoint", r"entrypoints/http/routes/"),
    (
        "dependency resolution",
        r"solve_dependencies|fastapi/dependencies/|entrypoints/http/dependencies\.py"
        r"|entrypoints/services\.py|dependency_injector",
    ),
    (
        "routing",
        r"route_index\.py|\bmatches \(|Router\.app|get_route_path|Router\.__call__",
    ),
    ("middleware (the app's)", r"entrypoints/http/middleware/"),
    (
        "framework (Starlette, FastAPI)",
        r"starlette/|fastapi/|contextlib\.py|anyio/",
    ),
    ("server (uvicorn, HTTP parsing, socket writes)", r"uvicorn/|httptools"),
    ("event loop", r"asyncio/|uvloop"),
)
_COMPILED = tuple((part, re.compile(rule)) for part, rule in RULES)
OTHER = "other"


def frame_name(frame: str) -> str:
    """``"fn (/long/path/site-packages/pkg/mod.py:12)"`` → ``"fn (pkg/mod.py)"``."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    function, path = match.groups()
    path = re.sub(r".*site-packages/", "", path)
    path = re.sub(r".*?/(entrypoints|application|domain|adapters|benchmarks)/", r"\1/", path)
    return f"{function} ({path})"


def part_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for part, rule in _COMPILED:
            if rule.search(frame):
                return part
    return OTHER


def breakdown(lines: Iterable[str]) -> tuple[Counter[str], int]:
    parts: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        parts[part_of([frame_name(f) for f in stack.split(";")])] += samples
    return parts, total


def table(parts: Counter[str], total: int, rps: float | None) -> str:
    header = f"{'part of the request path':<48} {'share':>7}"
    if rps:
        header += f" {'µs/request':>11}"
    lines = [header, "-" * len(header)]
    for part, samples in parts.most_common():
        share = samples / total
        row = f"{part:<48} {share:>6.1%}"
        if rps:
            row += f" {share * 1e6 / rps:>11.1f}"
        lines.append(row)
    footer = f"{'all':<48} {1:>6.0%}"
    if rps:
        footer += f" {1e6 / rps:>11.1f}"
    lines.append(footer)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile",
        description="Break a py-spy raw profile of the API down by part of the request path.",
    )
    parser.add_argument("raw", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--rps", type=float, help="the run's requests per second")
    args = parser.parse_args(argv)
    try:
        parts, total = breakdown(args.raw.read_text().splitlines())
    except OSError as exc:
        print(f"profile: cannot read {args.raw}: {exc.strerror}", file=sys.stderr)
        return 1
    if not total:
        print(f"profile: no samples in {args.raw}", file=sys.stderr)
        return 1
    print(f"{total:,} samples")
    print(table(parts, total, args.rps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
