"""``python -m entrypoints.serve``, the process ``app serve`` becomes: uvicorn with the
project's options, and an API process that carries neither the CLI nor what only the
job runner and the mail relay need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from adapters import migrations
from entrypoints import serve
from tests.e2e.cli_fixtures import SECRET_KEY
from tests.e2e.servers import has_app_serve, running

PROCESS_TIMEOUT = 120


def test_the_server_runs_the_app_factory_under_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))

    serve.main(["--host", "0.0.0.0", "--port", "9001", "--workers", "3"])

    [(args, kwargs)] = calls
    assert args == ("entrypoints.asgi:create_app",)
    assert kwargs == {
        "factory": True,
        "host": "0.0.0.0",
        "port": 9001,
        "workers": 3,
        "reload": False,
        "loop": "uvloop",
        "http": "httptools",
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,
        "log_config": None,
    }


def test_the_command_line_names_this_interpreter_and_never_the_working_directory() -> None:
    assert serve.command("0.0.0.0", 9001, 3, True) == [
        sys.executable,
        "-P",  # a module in the working directory never shadows an installed one
        "-m",
        "entrypoints.serve",
        "--host",
        "0.0.0.0",
        "--port",
        "9001",
        "--workers",
        "3",
        "--reload",
    ]
    assert "--reload" not in serve.command("127.0.0.1", 8000, 1, False)


def test_the_api_process_loads_neither_the_cli_nor_the_job_runner_nor_mail_nor_webauthn(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    migrations.upgrade(url)
    script = (
        "import json, sys\n"
        "import entrypoints.serve\n"
        "from entrypoints.asgi import create_app\n"
        "create_app()\n"
        # What a unit of work serves its repositories from: every repository's module.
        "import adapters.repositories\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in"
        " {'typer', 'alembic', 'apscheduler', 'jinja2', 'aiosmtplib', 'webauthn'}"
        " or m.startswith(('entrypoints.cli', 'adapters.mail', 'adapters.migrations',"
        " 'adapters.passkey_ceremonies')))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", script],
        env={"DATABASE_URL": url, "ENVIRONMENT": "test", "SECRET_KEY": SECRET_KEY},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def command_line(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
async def test_app_serve_replaces_itself_with_the_server_process(tmp_path: Path) -> None:
    if not has_app_serve():
        pytest.skip("the console script is not installed")
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    migrations.upgrade(url)
    env = {"DATABASE_URL": url, "SECRET_KEY": SECRET_KEY}
    async with running("exec", env, tmp_path) as server:
        # The process `app serve` started as, still the one signals go to.
        cmdline = command_line(server.process.pid)
        assert cmdline[2:4] == [b"-m", b"entrypoints.serve"], cmdline
        assert await server.stop() == 0
