"""The mail cases: the relay's throughput to a local SMTP sink, and what queueing the
verification mail adds to a registration. Both run in this process, on the bench's
PostgreSQL database, through the container (as ``app jobs run`` and the API do)."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from aiosmtpd.controller import Controller
from dependency_injector import providers

from application.outbox import RelayOutbox
from application.users import NewUser, RegisterUser
from domain.outbox import OutboxMessage, OutboxRepository, Template
from domain.ports import PasswordHasher
from entrypoints.container import ContainerServices, build_services
from entrypoints.settings import Settings

RELAY_MESSAGES = 2_000
REGISTRATIONS = 300
SEED_BATCH = 500


class _CountingHandler:
    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, _server: Any, _session: Any, _envelope: Any) -> str:  # noqa: N802
        self.received += 1
        return "250 OK"


@contextmanager
def smtp_sink() -> Iterator[tuple[int, _CountingHandler]]:
    """A local SMTP server that accepts and counts every message."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    handler = _CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


class _NoHash(PasswordHasher):
    """The registration's own cost, without argon2 (which dwarfs everything else)."""

    async def hash(self, password: str) -> str:
        return f"plain${password}"

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return password_hash == f"plain${password}"

    def needs_rehash(self, password_hash: str) -> bool:
        return False


def _services(env: dict[str, str], **settings: Any) -> ContainerServices:
    return build_services(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=env["DATABASE_URL"],
            environment="production",
            secret_key=env["SECRET_KEY"],
            **settings,
        )
    )


def relay_throughput(env: dict[str, str], count: int = RELAY_MESSAGES) -> dict[str, Any]:
    return asyncio.run(_relay_throughput(env, count))


async def _relay_throughput(env: dict[str, str], count: int) -> dict[str, Any]:
    with smtp_sink() as (port, sink):
        services = _services(
            env, mail_backend="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_security="none"
        )
        try:
            now = datetime.now(UTC)
            for start in range(0, count, SEED_BATCH):
                async with services.container.adapters.uow() as uow:
                    outbox = uow.repository(OutboxRepository)
                    for n in range(start, min(start + SEED_BATCH, count)):
                        await outbox.add(
                            OutboxMessage.queue(
                                Template.PASSWORD_CHANGED,
                                f"bench{n}@example.com",
                                now,
                                context={"username": f"bench{n}"},
                            )
                        )
                    await uow.commit()
            relay = services.get(RelayOutbox)
            started = time.perf_counter()
            sent = 0
            while True:
                result = await relay()
                sent += len(result.deliveries)
                if not result.more:
                    break
            seconds = time.perf_counter() - started
        finally:
            await services.close()
        return {
            "messages": sent,
            "received": sink.received,
            "seconds": seconds,
            "messages_per_s": sent / seconds if seconds else None,
        }


def registration_cost(env: dict[str, str], count: int = REGISTRATIONS) -> dict[str, Any]:
    return asyncio.run(_registration_cost(env, count))


async def _registration_cost(env: dict[str, str], count: int) -> dict[str, Any]:
    services = _services(env)
    services.container.adapters.hasher.override(providers.Object(_NoHash()))
    try:
        register = services.get(RegisterUser)

        async def timed(prefix: str) -> list[float]:
            times = []
            for n in range(count):
                new = NewUser(
                    email=f"{prefix}{n}@example.com",
                    username=f"{prefix}{n}",
                    password="a long bench passphrase",
                )
                started = time.perf_counter()
                await register(new)
                times.append(time.perf_counter() - started)
            return times

        await timed("warmup")
        with mock.patch("application.users.queue_verification", _queue_nothing):
            without = await timed("plain")
        queued = await timed("mailed")
    finally:
        await services.close()
    with_ms, without_ms = statistics.median(queued) * 1000, statistics.median(without) * 1000
    return {
        "registrations": count,
        "median_ms_with_mail": with_ms,
        "median_ms_without_mail": without_ms,
        "added_ms": with_ms - without_ms,
        "note": "argon2 left out (it costs ~50 ms per registration and would hide the rest)",
    }


async def _queue_nothing(*_args: Any) -> None:
    return None
