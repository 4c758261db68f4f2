"""The mail relay's delivery guarantees, with real SMTP servers (OPERATIONS.md, "Mail"):
a failed delivery is retried with backoff and, after OUTBOX_MAX_ATTEMPTS, is dead
until an operator puts it back; a relay that dies mid-batch loses nothing; two relays
on one PostgreSQL never send a message twice; and the ``app outbox`` / ``app mail``
commands.

A delivery is counted at the sink by its Message-ID, which is the outbox message's id:
"exactly once" means each id arrived once, and every id arrived.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from sqlalchemy import update

from adapters.database import Database
from adapters.mail import SmtpTransport
from adapters.outbox_repository import outbox as outbox_table
from application.outbox import ListOutbox, OutboxState, Outcome, RelayResult, RetryOutbox
from domain.mail import Mail, MailTransport
from domain.outbox import OutboxMessage, OutboxRepository, Status, Template
from domain.ports import UnitOfWork
from entrypoints.cli.mail import COLUMNS
from entrypoints.container import Container, ContainerServices, build_services
from entrypoints.outbox_relay import relay_once
from entrypoints.settings import Settings
from tests.conftest import Postgres
from tests.e2e.cli_fixtures import Cli, clean_env, one_error_line
from tests.e2e.conftest import Api, AppFactory
from tests.fakes import FakeClock
from tests.smtp_server import SmtpSink, dropping_server, free_port, hanging_server

MAIL_FROM = "Backend Template <no-reply@localhost>"
VERIFY = "/api/v1/auth/verify-email"


def message_ids(sink: SmtpSink) -> Counter[str]:
    """How many times each outbox message arrived, by the id in its Message-ID."""
    return Counter(
        str(message["Message-ID"]).removeprefix("<").removesuffix("@localhost>")
        for message in sink.messages
    )


class Switchable(MailTransport):
    """Sends through ``target``, which a test may point elsewhere between relays."""

    def __init__(self, target: MailTransport) -> None:
        self.target = target

    async def send(self, mail: Mail) -> None:
        await self.target.send(mail)


def smtp(sink: SmtpSink) -> SmtpTransport:
    return SmtpTransport(sink.host, sink.port, sender=MAIL_FROM, security="none", timeout=10)


def with_clock_and_transport(
    clock: FakeClock, transport: MailTransport | None = None
) -> Callable[[Container], None]:
    def configure(container: Container) -> None:
        container.adapters.clock.override(providers.Object(clock))
        if transport is not None:
            container.adapters.transport.override(providers.Object(transport))

    return configure


async def stored(api: Api) -> list[OutboxMessage]:
    """Every message of the outbox, newest first."""
    messages: list[OutboxMessage] = await api.services.get(ListOutbox)(None, 10_000)
    return messages


async def only_message(api: Api) -> OutboxMessage:
    (message,) = await stored(api)
    return message


def verification_token(sink: SmtpSink, index: int = -1) -> str:
    part = sink.messages[index].get_body(("plain",))
    assert part is not None
    text = str(part.get_content())
    return text.split("?token=", 1)[1].split(maxsplit=1)[0]


# --- Failures are retried, then dead ------------------------------------------------------


@contextmanager
def failing_server(kind: str) -> Iterator[int]:
    """The port of a server that fails every delivery, each in its own way."""
    if kind == "refusing":
        with SmtpSink(refuse=451) as sink:
            yield sink.port
    elif kind == "refusing at DATA":
        with SmtpSink(refuse=452, refuse_at="data") as sink:
            yield sink.port
    elif kind == "dropping":
        with dropping_server() as port:
            yield port
    elif kind == "hanging":
        with hanging_server() as port:
            yield port
    else:
        yield free_port()  # nobody listens


FAILURES = {
    "refusing": "451",
    "refusing at DATA": "452",
    "dropping": "",
    "hanging": "timed out after 1s",
    "closed port": "",
}


@pytest.mark.parametrize("kind", list(FAILURES))
async def test_a_failed_delivery_stays_pending_with_the_attempt_and_error_and_comes_back_later(
    app_factory: AppFactory, kind: str
) -> None:
    with failing_server(kind) as port:
        async with app_factory(
            mail_backend="smtp",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            smtp_timeout_seconds=1,
        ) as api:
            await api.register("ada")
            result = await relay_once(api.services)
            after = datetime.now(UTC)
            message = await only_message(api)
            again = await relay_once(api.services)

    (delivery,) = result.deliveries
    assert delivery.outcome is Outcome.RETRY
    assert delivery.attempt == 1
    assert delivery.recipient == "a***@example.com"
    assert message.status is Status.PENDING
    assert message.attempts == 1
    assert message.claim is None
    assert message.last_error is not None
    where, _, reason = message.last_error.partition(": ")
    assert where == f"smtp 127.0.0.1:{port}"
    assert reason.strip()
    assert "\n" not in reason
    assert FAILURES[kind] in reason
    assert "ada@example.com" not in message.last_error  # masked
    # Backed off: not due again for a while (at least half of the 30 s first backoff).
    assert message.next_attempt_at > after + timedelta(seconds=10)
    assert again.deliveries == []


async def test_after_max_attempts_a_message_is_dead_and_once_retried_it_arrives_exactly_once(
    app_factory: AppFactory, cli: Cli
) -> None:
    clock = FakeClock()
    with SmtpSink(refuse=451) as refusing, SmtpSink() as accepting:
        transport = Switchable(smtp(refusing))
        async with app_factory(
            configure=with_clock_and_transport(clock, transport),
            mail_backend="smtp",
            smtp_host=accepting.host,
            smtp_port=accepting.port,
            smtp_security="none",
            outbox_max_attempts=2,
        ) as api:
            await api.register("ada")

            first = await relay_once(api.services)
            assert await relay_once(api.services) == RelayResult([])  # not due yet
            retry_at = (await only_message(api)).next_attempt_at
            assert retry_at > clock.now()
            clock.current = retry_at
            second = await relay_once(api.services)
            dead = await only_message(api)
            clock.advance(days=30)
            assert (await relay_once(api.services)).deliveries == []  # dead stays dead

            # The operator puts it back once the server accepts again.
            transport.target = smtp(accepting)
            retried = await asyncio.to_thread(cli, "outbox", "retry", "--dead")
            assert retried.exit_code == 0, retried.stderr
            assert retried.stdout.strip() == "Queued 1 message again."
            third = await relay_once(api.services)
            response = await api.client.post(VERIFY, json={"token": verification_token(accepting)})
            clock.advance(days=30)
            assert (await relay_once(api.services)).deliveries == []
            sent = await only_message(api)

    assert [d.outcome for d in first.deliveries] == [Outcome.RETRY]
    assert [d.outcome for d in second.deliveries] == [Outcome.DEAD]
    assert (dead.status, dead.attempts) == (Status.DEAD, 2)
    assert dead.last_error is not None
    assert "451" in dead.last_error
    assert [(d.outcome, d.attempt) for d in third.deliveries] == [(Outcome.SENT, 1)]
    assert (sent.status, sent.attempts, sent.last_error) == (Status.SENT, 1, None)
    # Nothing lost, nothing twice; the refusing server never took it.
    assert message_ids(accepting) == Counter({sent.id: 1})
    assert refusing.messages == []
    assert response.status_code == 200, response.text


async def test_retry_outbox_puts_only_the_named_dead_message_back(
    app_factory: AppFactory,
) -> None:
    clock = FakeClock()
    with SmtpSink(refuse=550) as refusing:
        async with app_factory(
            configure=with_clock_and_transport(clock),
            mail_backend="smtp",
            smtp_host=refusing.host,
            smtp_port=refusing.port,
            smtp_security="none",
            outbox_max_attempts=1,
        ) as api:
            await api.register("ada")
            await api.register("bob")
            result = await relay_once(api.services)
            ada, bob = sorted(await stored(api), key=lambda m: m.recipient)

            revived = await api.services.get(RetryOutbox)([ada.id])
            after = {m.id: m for m in await stored(api)}

    assert result.count(Outcome.DEAD) == 2
    assert revived == 1
    assert (after[ada.id].status, after[ada.id].attempts) == (Status.PENDING, 0)
    assert after[ada.id].next_attempt_at == clock.now()
    assert after[bob.id].status is Status.DEAD


async def test_a_message_failing_for_the_43rd_time_is_retried_within_the_maximum_backoff(
    app_factory: AppFactory, database_url: str
) -> None:
    with SmtpSink(refuse=451) as refusing:
        async with app_factory(
            mail_backend="smtp",
            smtp_host=refusing.host,
            smtp_port=refusing.port,
            smtp_security="none",
            outbox_max_attempts=100,
        ) as api:
            await api.register("ada")
            database = Database(database_url)
            try:
                async with database.engine.begin() as conn:
                    await conn.execute(update(outbox_table).values(attempts=42))
            finally:
                await database.dispose()

            result = await relay_once(api.services)
            message = await only_message(api)

    assert [(d.outcome, d.attempt) for d in result.deliveries] == [(Outcome.RETRY, 43)]
    assert message.next_attempt_at <= datetime.now(UTC) + timedelta(hours=1)


# --- A relay that dies mid-batch ----------------------------------------------------------


async def test_a_message_claimed_by_a_dead_relay_is_delivered_after_a_restart_once_the_lease_ends(
    app_factory: AppFactory,
) -> None:
    clock = FakeClock()
    with SmtpSink() as sink:
        settings: dict[str, Any] = {
            "configure": with_clock_and_transport(clock),
            "mail_backend": "smtp",
            "smtp_host": sink.host,
            "smtp_port": sink.port,
            "smtp_security": "none",
        }
        async with app_factory(**settings) as api:
            await api.register("ada")
            lease = api.container.adapters.relay_policy().lease
            # A relay claims the message and dies before it sends or settles anything.
            uow: UnitOfWork = api.container.adapters.uow()
            async with uow:
                now = clock.now()
                claimed = await uow.repository(OutboxRepository).claim(
                    now, lease_until=now + lease, claim="a" * 32, limit=50
                )
                await uow.commit()
        assert len(claimed) == 1

        # Restarted: a new process (app, container, pools) on the same database.
        async with app_factory(**settings) as api:
            during_lease = await relay_once(api.services)
            clock.advance(seconds=lease.total_seconds() - 1)
            still_leased = await relay_once(api.services)
            clock.advance(seconds=1)
            after_lease = await relay_once(api.services)
            clock.advance(days=1)
            later = await relay_once(api.services)
            message = await only_message(api)
            response = await api.client.post(VERIFY, json={"token": verification_token(sink)})

    assert during_lease.deliveries == still_leased.deliveries == later.deliveries == []
    assert [(d.outcome, d.attempt) for d in after_lease.deliveries] == [(Outcome.SENT, 2)]
    assert (message.status, message.attempts, message.claim) == (Status.SENT, 2, None)
    assert message_ids(sink) == Counter({claimed[0].id: 1})
    assert response.status_code == 200, response.text


# --- Two relays on one PostgreSQL ---------------------------------------------------------


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str], None]:
    """Leaves settings to what a test passes: no setting variable, no `.env`."""
    monkeypatch.chdir(tmp_path)

    def clear(database_url: str) -> None:
        for name, value in clean_env(database_url).items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)

    return clear


@asynccontextmanager
async def relay_services(settings: Settings) -> AsyncIterator[ContainerServices]:
    services = build_services(settings)
    try:
        yield services
    finally:
        await services.close()


async def queue_many(services: ContainerServices, count: int, per_transaction: int) -> list[str]:
    now = datetime.now(UTC)
    queued = []
    for start in range(0, count, per_transaction):
        uow: UnitOfWork = services.container.adapters.uow()
        async with uow:
            outbox = uow.repository(OutboxRepository)
            for n in range(start, min(start + per_transaction, count)):
                message = OutboxMessage.queue(
                    Template.PASSWORD_CHANGED,
                    f"user{n}@example.com",
                    now,
                    context={"username": f"user{n}"},
                )
                await outbox.add(message)
                queued.append(message.id)
            await uow.commit()
    return queued


@pytest.mark.postgres
@pytest.mark.slow
async def test_two_relays_on_one_postgresql_deliver_a_thousand_messages_exactly_once(
    postgres: Postgres, isolated_env: Callable[[str], None]
) -> None:
    url = await postgres.new_database()
    isolated_env(url)
    with SmtpSink() as sink:
        settings = Settings(
            database_url=url,
            environment="test",
            secret_key="k" * 64,
            mail_backend="smtp",
            smtp_host=sink.host,
            smtp_port=sink.port,
            smtp_security="none",
            log_level="WARNING",
        )
        async with relay_services(settings) as one, relay_services(settings) as two:
            queued = await queue_many(one, 1000, per_transaction=250)
            results = await asyncio.wait_for(
                asyncio.gather(relay_once(one), relay_once(two)), timeout=280
            )
            leftover = await relay_once(one)
            stats = await one.get(OutboxState)()
            unsent = [
                m for m in await one.get(ListOutbox)(None, 2000) if m.status is not Status.SENT
            ]

    by_relay = [{d.message_id for d in result.deliveries} for result in results]
    assert all(result.count(Outcome.SENT) == len(result.deliveries) for result in results)
    # Both took part, and never in the same message.
    assert all(by_relay), [len(ids) for ids in by_relay]
    assert by_relay[0].isdisjoint(by_relay[1])
    assert by_relay[0] | by_relay[1] == set(queued)
    assert leftover.deliveries == []
    assert unsent == []
    assert (stats.pending, stats.dead) == (0, 0)
    delivered = message_ids(sink)
    assert set(delivered) == set(queued)
    assert set(delivered.values()) == {1}


# --- app outbox / app mail ----------------------------------------------------------------


def kill_first_message(cli: Cli) -> str:
    """Make the oldest pending message dead (as the relay would after its last attempt)."""

    async def work(services: ContainerServices) -> str:
        uow: UnitOfWork = services.container.adapters.uow()
        async with uow:
            outbox = uow.repository(OutboxRepository)
            now = datetime.now(UTC) + timedelta(seconds=1)
            (claimed,) = await outbox.claim(now, lease_until=now, claim="c" * 32, limit=1)
            assert await outbox.mark_failed(claimed.id, "c" * 32, "smtp x:25: 550 no such", None)
            await uow.commit()
        return claimed.id

    return cli.run(work)


def test_outbox_list_shows_a_table_of_masked_recipients_without_links(cli: Cli) -> None:
    assert cli("outbox", "list").stdout.strip() == "The outbox is empty."
    cli.create_user("ada")
    cli.create_user("bob")
    dead_id = kill_first_message(cli)

    table = cli("outbox", "list")
    dead = cli("outbox", "list", "--status", "dead")
    sent = cli("outbox", "list", "--status", "sent")

    assert table.exit_code == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == list(COLUMNS)
    assert len(rows) == 2
    assert "a***@example.com" in table.stdout
    assert "b***@example.com" in table.stdout
    assert all("verify_email" in row for row in rows)
    assert dead.exit_code == 0, dead.stderr
    (dead_row,) = dead.stdout.splitlines()[1:]
    assert dead_row.startswith(dead_id)
    assert "550 no such" in dead_row
    assert sent.stdout.strip() == "No sent messages."
    for result in (table, dead):
        assert "ada@example.com" not in result.stdout
        assert "bob@example.com" not in result.stdout
        assert "token" not in result.stdout
        assert "http" not in result.stdout


def test_outbox_list_json_has_one_row_per_line_with_masked_recipients(cli: Cli) -> None:
    cli.create_user("ada")
    cli.create_user("bob")
    dead_id = kill_first_message(cli)

    result = cli("outbox", "list", "--json")
    limited = cli("outbox", "list", "--json", "--limit", "1")
    dead = cli("outbox", "list", "--json", "--status", "dead")

    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert set(row) == set(COLUMNS)
        assert row["to"] in {"a***@example.com", "b***@example.com"}
        assert row["template"] == "verify_email"
    assert '@example.com"' not in result.stdout.replace('***@example.com"', "")
    assert "token" not in result.stdout
    assert "link" not in result.stdout
    assert "http" not in result.stdout
    assert len(limited.stdout.splitlines()) == 1
    (dead_row,) = [json.loads(line) for line in dead.stdout.splitlines()]
    assert dead_row["id"] == dead_id
    assert (dead_row["status"], dead_row["attempts"], dead_row["next_attempt"]) == ("dead", 1, None)
    assert dead_row["error"] == "smtp x:25: 550 no such"


def test_outbox_retry_of_an_unknown_or_live_message_fails_with_one_line(cli: Cli) -> None:
    cli.create_user("ada")
    (pending,) = [json.loads(line) for line in cli("outbox", "list", "--json").stdout.splitlines()]

    for message_id in ("0" * 32, "not-an-id", pending["id"]):
        result = cli("outbox", "retry", message_id)
        assert result.exit_code == 1, result.output
        assert message_id in one_error_line(result)


def test_outbox_retry_needs_ids_or_dead_but_not_both(cli: Cli) -> None:
    cli.create_user("ada")
    dead_id = kill_first_message(cli)

    neither = cli("outbox", "retry")
    both = cli("outbox", "retry", "--dead", dead_id)
    named = cli("outbox", "retry", dead_id)
    again = cli("outbox", "retry", "--dead")

    for result in (neither, both):
        assert result.exit_code == 1, result.output
        one_error_line(result)
    assert named.exit_code == 0, named.stderr
    assert named.stdout.strip() == "Queued 1 message again."
    assert again.exit_code == 0, again.stderr
    assert again.stdout.strip() == "Queued 0 messages again."
    (row,) = [json.loads(line) for line in cli("outbox", "list", "--json").stdout.splitlines()]
    assert (row["status"], row["attempts"], row["error"]) == ("pending", 0, None)


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {
        "MAIL_BACKEND": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "none",
        **extra,
    }


def test_mail_send_test_sends_one_message_through_smtp_at_once(cli: Cli) -> None:
    with SmtpSink() as sink:
        result = cli("mail", "send-test", "--to", "x@example.com", **smtp_env(sink.port))

    assert result.exit_code == 0, result.stderr
    assert "x@example.com" in result.stdout
    (delivery,) = sink.deliveries
    assert delivery.rcpt_tos == ["x@example.com"]
    assert delivery.message.get_body(("plain",)) is not None
    assert delivery.message.get_body(("html",)) is not None
    (message_id,) = message_ids(sink)
    assert message_id in result.stdout
    # Not through the outbox: nothing was queued.
    assert cli("outbox", "list").stdout.strip() == "The outbox is empty."


@pytest.mark.parametrize("kind", ["refusing", "closed port", "hanging"])
def test_mail_send_test_that_fails_exits_1_with_one_clear_line(cli: Cli, kind: str) -> None:
    with failing_server(kind) as port:
        result = cli(
            "mail",
            "send-test",
            "--to",
            "x@example.com",
            **smtp_env(port, SMTP_TIMEOUT_SECONDS="1"),
        )

    assert result.exit_code == 1, result.output
    line = one_error_line(result)
    assert line.startswith(f"error: smtp 127.0.0.1:{port}: ")
    assert line.removeprefix(f"error: smtp 127.0.0.1:{port}: ").strip()
    assert FAILURES[kind] in line
    assert "x@example.com" not in line
    assert "Traceback" not in result.output
