"""The HTTP request series: Prometheus' histogram semantics from plain counters."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from entrypoints.metrics import LATENCY_BUCKETS, HttpRequestCollector

Labels = frozenset[tuple[str, str]]


def exposition(collector: HttpRequestCollector) -> dict[tuple[str, Labels], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, Labels], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_buckets_are_cumulative_and_the_count_is_the_last_one() -> None:
    collector = HttpRequestCollector()
    series = collector.series("GET", "/api/v1/users/", 200)
    for seconds in (0.0005, 0.001, 0.003, 0.2, 20.0):
        series.record(seconds)

    samples = exposition(collector)

    labels = {"method": "GET", "route": "/api/v1/users/", "status": "200"}

    def bucket(le: str) -> float:
        return value(samples, "http_request_duration_seconds_bucket", **labels, le=le)

    assert bucket("0.001") == 2  # an observation on a bound counts in that bound's bucket
    assert bucket("0.0025") == 2
    assert bucket("0.005") == 3
    assert bucket("0.25") == 4
    assert bucket("10.0") == 4
    assert bucket("+Inf") == 5
    assert value(samples, "http_request_duration_seconds_count", **labels) == 5
    assert value(samples, "http_request_duration_seconds_sum", **labels) == pytest.approx(20.2045)
    assert value(samples, "http_requests_total", **labels) == 5
    buckets = [name for name, _ in samples if name == "http_request_duration_seconds_bucket"]
    assert len(buckets) == len(LATENCY_BUCKETS) + 1


def test_each_label_set_is_one_series() -> None:
    collector = HttpRequestCollector()
    assert collector.series("GET", "/x", 200) is collector.series("GET", "/x", 200)
    collector.series("GET", "/x", 404).record(0.01)

    samples = exposition(collector)

    assert value(samples, "http_requests_total", method="GET", route="/x", status="404") == 1
    assert value(samples, "http_requests_total", method="GET", route="/x", status="200") == 0
