"""The job runner: APScheduler's asyncio scheduler running the jobs on an interval
until SIGTERM or SIGINT, then stopping without leaving a batch half done."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from wsgiref.simple_server import WSGIServer

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import make_url

from application.outbox import OutboxState, Outcome, RelayOutbox
from application.retention import ApplyRetention, PurgeTokens
from application.signing_keys import RunKeyLifecycle
from domain.signing_keys import ASYMMETRIC_ALGORITHMS
from entrypoints.logging import get_logger
from entrypoints.metrics import PURGE_RUNS
from entrypoints.metrics_server import serve_metrics
from entrypoints.outbox_relay import relay_once
from entrypoints.scheduler.jobs import Job, JobLock, PeriodicJob, Progress, purge_job
from entrypoints.services import Services
from entrypoints.settings import Settings

log = get_logger("entrypoints.scheduler")

# How long a stop waits for the run in flight to finish its batch before cancelling
# it (which rolls the batch back): inside Docker's default 10 s before SIGKILL.
STOP_GRACE_SECONDS = 8.0
RUN_OUTCOMES = ("success", "failure", "skipped", "stopped", "cancelled")
RETENTION_INTERVAL = timedelta(hours=1)
# What the jobs below ask the services for.
JOB_DEPENDENCIES = (
    JobLock,
    PurgeTokens,
    RelayOutbox,
    OutboxState,
    ApplyRetention,
    RunKeyLifecycle,
)
KEY_LIFECYCLE_INTERVAL = timedelta(minutes=1)


class JobRunner:
    """Runs ``purge`` every ``interval``, and each of ``others`` on its own interval,
    all first at once; one run of a job at a time, and runs missed while one was going
    are coalesced into one."""

    def __init__(
        self,
        purge: PeriodicJob,
        interval: timedelta,
        *,
        stop_grace: float = STOP_GRACE_SECONDS,
        others: Sequence[tuple[Job, timedelta]] = (),
    ) -> None:
        self._purge = purge
        self._interval = interval
        self._stop_grace = stop_grace
        self._others = list(others)
        self._stop = asyncio.Event()

    def stop(self, reason: str = "stop requested") -> None:
        """Stop scheduling and end after the current batch; a second call cancels the
        run in flight at once (its batch rolls back)."""
        if not self._stop.is_set():
            log.info("job runner stopping", reason=reason)
            self._stop.set()
        elif any(job.running for job in self._jobs()):
            log.warning("stopping now: cancelling the run in flight", reason=reason)
            for job in self._jobs():
                job.cancel()

    def _jobs(self) -> list[Job]:
        return [self._purge, *(job for job, _ in self._others)]

    async def run(self, **details: object) -> None:
        """Schedule the jobs and run them until ``stop()``; ``details`` go into the
        "job runner started" line."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        for job, interval in [(self._purge, self._interval), *self._others]:
            scheduler.add_job(
                job.run,
                IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC),
                id=job.name,
                name=job.name,
                max_instances=1,
                coalesce=True,
                # A late run (a busy or suspended machine) still runs, once.
                misfire_grace_time=None,
                next_run_time=datetime.now(UTC),
            )
        scheduler.start()
        log.info(
            "job runner started",
            jobs=[job.name for job in self._jobs()],
            interval_minutes=round(self._interval.total_seconds() / 60, 2),
            **details,
        )
        try:
            await self._stop.wait()
        finally:
            scheduler.pause()
            for job in self._jobs():
                job.request_stop()
            if any(job.running for job in self._jobs()):
                log.info("waiting for the run in flight to finish its current batch")
            await asyncio.gather(*(job.wait_idle(self._stop_grace) for job in self._jobs()))
            scheduler.shutdown(wait=False)
            # The shutdown is scheduled on the loop: let it run before the loop ends.
            await asyncio.sleep(0)
        log.info("job runner stopped")


async def run_job_runner(settings: Settings, services: Services) -> None:
    """``app jobs run``: the runner over the services' use cases, stopped by SIGTERM or
    SIGINT. Closes the services at the end."""
    # APScheduler's own INFO lines ("Running job…") repeat what our run lines say.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    for outcome in RUN_OUTCOMES:
        PURGE_RUNS.labels(outcome=outcome)

    # Everything a job asks for resolves, or the runner refuses to start, naming it.
    services.require(JOB_DEPENDENCIES)
    await services.open()
    lock = services.get(JobLock)
    runner = JobRunner(
        purge_job(services.get(PurgeTokens), lock),
        timedelta(minutes=settings.token_purge_interval_minutes),
        others=scheduled_jobs(settings, services, lock),
    )
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, runner.stop, sig.name)
    metrics = None
    try:
        if settings.jobs_metrics_port:
            metrics = _serve_metrics(settings.jobs_metrics_host, settings.jobs_metrics_port)
        database = make_url(settings.database_url).render_as_string(hide_password=True)
        await runner.run(database=database)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if metrics is not None:
            server, thread = metrics
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        await services.close()


def scheduled_jobs(
    settings: Settings, services: Services, lock: JobLock
) -> list[tuple[Job, timedelta]]:
    """The jobs besides the token purge, with their intervals."""

    async def relay(_: Progress) -> Mapping[str, int]:
        result = await relay_once(services)
        return {outcome.value: result.count(outcome) for outcome in Outcome}

    async def retention(_: Progress) -> Mapping[str, int]:
        result = await services.get(ApplyRetention)()
        return {
            "sent_mail_rows": result.sent_mail,
            "spent_link_rows": result.email_tokens,
            "audit_rows": result.audit_events,
            "ended_access_token_rows": result.access_tokens,
        }

    async def signing_keys(_: Progress) -> Mapping[str, int]:
        result = await services.get(RunKeyLifecycle)()
        return {"retired_keys": result.retired, "deleted_keys": result.deleted}

    jobs: list[tuple[Job, timedelta]] = [
        # No lock: relays split the queue between them (SKIP LOCKED).
        (PeriodicJob("mail_relay", relay), timedelta(seconds=settings.outbox_poll_seconds)),
        (PeriodicJob("retention", retention, lock), RETENTION_INTERVAL),
    ]
    if settings.algorithm in ASYMMETRIC_ALGORITHMS:
        # Retire superseded keys and delete those no live token needs (HMAC has none).
        jobs.append((PeriodicJob("signing_keys", signing_keys, lock), KEY_LIFECYCLE_INTERVAL))
    return jobs


def _serve_metrics(host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    served = serve_metrics(host, port, setting="JOBS_METRICS_PORT")
    log.info("metrics served", host=host, port=port, path="/metrics")
    return served
