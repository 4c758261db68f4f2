"""What a run found: the table on the terminal, the targets, and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.database import ROOT
from benchmarks.wrk import Result

TARGETS = ("api", "reference")
PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "sqlalchemy",
    "asyncpg",
    "pyjwt",
    "argon2-cffi",
    "orjson",
    "pydantic",
    "dependency-injector",
)


@dataclass
class Measurement:
    """One case against one target: a wrk result, or why there is none."""

    case: str
    target: str
    result: Result | None = None
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "target": self.target,
            "result": self.result.as_dict() if self.result else None,
            "skipped": self.skipped,
            **self.extra,
        }


@dataclass(frozen=True)
class Target:
    """A goal of the benchmark and whether this run met it (None: not measured)."""

    name: str
    measured: float | None
    goal: float
    unit: str  # "ratio" (shown as %), "x" (a multiple), "rows/s" or "MB"
    at_most: bool = False
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured <= self.goal if self.at_most else self.measured >= self.goal

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": self.measured,
            "goal": self.goal,
            "unit": self.unit,
            "at_most": self.at_most,
            "met": self.met,
            "note": self.note,
        }


def _find(measurements: list[Measurement], case: str, target: str) -> Measurement | None:
    for m in measurements:
        if m.case == case and m.target == target and m.result is not None:
            return m
    return None


def throughput_ratio(measurements: list[Measurement], case: str) -> float | None:
    api, ref = _find(measurements, case, "api"), _find(measurements, case, "reference")
    if api is None or ref is None or api.result is None or ref.result is None:
        return None
    return api.result.requests_per_s / ref.result.requests_per_s


def p99_ratio(measurements: list[Measurement], case: str) -> float | None:
    api, ref = _find(measurements, case, "api"), _find(measurements, case, "reference")
    if api is None or ref is None or api.result is None or ref.result is None:
        return None
    return api.result.p99_ms / max(ref.result.p99_ms, 1e-3)


def api_ratio(measurements: list[Measurement], case: str, base_case: str) -> float | None:
    """The API's req/s in ``case`` over its req/s in ``base_case``."""
    this, base = _find(measurements, case, "api"), _find(measurements, base_case, "api")
    if this is None or base is None or this.result is None or base.result is None:
        return None
    return this.result.requests_per_s / max(base.result.requests_per_s, 1e-9)


def targets(
    measurements: list[Measurement], purge: dict[str, Any] | None, memory: dict[str, Any]
) -> list[Target]:
    """The targets of the per-request cost work (benchmarks/README.md)."""

    def versus(name: str, case: str, goal: float) -> Target:
        return Target(
            f"{name} req/s vs reference", throughput_ratio(measurements, case), goal, "ratio"
        )

    def tail(name: str, case: str) -> Target:
        return Target(
            f"{name} p99 vs reference", p99_ratio(measurements, case), 2.0, "x", at_most=True
        )

    def flat(name: str, case: str, base_case: str) -> Target:
        return Target(
            f"{name} req/s, 1M users vs 100k",
            api_ratio(measurements, case, base_case),
            0.80,
            "ratio",
        )

    found = [
        versus("/health/live", "health", 0.50),
        versus("GET /users/me", "users_me", 0.75),
        versus("refresh", "refresh", 0.80),
        versus("login", "login", 0.95),
        versus("user list, page 1,", "list_first", 1.0),
        versus("my organizations", "org_list", 0.75),
        versus("members of a 10,000-member organization", "org_members", 0.75),
        versus("user list, page 2,500,", "list_page_2500", 1.0),
        tail("/health/live", "health"),
        tail("GET /users/me", "users_me"),
        tail("refresh", "refresh"),
        Target(
            "/health/live p99 during logins vs reference",
            p99_ratio(measurements, "health_under_login"),
            1.5,
            "x",
            at_most=True,
        ),
        Target(
            "GET /users/me, personal access token vs access token",
            api_ratio(measurements, "users_me_pat", "users_me"),
            0.90,
            "ratio",
        ),
        flat("user list, page 1,", "list_first_1m", "list_first"),
        flat("user list, page 2,500,", "list_page_2500_1m", "list_page_2500"),
    ]
    rate = purge.get("rows_per_s") if purge else None
    found.append(Target("token purge rate", rate, 100_000, "rows/s", note=_purge_note(purge)))
    found.append(
        Target(
            "logins during the purge vs before it",
            _logins_kept(purge),
            0.90,
            "ratio",
            note=purge.get("logins_note", "") if purge else "",
        )
    )
    api_memory = memory.get("api") or {}
    found.append(
        Target(
            "API worker peak RSS after the run",
            api_memory.get("peak_rss_mb"),
            120,
            "MB",
            at_most=True,
            note=f"RSS now {api_memory['rss_mb']} MB" if "rss_mb" in api_memory else "",
        )
    )
    return found


