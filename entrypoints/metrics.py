"""Prometheus metrics shared by the entrypoints (prometheus-client's default registry)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# The methods the API answers; any other is counted as OTHER, so a client cannot grow the
# label set (and the process's memory) by inventing methods.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_LABELS = ("method", "route", "status")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestSeries:
    """The latency sum and buckets of one (method, route, status), as plain numbers (the
    count is the buckets' sum): only the event loop's thread records them, so no lock is
    needed (a prometheus-client Counter and Histogram take three per request, a tenth
    of what ``/health/live`` costs the app)."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: above every bound

    def record(self, seconds: float) -> None:
        self.total += seconds
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1


class HttpRequestCollector(Collector):
    """``http_requests_total`` and ``http_request_duration_seconds``, read from the
    series at each scrape: on the event loop, or on the metrics thread with
    METRICS_PORT (a copy of the dict's items, taken at once under the GIL)."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, int], RequestSeries] = {}

    def series(self, method: str, route: str, status: int) -> RequestSeries:
        key = (method, route, status)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = RequestSeries()
        return found

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "http_requests",
            "HTTP requests handled, by method, route template and status code.",
            labels=HTTP_LABELS,
        )
        latency = HistogramMetricFamily(
            "http_request_duration_seconds",
            "Time to handle an HTTP request, by method, route template and status code.",
            labels=HTTP_LABELS,
        )
        bounds = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]
        for (method, route, status), series in list(self._series.items()):
            labels = (method, route, str(status))
            cumulative = list(accumulate(series.buckets))
            requests.add_metric(labels, cumulative[-1])
            latency.add_metric(labels, list(zip(bounds, cumulative, strict=True)), series.total)
        yield requests
        yield latency


HTTP_REQUEST_SERIES = HttpRequestCollector()
REGISTRY.register(HTTP_REQUEST_SERIES)


def http_request_metrics(method: str, route: str, status: int) -> RequestSeries:
    # Bounded: the known methods, the route templates and the statuses the API sends.
    return HTTP_REQUEST_SERIES.series(method if method in HTTP_METHODS else "OTHER", route, status)


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
    "Outbox messages settled by a relay, by template and outcome (sent, dropped, capped,"
    " retry, dead, lost; 'handled' for one asked for by an address and sent, dropped or"
    " capped).",
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
RATE_LIMIT_STORE_ERRORS = Counter(
    "rate_limit_store_errors_total",
    "Calls to the rate-limit store that failed because it could not be reached.",
)
