"""The ``app`` command, driven through Typer's CliRunner on SQLite and PostgreSQL.

Each command resolves its use case from the production container (with a cheap
password hasher); the results are checked through the same use cases the API uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from typer.testing import Result

import entrypoints.cli.tokens as tokens_commands
from application.auth import Authenticate, LogIn, RefreshTokens
from application.retention import PurgeResult, PurgeTokens
from application.users import ListUsers
from domain.errors import InvalidCredentials, InvalidToken
from domain.model import TokenPair
from entrypoints.console import app
from entrypoints.container import ContainerServices
from entrypoints.settings import Settings
from tests.e2e.cli_fixtures import (
    DAY,
    PASSWORD,
    Cli,
    cli_runtime,
    existing_ids,
    fast_services,
    one_error_line,
    seed_session,
)
from tests.e2e.conftest import USER_FIELDS

NEW_PASSWORD = "another long passphrase"


def log_in(cli: Cli, login: str, password: str = PASSWORD) -> TokenPair:
    async def work(container: ContainerServices) -> TokenPair:
        return (await container.get(LogIn)(login, password)).tokens

    return cli.run(work)


def authenticate(cli: Cli, access_token: str) -> int:
    async def work(container: ContainerServices) -> int:
        return (await container.get(Authenticate)(access_token)).user_id

    return cli.run(work)


def refresh(cli: Cli, refresh_token: str) -> TokenPair:
    async def work(container: ContainerServices) -> TokenPair:
        pair: TokenPair = await container.get(RefreshTokens)(refresh_token)
        return pair

    return cli.run(work)


# --- users create ------------------------------------------------------------------


def test_create_prints_the_new_id_and_the_user_can_log_in(cli: Cli) -> None:
    result = cli(
        "users", "create", "--email", "Ada@Example.com", "--username", "ada",
        "--password", PASSWORD, "--full-name", "Ada Lovelace",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().isdigit()
    assert result.stderr == ""
    user_id = int(result.stdout)
    assert authenticate(cli, log_in(cli, "ada@example.com").access_token) == user_id
    [listed] = [json.loads(line) for line in cli("users", "list", "--json").stdout.splitlines()]
    assert listed["email"] == "ada@example.com"
    assert listed["full_name"] == "Ada Lovelace"
    assert listed["is_superuser"] is False


def test_create_superuser(cli: Cli) -> None:
    cli.create_user("root", "--superuser")
    [listed] = [json.loads(line) for line in cli("users", "list", "--json").stdout.splitlines()]
    assert listed["is_superuser"] is True


def test_create_prompts_for_the_password_twice_without_echoing_it(cli: Cli) -> None:
    result = cli(
        "users", "create", "--email", "ada@example.com", "--username", "ada",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    # stdout carries the id alone (and, under CliRunner only, the newlines it echoes
    # for hidden input); the prompts go to stderr, the password nowhere.
    assert result.stdout.strip().isdigit()
    assert "Password:" in result.stderr
    assert "Repeat the password:" in result.stderr
    assert PASSWORD not in result.output
    log_in(cli, "ada", PASSWORD)


def test_create_asks_again_when_the_confirmation_differs(cli: Cli) -> None:
    result = cli(
        "users", "create", "--email", "ada@example.com", "--username", "ada",
        input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert "do not match" in result.stderr
    log_in(cli, "ada", PASSWORD)


def test_create_gives_up_without_creating_when_the_confirmation_never_matches(cli: Cli) -> None:
    result = cli(
        "users", "create", "--email", "ada@example.com", "--username", "ada",
        input=f"{PASSWORD}\nsomething else\n",
    )  # fmt: skip

    assert result.exit_code == 1
    assert result.stdout.strip() == ""  # CliRunner echoes hidden input's newlines there
    assert "do not match" in result.stderr
    assert "Traceback" not in result.output
    assert cli("users", "list", "--json").stdout == ""


@pytest.mark.parametrize(
    ("email", "username", "message"),
    [
        ("ADA@example.com", "other", "error: A user with this email already exists."),
        ("other@example.com", "ADA", "error: A user with this username already exists."),
    ],
)
def test_create_refuses_a_duplicate_in_one_line(
    cli: Cli, email: str, username: str, message: str
) -> None:
    cli.create_user("ada")

    result = cli(
        "users", "create", "--email", email, "--username", username, "--password", PASSWORD
    )

    assert result.exit_code == 1
    assert result.stdout == ""
    assert one_error_line(result) == message


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--password", "password", "error: password: is too common"),
        ("--password", "short", "error: password: must be 8-128 characters"),
        ("--email", "not-an-email", "error: email: value is not a valid email address"),
        ("--username", "a b", "error: username: must be 3-32 characters"),
        ("--full-name", "x" * 101, "error: full_name: must be at most 100 characters"),
    ],
)
def test_create_names_the_field_of_an_invalid_value(
    cli: Cli, option: str, value: str, message: str
) -> None:
    values = {"--email": "ada@example.com", "--username": "ada", "--password": PASSWORD}
    values[option] = value
    args = [item for pair in values.items() for item in pair]

    result = cli("users", "create", *args)

    assert result.exit_code == 1
    assert one_error_line(result).startswith(message)


def test_create_without_a_required_option_is_bad_usage(cli: Cli) -> None:
    result = cli("users", "create", "--username", "ada", "--password", PASSWORD)

    assert result.exit_code == 2
    assert "--email" in result.stderr
    assert "Traceback" not in result.output


# --- users list --------------------------------------------------------------------


def test_list_shows_a_table_with_inactive_users_and_no_hashes(cli: Cli) -> None:
    ada = cli.create_user("ada", full_name="Ada Lovelace")
    bob = cli.create_user("bob")
    assert cli("users", "deactivate", "bob").exit_code == 0

    result = cli("users", "list")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "ID", "USERNAME", "EMAIL", "FULL", "NAME", "ACTIVE", "SUPERUSER", "VERIFIED", "CREATED",
        "(UTC)",
    ]  # fmt: skip
    assert lines[1].split()[:7] == [
        str(ada),
        "ada",
        "ada@example.com",
        "Ada",
        "Lovelace",
        "yes",
        "no",
    ]
    assert lines[2].split()[:6] == [str(bob), "bob", "bob@example.com", "-", "no", "no"]
    assert lines[3] == "Page 1 of 1, 2 users in all."
    assert "argon2" not in result.output
    assert PASSWORD not in result.output


def test_list_as_json_lines_has_the_api_user_fields_only(cli: Cli) -> None:
    ada = cli.create_user("ada")
    bob = cli.create_user("bob")
    cli("users", "deactivate", str(bob))

    result = cli("users", "list", "--json")

    assert result.exit_code == 0, result.stderr
    rows: list[dict[str, Any]] = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["id"] for row in rows] == [ada, bob]
    assert all(set(row) == USER_FIELDS for row in rows)
    assert [row["is_active"] for row in rows] == [True, False]
    assert datetime.fromisoformat(rows[0]["created_at"]).utcoffset() is not None
    assert "argon2" not in result.stdout


def test_list_pages(cli: Cli) -> None:
    ids = [cli.create_user(name) for name in ("ada", "bob", "cyd")]

    second = cli("users", "list", "--page", "2", "--size", "2", "--json")
    past_the_end = cli("users", "list", "--page", "9", "--size", "2")

    assert [json.loads(line)["id"] for line in second.stdout.splitlines()] == ids[2:]
    assert past_the_end.exit_code == 0
    assert past_the_end.stdout == "Page 9 of 2, 3 users in all.\n"


def test_list_of_no_users(cli: Cli) -> None:
    result = cli("users", "list")

    assert result.exit_code == 0
    assert result.stdout == "Page 1 of 1, 0 users in all.\n"


@pytest.mark.parametrize("args", [["--size", "0"], ["--size", "101"], ["--page", "0"]])
def test_list_with_an_out_of_range_page_is_bad_usage(cli: Cli, args: list[str]) -> None:
    result = cli("users", "list", *args)

    assert result.exit_code == 2
    assert "Traceback" not in result.output


# --- users deactivate / activate / set-password -------------------------------------


def test_deactivate_ends_every_session_and_activate_lets_the_user_log_in_again(
    cli: Cli,
) -> None:
    ada = cli.create_user("ada")
    pair = log_in(cli, "ada")
    assert authenticate(cli, pair.access_token) == ada

    result = cli("users", "deactivate", "ada@example.com")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"User ada (id {ada}) is inactive; all their sessions are ended.\n"
    with pytest.raises(InvalidToken):
        authenticate(cli, pair.access_token)
    with pytest.raises(InvalidToken):
        refresh(cli, pair.refresh_token)
    with pytest.raises(InvalidCredentials):
        log_in(cli, "ada")

    result = cli("users", "activate", str(ada))

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"User ada (id {ada}) is active.\n"
    assert authenticate(cli, log_in(cli, "ada").access_token) == ada
    with pytest.raises(InvalidToken):  # what deactivation ended stays ended
        authenticate(cli, pair.access_token)


def test_deactivating_twice_is_fine(cli: Cli) -> None:
    cli.create_user("ada")

    assert cli("users", "deactivate", "ada").exit_code == 0
    assert cli("users", "deactivate", "ADA").exit_code == 0


def test_set_password_with_the_option_ends_every_session(cli: Cli) -> None:
    ada = cli.create_user("ada")
    pair = log_in(cli, "ada")

    result = cli("users", "set-password", "ada", "--password", NEW_PASSWORD)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"Password of user ada (id {ada}) set; all their sessions are ended.\n"
    )
    with pytest.raises(InvalidToken):
        authenticate(cli, pair.access_token)
    with pytest.raises(InvalidToken):
        refresh(cli, pair.refresh_token)
    with pytest.raises(InvalidCredentials):
        log_in(cli, "ada", PASSWORD)
    assert authenticate(cli, log_in(cli, "ada", NEW_PASSWORD).access_token) == ada


def test_create_reads_the_password_from_stdin_without_a_prompt(cli: Cli) -> None:
    result = cli(
        "users", "create", "--email", "ada@example.com", "--username", "ada", "--password-stdin",
        input=f"{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert PASSWORD not in result.output
    log_in(cli, "ada", PASSWORD)


def test_set_password_reads_the_password_from_stdin(cli: Cli) -> None:
    ada = cli.create_user("ada")

    result = cli("users", "set-password", "ada", "--password-stdin", input=f"{NEW_PASSWORD}\r\n")

    assert result.exit_code == 0, result.stderr
    assert "New password" not in result.stderr
    assert authenticate(cli, log_in(cli, "ada", NEW_PASSWORD).access_token) == ada


@pytest.mark.parametrize(
    ("extra", "stdin", "message"),
    [
        (["--password", NEW_PASSWORD], f"{NEW_PASSWORD}\n", "not both"),
        ([], "", "holds no password"),
        ([], "\n", "holds no password"),
    ],
)
def test_password_stdin_mistakes_are_one_line_and_change_nothing(
    cli: Cli, extra: list[str], stdin: str, message: str
) -> None:
    cli.create_user("ada")

    result = cli("users", "set-password", "ada", "--password-stdin", *extra, input=stdin)

    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    log_in(cli, "ada", PASSWORD)


def test_set_password_prompts_hidden_and_confirmed(cli: Cli) -> None:
    ada = cli.create_user("ada")

    result = cli("users", "set-password", str(ada), input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")

    assert result.exit_code == 0, result.stderr
    assert "New password for ada:" in result.stderr
    assert NEW_PASSWORD not in result.output
    log_in(cli, "ada", NEW_PASSWORD)


def test_set_password_refuses_a_weak_password_and_keeps_the_old_one(cli: Cli) -> None:
    cli.create_user("ada")

    result = cli("users", "set-password", "ada", "--password", "password")

    assert result.exit_code == 1
    assert one_error_line(result).startswith("error: password: is too common")
    log_in(cli, "ada", PASSWORD)


def test_set_password_gives_up_on_a_confirmation_that_never_matches(cli: Cli) -> None:
    cli.create_user("ada")

    result = cli("users", "set-password", "ada", input=f"{NEW_PASSWORD}\nsomething else\n")

    assert result.exit_code == 1
    assert "do not match" in result.stderr
    assert "Traceback" not in result.output
    log_in(cli, "ada", PASSWORD)


@pytest.mark.parametrize(
    "command",
    [
        ["users", "deactivate"],
        ["users", "activate"],
        ["users", "set-password"],
    ],
)
@pytest.mark.parametrize("ref", ["nobody", "nobody@example.com", "999"])
def test_an_unknown_user_is_one_line_and_exit_1(cli: Cli, command: list[str], ref: str) -> None:
    cli.create_user("ada")

    # set-password looks the user up before asking for a password: no prompt here.
    result = cli(*command, ref)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert one_error_line(result) == f"error: No user with id, email or username {ref!r}."


def test_a_missing_user_argument_is_bad_usage(cli: Cli) -> None:
    result = cli("users", "deactivate")

    assert result.exit_code == 2
    assert "USER" in result.stderr


# --- tokens purge ------------------------------------------------------------------


def seed_tokens(cli: Cli) -> dict[str, Any]:
    """Tokens and sessions of every kind the purge tells apart."""
    ada = cli.create_user("ada")
    now = datetime.now(UTC)

    async def seed(_container: ContainerServices) -> dict[str, Any]:
        url = cli.database_url
        dead, dead_tokens = await seed_session(
            url,
            ada,
            expires_at=now - DAY,
            tokens=[
                {"expires_at": now - 2 * DAY, "rotated_at": now - 3 * DAY},
                {"expires_at": now - DAY},
            ],
        )
        empty, _ = await seed_session(url, ada, expires_at=now - 3 * DAY, tokens=[])
        live, live_tokens = await seed_session(
            url,
            ada,
            expires_at=now + DAY,
            tokens=[
                {"expires_at": now - DAY, "rotated_at": now - 2 * DAY},  # expired ancestor
                {"expires_at": now + DAY, "rotated_at": now - DAY},  # rotated, unexpired
                {"expires_at": now + DAY},  # current
            ],
        )
        revoked, revoked_tokens = await seed_session(
            url,
            ada,
            expires_at=now + DAY,
            tokens=[{"expires_at": now + DAY, "revoked_at": now - DAY}],
        )
        return {
            "sessions_kept": {live, revoked},
            "sessions_gone": {dead, empty},
            "tokens_kept": set(live_tokens[1:]) | set(revoked_tokens),
            "tokens_gone": set(dead_tokens) | {live_tokens[0]},
        }

    return cli.run(seed)


def stored(cli: Cli) -> tuple[set[str], set[str]]:
    async def work(_: ContainerServices) -> tuple[set[str], set[str]]:
        return await existing_ids(cli.database_url)

    return cli.run(work)


def test_purge_deletes_expired_tokens_and_empty_expired_sessions_only(cli: Cli) -> None:
    seeded = seed_tokens(cli)

    result = cli("tokens", "purge")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Deleted 3 expired refresh tokens and 2 sessions.\n"
    assert result.stderr == ""
    session_ids, token_ids = stored(cli)
    assert session_ids == seeded["sessions_kept"]
    # Revoked and rotated tokens stay until they expire: reuse is still detected.
    assert token_ids == seeded["tokens_kept"]

    again = cli("tokens", "purge")

    assert again.stdout == "Deleted 0 expired refresh tokens and 0 sessions.\n"


def test_purge_dry_run_counts_and_deletes_nothing(cli: Cli) -> None:
    seed_tokens(cli)
    before = stored(cli)

    result = cli("tokens", "purge", "--dry-run")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "Would delete 3 expired refresh tokens and 2 sessions (dry run: nothing was deleted).\n"
    )
    assert stored(cli) == before


def test_purge_keeps_live_sessions_working(cli: Cli) -> None:
    cli.create_user("ada")
    pair = log_in(cli, "ada")

    assert cli("tokens", "purge").stdout == "Deleted 0 expired refresh tokens and 0 sessions.\n"
    refresh(cli, pair.refresh_token)


def test_purge_shows_progress_on_a_terminal_only(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_tokens(cli)
    monkeypatch.setattr(tokens_commands, "on_terminal", lambda: True)

    result = cli("tokens", "purge")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Deleted 3 expired refresh tokens and 2 sessions.\n"
    assert "Purging" in result.stderr


def test_purge_rests_as_the_setting_says_unless_the_option_says_otherwise(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[float, float | None]] = []
    purge = PurgeTokens.__call__

    async def spy(self: PurgeTokens, **kwargs: Any) -> PurgeResult:
        seen.append((self.pause_factor, kwargs.get("pause_factor")))
        return await purge(self, **kwargs)

    monkeypatch.setattr(PurgeTokens, "__call__", spy)

    assert cli("tokens", "purge", TOKEN_PURGE_PAUSE_FACTOR="7").exit_code == 0
    assert (
        cli("tokens", "purge", "--pause-factor", "0", TOKEN_PURGE_PAUSE_FACTOR="7").exit_code == 0
    )
    assert cli("tokens", "purge", "--pause-factor", "-1").exit_code == 2

    assert seen == [(7.0, None), (7.0, 0.0)]


# --- failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATABASE_URL", "mysql://x", "error: invalid configuration: DATABASE_URL: must start"),
        ("LOG_LEVEL", "LOUD", "error: invalid configuration: LOG_LEVEL:"),
        ("ALLOWED_ORIGINS", "not json", "error: invalid configuration: ALLOWED_ORIGINS:"),
    ],
)
@pytest.mark.parametrize(
    "command", [["users", "list"], ["tokens", "purge"], ["db", "current"], ["serve"]]
)
def test_invalid_settings_are_one_line_naming_the_variable(
    cli: Cli, command: list[str], variable: str, value: str, message: str
) -> None:
    result = cli(*command, **{variable: value})

    assert result.exit_code == 1
    assert one_error_line(result).startswith(message)


def test_a_production_setting_error_is_one_line(cli: Cli) -> None:
    result = cli("users", "list", ENVIRONMENT="production", SECRET_KEY="short")

    assert result.exit_code == 1
    assert one_error_line(result).startswith("error: invalid configuration: SECRET_KEY")


@pytest.mark.parametrize("command", [["users", "list"], ["db", "current"], ["db", "upgrade"]])
def test_an_unreachable_database_is_one_line_without_the_password(
    cli: Cli, command: list[str]
) -> None:
    url = "postgresql+asyncpg://operator:hunter2secret@127.0.0.1:1/app"

    result = cli(*command, DATABASE_URL=url)

    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith("error: the database at postgresql+asyncpg://operator:***@127.0.0.1:1")
    assert "unavailable" in line
    assert "hunter2secret" not in result.output


def test_an_unmigrated_database_says_to_migrate(cli: Cli, tmp_path: Path) -> None:
    result = cli("users", "list", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")

    assert result.exit_code == 1
    assert one_error_line(result).endswith("run `app db upgrade` first")


def test_an_unexpected_error_is_one_line(cli: Cli) -> None:
    def broken(services: ContainerServices) -> None:
        services.provider(ListUsers).override(
            providers.Object(_raise(RuntimeError("disk on fire")))
        )

    result = _invoke_with(cli, broken, "users", "list")

    assert result.exit_code == 1
    assert one_error_line(result) == "error: unexpected RuntimeError: disk on fire"


def test_ctrl_c_exits_130_without_a_traceback(cli: Cli) -> None:
    def interrupted(services: ContainerServices) -> None:
        services.provider(ListUsers).override(providers.Object(_raise(KeyboardInterrupt())))

    result = _invoke_with(cli, interrupted, "users", "list")

    assert result.exit_code == 130
    assert "Traceback" not in result.output


def test_a_failure_prints_no_log_line_at_the_info_log_level(cli: Cli) -> None:
    cli.create_user("ada")

    result = cli(
        "users", "create", "--email", "ada@example.com", "--username", "x1",
        "--password", PASSWORD, LOG_LEVEL="INFO",
    )  # fmt: skip

    assert result.exit_code == 1
    one_error_line(result)


def _raise(exc: BaseException) -> Any:
    def use_case(*_args: Any, **_kwargs: Any) -> Any:
        raise exc

    return use_case


def _invoke_with(cli: Cli, configure: Callable[[ContainerServices], None], *args: str) -> Result:
    def make(settings: Settings) -> ContainerServices:
        services = fast_services(settings)
        configure(services)
        return services

    return cli.runner.invoke(app, list(args), env=cli.env, obj=cli_runtime(make))
