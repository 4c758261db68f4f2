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
    """Raised between two batches of a run when the runner is shutting down."""


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


# What a run is given to report its progress: the rows just committed. Between two
# batches it raises when the runner is shutting down, which ends the run there.
Progress = Callable[[int], None]
Work = Callable[[Progress], Awaitable[Mapping[str, int]]]


class PeriodicJob(Job):
    """A job around ``work``, which returns the counts its log line shows. With a
    ``lock``, one replica of the runner at a time runs it.

    Each run is logged as "<noun> finished" (or skipped, stopped, cancelled, failed)
    and counted in ``job_runs_total``, and ``count_outcome`` too when given. A ``quiet``
    job logs a skipped or idle run at debug level only, so that a job running every few
    seconds stays quiet. ``work`` reports each committed batch to its ``Progress``, so
    that ``request_stop()`` ends the run between two batches.
    """

    def __init__(
        self,
        name: str,
        work: Work,
        lock: JobLock | None = None,
        *,
        noun: str = "job",
        quiet: bool = True,
        count_outcome: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self._work = work
        self._lock = lock
        self._noun = noun
        self._quiet = quiet
        self._count_outcome = count_outcome

    def _outcome(self, outcome: str) -> None:
        JOB_RUNS.labels(self.name, outcome).inc()
        if self._count_outcome is not None:
            self._count_outcome(outcome)

    async def _run_once(self) -> None:
        started = time.perf_counter()
        rows = 0
        noun = self._noun
        debug_or_info = log.debug if self._quiet else log.info

        def progress(done: int) -> None:
            nonlocal rows
            rows += done
            # Between two batches: the one just done is committed.
            if self._stopping:
                raise _StopRequested

        def elapsed() -> float:
            return round(time.perf_counter() - started, 3)

        try:
            if self._lock is None:
                counts = await self._work(progress)
            else:
                async with self._lock.acquire(self.name) as acquired:
                    if not acquired:
                        self._outcome("skipped")
                        debug_or_info(f"{noun} skipped: another runner holds the lock")
                        return
                    log.debug(f"{noun} started")
                    counts = await self._work(progress)
        except _StopRequested:
            self._outcome("stopped")
            log.info(f"{noun} stopped early for shutdown", rows=rows, duration_s=elapsed())
            return
        except asyncio.CancelledError:
            # Only a forced shutdown cancels a run: its batch in flight rolled back.
            self._outcome("cancelled")
            log.warning(f"{noun} cancelled at shutdown", rows=rows, duration_s=elapsed())
            return
        except ServiceUnavailable as exc:
            self._outcome("failure")
            cause = exc.__cause__ or exc
            log.warning(
                f"{noun} failed: the database is unavailable; retrying at the next run",
                error=f"{type(cause).__name__}: {cause}".splitlines()[0],
                rows=rows,
                duration_s=elapsed(),
            )
            return
        except Exception:
            self._outcome("failure")
            log.exception(
                f"{noun} failed; retrying at the next run", rows=rows, duration_s=elapsed()
            )
            return
        self._outcome("success")
        log_finished = log.info if any(counts.values()) else debug_or_info
        log_finished(f"{noun} finished", duration_s=elapsed(), **counts)


def purge_job(purge: Purge, lock: JobLock) -> PeriodicJob:
    """The token purge (the same use case as ``app tokens purge``) as a job: one replica
    at a time, stopped between two batches at shutdown, with metrics of its own."""

    async def work(progress: Progress) -> Mapping[str, int]:
        started = time.perf_counter()
        result = await purge(on_progress=progress)
        PURGE_DURATION.observe(time.perf_counter() - started)
        PURGED_ROWS.labels(kind="tokens").inc(result.tokens)
        PURGED_ROWS.labels(kind="sessions").inc(result.sessions)
        # Not "tokens": the log redacts any key that looks like it holds one.
        return {
            "refresh_rows": result.tokens,
            "session_rows": result.sessions,
            "batches": result.batches,
        }

    return PeriodicJob(
        "token_purge",
        work,
        lock,
        noun="purge",
        quiet=False,
        count_outcome=lambda outcome: PURGE_RUNS.labels(outcome=outcome).inc(),
    )
