"""The scheduled job runner delivery adapter (APScheduler): ``app jobs run``
(``entrypoints.scheduler.runner``). Nothing is imported here, so that the API, which
only needs the job lock of ``jobs``, never loads APScheduler."""
