"""Running the outbox relay from a process: one pass logged and measured, and the loop
that ``app serve`` runs when ``OUTBOX_RELAY_IN_API`` is on (the job runner schedules
the same pass with APScheduler)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from application.outbox import Delivery, OutboxState, Outcome, RelayOutbox, RelayResult
from domain.errors import ServiceUnavailable
from entrypoints.logging import get_logger
from entrypoints.metrics import MAIL_DELIVERIES, OUTBOX_DEAD, OUTBOX_OLDEST_AGE, OUTBOX_PENDING
from entrypoints.services import Services

log = get_logger("entrypoints.outbox")


async def relay_once(services: Services) -> RelayResult:
    """Deliver every message that is due (batch after batch), log what became of each,
    and update the outbox metrics. Raises what the relay raises (the database away)."""
    relay = services.get(RelayOutbox)
    deliveries = []
    while True:
        result = await relay()
        for delivery in result.deliveries:
            _log(delivery)
            MAIL_DELIVERIES.labels(delivery.template, _outcome_label(delivery)).inc()
        deliveries.extend(result.deliveries)
        if not result.more:
            break
    stats = await services.get(OutboxState)()
    OUTBOX_PENDING.set(stats.pending)
    OUTBOX_DEAD.set(stats.dead)
    oldest = stats.oldest_pending_at
    OUTBOX_OLDEST_AGE.set((datetime.now(UTC) - oldest).total_seconds() if oldest else 0)
    return RelayResult(deliveries)


# What a message asked for by an address can become without a mail server failing:
# counted under one label, so that /metrics never tells whether the address has an
# account (the log line, for the operator, still says which).
_SETTLED_QUIETLY = frozenset({Outcome.SENT, Outcome.DROPPED, Outcome.CAPPED})


def _outcome_label(delivery: Delivery) -> str:
    if delivery.by_address and delivery.outcome in _SETTLED_QUIETLY:
        return "handled"
    return delivery.outcome.value


def _log(delivery: Delivery) -> None:
    fields = dict(vars(delivery))
    outcome = fields.pop("outcome")
    event = f"mail {outcome.value}"
    if outcome is Outcome.DEAD:
        log.error(event, **fields)
    elif outcome in (Outcome.RETRY, Outcome.LOST):
        log.warning(event, **fields)
    else:
        log.info(event, **fields)


class RelayLoop:
    """The relay inside the API process: a pass every ``interval`` seconds until
    ``stop()``. A failing pass is logged and the next one tries again."""

    def __init__(self, services: Services, interval: float) -> None:
        self._services = services
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await relay_once(self._services)
            except ServiceUnavailable:
                log.warning("mail relay: the database is unavailable; retrying")
            except Exception:
                log.exception("mail relay failed; retrying")
            await asyncio.sleep(self._interval)
