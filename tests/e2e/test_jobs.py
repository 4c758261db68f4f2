"""The job runner: its purge job, its scheduler, its lock across replicas, and the real
``app jobs run`` process.

Nothing here measures time: waits are generous upper bounds for slow machines, and
every assertion is about what happened, not how fast.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from adapters import migrations
from adapters.database import Database
from adapters.locks import DatabaseJobLock
from application.retention import ProgressCallback, PurgeResult, PurgeTokens
from application.users import NewUser, RegisterUser
from domain.errors import ServiceUnavailable
from domain.model import User
from entrypoints.logging import configure_logging
from entrypoints.scheduler.jobs import JobLock, PeriodicJob, Progress, purge_job
from entrypoints.scheduler.runner import JobRunner, run_job_runner
from entrypoints.settings import InvalidSettings, Settings
from tests.conftest import Postgres
from tests.e2e.cli_fixtures import (
    APP,
    DAY,
    PASSWORD,
    Cli,
    clean_env,
    existing_ids,
    fast_services,
    seed_session,
)

WAIT = 120.0  # seconds: an upper bound for slow machines, never a measurement
UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:1/nothing"
DONE = PurgeResult(tokens=0, sessions=0, batches=0, dry_run=False)


class Events:
    """What the runner logged, as the JSON events an operator's log pipeline gets."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.all() if e["event"] == event]

    def names(self) -> list[str]:
        return [e["event"] for e in self.all() if e["logger"] == "entrypoints.scheduler"]


@pytest.fixture
def events() -> Events:
    captured = Events()
    configure_logging(level="DEBUG", fmt="json", stream=captured.stream)
    return captured


def runs(outcome: str) -> float:
    return REGISTRY.get_sample_value("token_purge_runs_total", {"outcome": outcome}) or 0.0


