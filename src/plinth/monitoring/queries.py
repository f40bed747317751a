"""The monitoring questions as functions of a store: what `plinth.drift` and friends compute.

On an embedded or SQL store the public functions (`plinth.monitoring.api`) call these in the
process; through a team server they ask the server, which calls these same functions on its
own store (`plinth.server.compute_routes`), so raw prediction logs never leave it.
"""

from __future__ import annotations

from plinth.core.windows import Window
from plinth.monitoring import ops as _ops
from plinth.monitoring import performance as _performance
from plinth.monitoring import served
from plinth.monitoring.drift import DriftThresholds
from plinth.store.base import Store


def drift(
    store: Store,
    model: str,
    window: Window,
    version: int | None = None,
    target: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> served.ModelDrift:
    """Drift of `model`'s logged requests in `window` against its reference."""
    return served.model_drift(store, model, window, version=version, target=target, thresholds=thresholds)


def drift_over_time(
    store: Store,
    model: str,
    window: Window,
    version: int | None = None,
    target: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> list[served.ModelDrift]:
    """`drift` per part of `window` (default parts of 1h); parts without requests are left out."""
    span = window if window.every_ms is not None else window.cut("1h")
    return served.drift_over_time(store, model, span, version=version, target=target, thresholds=thresholds)


def performance(
    store: Store,
    model: str,
    window: Window,
    version: int | None = None,
    task: _performance.Task | None = None,
) -> _performance.PerformanceReport:
    """Quality of `model`'s answered requests in `window` against their delayed labels."""
    name, version = served.named_version(store, model, version)
    logged = served.answered(store, name, window, version)
    labels = store.window_labels(name, since_ms=window.start_ms, until_ms=window.end_ms, version=version)
    return _performance.performance_of(name, logged, labels, window, task=task)


def operations(store: Store, model: str, window: Window) -> _ops.OpsReport:
    """Requests, errors, latency and batch sizes of `model` in `window`."""
    stats = store.prediction_stats(model, since_ms=window.start_ms, until_ms=window.end_ms)
    return _ops.operations(model, stats, window)
