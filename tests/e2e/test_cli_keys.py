"""``app keys list``, ``app keys rotate`` and ``app keys revoke``, the start-up check of
``app serve`` and ``app jobs run``, and the job runner's key lifecycle, under ES256 and
EdDSA, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.signing_keys import EnsureSigningKey
from entrypoints import console
from entrypoints.container import ContainerServices
from entrypoints.scheduler.jobs import JobLock
from entrypoints.scheduler.runner import scheduled_jobs
from entrypoints.settings import load_settings
from tests.e2e.cli_fixtures import SECRET_KEY, Cli, fast_services, one_error_line

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
OTHER_ALGORITHM = {"ES256": "EdDSA", "EdDSA": "ES256"}
UNKNOWN_KID = "error: No signing key has that kid: `app keys list` shows the stored keys."
NEEDS_YES = "error: revoking a key ends every token it signed at once: confirm with --yes"


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


def audited(cli: Cli, action: str) -> list[dict[str, Any]]:
    """The audit events of ``action``, oldest first."""
    result = cli("audit", "list", "--action", action, "--json")
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in reversed(result.stdout.splitlines())]


@pytest.mark.parametrize(
    "command", [["list"], ["list", "--json"], ["rotate"], ["revoke", "some-kid", "--yes"]]
)
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


@pytest.mark.parametrize(
    "command", [["keys"], ["keys", "list"], ["keys", "rotate"], ["keys", "revoke"]]
)
def test_keys_commands_say_what_they_do(cli: Cli, command: list[str]) -> None:
    result = cli(*command, "--help", COLUMNS="100")

    assert result.exit_code == 0, result.output
    assert f"Usage: app {' '.join(command)}" in result.stdout
    description = result.stdout.split("Usage:", 1)[1].splitlines()[2].strip()
    assert len(description) > 15, result.stdout


# --- a rotation with another SECRET_KEY ---------------------------------------------------


def test_a_rotation_with_a_secret_key_that_cannot_open_the_current_key_stores_nothing(
    cli: Cli, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rotate(cli, algorithm)
    [key] = listed(cli, algorithm)

    result = cli("keys", "rotate", ALGORITHM=algorithm, SECRET_KEY=OTHER_SECRET_KEY)

    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"error: SECRET_KEY cannot decrypt the signing key {key['kid']}: it is not the"
        " SECRET_KEY the signing keys were encrypted with"
    )
    assert result.stdout == ""
    assert OTHER_SECRET_KEY not in result.output
    assert listed(cli, algorithm) == [key]
    assert [event["details"]["kid"] for event in audited(cli, "key.rotated")] == [key["kid"]]
    # The next start still runs.
    monkeypatch.setattr(console, "exec_server", lambda *_args: None)
    assert cli("serve", ALGORITHM=algorithm).exit_code == 0


def test_rotations_are_audited_with_the_kid_and_algorithm_only(cli: Cli, algorithm: str) -> None:
    rotate(cli, algorithm)
    rotate(cli, algorithm)
    keys = listed(cli, algorithm)

    events = audited(cli, "key.rotated")

    assert [event["details"]["kid"] for event in events] == [key["kid"] for key in keys]
    for event, key in zip(events, keys, strict=True):
        assert (event["actor_type"], event["target_user_id"]) == ("operator", None)
        assert event["details"]["algorithm"] == algorithm
        assert datetime.fromisoformat(event["details"]["activates_at"]) == datetime.fromisoformat(
            key["activates_at"]
        )
        assert set(event["details"]) == {"kid", "algorithm", "activates_at", "os_user"}


# --- a job runner configured with another algorithm ---------------------------------------


async def run_key_lifecycle(services: ContainerServices) -> None:
    """What ``app jobs run`` does for the keys: the start-up check, then a run of the
    ``signing_keys`` job."""
    await services.get(EnsureSigningKey)()
    settings = services.container.settings()
    jobs = scheduled_jobs(settings, services, services.get(JobLock))
    [job] = [job for job, _ in jobs if job.name == "signing_keys"]
    await job.run()


def test_a_job_runner_of_another_algorithm_leaves_the_keys_of_the_api_alone(
    cli: Cli, algorithm: str
) -> None:
    rotate(cli, algorithm)  # the API's key
    [api_key] = listed(cli, algorithm)
    runner = load_settings(
        database_url=cli.database_url,
        environment="test",
        secret_key=SECRET_KEY,
        algorithm=OTHER_ALGORITHM[algorithm],
    )

    for _ in range(2):
        asyncio.run(_with(fast_services(runner), run_key_lifecycle))

    keys = listed(cli, algorithm)
    assert keys[0] == api_key  # still active, never retired
    assert [(key["algorithm"], key["state"]) for key in keys] == [
        (algorithm, "active"),
        (OTHER_ALGORITHM[algorithm], "active"),  # the runner's own
    ]
    assert audited(cli, "key.retired") == []


def test_the_job_runner_retires_a_superseded_key_of_its_algorithm_and_audits_it(
    cli: Cli, algorithm: str
) -> None:
    rotate(cli, algorithm)
    rotate(cli, algorithm, JWT_KEY_ACTIVATION_DELAY_SECONDS="0")
    [old, new] = listed(cli, algorithm)
    runner = load_settings(
        database_url=cli.database_url,
        environment="test",
        secret_key=SECRET_KEY,
        algorithm=algorithm,
    )

    asyncio.run(_with(fast_services(runner), run_key_lifecycle))

    [retired, active] = listed(cli, algorithm)
    assert (retired["kid"], retired["state"], active["kid"]) == (old["kid"], "retired", new["kid"])
    assert retired["retired_at"] is not None
    [event] = audited(cli, "key.retired")
    assert (event["actor_type"], event["target_user_id"]) == ("system", None)
    assert event["details"] == {
        "kid": old["kid"],
        "algorithm": algorithm,
        "delete_after": event["details"]["delete_after"],
    }
    assert datetime.fromisoformat(event["details"]["delete_after"]) == datetime.fromisoformat(
        retired["delete_after"]
    )


async def _with(services: ContainerServices, work: Any) -> None:
    try:
        await work(services)
    finally:
        await services.close()


# --- revocation ----------------------------------------------------------------------------


def test_revoking_the_active_key_makes_a_new_one_that_signs_at_once(
    cli: Cli, algorithm: str
) -> None:
    rotate(cli, algorithm)
    [old] = listed(cli, algorithm)

    result = cli("keys", "revoke", "--yes", "--", old["kid"], ALGORITHM=algorithm)

    assert result.exit_code == 0, result.stderr
    [new] = listed(cli, algorithm)
    assert new["kid"] != old["kid"]
    assert new["state"] == "active"
    assert new["activates_at"] == new["created_at"]  # no activation delay
    assert result.stdout.splitlines() == [
        f"Revoked {algorithm} key {old['kid']}: it has left the JWKS, and every replica"
        " refuses the tokens it signed within a minute.",
        f"New {algorithm} key {new['kid']} signs from now on, in its place.",
    ]
    [revoked] = audited(cli, "key.revoked")
    assert (revoked["actor_type"], revoked["target_user_id"]) == ("operator", None)
    assert {k: v for k, v in revoked["details"].items() if k != "os_user"} == {
        "kid": old["kid"],
        "algorithm": algorithm,
        "replaced_by": new["kid"],
    }
    rotated = audited(cli, "key.rotated")
    assert [event["details"]["kid"] for event in rotated] == [old["kid"], new["kid"]]


def test_revoking_a_pending_key_removes_it_and_keeps_the_active_one(
    cli: Cli, algorithm: str
) -> None:
    rotate(cli, algorithm)
    rotate(cli, algorithm)
    [active, pending] = listed(cli, algorithm)

    result = cli("keys", "revoke", "--yes", "--", pending["kid"], ALGORITHM=algorithm)

    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert listed(cli, algorithm) == [active]
    [event] = audited(cli, "key.revoked")
    assert (event["details"]["kid"], event["details"]["algorithm"]) == (pending["kid"], algorithm)
    assert "replaced_by" not in event["details"]


def test_a_revocation_without_yes_is_refused_and_changes_nothing(cli: Cli, algorithm: str) -> None:
    rotate(cli, algorithm)
    [key] = listed(cli, algorithm)

    result = cli("keys", "revoke", "--", key["kid"], ALGORITHM=algorithm)

    assert result.exit_code == 1
    assert one_error_line(result) == NEEDS_YES
    assert result.stdout == ""
    assert listed(cli, algorithm) == [key]
    assert audited(cli, "key.revoked") == []


def test_revoking_an_unknown_kid_is_one_line(cli: Cli, algorithm: str) -> None:
    rotate(cli, algorithm)
    [key] = listed(cli, algorithm)

    result = cli("keys", "revoke", "no-such-kid\nforged line", "--yes", ALGORITHM=algorithm)
    # A kid is base64url, so it may start with "-": it is a kid, not an option.
    dashed = cli("keys", "revoke", "-Qno-such-kid", "--yes", ALGORITHM=algorithm)

    assert result.exit_code == dashed.exit_code == 1
    assert one_error_line(result) == one_error_line(dashed) == UNKNOWN_KID
    assert listed(cli, algorithm) == [key]
    assert audited(cli, "key.revoked") == []


def test_revoking_the_active_key_with_another_secret_key_changes_nothing(
    cli: Cli, algorithm: str
) -> None:
    rotate(cli, algorithm)
    [key] = listed(cli, algorithm)

    result = cli(
        "keys",
        "revoke",
        "--yes",
        "--",
        key["kid"],
        ALGORITHM=algorithm,
        SECRET_KEY=OTHER_SECRET_KEY,
    )

    assert result.exit_code == 1
    assert "SECRET_KEY cannot decrypt the signing key" in one_error_line(result)
    assert listed(cli, algorithm) == [key]