def purged(kind: str) -> float:
    return REGISTRY.get_sample_value("token_purged_rows_total", {"kind": kind}) or 0.0


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds (failing after a generous bound)."""
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 (the state belongs to fakes and logs)
            await asyncio.sleep(0.01)
    assert condition(), what


class FakePurge:
    """Plays the purge use case: each call takes the next outcome (an exception is
    raised), then succeeds with nothing to delete."""

    def __init__(self, *outcomes: PurgeResult | BaseException) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(
        self, *, dry_run: bool = False, on_progress: ProgressCallback | None = None
    ) -> PurgeResult:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else DONE
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class BatchedPurge:
    """A purge of ``total`` batches of 100 rows whose batch number ``hold`` waits for
    ``proceed`` (so a test can stop the runner while that batch is in flight)."""

    def __init__(self, total: int = 10, hold: int = 2) -> None:
        self.total = total
        self.hold = hold
        self.in_flight = asyncio.Event()
        self.proceed = asyncio.Event()
        self.committed = 0
        self.cancelled = False

    async def __call__(
        self, *, dry_run: bool = False, on_progress: ProgressCallback | None = None
    ) -> PurgeResult:
        try:
            for number in range(1, self.total + 1):
                if number == self.hold:
                    self.in_flight.set()
                    await self.proceed.wait()
                await asyncio.sleep(0)
                self.committed += 1  # the batch's transaction commits...
                if on_progress:
                    on_progress(100)  # ...then the use case reports it
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return PurgeResult(tokens=100 * self.total, sessions=0, batches=self.total, dry_run=False)


class FreeLock:
    @asynccontextmanager
    async def acquire(self, name: str) -> AsyncIterator[bool]:
        yield True


@asynccontextmanager
async def running(runner: JobRunner) -> AsyncIterator[asyncio.Task[None]]:
    """The runner in a task; stopped (and awaited) when the block ends."""
    task = asyncio.create_task(runner.run())
    try:
        yield task
    finally:
        runner.stop("test over")
        async with asyncio.timeout(WAIT):
            await task


# --- the purge job -----------------------------------------------------------------


async def test_a_failing_run_is_logged_and_the_next_run_purges(events: Events) -> None:
    purge = FakePurge(
        RuntimeError("disk on fire"),
        ServiceUnavailable(),
        PurgeResult(tokens=3, sessions=1, batches=2, dry_run=False),
    )
    job = purge_job(purge, FreeLock())
    failures, successes, tokens = runs("failure"), runs("success"), purged("tokens")

    for _ in range(3):
        await job.run()  # never raises

    assert purge.calls == 3
    [crashed] = events.named("purge failed; retrying at the next run")
    assert crashed["level"] == "error"
    assert "disk on fire" in crashed["exception"]
    [away] = events.named("purge failed: the database is unavailable; retrying at the next run")
    assert away["level"] == "warning"
    [finished] = events.named("purge finished")
    assert (finished["refresh_rows"], finished["session_rows"], finished["batches"]) == (3, 1, 2)
    assert finished["job"] == "token_purge"
    assert isinstance(finished["duration_s"], float)
    run_ids = {crashed["run_id"], away["run_id"], finished["run_id"]}
    assert len(run_ids) == 3, "each run has its own id"
    assert runs("failure") == failures + 2
    assert runs("success") == successes + 1
    assert purged("tokens") == tokens + 3


async def test_the_runner_survives_failing_runs_and_purges_at_a_later_tick(
    events: Events,
) -> None:
    purge = FakePurge(RuntimeError("one"), ServiceUnavailable(), RuntimeError("three"))
    runner = JobRunner(purge_job(purge, FreeLock()), timedelta(seconds=0.05))

    async with running(runner) as task:
        await eventually(lambda: len(events.named("purge finished")) >= 1, "a successful run")
        assert not task.done()

    assert purge.calls >= 4
    names = events.names()
    assert names[0] == "job runner started"
    assert names[-1] == "job runner stopped"
    assert names.count("purge failed; retrying at the next run") == 2


async def test_the_first_run_starts_at_once(events: Events) -> None:
    purge = FakePurge()
    runner = JobRunner(purge_job(purge, FreeLock()), timedelta(hours=1))

    async with running(runner):
        await eventually(lambda: purge.calls == 1, "a run at start, not after an hour")

    [started] = events.named("job runner started")
    assert started["interval_minutes"] == 60


class TakenLock:
    @asynccontextmanager
    async def acquire(self, name: str) -> AsyncIterator[bool]:
        yield False


def job_runs(job: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("job_runs_total", {"job": job, "outcome": outcome}) or 0.0


async def test_a_quiet_job_logs_idle_and_skipped_runs_at_debug_and_busy_ones_at_info(
    events: Events,
) -> None:
    counts = iter([{"moved": 0}, {"moved": 2}])

    async def work(_: Progress) -> dict[str, int]:
        return next(counts)

    job = PeriodicJob("quiet_one", work)
    skipped_before = job_runs("quiet_one_locked", "skipped")
    await job.run()
    await job.run()
    await PeriodicJob("quiet_one_locked", work, TakenLock()).run()

    idle, busy = events.named("job finished")
    assert (idle["level"], idle["moved"], busy["level"], busy["moved"]) == ("debug", 0, "info", 2)
    [skipped] = events.named("job skipped: another runner holds the lock")
    assert skipped["level"] == "debug"
    assert job_runs("quiet_one", "success") >= 2
    assert job_runs("quiet_one_locked", "skipped") == skipped_before + 1


async def test_any_job_that_reports_its_batches_stops_between_two_of_them(
    events: Events,
) -> None:
    job: PeriodicJob
    batches = 0

    async def work(progress: Progress) -> dict[str, int]:
        nonlocal batches
        for _ in range(5):
            batches += 1
            if batches == 2:
                job.request_stop()
            progress(10)
        return {"rows": 50}

    job = PeriodicJob("batched", work, noun="batches")
    await job.run()

    assert batches == 2
    [stopped] = events.named("batches stopped early for shutdown")
    assert stopped["rows"] == 20
    assert job_runs("batched", "stopped") >= 1


async def test_a_stop_lets_the_batch_in_flight_finish_and_starts_no_other(
    events: Events,
) -> None:
    purge = BatchedPurge(total=10, hold=2)
    runner = JobRunner(purge_job(purge, FreeLock()), timedelta(hours=1))
    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(WAIT):
        await purge.in_flight.wait()

    runner.stop("SIGTERM")
    await asyncio.sleep(0.05)
    assert not task.done(), "the runner waits for the batch in flight"
    purge.proceed.set()
    async with asyncio.timeout(WAIT):
        await task

    assert purge.committed == 2  # the batch in flight finished, no other began
    assert not purge.cancelled
    [stopped] = events.named("purge stopped early for shutdown")
    assert stopped["rows"] == 200
    assert events.names()[-4:] == [
        "job runner stopping",
        "waiting for the run in flight to finish its current batch",
        "purge stopped early for shutdown",
        "job runner stopped",
    ]


async def test_a_run_outliving_the_grace_is_cancelled_and_its_batch_rolled_back(
    events: Events,
) -> None:
    purge = BatchedPurge(hold=1)  # never allowed to proceed
    runner = JobRunner(purge_job(purge, FreeLock()), timedelta(hours=1), stop_grace=0.1)
    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(WAIT):
        await purge.in_flight.wait()

    runner.stop("SIGTERM")
    async with asyncio.timeout(WAIT):
        await task

    assert purge.cancelled
    assert purge.committed == 0
    assert events.named("purge cancelled at shutdown")
    assert events.names()[-1] == "job runner stopped"


async def test_a_second_stop_cancels_the_run_in_flight_at_once(events: Events) -> None:
    purge = BatchedPurge(hold=1)
    runner = JobRunner(purge_job(purge, FreeLock()), timedelta(hours=1), stop_grace=3600)
    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(WAIT):
        await purge.in_flight.wait()

    runner.stop("SIGTERM")
    await asyncio.sleep(0.05)
    runner.stop("SIGINT")
    async with asyncio.timeout(WAIT):
        await task

    assert purge.cancelled
    assert events.named("stopping now: cancelling the run in flight")


# --- on real databases -------------------------------------------------------------


async def seed_expired(database_url: str, count: int) -> None:
    database = Database(database_url)
    container = fast_services(_settings(database_url))
    try:
        user: User = await container.get(RegisterUser)(
            NewUser(email="ada@example.com", username="ada", password=PASSWORD)
        )
        assert user.id is not None
        now = datetime.now(UTC)
        await seed_session(
            database_url,
            user.id,
            expires_at=now - DAY,
            tokens=[{"expires_at": now - DAY} for _ in range(count)],
        )
        await seed_session(database_url, user.id, expires_at=now + DAY, tokens=[
            {"expires_at": now + DAY, "revoked_at": now - DAY}
        ])  # fmt: skip
    finally:
        await container.close()
        await database.dispose()


def _settings(database_url: str) -> Settings:
    return Cli(database_url).settings()


async def test_the_job_purges_a_real_database_in_batches(database_url: str, events: Events) -> None:
    await seed_expired(database_url, 25)
    container = fast_services(_settings(database_url))
    purge = container.get(PurgeTokens)
    purge.batch_size = 10
    job = purge_job(purge, container.get(JobLock))
    try:
        await job.run()
    finally:
        await container.close()

    [finished] = events.named("purge finished")
    assert (finished["refresh_rows"], finished["session_rows"]) == (25, 1)
    assert finished["batches"] == 3 + 1  # 10 + 10 + 5 tokens, then 1 session
    sessions, tokens = await existing_ids(database_url)
    assert (len(sessions), len(tokens)) == (1, 1)  # the revoked, unexpired one stays


async def test_a_job_whose_database_is_away_logs_and_carries_on(events: Events) -> None:
    container = fast_services(_settings(UNREACHABLE))
    job = purge_job(container.get(PurgeTokens), container.get(JobLock))
    try:
        await job.run()
        await job.run()
    finally:
        await container.close()

    away = events.named("purge failed: the database is unavailable; retrying at the next run")
    assert len(away) == 2


async def test_on_sqlite_the_lock_is_always_free(tmp_path: Path) -> None:
    first = Database(f"sqlite+aiosqlite:///{tmp_path / 'lock.db'}")
    second = Database(f"sqlite+aiosqlite:///{tmp_path / 'lock.db'}")
    try:
        async with DatabaseJobLock(first).acquire("token_purge") as one:
            async with DatabaseJobLock(second).acquire("token_purge") as two:
                assert (one, two) == (True, True)
    finally:
        await first.dispose()
        await second.dispose()


@pytest.fixture
async def two_replicas(postgres: Postgres) -> AsyncIterator[tuple[Database, Database]]:
    """Two processes' worth of engines (separate pools) on one PostgreSQL database."""
    url = await postgres.shared_database()
    first, second = Database(url), Database(url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


@pytest.mark.postgres
async def test_on_postgresql_a_second_holder_is_refused_until_the_first_lets_go(
    two_replicas: tuple[Database, Database],
) -> None:
    first, second = (DatabaseJobLock(db) for db in two_replicas)

    async with first.acquire("token_purge") as held:
        assert held
        async with second.acquire("token_purge") as refused:
            assert not refused
        async with second.acquire("another_job") as other:
            assert other, "locks of different jobs are independent"
        async with first.acquire("token_purge") as again:
            # Advisory locks are per connection: a second take by the same process
            # uses another connection, so it is refused too.
            assert not again

    async with second.acquire("token_purge") as free_again:
        assert free_again


@pytest.mark.postgres
async def test_on_postgresql_the_lock_is_released_when_the_job_fails(
    two_replicas: tuple[Database, Database],
) -> None:
    first, second = (DatabaseJobLock(db) for db in two_replicas)

    async def failing_job() -> None:
        async with first.acquire("token_purge") as held:
            assert held
            raise RuntimeError("job failed")

    with pytest.raises(RuntimeError):
        await failing_job()

    async with second.acquire("token_purge") as free:
        assert free


@pytest.mark.postgres
async def test_on_postgresql_a_lock_whose_connection_died_is_free_and_fails_nothing(
    two_replicas: tuple[Database, Database],
) -> None:
    first, second = (DatabaseJobLock(db) for db in two_replicas)

    async with first.acquire("token_purge") as held:
        assert held
        # The server ends the holder's session (a failover, an idle timeout…).
        async with two_replicas[1].engine.connect() as conn:
            ended = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
                )
            )
        assert ended == 1
    # Leaving the block did not raise, and the lock is free for the next run.

    async with second.acquire("token_purge") as free:
        assert free


