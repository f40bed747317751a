"""Monitoring functions on the default backend (what `plinth.drift` and friends call)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.core.entities import DatasetVersion
from plinth.core.refs import ModelRef
from plinth.core.windows import Moment, Period, Window, as_window
from plinth.monitoring import labels as _labels
from plinth.monitoring import ops as _ops
from plinth.monitoring import performance as _performance
from plinth.monitoring import served
from plinth.monitoring.drift import DriftThresholds
from plinth.tracking.context import backend

if TYPE_CHECKING:
    from plinth.monitoring.report import Report


def drift(
    model: str,
    *,
    window: Window | None = None,
    since: Period | None = None,
    start: Moment = None,
    end: Moment = None,
    version: int | None = None,
    target: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> served.ModelDrift:
    """Drift of a served model's logged inputs and predictions against its training data.

    `window` (a `Window`), or `since` ('1h', '7d') or `start`/`end`, choose the window (default:
    all logs); `version` limits it to one model version. The reference is the training
    dataset's profile (through lineage) unless `set_reference` chose another.
    """
    store = backend().store
    span = as_window(window, since=since, start=start, end=end)
    return served.model_drift(store, model, span, version=version, target=target, thresholds=thresholds)


def drift_over_time(
    model: str,
    *,
    window: Window | None = None,
    every: Period | None = None,
    since: Period | None = None,
    start: Moment = None,
    end: Moment = None,
    version: int | None = None,
    target: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> list[served.ModelDrift]:
    """`drift` per consecutive part of the window, `every` long (default 1h); parts without
    requests are left out."""
    store = backend().store
    span = as_window(window, since=since, start=start, end=end, every=every)
    if span.every_ms is None:
        span = span.cut("1h")
    return served.drift_over_time(store, model, span, version=version, target=target, thresholds=thresholds)


def set_reference(model: str, dataset: str | DatasetVersion) -> DatasetVersion:
    """Compare `model` with this dataset version ('NAME/N') from now on, instead of its training data."""
    store = backend().store
    found = served.reference_ref(store, model, dataset)
    store.set_reference(model, found.id)
    return found


def log_labels(model: str, labels: _labels.LabelInput) -> int:
    """Store delayed labels: {request_id: label}, (request_id, label[, subject_id]) items or a DataFrame."""
    return _labels.log_labels(backend().store, model, labels)


def performance(
    model: str | ModelRef,
    *,
    window: Window | None = None,
    since: Period | None = None,
    start: Moment = None,
    end: Moment = None,
    every: Period | None = None,
    version: int | None = None,
    task: _performance.Task | None = None,
) -> _performance.PerformanceReport:
    """Accuracy/precision/recall/F1/ROC AUC or MAE/RMSE/R² on labeled predictions, with coverage.

    `model` is a name (every version, or `version=`) or a reference to one version ('churn/3',
    'churn@champion'). Measured over the whole window, and per part when the window has `every`.
    """
    store = backend().store
    name, version = served.named_version(store, model, version)
    span = as_window(window, since=since, start=start, end=end, every=every)
    logged = served.answered(store, name, span, version)
    labels = store.window_labels(name, since_ms=span.start_ms, until_ms=span.end_ms, version=version)
    return _performance.performance_of(name, logged, labels, span, task=task)


def operations(
    model: str,
    *,
    window: Window | None = None,
    since: Period | None = None,
    start: Moment = None,
    end: Moment = None,
    every: Period | None = None,
) -> _ops.OpsReport:
    """Requests, errors, latency percentiles, throughput and batch sizes, per version and part."""
    store = backend().store
    span = as_window(window, since=since, start=start, end=end, every=every)
    stats = store.prediction_stats(model, since_ms=span.start_ms, until_ms=span.end_ms)
    return _ops.operations(model, stats, span)


def monitoring_report(
    model: str,
    *,
    window: Window | None = None,
    since: Period | None = None,
    start: Moment = None,
    end: Moment = None,
    every: Period | None = None,
    html: str | None = None,
) -> Report:
    """The monitoring report of a model (drift, predictions, performance, latency); `html=` writes it."""
    from plinth.monitoring.report import report  # Plotly's page writer loads with the first report

    return report(model, window=window, since=since, start=start, end=end, every=every, html=html)
