"""Deleting many rows in bounded batches, each in a short transaction of its own: a large
table is never locked for long, and a stop loses at most the batch in flight."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from domain.ports import UnitOfWork, UowFactory

DeleteBatch = Callable[[UnitOfWork], Awaitable[int]]


@dataclass(frozen=True)
class Drained:
    rows: int
    batches: int


async def drain(
    uow: UowFactory,
    delete_batch: DeleteBatch,
    batch_size: int,
    *,
    on_batch: Callable[[int], None] | None = None,
    rest: Callable[[float], Awaitable[None]] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> Drained:
    """Run ``delete_batch`` (up to ``batch_size`` rows), one committed transaction
    each, until a batch comes back short. ``on_batch`` hears of every batch that deleted
    something; ``rest`` is awaited after each full batch with the seconds it took (a
    purge leaves the database to the requests for a while)."""
    rows = batches = 0
    while True:
        started = monotonic()
        async with uow() as unit:
            deleted = await delete_batch(unit)
            await unit.commit()
        took = monotonic() - started
        if deleted:
            rows += deleted
            batches += 1
            if on_batch is not None:
                on_batch(deleted)
        if deleted < batch_size:
            return Drained(rows, batches)
        if rest is not None:
            await rest(took)
