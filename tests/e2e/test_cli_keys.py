"""``app keys list`` and ``app keys rotate``, and the start-up check of ``app serve`` and
``app jobs run`` under ES256 and EdDSA, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from entrypoints import console
from tests.e2e.cli_fixtures import SECRET_KEY, Cli, one_error_line

OTHER_SECRET_KEY = "a-different-secret-key-" + "q" * 48
HMAC_ONLY = (
    "error: Signing keys are only used with ALGORITHM=ES256 or EdDSA; with an HMAC"
    " algorithm tokens are signed with SECRET_KEY."
)
JSON_FIELDS = {
    "kid",
    "algorithm",
    "state",
    "created_at",
    "activates_at",
    "retired_at",
    "delete_after",
}


@pytest.fixture(params=["ES256", "EdDSA"])
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def listed(cli: Cli, algorithm: str) -> list[dict[str, Any]]:
    result = cli("keys", "list", "--json", ALGORITHM=algorithm)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def rotate(cli: Cli, algorithm: str, **env: str) -> str:
    result = cli("keys", "rotate", ALGORITHM=algorithm, **env)
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["rotate"]])
def test_with_an_hmac_algorithm_keys_commands_fail_in_one_line(
    cli: Cli, command: list[str]
) -> None:
    result = cli("keys", *command)

    assert result.exit_code == 1
    assert one_error_line(result) == HMAC_ONLY
    assert result.stdout == ""


def test_without_keys_the_list_is_empty(cli: Cli, algorithm: str) -> None:
    result = cli("keys", "list", ALGORITHM=algorithm)

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "0 keys.\n"
    assert listed(cli, algorithm) == []


def test_the_first_rotation_signs_at_once_and_the_next_waits_for_the_delay(
    cli: Cli, algorithm: str
) -> None:
    first = rotate(cli, algorithm)
    second = rotate(cli, algorithm)

    [one, two] = listed(cli, algorithm)
    assert set(one) == set(two) == JSON_FIELDS
    assert (one["algorithm"], one["state"]) == (algorithm, "active")
    assert (two["algorithm"], two["state"]) == (algorithm, "pending")
    assert first == f"New {algorithm} key {one['kid']} starts signing at {one['activates_at']}.\n"
    assert second == f"New {algorithm} key {two['kid']} starts signing at {two['activates_at']}.\n"
    starts = datetime.fromisoformat(two["activates_at"]) - datetime.fromisoformat(two["created_at"])
    assert starts == timedelta(seconds=600)  # JWT_KEY_ACTIVATION_DELAY_SECONDS' default
    assert one["retired_at"] is None
    assert one["delete_after"] is None


def test_the_activation_delay_comes_from_the_setting(cli: Cli, algorithm: str) -> None:
    rotate(cli, algorithm)
    rotate(cli, algorithm, JWT_KEY_ACTIVATION_DELAY_SECONDS="30")

    [_, pending] = listed(cli, algorithm)
    starts = datetime.fromisoformat(pending["activates_at"]) - datetime.fromisoformat(
        pending["created_at"]
    )
    assert starts == timedelta(seconds=30)


def test_the_table_shows_each_key_with_its_state_and_dates(cli: Cli, algorithm: str) -> None:
    rotate(cli, algorithm)
    rotate(cli, algorithm)
    [active, pending] = listed(cli, algorithm)

    result = cli("keys", "list", ALGORITHM=algorithm)

    assert result.exit_code == 0, result.stderr
    header, *rows, total = result.stdout.splitlines()
    assert header.split() == [
        "KID", "ALGORITHM", "STATE", "CREATED", "ACTIVATES", "RETIRED", "DELETABLE", "AFTER",
    ]  # fmt: skip
    assert total == "2 keys."
    assert rows[0].split()[:3] == [active["kid"], algorithm, "active"]
    assert rows[1].split()[:3] == [pending["kid"], algorithm, "pending"]
    when = datetime.fromisoformat(pending["activates_at"]).astimezone(UTC)
    assert when.strftime("%Y-%m-%d %H:%M:%S") in rows[1]
    assert rows[1].split()[-2:] == ["-", "-"]  # neither retired nor deletable


def test_nothing_private_is_ever_printed(cli: Cli, algorithm: str) -> None:
    rotate(cli, algorithm)
    outputs = [
        cli("keys", "list", *flags, ALGORITHM=algorithm).stdout for flags in ([], ["--json"])
    ]

    for output in outputs:
        assert "sealed" not in output
        assert '"d"' not in output
        assert SECRET_KEY not in output


def test_serve_creates_the_first_key_before_it_starts(
    cli: Cli, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[object] = []
    monkeypatch.setattr(console, "exec_server", lambda *args: started.append(args))

    result = cli("serve", ALGORITHM=algorithm)

    assert result.exit_code == 0, result.output
    assert started
    [key] = listed(cli, algorithm)
    assert key["state"] == "active"


def test_serve_with_a_secret_key_that_cannot_decrypt_the_key_stops_in_one_line(
    cli: Cli, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rotate(cli, algorithm)
    [key] = listed(cli, algorithm)
    monkeypatch.setattr(console, "exec_server", lambda *_a: pytest.fail("must not start"))

    result = cli("serve", ALGORITHM=algorithm, SECRET_KEY=OTHER_SECRET_KEY)

    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"error: SECRET_KEY cannot decrypt the signing key {key['kid']}: it is not the"
        " SECRET_KEY the signing keys were encrypted with"
    )
    assert OTHER_SECRET_KEY not in result.output


def test_jobs_run_with_a_secret_key_that_cannot_decrypt_the_key_stops_in_one_line(
    cli: Cli, algorithm: str
) -> None:
    rotate(cli, algorithm)

    result = cli("jobs", "run", ALGORITHM=algorithm, SECRET_KEY=OTHER_SECRET_KEY)

    assert result.exit_code == 1
    assert "SECRET_KEY cannot decrypt the signing key" in one_error_line(result)


@pytest.mark.parametrize("command", [["keys"], ["keys", "list"], ["keys", "rotate"]])
def test_keys_commands_say_what_they_do(cli: Cli, command: list[str]) -> None:
    result = cli(*command, "--help", COLUMNS="100")

    assert result.exit_code == 0, result.output
    assert f"Usage: app {' '.join(command)}" in result.stdout
    description = result.stdout.split("Usage:", 1)[1].splitlines()[2].strip()
    assert len(description) > 15, result.stdout