@pytest.mark.postgres
async def test_two_runners_on_one_postgresql_never_purge_at_the_same_time(
    two_replicas: tuple[Database, Database], events: Events
) -> None:
    slow = BatchedPurge(total=3, hold=1)
    other = FakePurge()
    first = purge_job(slow, DatabaseJobLock(two_replicas[0]))
    second = purge_job(other, DatabaseJobLock(two_replicas[1]))

    first_run = asyncio.create_task(first.run())
    async with asyncio.timeout(WAIT):
        await slow.in_flight.wait()
    await second.run()  # while the first is purging
    slow.proceed.set()
    async with asyncio.timeout(WAIT):
        await first_run
    await second.run()  # and once it is done

    assert other.calls == 1, "the second runner purged only after the first let go"
    assert events.named("purge skipped: another runner holds the lock")
    assert len(events.named("purge finished")) == 2


async def test_a_lock_on_an_unreachable_database_is_service_unavailable() -> None:
    database = Database(UNREACHABLE)
    try:
        with pytest.raises(ServiceUnavailable):
            async with DatabaseJobLock(database).acquire("token_purge"):
                pytest.fail("not acquired")
    finally:
        await database.dispose()


# --- the real process --------------------------------------------------------------


class Process:
    """``app jobs run`` in a subprocess, its stderr read line by line."""

    def __init__(self, env: dict[str, str | None]) -> None:
        environ = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
        self.popen = subprocess.Popen(
            [str(APP), "jobs", "run"],
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.put(line)

    def wait_for(self, event: str) -> dict[str, Any]:
        """The first logged event named ``event`` (waiting for it, generously)."""
        return self.wait_for_any(event)

    def wait_for_any(self, *events: str) -> dict[str, Any]:
        """The first logged event named any of ``events`` (waiting for it, generously)."""
        for seen in self.seen:
            if seen.get("event") in events:
                return seen
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                pytest.fail(f"none of {events!r} in the log: {self.seen}")
            try:
                parsed: dict[str, Any] = json.loads(line)
            except ValueError:
                pytest.fail(f"a log line that is not JSON: {line!r}")
            self.seen.append(parsed)
            if parsed.get("event") in events:
                return parsed

    def stop(self, sig: signal.Signals) -> int:
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout=WAIT)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"
    migrations.upgrade(url)
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_the_runner_entrypoint_stops_on_sigterm_and_releases_the_signals(
    migrated_sqlite: str, events: Events
) -> None:
    settings = Cli(migrated_sqlite).settings()
    task = asyncio.create_task(run_job_runner(settings, fast_services(settings)))
    # Logged once the signal handlers are in place.
    await eventually(lambda: bool(events.named("purge finished")), "a first run")

    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(WAIT):
        await task

    # (A run of another job may end between the two.)
    names = [name for name in events.names() if not name.startswith(("job finished", "waiting"))]
    assert names[-2:] == ["job runner stopping", "job runner stopped"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) == signal.default_int_handler


