"""Prometheus metrics of the server: requests, errors, latency, batch sizes, lost logs, failed writes.

With several worker processes, set PROMETHEUS_MULTIPROC_DIR (plinth serve does) and every
process's numbers are summed on /metrics.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as mp

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)


class Metrics:
    """The server's counters and histograms, labelled by model and version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "plinth_requests",
            "Prediction requests answered",
            ["model", "version", "route", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "plinth_request_latency_seconds",
            "Time to answer a prediction request",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "plinth_batch_rows",
            "Rows per predict call",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.dropped_logs = Counter(
            "plinth_prediction_logs_dropped",
            "Prediction logs not written: dropped with the queue full or refused by the store",
            registry=self.registry,
        )
        self.write_failures = Counter(
            "plinth_write_failures",
            "Failed writes to the store from the server's background writers",
            ["writer"],
            registry=self.registry,
        )
        self.auth_refusals = Counter(
            "plinth_auth_refusals",
            "Requests refused for their token: 401 none or bad, 403 no right, 429 backing off",
            ["code"],
            registry=self.registry,
        )
        self.swaps = Counter(
            "plinth_model_swaps", "Alias moves served", ["model", "outcome"], registry=self.registry
        )

    def render(self) -> bytes:
        """The Prometheus text exposition (all worker processes when multiprocess mode is on)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            combined = CollectorRegistry()
            mp.MultiProcessCollector(combined)
            return generate_latest(combined)
        return generate_latest(self.registry)
