"""``app users grant-superuser / revoke-superuser / send-password-reset`` and
``app audit list``, through Typer's CliRunner on SQLite and PostgreSQL (OPERATIONS.md:
the CLI). What the operator changes is recorded as done by the operator."""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from typing import Any

import pyotp
import pytest
from typer.testing import Result

from application.admin import DeleteUser, GetUser
from application.auth import Authenticate, LogIn
from application.mfa import ConfirmTotp, GetMfaStatus, StartTotp
from application.outbox import ListOutbox
from domain.errors import InvalidToken
from domain.mfa import MfaStatus
from domain.model import Principal, TokenPair
from domain.outbox import OutboxMessage, Template
from entrypoints.container import ContainerServices
from tests.e2e.cli_fixtures import PASSWORD, Cli, one_error_line
from tests.e2e.conftest import USER_FIELDS

AUDIT_FIELDS = {
    "org_id",
    "id",
    "occurred_at",
    "action",
    "actor_type",
    "actor_id",
    "target_user_id",
    "request_id",
    "ip",
    "details",
}
AUDIT_COLUMNS = ["ID", "WHEN", "(UTC)", "ACTION", "ACTOR", "TARGET", "DETAILS"]


def log_in(cli: Cli, login: str) -> TokenPair:
    async def work(container: ContainerServices) -> TokenPair:
        return (await container.get(LogIn)(login, PASSWORD)).tokens

    return cli.run(work)


def token_works(cli: Cli, access_token: str) -> bool:
    async def work(container: ContainerServices) -> bool:
        try:
            await container.get(Authenticate)(access_token)
        except InvalidToken:
            return False
        return True

    return cli.run(work)


def outbox(cli: Cli) -> list[OutboxMessage]:
    async def work(container: ContainerServices) -> list[OutboxMessage]:
        messages: list[OutboxMessage] = await container.get(ListOutbox)(limit=500)
        return messages

    return cli.run(work)


def users(cli: Cli) -> dict[str, dict[str, Any]]:
    """Every user as ``users list --json`` shows them, by username."""
    result = cli("users", "list", "--json", "--size", "100")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(set(row) == USER_FIELDS for row in rows)
    return {row["username"]: row for row in rows}


def events(cli: Cli, *args: str) -> list[dict[str, Any]]:
    """``audit list --json`` (exit 0 asserted), one dict a line."""
    result = cli("audit", "list", "--json", "--size", "100", *args)
    assert result.exit_code == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(set(event) == AUDIT_FIELDS for event in found), found
    return found