async def test_a_metrics_port_in_use_is_a_setting_error(migrated_sqlite: str) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))  # where the metrics server listens
        busy.listen()
        port = busy.getsockname()[1]
        settings = Cli(migrated_sqlite).settings().model_copy(update={"jobs_metrics_port": port})

        with pytest.raises(
            InvalidSettings, match=f"JOBS_METRICS_PORT: cannot listen on port {port}"
        ):
            await run_job_runner(settings, fast_services(settings))

    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_app_jobs_run_purges_at_start_and_stops_cleanly(
    migrated_sqlite: str, sig: signal.Signals
) -> None:
    asyncio.run(seed_expired(migrated_sqlite, 3))
    port = free_port()
    process = Process(
        clean_env(
            migrated_sqlite,
            TOKEN_PURGE_INTERVAL_MINUTES="1",
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            JOBS_METRICS_PORT=str(port),
        )
    )
    try:
        started = process.wait_for("job runner started")
        finished = process.wait_for("purge finished")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=WAIT) as reply:
            metrics = reply.read().decode()

        status = process.stop(sig)
    finally:
        process.kill()

    assert started["interval_minutes"] == 1
    assert (finished["refresh_rows"], finished["session_rows"]) == (3, 1)
    assert 'token_purge_runs_total{outcome="success"} 1.0' in metrics
    assert status == 0
    stopping = process.wait_for("job runner stopping")
    assert stopping["reason"] == sig.name
    process.wait_for("job runner stopped")
    assert all("Traceback" not in json.dumps(event) for event in process.seen)


