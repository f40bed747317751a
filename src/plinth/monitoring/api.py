"""Monitoring functions on the default backend (what `plinth.drift` and friends call)."""

from __future__ import annotations

from typing import Any

from plinth.core.entities import DatasetVersion
from plinth.monitoring import labels as _labels
from plinth.monitoring import ops as _ops
from plinth.monitoring import performance as _performance
from plinth.monitoring import served
from plinth.monitoring.drift import DriftThresholds
from plinth.monitoring.windows import Moment, window
from plinth.tracking.context import backend


def drift(
    model: str,
    *,
    since: str | float | None = None,
    start: Moment = None,
    end: Moment = None,
    version: int | None = None,
    target: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> served.ModelDrift:
    """Drift of a served model's logged inputs and predictions against its training data.

    `since` ('1h', '7d') or `start`/`end` choose the window (default: all logs); `version`
    limits it to one model version. The reference is the training dataset's profile (through
    lineage) unless `set_reference` chose another.
    """
    store = backend().store
    return served.model_drift(
        store, model, window(since, start, end), version=version, target=target, thresholds=thresholds
    )


def drift_over_time(
    model: str,
    *,
    every: str | float = "1h",
    since: str | float | None = None,
    start: Moment = None,
    end: Moment = None,
    version: int | None = None,
    target: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> list[served.ModelDrift]:
    """`drift` per consecutive window of length `every` (windows without requests left out)."""
    store = backend().store
    span = window(since, start, end)
    return served.drift_over_time(
        store, model, span, every, version=version, target=target, thresholds=thresholds
    )


def set_reference(model: str, dataset: str | DatasetVersion) -> DatasetVersion:
    """Compare `model` with this dataset version ('NAME/N') from now on, instead of its training data."""
    store = backend().store
    found = served.reference_ref(store, model, dataset)
    store.set_reference(model, found.id)
    return found


def log_labels(model: str, labels: Any) -> int:
    """Store delayed labels: {request_id: label}, (request_id, label[, subject_id]) items or a DataFrame."""
    return _labels.log_labels(backend().store, model, labels)


def performance(
    model: str,
    *,
    since: str | float | None = None,
    start: Moment = None,
    end: Moment = None,
    every: str | float | None = None,
    version: int | None = None,
    task: _performance.Task | None = None,
) -> _performance.PerformanceReport:
    """Accuracy/precision/recall/F1/ROC AUC or MAE/RMSE/R² on labeled predictions, with coverage."""
    store = backend().store
    span = window(since, start, end)
    joined = store.labeled_predictions(model, since_ms=span.start_ms, until_ms=span.end_ms, version=version)
    return _performance.performance(model, joined, span, every=every, task=task)


def operations(
    model: str,
    *,
    since: str | float | None = None,
    start: Moment = None,
    end: Moment = None,
    every: str | float | None = None,
) -> _ops.OpsReport:
    """Requests, errors, latency percentiles, throughput and batch sizes, per version and window."""
    store = backend().store
    span = window(since, start, end)
    stats = store.prediction_stats(model, since_ms=span.start_ms, until_ms=span.end_ms)
    return _ops.operations(model, stats, span, every=every)


def monitoring_report(
    model: str,
    *,
    since: str | float | None = None,
    start: Moment = None,
    end: Moment = None,
    every: str | None = None,
    html: str | None = None,
) -> Any:
    """The monitoring report of a model (drift, predictions, performance, latency); `html=` writes it."""
    from plinth.monitoring.report import report

    return report(model, since=since, start=start, end=end, every=every, html=html)
