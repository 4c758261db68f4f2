"""Prometheus metrics shared by the entrypoints (prometheus-client's default registry)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests handled, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to handle an HTTP request, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# The methods the API answers; any other is counted as OTHER, so a client cannot grow the
# label set (and the process's memory) by inventing methods.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class RequestMetrics:
    """The two series of one (method, route, status): looked up once, not per request
    (``labels()`` takes a lock and builds its key each time)."""

    requests: Counter
    latency: Histogram

    def record(self, seconds: float) -> None:
        self.requests.inc()
        self.latency.observe(seconds)


def http_request_metrics(method: str, route: str, status: int) -> RequestMetrics:
    return _request_metrics(method if method in HTTP_METHODS else "OTHER", route, status)


@cache  # bounded: the known methods, the route templates and the statuses the API sends
def _request_metrics(method: str, route: str, status: int) -> RequestMetrics:
    labels = (method, route, str(status))
    return RequestMetrics(HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))


LOGINS = Counter("auth_logins_total", "Login attempts, by outcome.", ["outcome"])
PURGE_RUNS = Counter("token_purge_runs_total", "Token purge runs, by outcome.", ["outcome"])
PURGED_ROWS = Counter("token_purged_rows_total", "Rows deleted by token purges, by kind.", ["kind"])
PURGE_DURATION = Histogram(
    "token_purge_duration_seconds",
    "Duration of a token purge run.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
MAIL_DELIVERIES = Counter(
    "mail_deliveries_total",
    "Outbox messages settled by a relay, by template and outcome"
    " (sent, dropped, retry, dead, lost).",
    ["template", "outcome"],
)
OUTBOX_PENDING = Gauge("outbox_pending_messages", "Messages waiting in the mail outbox.")
OUTBOX_DEAD = Gauge("outbox_dead_messages", "Messages in the mail outbox that gave up.")
OUTBOX_OLDEST_AGE = Gauge(
    "outbox_oldest_pending_age_seconds",
    "Age of the oldest message waiting in the mail outbox (0 when none waits).",
)
JOB_RUNS = Counter(
    "job_runs_total", "Runs of the scheduled jobs, by job and outcome.", ["job", "outcome"]
)