def test_app_jobs_run_refuses_invalid_settings(migrated_sqlite: str) -> None:
    result = subprocess.run(  # noqa: PLW1510
        [str(APP), "jobs", "run"],
        env={
            k: v
            for k, v in {
                **os.environ,
                **clean_env(migrated_sqlite, TOKEN_PURGE_INTERVAL_MINUTES="0"),
            }.items()
            if v is not None
        },
        capture_output=True,
        text=True,
        timeout=WAIT,
        stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid configuration: TOKEN_PURGE_INTERVAL_MINUTES")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.postgres
@pytest.mark.slow
async def test_two_app_jobs_run_processes_on_one_postgresql_never_purge_together(
    postgres: Postgres,
) -> None:
    # Enough expired tokens that a purge takes a while: started together, the two
    # processes would both be deleting if the advisory lock did not keep one out.
    url = await postgres.new_database()
    expired = 100_000
    await seed_expired(url, expired)
    env = clean_env(url, TOKEN_PURGE_INTERVAL_MINUTES="60", LOG_LEVEL="INFO")
    processes = [Process(env), Process(env)]
    try:
        outcomes = [
            process.wait_for_any("purge finished", "purge skipped: another runner holds the lock")
            for process in processes
        ]
        statuses = [process.stop(signal.SIGTERM) for process in processes]
    finally:
        for process in processes:
            process.kill()

    purged = [event.get("refresh_rows", 0) for event in outcomes]
    assert sum(purged) == expired
    assert sorted(purged)[0] == 0, f"both runners deleted rows at once: {outcomes}"
    assert statuses == [0, 0]
