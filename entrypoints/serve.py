"""The API server process: uvicorn running ``entrypoints.asgi:create_app``.

``app serve`` checks the settings and the signing keys, then replaces itself with
``python -m entrypoints.serve``: the server (and every worker uvicorn spawns, which
re-imports the main module) then holds the API alone, not the admin CLI, Typer and
Alembic it would otherwise carry for its whole life (about 9 MB a process).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, NoReturn

import uvicorn

APP = "entrypoints.asgi:create_app"
UVICORN_OPTIONS: dict[str, Any] = {
    "factory": True,
    "loop": "uvloop",
    "http": "httptools",
    # The app honours X-Forwarded-For itself, from TRUSTED_PROXIES only.
    "proxy_headers": False,
    "server_header": False,
    # The app logs one event per request; our logging applies, not uvicorn's.
    "access_log": False,
    "log_config": None,
}


def command(host: str, port: int, workers: int, reload: bool) -> list[str]:
    """The command line of the server process. ``-P``: a module in the working
    directory never shadows an installed one."""
    argv = [sys.executable, "-P", "-m", __name__, "--host", host, "--port", str(port)]
    argv += ["--workers", str(workers), *(["--reload"] if reload else [])]
    return argv


def exec_server(host: str, port: int, workers: int, reload: bool) -> NoReturn:
    """Become the server process: same PID, signals and output streams."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = command(host, port, workers, reload)
    os.execv(argv[0], argv)  # noqa: S606 - our own interpreter and module, no shell


def serve(host: str, port: int, workers: int, reload: bool) -> None:
    # uvicorn re-raises the signal it stopped on once it has shut down cleanly; for the
    # operator and the orchestrator, a clean stop is a success.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: sys.exit(0))
    uvicorn.run(APP, host=host, port=port, workers=workers, reload=reload, **UVICORN_OPTIONS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m entrypoints.serve", description="Serve the API (see `app serve`)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--reload", action="store_true")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.workers, args.reload)


if __name__ == "__main__":
    main()
