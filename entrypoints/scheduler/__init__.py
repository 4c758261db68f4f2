"""The scheduled job runner delivery adapter (APScheduler): ``app jobs run``."""

from entrypoints.scheduler.runner import run_job_runner

__all__ = ["run_job_runner"]