def refused(result: Result) -> str:
    """A failed command: exit 1, nothing on stdout, one line on stderr."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    return one_error_line(result)


# --- grant-superuser / revoke-superuser --------------------------------------------------


@pytest.mark.parametrize("ref", ["id", "ada@example.com", "ADA"])
def test_grant_superuser_by_id_email_or_username(cli: Cli, ref: str) -> None:
    ada = cli.create_user("ada")
    pair = log_in(cli, "ada")

    result = cli("users", "grant-superuser", str(ada) if ref == "id" else ref)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"User ada (id {ada}) is a superuser.\n"
    assert users(cli)["ada"]["is_superuser"] is True
    assert token_works(cli, pair.access_token)  # gaining access ends nothing


@pytest.mark.parametrize("ref", ["id", "ada@example.com", "ADA"])
def test_revoke_superuser_by_id_email_or_username_ends_their_sessions(cli: Cli, ref: str) -> None:
    cli.create_user("root", "--superuser")
    ada = cli.create_user("ada", "--superuser")
    pair = log_in(cli, "ada")

    result = cli("users", "revoke-superuser", str(ada) if ref == "id" else ref)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"User ada (id {ada}) is no longer a superuser; all their sessions are ended.\n"
    )
    listed = users(cli)
    assert listed["ada"]["is_superuser"] is False
    assert listed["root"]["is_superuser"] is True
    assert not token_works(cli, pair.access_token)


def test_granting_or_revoking_what_is_already_so_changes_and_records_nothing(cli: Cli) -> None:
    cli.create_user("root", "--superuser")
    cli.create_user("ada")
    before = events(cli)

    assert cli("users", "grant-superuser", "root").exit_code == 0
    assert cli("users", "revoke-superuser", "ada").exit_code == 0

    assert events(cli) == before
    listed = users(cli)
    assert (listed["root"]["is_superuser"], listed["ada"]["is_superuser"]) == (True, False)


@pytest.mark.parametrize("other", ["none", "inactive", "demoted"])
def test_revoking_the_last_active_superuser_is_one_line_and_exit_1(cli: Cli, other: str) -> None:
    cli.create_user("root", "--superuser")
    if other != "none":
        cli.create_user("deputy", "--superuser")
        change = "deactivate" if other == "inactive" else "revoke-superuser"
        assert cli("users", change, "deputy").exit_code == 0
    pair = log_in(cli, "root")
    before = events(cli)

    line = refused(cli("users", "revoke-superuser", "root"))

    assert "last active superuser" in line
    assert users(cli)["root"]["is_superuser"] is True
    assert token_works(cli, pair.access_token)
    assert events(cli) == before


@pytest.mark.parametrize("other", ["none", "inactive", "demoted"])
def test_deactivating_the_last_active_superuser_is_one_line_and_exit_1(
    cli: Cli, other: str
) -> None:
    cli.create_user("root", "--superuser")
    if other != "none":
        cli.create_user("deputy", "--superuser")
        change = "deactivate" if other == "inactive" else "revoke-superuser"
        assert cli("users", change, "deputy").exit_code == 0
    pair = log_in(cli, "root")
    before = events(cli)

    line = refused(cli("users", "deactivate", "root"))

    assert "last active superuser" in line
    assert users(cli)["root"]["is_active"] is True
    assert token_works(cli, pair.access_token)
    assert events(cli) == before


def test_the_last_superuser_may_go_once_another_is_made(cli: Cli) -> None:
    cli.create_user("root", "--superuser")
    cli.create_user("ada")
    assert cli("users", "grant-superuser", "ada").exit_code == 0

    assert cli("users", "revoke-superuser", "root").exit_code == 0
    line = refused(cli("users", "deactivate", "ada"))

    assert "last active superuser" in line
    listed = users(cli)
    assert (listed["root"]["is_superuser"], listed["ada"]["is_superuser"]) == (False, True)


# --- send-password-reset ---------------------------------------------------------------


@pytest.mark.parametrize("ref", ["id", "ada@example.com", "ada"])
def test_send_password_reset_queues_a_reset_mail_for_the_user(cli: Cli, ref: str) -> None:
    ada = cli.create_user("ada")
    before = {m.id for m in outbox(cli)}

    result = cli("users", "send-password-reset", str(ada) if ref == "id" else ref)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"A password reset link for user ada (id {ada}) is queued.\n"
    queued = [m for m in outbox(cli) if m.id not in before]
    assert [(m.template, m.recipient, m.user_id) for m in queued] == [
        (Template.PASSWORD_RESET, "ada@example.com", ada)
    ]
    log_in(cli, "ada")  # the password is unchanged until the link is followed


@pytest.mark.parametrize(
    "command",
    [
        ["users", "grant-superuser"],
        ["users", "revoke-superuser"],
        ["users", "send-password-reset"],
        ["users", "reset-mfa"],
    ],
)
@pytest.mark.parametrize("ref", ["nobody", "nobody@example.com", "999"])
def test_an_unknown_user_is_one_line_exit_1_and_queues_nothing(
    cli: Cli, command: list[str], ref: str
) -> None:
    cli.create_user("root", "--superuser")
    before_events = events(cli)
    before_outbox = len(outbox(cli))

    line = refused(cli(*command, ref))

    assert line == f"error: No user with id, email or username {ref!r}."
    assert events(cli) == before_events
    assert len(outbox(cli)) == before_outbox


# --- reset-mfa -----------------------------------------------------------------------------


def turn_on_totp(cli: Cli, login: str) -> None:
    async def work(container: ContainerServices) -> None:
        tokens = (await container.get(LogIn)(login, PASSWORD)).tokens
        principal = await container.get(Authenticate)(tokens.access_token)
        setup = await container.get(StartTotp)(principal)
        await container.get(ConfirmTotp)(principal, pyotp.TOTP(setup.secret).now())

    cli.run(work)


def mfa_status(cli: Cli, login: str) -> MfaStatus:
    async def work(container: ContainerServices) -> MfaStatus:
        found = await container.get(GetUser)(login)
        principal = Principal(user=found, session_id="none")
        status: MfaStatus = await container.get(GetMfaStatus)(principal)
        return status

    return cli.run(work)


def test_reset_mfa_removes_every_factor_ends_the_sessions_and_mails_a_notice(cli: Cli) -> None:
    ada = cli.create_user("ada")
    pair = log_in(cli, "ada")
    turn_on_totp(cli, "ada")
    assert mfa_status(cli, "ada").totp
    before = {m.id for m in outbox(cli)}

    result = cli("users", "reset-mfa", "ada@example.com")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"Every second factor of user ada (id {ada}) is removed; all their sessions are"
        " ended. They log in with their password alone, and can set up a new factor.\n"
    )
    assert mfa_status(cli, "ada") == MfaStatus()
    assert not token_works(cli, pair.access_token)
    queued = [m for m in outbox(cli) if m.id not in before]
    assert [(m.template, m.context["change"]) for m in queued] == [
        (Template.SECURITY_NOTICE, "reset_by_admin")
    ]
    (event,) = events(cli, "--action", "mfa.reset_by_admin")
    assert (event["actor_type"], event["target_user_id"]) == ("operator", ada)
    log_in(cli, "ada")  # the password alone, again


# --- audit list ----------------------------------------------------------------------------


def test_cli_changes_are_recorded_as_the_operator(cli: Cli) -> None:
    cli.create_user("root", "--superuser")
    ada = cli.create_user("ada")
    assert cli("users", "grant-superuser", "ada").exit_code == 0
    assert cli("users", "deactivate", "ada").exit_code == 0
    assert cli("users", "activate", "ada").exit_code == 0
    assert cli("users", "send-password-reset", "ada").exit_code == 0

    found = events(cli, "--user", "ada")

    assert [e["action"] for e in found] == [
        "user.password_reset_queued",
        "user.activated",
        "user.deactivated",
        "user.updated",
        "user.superuser_granted",
        "user.registered",
    ]
    for event in found:
        assert event["actor_type"] == "operator", event
        assert event["actor_id"] is None
        assert event["target_user_id"] == ada
        assert (event["request_id"], event["ip"]) == (None, None)
        assert event["details"]["os_user"] == getpass.getuser()
        assert datetime.fromisoformat(event["occurred_at"]).utcoffset() is not None
    assert found[3]["details"] == {"fields": ["is_superuser"], "os_user": getpass.getuser()}
    ids = [e["id"] for e in found]
    assert ids == sorted(ids, reverse=True)


def test_the_os_user_recorded_is_the_one_running_the_command(cli: Cli) -> None:
    cli.create_user("ada")

    result = cli("users", "deactivate", "ada", LOGNAME="night-ops", USER="night-ops")

    assert result.exit_code == 0, result.stderr
    [event] = events(cli, "--action", "user.deactivated")
    assert event["details"] == {"os_user": "night-ops"}


def test_audit_list_shows_a_table_newest_first(cli: Cli) -> None:
    ada = cli.create_user("ada")
    cli.create_user("bob")
    assert cli("users", "grant-superuser", "ada").exit_code == 0
    newest = events(cli)

    result = cli("audit", "list")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == AUDIT_COLUMNS
    rows = [line.split() for line in lines[1:-1]]
    assert [row[0] for row in rows] == [str(e["id"]) for e in newest]
    assert [row[3] for row in rows] == [
        "user.updated",
        "user.superuser_granted",
        "user.registered",
        "user.registered",
    ]
    operator = getpass.getuser()
    assert all(row[4:6] == ["operator", operator] for row in rows), rows
    assert rows[0][6] == str(ada)
    assert " ".join(rows[0][7:]) == '{"fields": ["is_superuser"]}'
    assert len(rows[1]) == 7  # no details but the operator's name, which is shown as actor
    datetime.strptime(" ".join(rows[0][1:3]), "%Y-%m-%d %H:%M:%S")
    assert lines[-1] == "Page 1 of 1, 4 events in all."
    assert PASSWORD not in result.output
    assert "argon2" not in result.output


def test_audit_list_of_no_events(cli: Cli) -> None:
    result = cli("audit", "list")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Page 1 of 1, 0 events in all.\n"
    assert cli("audit", "list", "--json").stdout == ""


@pytest.mark.parametrize("ref", ["id", "ada@example.com", "ADA"])
def test_audit_list_by_user(cli: Cli, ref: str) -> None:
    ada = cli.create_user("ada")
    bob = cli.create_user("bob")
    assert cli("users", "deactivate", "bob").exit_code == 0
    assert cli("users", "deactivate", "ada").exit_code == 0

    found = events(cli, "--user", str(ada) if ref == "id" else ref)

    assert [(e["action"], e["target_user_id"]) for e in found] == [
        ("user.deactivated", ada),
        ("user.registered", ada),
    ]
    assert bob not in {e["target_user_id"] for e in found}


def test_audit_list_by_action_and_user(cli: Cli) -> None:
    ada = cli.create_user("ada")
    bob = cli.create_user("bob")
    for command in ("deactivate", "activate", "deactivate"):
        assert cli("users", command, "ada").exit_code == 0
    assert cli("users", "deactivate", "bob").exit_code == 0

    deactivations = events(cli, "--action", "user.deactivated")
    adas = events(cli, "--action", "user.deactivated", "--user", "ada")

    assert [e["target_user_id"] for e in deactivations] == [bob, ada, ada]
    assert [e["target_user_id"] for e in adas] == [ada, ada]
    assert events(cli, "--action", "user.deleted") == []


def test_audit_list_pages(cli: Cli) -> None:
    for name in ("ada", "bob", "cyd", "dan", "eve"):
        cli.create_user(name)
    everything = [e["id"] for e in events(cli)]
    assert len(everything) == 5

    second = cli("audit", "list", "--json", "--page", "2", "--size", "2")
    table = cli("audit", "list", "--page", "3", "--size", "2")
    past = cli("audit", "list", "--page", "9", "--size", "2")

    assert [json.loads(line)["id"] for line in second.stdout.splitlines()] == everything[2:4]
    assert table.stdout.splitlines()[-1] == "Page 3 of 3, 5 events in all."
    assert [line.split()[0] for line in table.stdout.splitlines()[1:-1]] == [str(everything[4])]
    assert past.exit_code == 0
    assert past.stdout == "Page 9 of 3, 5 events in all.\n"


@pytest.mark.parametrize(
    "args", [["--size", "101"], ["--size", "0"], ["--page", "0"], ["--page", "x"]]
)
def test_audit_list_with_an_out_of_range_page_is_bad_usage(cli: Cli, args: list[str]) -> None:
    result = cli("audit", "list", *args)

    assert result.exit_code == 2
    assert result.stdout == ""


def test_audit_list_of_an_unknown_user_is_one_line_and_exit_1(cli: Cli) -> None:
    cli.create_user("ada")

    line = refused(cli("audit", "list", "--user", "nobody"))

    assert line == "error: No user with id, email or username 'nobody'."


def test_audit_list_by_the_id_of_a_deleted_user_shows_their_events(cli: Cli) -> None:
    cli.create_user("root", "--superuser")
    ada = cli.create_user("ada")
    adas_deletion = _delete(cli, ada)
    assert adas_deletion

    found = events(cli, "--user", str(ada))

    assert [e["action"] for e in found] == ["user.deleted", "user.registered"]


def _delete(cli: Cli, user_id: int) -> bool:
    """Delete a user through the admin use case (the CLI has no delete command)."""

    async def work(container: ContainerServices) -> bool:
        await container.get(DeleteUser)(user_id)
        return True

    return cli.run(work)


def test_no_secret_is_ever_in_the_audit_output(cli: Cli) -> None:
    cli.create_user("ada", "--superuser")
    assert (
        cli("users", "set-password", "ada", "--password", "another long passphrase").exit_code == 0
    )
    assert cli("users", "send-password-reset", "ada").exit_code == 0

    table = cli("audit", "list")
    lines = cli("audit", "list", "--json")

    assert "user.password_changed" in table.stdout
    for output in (table.stdout, lines.stdout):
        for secret in (PASSWORD, "another long passphrase", "$argon2", "token", "hash"):
            assert secret not in output.lower(), secret
