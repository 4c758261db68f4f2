"""wrk, the load generator: finding (or installing) it, running it, reading its report.

Every script in ``benchmarks/wrk/`` loads ``common.lua``, whose ``done()`` prints one
``BENCH_JSON {...}`` line: requests/s, latency percentiles and error counts.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent / "wrk"
MARKER = "BENCH_JSON "


class WrkMissing(Exception):
    """wrk is not installed and could not be installed."""


class WrkFailed(Exception):
    """A wrk run ended without a report."""


def ensure_wrk(*, install: bool) -> str:
    """The path of wrk; as root on Debian/Ubuntu, installs the package if missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing the Debian package (apt-get install -y wrk) …")
        if not _apt("install", "-y", "wrk"):
            _apt("update")
            _apt("install", "-y", "wrk")
        found = shutil.which("wrk")
        if found:
            return found
    raise WrkMissing(
        "wrk (the HTTP load generator) is not installed. On Debian/Ubuntu run"
        " `sudo apt-get install wrk` (as root, `make bench` does it itself);"
        " elsewhere build it from https://github.com/wg/wrk and put it on PATH."
    )


def _apt(*args: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        ["apt-get", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return done.returncode == 0


def version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


@dataclass(frozen=True)
class Load:
    """One wrk invocation: a URL, a script with its arguments, and the load's shape."""

    url: str
    script: str
    args: tuple[str, ...] = ()
    threads: int = 2
    connections: int = 64
    duration: float = 10.0
    timeout: float = 10.0

    def lasting(self, seconds: float) -> Load:
        return replace(self, duration=seconds)

    def command(self, wrk: str) -> list[str]:
        threads = max(1, min(self.threads, self.connections))
        return [
            wrk,
            "-t",
            str(threads),
            "-c",
            str(self.connections),
            "-d",
            f"{max(1, math.ceil(self.duration))}s",
            "--timeout",
            f"{max(1, math.ceil(self.timeout))}s",
            "-s",
            str(SCRIPTS / self.script),
            self.url,
            "--",
            *self.args,
        ]


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int]
    starved: int

    @property
    def failed(self) -> int:
        """Requests that did not get a 2xx/3xx, or none at all."""
        e = self.errors
        return e["status"] + e["timeout"] + e["connect"] + e["read"] + e["write"]

    @property
    def failed_share(self) -> float:
        return self.failed / max(1, self.requests)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed}


def _parse(output: str, errors: str, command: list[str]) -> Result:
    for line in output.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            latency = data["latency_ms"]
            return Result(
                requests=data["requests"],
                seconds=data["seconds"],
                requests_per_s=data["requests_per_s"],
                p50_ms=latency["p50"],
                p90_ms=latency["p90"],
                p99_ms=latency["p99"],
                max_ms=latency["max"],
                mean_ms=latency["mean"],
                errors=data["errors"],
                starved=data["starved"],
            )
    tail = "\n".join((output + errors).strip().splitlines()[-10:])
    raise WrkFailed(f"wrk gave no report ({' '.join(command)}):\n{tail}")


def run(wrk: str, load: Load) -> Result:
    command = load.command(wrk)
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=load.duration + load.timeout + 30,
    )
    return _parse(done.stdout, done.stderr, command)


class Running:
    """A wrk run in the background, e.g. the login load behind another measurement."""

    def __init__(self, wrk: str, load: Load) -> None:
        self.command = load.command(wrk)
        self._load = load
        self._process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def interrupt(self) -> None:
        """End the run now; wrk still reports on what it did (it handles SIGINT)."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)

    def result(self) -> Result:
        try:
            out, err = self._process.communicate(
                timeout=self._load.duration + self._load.timeout + 30
            )
        except subprocess.TimeoutExpired:
            self._process.kill()
            out, err = self._process.communicate()
        return _parse(out, err, self.command)

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()
