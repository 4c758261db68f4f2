"""The README's first command, tried as a newcomer would: ``make run``, then the API.

Run from the repository root with any Python 3.11+ (standard library only)::

    python3 scripts/smoke_run.py [--timeout SECONDS]

Starts ``make run`` on a free port of 127.0.0.1 (it builds .venv from the runtime lock
when there is none), waits until the API answers, registers a user, logs in with the
OAuth2 form, reads ``GET /api/v1/users/me`` and the Swagger page, then sends SIGTERM to
the server and requires a clean exit. Exits 0 with one line per step, or 1 with the
step that failed and the tail of the server's output. ``.ci/run`` calls it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class SmokeFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    # Always http://127.0.0.1:PORT of the server this script started.
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def expect(step: str, status: int, wanted: int, body: bytes) -> Any:
    if status != wanted:
        raise SmokeFailed(f"{step}: HTTP {status}, expected {wanted}: {body[:300]!r}")
    print(f"smoke: {step}: {status}")
    return json.loads(body) if body.startswith((b"{", b"[")) else body


def wait_until_up(base: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SmokeFailed(f"`make run` exited with {server.returncode} before serving")
        try:
            if call("GET", f"{base}/health/live")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SmokeFailed(f"the API did not answer within {timeout:.0f}s")


def exercise(base: str) -> None:
    name = f"smoke{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    json_headers = {"Content-Type": "application/json"}
    registration = json.dumps(
        {"email": f"{name}@example.com", "username": name, "password": password}
    ).encode()
    status, body = call("POST", f"{base}/api/v1/users/", body=registration, headers=json_headers)
    expect("register", status, 201, body)

    form = urllib.parse.urlencode({"username": name, "password": password}).encode()
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = call("POST", f"{base}/api/v1/auth/login", body=form, headers=form_headers)
    tokens = expect("log in", status, 200, body)

    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    status, body = call("GET", f"{base}/api/v1/users/me", headers=bearer)
    if expect("GET /api/v1/users/me", status, 200, body)["username"] != name:
        raise SmokeFailed("GET /api/v1/users/me answered for another user")

    status, body = call("GET", f"{base}/docs")
    if b"swagger" not in expect("GET /docs", status, 200, body).lower():
        raise SmokeFailed("GET /docs is not the Swagger page")


def children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def stop(server: subprocess.Popen[bytes], timeout: float) -> None:
    # `make` runs the recipe's one command as its own child: the server. SIGTERM goes to
    # it alone, as an orchestrator would send it, and make passes on its exit status.
    for pid in children(server.pid) or [server.pid]:
        os.kill(pid, signal.SIGTERM)
    try:
        server.wait(timeout)
    except subprocess.TimeoutExpired:
        raise SmokeFailed(f"the server still ran {timeout:.0f}s after SIGTERM") from None
    if server.returncode != 0:
        raise SmokeFailed(f"`make run` exited with {server.returncode} after SIGTERM")
    print("smoke: SIGTERM: the server exited 0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds for `make run` to serve"
    )
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as output:
        server = subprocess.Popen(  # noqa: S603 - a fixed command
            # make from PATH, as the README runs it.
            ["make", "--no-print-directory", "run", f"PORT={port}"],  # noqa: S607
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started = time.monotonic()
        try:
            wait_until_up(base, server, args.timeout)
            print(f"smoke: `make run` served {base} after {time.monotonic() - started:.0f}s")
            exercise(base)
            stop(server, timeout=30)
        except SmokeFailed as failure:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            output.seek(0)
            tail = output.read().decode(errors="replace").splitlines()[-40:]
            print(f"smoke: FAILED: {failure}", file=sys.stderr)
            print("\n".join(f"  | {line}" for line in tail), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
