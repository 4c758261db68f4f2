"""The ``app`` command as a whole: version, help, ``serve``, ``db``, and the installed
console script run as a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters import migrations
from entrypoints import console
from entrypoints.console import app
from tests.e2e.cli_fixtures import (
    APP,
    PASSWORD,
    clean_env,
    one_error_line,
)

# A process may take long to start on a loaded machine; none of these waits is a
# measurement.
PROCESS_TIMEOUT = 120

COMMANDS = [
    [],
    ["serve"],
    ["users"],
    ["users", "create"],
    ["users", "list"],
    ["users", "activate"],
    ["users", "deactivate"],
    ["users", "set-password"],
    ["tokens"],
    ["tokens", "purge"],
    ["db"],
    ["db", "upgrade"],
    ["db", "downgrade"],
    ["db", "current"],
    ["jobs"],
    ["jobs", "run"],
    ["scaffold"],
    ["scaffold", "resource"],
]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file: no migration applied."""
    return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.stdout == f"app {version('backend-template')}\n"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "app")
def test_every_command_has_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "100"})

    assert result.exit_code == 0, result.output
    assert f"Usage: app {' '.join(command)}".rstrip() in result.stdout
    # Every command says what it does (its docstring or help), not just its options.
    description = result.stdout.split("Usage:", 1)[1].splitlines()[2].strip()
    assert len(description) > 15, result.stdout


def test_the_top_level_help_lists_every_group(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "100"})

    for name in ("serve", "users", "tokens", "db", "jobs", "scaffold"):
        assert f" {name} " in result.stdout


@pytest.mark.parametrize("args", [[], ["users"], ["nope"], ["users", "--nope"]])
def test_bad_usage_exits_2(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(app, args)

    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad-Name"], "use lowercase letters"),
        (["users"], "has that name already"),
        (["data"], "--singular"),
        (["sessions", "--singular", "session"], "has that name already"),
        (["audit_events"], "defines a table 'audit_events' already"),
    ],
)
def test_scaffold_refuses_a_bad_name_in_one_line_and_writes_nothing(
    runner: CliRunner, args: list[str], message: str
) -> None:
    # (The files it writes for a good name: tests/e2e/test_guide.py, in a copy.)
    result = runner.invoke(app, ["scaffold", "resource", *args])

    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- serve -------------------------------------------------------------------------


