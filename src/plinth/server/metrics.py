"""Prometheus metrics of the team server: requests per route and status, latency per route.

The latency histogram is labelled by route template (`/api/v1/runs/{run_id}`), never by the
raw path, so ids do not multiply the series. Next to it `/metrics` shows the 50th, 95th and
99th percentile of each route and of all routes together (`route="*"`), estimated from the
buckets, so a benchmark reads the server's own p99 without a Prometheus in between. With
several worker processes (PROMETHEUS_MULTIPROC_DIR set, as `plinth server --workers N` does),
every process's numbers are summed.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as mp
from prometheus_client.metrics_core import Metric

LATENCY = "plinth_server_request_latency_seconds"
QUANTILES = (0.5, 0.95, 0.99)
BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class ServerMetrics:
    """The counters and histograms of one app (its own registry, so apps never share numbers)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "plinth_server_requests",
            "Requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            LATENCY,
            "Time to answer a request, by route template",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            with self._lock:
                children = (self.requests.labels(route, method, str(status)), self.latency.labels(route))
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition, with the latency percentiles appended."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
        else:
            registry = self.registry
        families = list(registry.collect())
        return generate_latest(registry) + percentile_text(families)


def percentile_text(families: Iterable[Metric]) -> bytes:
    """`plinth_server_request_latency_quantile_seconds{route,quantile}` lines for `families`."""
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in families:
        if family.name != LATENCY:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[sample.labels["route"]][bound] += sample.value
                buckets["*"][bound] += sample.value
    name = "plinth_server_request_latency_quantile_seconds"
    lines = [
        f"# HELP {name} Latency percentiles estimated from {LATENCY} (route * is every route)",
        f"# TYPE {name} gauge",
    ]
    for route in sorted(buckets):
        for q in QUANTILES:
            value = quantile(buckets[route], q)
            if value is not None:
                lines.append(f'{name}{{route="{_escape(route)}",quantile="{q}"}} {value:.6g}')
    return ("\n".join(lines) + "\n").encode()


def quantile(cumulative: Mapping[float, float], q: float) -> float | None:
    """The `q` quantile of a histogram given as cumulative counts per upper bound (`le`).

    Linear within the bucket that holds it, as Prometheus' `histogram_quantile` does; the
    highest finite bound when it falls in the +Inf bucket; None for an empty histogram.

    Example:
        >>> quantile({0.1: 50, 0.2: 100, float("inf"): 100}, 0.75)
        0.15
    """
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
