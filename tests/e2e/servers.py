"""Real API server processes for end-to-end tests: each on a free port, with its own
environment, its stderr and stdout captured to files, stopped with SIGTERM.

``app serve`` is used when the CLI has it; otherwise uvicorn runs the app factory
directly, which is what ``app serve`` does. Every process is started in a session of
its own, and ``kill()`` (run by the ``running`` context manager whatever happens)
ends that process group: no test leaves a server behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
# Variables of the developer's shell that would change what the server does; tests
# say what they want instead.
_SETTINGS_PREFIXES = (
    "ENVIRONMENT",
    "PROJECT_NAME",
    "DATABASE_",
    "SECRET_KEY",
    "ALGORITHM",
    "ACCESS_TOKEN_",
    "REFRESH_TOKEN_",
    "JWT_",
    "ALLOWED_ORIGINS",
    "ALLOWED_HOSTS",
    "METRICS_",
    "MAIL_",
    "RATE_LIMIT_",
    "TRUSTED_PROXIES",
    "TOKEN_PURGE_",
    "JOBS_",
    "LOG_",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@cache
def has_app_serve() -> bool:
    """Whether the console script offers ``serve`` (the CLI may not have it yet)."""
    app = BIN / "app"
    if not app.exists():
        return False
    try:
        done = subprocess.run(
            [str(app), "serve", "--help"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def server_command(port: int) -> list[str]:
    if has_app_serve():
        return [str(BIN / "app"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return [
        str(BIN / "python"),
        "-m",
        "uvicorn",
        "entrypoints.asgi:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]


def server_env(overrides: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_SETTINGS_PREFIXES)}
    env.update({"ENVIRONMENT": "test", "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    stderr_path: Path
    stdout_path: Path
    command: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text("utf-8", errors="replace")

    def describe(self) -> str:
        """The end of the server's output, for assertion messages."""
        return f"{self.name} ({' '.join(self.command)}):\n{self.stderr()[-4000:]}"

    async def wait_until_live(self, within: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {self.process.returncode}: {self.describe()}"
                    )
                with suppress(httpx.TransportError):
                    if (await client.get("/health/live")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server not live after {within}s: {self.describe()}")
                await asyncio.sleep(0.1)

    def terminate(self) -> None:
        """SIGTERM to the server process itself, as an orchestrator sends it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    async def wait(self, within: float = STOP_TIMEOUT) -> int:
        deadline = time.monotonic() + within
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"server still running {within}s after SIGTERM")
            await asyncio.sleep(0.05)
        return int(self.process.returncode)

    async def stop(self, within: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait for the exit; the exit status."""
        self.terminate()
        return await self.wait(within)

    def kill(self) -> None:
        """SIGKILL to the server's process group, while its leader has not been reaped
        (after that, its id could belong to someone else)."""
        if self.process.poll() is not None:
            return
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def start_server(
    name: str, env: Mapping[str, str], log_dir: Path, port: int | None = None
) -> Server:
    port = port or free_port()
    command = server_command(port)
    stderr_path = log_dir / f"{name}.stderr.log"
    stdout_path = log_dir / f"{name}.stdout.log"
    # The working directory is the log directory, so no stray `.env` is read.
    with stderr_path.open("wb") as stderr, stdout_path.open("wb") as stdout:
        process = subprocess.Popen(
            command,
            env=server_env(env),
            cwd=log_dir,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    return Server(name, port, process, stderr_path, stdout_path, command)


@asynccontextmanager
async def running(
    name: str, env: Mapping[str, str], log_dir: Path, port: int | None = None
) -> AsyncIterator[Server]:
    """A live server for the block; killed on the way out unless it already exited."""
    for attempt in range(3):
        server = start_server(name, env, log_dir, port)
        try:
            await server.wait_until_live()
        except RuntimeError:
            server.kill()
            # Another process took the free port between the probe and the bind.
            if port is None and attempt < 2 and "already in use" in server.stderr():
                continue
            raise
        except BaseException:
            server.kill()
            raise
        break
    try:
        yield server
    finally:
        server.kill()