def _logins_kept(purge: dict[str, Any] | None) -> float | None:
    if not purge or purge.get("skipped"):
        return None
    before = (purge.get("logins_before") or {}).get("requests_per_s")
    during = (purge.get("logins_during") or {}).get("requests_per_s")
    if not before or during is None:
        return None
    return float(during) / float(before)


def _purge_note(purge: dict[str, Any] | None) -> str:
    if not purge:
        return ""
    if purge.get("skipped"):
        return str(purge["skipped"])
    return (
        f"{purge['tokens_deleted']:,} tokens + {purge['sessions_deleted']:,} sessions"
        f" in {purge['seconds']:.1f} s via {purge['method']}"
    )


def _ms(value: float) -> str:
    return f"{value:9.2f}" if value < 1000 else f"{value:9.0f}"


def table(measurements: list[Measurement]) -> str:
    header = ("case", "target", "req/s", "p50 ms", "p99 ms", "api/ref")
    lines = ["{:<20} {:<10} {:>9} {:>9} {:>9} {:>9}  notes".format(*header), "-" * 96]
    previous = None
    for m in measurements:
        if previous is not None and m.case != previous:
            lines.append("")
        previous = m.case
        ratio = ""
        if m.target == "api":
            if m.case == "health_under_login":
                value = p99_ratio(measurements, m.case)
                ratio = f"p99 {value:.2f}x" if value is not None else ""
            else:
                value = throughput_ratio(measurements, m.case)
                ratio = f"{value:.0%}" if value is not None else ""
        if m.result is None:
            lines.append(
                f"{m.case:<20} {m.target:<10} {'—':>9} {'—':>9} {'—':>9} {'':>9}  {m.skipped}"
            )
            continue
        r = m.result
        notes = list(m.extra.get("notes", []))
        if r.failed:
            notes.insert(0, f"{r.failed:,} failed ({r.failed_share:.1%})")
        if r.starved:
            notes.insert(0, f"{r.starved:,} without a fresh token")
        lines.append(
            f"{m.case:<20} {m.target:<10} {r.requests_per_s:9.1f} {_ms(r.p50_ms)} {_ms(r.p99_ms)}"
            f" {ratio:>9}  {'; '.join(notes)}"
        )
    return "\n".join(lines)


def _value(target: Target) -> str:
    if target.measured is None:
        return "—"
    if target.unit == "ratio":
        return f"{target.measured:.0%}"
    if target.unit == "x":
        return f"{target.measured:.2f}x"
    if target.unit == "yes/no":
        return "yes" if target.measured else "no"
    if target.unit == "rows/s":
        return f"{target.measured:,.0f} rows/s"
    return f"{target.measured:.0f} {target.unit}"


def _goal(target: Target) -> str:
    sign = "≤" if target.at_most else "≥"
    if target.unit == "ratio":
        return f"{sign} {target.goal:.0%}"
    if target.unit == "x":
        return f"{sign} {target.goal:.1f}x"
    if target.unit == "yes/no":
        return "yes"
    if target.unit == "rows/s":
        return f"{sign} {target.goal:,.0f}"
    return f"{sign} {target.goal:.0f} {target.unit}"


def targets_table(found: list[Target]) -> str:
    lines = [f"{'target':<52} {'measured':>16} {'goal':>12}  met", "-" * 104]
    for t in found:
        met = {True: "yes", False: "NO", None: "—"}[t.met]
        note = f"  ({t.note})" if t.note else ""
        lines.append(f"{t.name:<52} {_value(t):>16} {_goal(t):>12}  {met}{note}")
    return "\n".join(lines)


def machine(postgres_version: str, wrk_version: str) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": postgres_version,
        "wrk": wrk_version,
        "packages": {name: _package_version(name) for name in PACKAGES},
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
