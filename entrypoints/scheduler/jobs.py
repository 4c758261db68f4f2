"""The scheduled jobs. A run is logged with its counts and duration, measured, locked
against the runner's other replicas, and never allowed to end the process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import structlog

from application.retention import ProgressCallback, PurgeResult
from domain.errors import ServiceUnavailable
from entrypoints.logging import get_logger
from entrypoints.metrics import JOB_RUNS, PURGE_DURATION, PURGE_RUNS, PURGED_ROWS

log = get_logger("entrypoints.scheduler")


class JobLock(Protocol):
    def acquire(self, name: str) -> AbstractAsyncContextManager[bool]:
        """Take the lock ``name`` without waiting; yield whether it was taken."""


class Purge(Protocol):
    async def __call__(
        self, *, dry_run: bool = False, on_progress: ProgressCallback | None = None
    ) -> PurgeResult: ...


class _StopRequested(Exception):
    """Raised between two batches of a purge when the runner is shutting down."""


class Job:
    """A job the runner calls on its schedule: one run per call, never raising.

    ``request_stop()`` lets the run in flight finish (a batch commits or rolls back
    whole) and starts no other; ``wait_idle()`` waits for that.
    """

    name = "job"

    def __init__(self) -> None:
        self._stopping = False
        self._running: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._running is not None

    def request_stop(self) -> None:
        self._stopping = True

    def cancel(self) -> None:
        """Cancel the run in flight now; its current batch rolls back."""
        if self._running is not None:
            self._running.cancel()

    async def wait_idle(self, grace: float) -> bool:
        """Wait for the run in flight, if any; cancel it (rolling back its batch) if it
        takes longer than ``grace`` seconds. Whether it ended on its own."""
        task = self._running
        if task is None:
            return True
        done, _ = await asyncio.wait({task}, timeout=grace)
        if done:
            return True
        task.cancel()
        await asyncio.wait({task})
        return False

    async def run(self) -> None:
        """One run. It never raises: a failure is logged and the next tick tries again."""
        if self._stopping:
            return
        run_id = uuid.uuid4().hex[:12]
        with structlog.contextvars.bound_contextvars(job=self.name, run_id=run_id):
            self._running = asyncio.current_task()
            try:
                await self._run_once()
            finally:
                self._running = None

    async def _run_once(self) -> None:
        raise NotImplementedError


class PeriodicJob(Job):
    """A job around ``work``, which returns the counts its log line shows. With a
    ``lock``, one replica of the runner at a time runs it; a run that counts nothing is
    logged at debug level only, so a job that runs every few seconds stays quiet."""

    def __init__(
        self,
        name: str,
        work: Callable[[], Awaitable[Mapping[str, int]]],
        lock: JobLock | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self._work = work
        self._lock = lock

    async def _run_once(self) -> None:
        started = time.perf_counter()
        try:
            if self._lock is None:
                counts = await self._work()
            else:
                async with self._lock.acquire(self.name) as acquired:
                    if not acquired:
                        JOB_RUNS.labels(self.name, "skipped").inc()
                        log.debug("job skipped: another runner holds the lock")
                        return
                    counts = await self._work()
        except asyncio.CancelledError:
            JOB_RUNS.labels(self.name, "cancelled").inc()
            log.warning("job cancelled at shutdown")
            return
        except ServiceUnavailable:
            JOB_RUNS.labels(self.name, "failure").inc()
            log.warning("job failed: the database is unavailable; retrying at the next run")
            return
        except Exception:
            JOB_RUNS.labels(self.name, "failure").inc()
            log.exception("job failed; retrying at the next run")
            return
        JOB_RUNS.labels(self.name, "success").inc()
        duration = round(time.perf_counter() - started, 3)
        if any(counts.values()):
            log.info("job finished", duration_s=duration, **counts)
        else:
            log.debug("job finished", duration_s=duration, **counts)


class PurgeJob(Job):
    """Runs the token purge (the same use case as ``app tokens purge``) once per call.

    ``request_stop()`` ends the run in flight after its current batch, which commits
    or rolls back whole; ``wait_idle()`` waits for that.
    """

    name = "token_purge"

    def __init__(self, purge: Purge, lock: JobLock) -> None:
        super().__init__()
        self._purge = purge
        self._lock = lock

    async def _run_once(self) -> None:
        started = time.perf_counter()
        deleted = 0

        def on_progress(rows: int) -> None:
            nonlocal deleted
            deleted += rows
            # Between two batches: the one just done is committed.
            if self._stopping:
                raise _StopRequested

        def elapsed() -> float:
            return round(time.perf_counter() - started, 3)

        try:
            async with self._lock.acquire(self.name) as acquired:
                if not acquired:
                    PURGE_RUNS.labels(outcome="skipped").inc()
                    log.info("purge skipped: another runner holds the lock")
                    return
                log.debug("purge started")
                result = await self._purge(on_progress=on_progress)
        except _StopRequested:
            PURGE_RUNS.labels(outcome="stopped").inc()
            log.info("purge stopped early for shutdown", rows=deleted, duration_s=elapsed())
            return
        except asyncio.CancelledError:
            # Only a forced shutdown cancels a run: its batch in flight rolled back.
            PURGE_RUNS.labels(outcome="cancelled").inc()
            log.warning("purge cancelled at shutdown", rows=deleted, duration_s=elapsed())
            return
        except ServiceUnavailable as exc:
            PURGE_RUNS.labels(outcome="failure").inc()
            cause = exc.__cause__ or exc
            log.warning(
                "purge failed: the database is unavailable; retrying at the next run",
                error=f"{type(cause).__name__}: {cause}".splitlines()[0],
                rows=deleted,
                duration_s=elapsed(),
            )
            return
        except Exception:
            PURGE_RUNS.labels(outcome="failure").inc()
            log.exception(
                "purge failed; retrying at the next run", rows=deleted, duration_s=elapsed()
            )
            return

        duration = time.perf_counter() - started
        PURGE_RUNS.labels(outcome="success").inc()
        PURGE_DURATION.observe(duration)
        PURGED_ROWS.labels(kind="tokens").inc(result.tokens)
        PURGED_ROWS.labels(kind="sessions").inc(result.sessions)
        log.info(
            "purge finished",
            # Not "tokens": the log redacts any key that looks like it holds one.
            refresh_rows=result.tokens,
            session_rows=result.sessions,
            batches=result.batches,
            duration_s=round(duration, 3),
        )