def test_serve_becomes_the_server_process_with_its_options(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(console, "exec_server", lambda *args: calls.append(args))

    result = runner.invoke(
        app,
        ["serve", "--host", "0.0.0.0", "--port", "9001", "--workers", "3"],
        env=clean_env(sqlite_url),
    )

    assert result.exit_code == 0, result.output
    assert calls == [("0.0.0.0", 9001, 3, False)]


def test_serve_defaults(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(console, "exec_server", lambda *args: calls.append(args))

    runner.invoke(app, ["serve", "--reload"], env=clean_env(sqlite_url))

    assert calls == [("127.0.0.1", 8000, 1, True)]


@pytest.mark.parametrize("args", [["--port", "0"], ["--port", "70000"], ["--workers", "0"]])
def test_serve_refuses_bad_options(runner: CliRunner, args: list[str]) -> None:
    assert runner.invoke(app, ["serve", *args]).exit_code == 2


def test_serve_refuses_to_start_on_invalid_settings(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.setattr(console, "exec_server", lambda *_a: pytest.fail("must not start"))

    result = runner.invoke(
        app, ["serve"], env=clean_env(sqlite_url, ENVIRONMENT="production", SECRET_KEY="")
    )

    assert result.exit_code == 1
    assert one_error_line(result) == (
        "error: invalid configuration: SECRET_KEY is required in production"
    )


# --- db ----------------------------------------------------------------------------


def test_db_upgrade_current_and_downgrade_on_a_fresh_database(
    runner: CliRunner, sqlite_url: str
) -> None:
    env = clean_env(sqlite_url)

    def db(*args: str) -> Any:
        result = runner.invoke(app, ["db", *args], env=env)
        assert result.exit_code == 0, result.output
        return result

    fresh = db("current")
    assert fresh.stdout == "base (no migration applied)\n"
    assert "run `app db upgrade`" in fresh.stderr

    [head] = migrations.head_revisions(sqlite_url)
    assert db("upgrade").stdout == (
        f"Database upgraded from base (no migration applied) to {head} (latest).\n"
    )
    assert db("upgrade").stdout == f"Database already at {head} (latest).\n"
    current = db("current")
    assert current.stdout == f"{head} (latest)\n"
    assert current.stderr == ""

    assert db("downgrade", "base").stdout == (
        f"Database downgraded from {head} (latest) to base (no migration applied).\n"
    )
    assert db("current").stdout == "base (no migration applied)\n"
    assert db("upgrade", head).stdout.endswith(f"to {head} (latest).\n")


def test_db_upgrade_logs_nothing(runner: CliRunner, sqlite_url: str) -> None:
    result = runner.invoke(app, ["db", "upgrade"], env=clean_env(sqlite_url, LOG_LEVEL="INFO"))

    assert result.exit_code == 0
    assert result.stderr == ""


@pytest.mark.parametrize("command", [["upgrade", "nope"], ["downgrade", "nope"]])
def test_db_an_unknown_revision_is_one_line(
    runner: CliRunner, sqlite_url: str, command: list[str]
) -> None:
    env = clean_env(sqlite_url)
    runner.invoke(app, ["db", "upgrade"], env=env)

    result = runner.invoke(app, ["db", *command], env=env)

    assert result.exit_code == 1
    assert "nope" in one_error_line(result)


def test_db_downgrade_needs_a_revision(runner: CliRunner) -> None:
    assert runner.invoke(app, ["db", "downgrade"]).exit_code == 2


def test_only_the_db_commands_load_alembic() -> None:
    script = (
        "import sys\n"
        "import entrypoints.console\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", script],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- the installed console script --------------------------------------------------


def run_app(*args: str, env: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **env}
    return subprocess.run(  # noqa: PLW1510 (the caller checks)
        [str(APP), *args],
        env={name: value for name, value in environ.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        # Away from any terminal: a prompt could not wait on a developer's tty.
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_the_console_script_prints_its_version() -> None:
    result = run_app("--version", env={})

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"app {version('backend-template')}\n"


def test_the_console_script_creates_and_lists_a_user(tmp_path: Path) -> None:
    env = clean_env(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")

    migrated = run_app("db", "upgrade", env=env)
    created = run_app(
        "users", "create", "--email", "ada@example.com", "--username", "ada",
        "--password", PASSWORD, "--superuser", env=env,
    )  # fmt: skip
    duplicate = run_app(
        "users", "create", "--email", "ada@example.com", "--username", "bob",
        "--password", PASSWORD, env=env,
    )  # fmt: skip
    listed = run_app("users", "list", "--json", env=env)

    assert migrated.returncode == 0, migrated.stderr
    assert created.returncode == 0, created.stderr
    assert created.stderr == ""
    user_id = int(created.stdout)
    assert duplicate.returncode == 1
    assert duplicate.stderr == "error: A user with this email already exists.\n"
    assert duplicate.stdout == ""
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == user_id
    assert row["is_superuser"] is True


def test_the_console_script_prompts_for_a_password_from_stdin(tmp_path: Path) -> None:
    env = clean_env(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    assert run_app("db", "upgrade", env=env).returncode == 0

    created = subprocess.run(  # noqa: PLW1510
        [str(APP), "users", "create", "--email", "ada@example.com", "--username", "ada"],
        env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
        input=f"{PASSWORD}\n{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        start_new_session=True,  # no controlling terminal: getpass reads stdin
    )

    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().isdigit()
    assert PASSWORD not in created.stdout + created.stderr
