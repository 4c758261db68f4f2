"""Starting, watching and stopping the two servers under test."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from benchmarks.database import ROOT, venv_script

READY_PATH = "/health/live"


class ServerFailed(Exception):
    """A server did not come up; the message says why and shows its log's tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api_command(port: int) -> list[str]:
    app = venv_script("app")
    return [str(app), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


def reference_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "benchmarks.reference.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return "\n".join(f"    | {line}" for line in text[-lines:]) or "    | (no output)"

    def pids(self) -> list[int]:
        """The server's process and its descendants (uvicorn may fork a worker)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
        found, queue = [], [self.process.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            queue.extend(children.get(pid, []))
        return found

    def memory(self) -> dict[str, Any]:
        """Resident memory of the worker (the process of the tree that peaked highest),
        now (VmRSS) and at its peak (VmHWM), in MiB."""
        processes: list[dict[str, Any]] = []
        for pid in self.pids():
            status = _proc_status(pid)
            if "VmHWM" in status:
                processes.append(
                    {
                        "pid": pid,
                        "name": status.get("Name", "?"),
                        "rss_mb": _kib_to_mib(status["VmRSS"]),
                        "peak_rss_mb": _kib_to_mib(status["VmHWM"]),
                    }
                )
        if not processes:
            return {"processes": []}
        worker = max(processes, key=lambda p: p["peak_rss_mb"])
        return {
            "worker_pid": worker["pid"],
            "rss_mb": worker["rss_mb"],
            "peak_rss_mb": worker["peak_rss_mb"],
            "processes": processes,
        }

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            # The server runs in a process group of its own, which we started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.log_file.close()


def start(
    name: str, command: list[str], env: dict[str, str], port: int, log_dir: Path, timeout: float
) -> Server:
    """Start a server and wait until ``/health/live`` answers 200."""
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("wb")
    try:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        log_file.close()
        raise ServerFailed(f"{name}: cannot run {command[0]}: {exc}") from None
    server = Server(name, port, process, log_path, log_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            server.log_file.close()
            raise ServerFailed(
                f"{name} exited with status {process.returncode} before answering"
                f" {READY_PATH}:\n{server.log_tail()}"
            )
        if _answers(server.base_url + READY_PATH):
            return server
        time.sleep(0.1)
    tail = server.log_tail()
    server.stop()
    raise ServerFailed(f"{name} did not answer {READY_PATH} within {timeout:.0f} s:\n{tail}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _proc_status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _kib_to_mib(value: str) -> float:
    return round(int(value.split(maxsplit=1)[0]) / 1024, 1)
