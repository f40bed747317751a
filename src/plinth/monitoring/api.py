"""Monitoring functions on the default backend (what `plinth.drift` and friends call)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plinth.core.entities import DatasetVersion
from plinth.core.refs import ModelRef
from plinth.core.windows import Moment, Period, Window, as_window
from plinth.monitoring import labels as _labels
from plinth.monitoring import ops as _ops
from plinth.monitoring import performance as _performance
from plinth.monitoring import queries, served
from plinth.monitoring.drift import DriftThresholds
from plinth.store.base import ServerSide
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
    args: dict[str, Any] = {
        "model": model,
        "window": span,
        "version": version,
        "target": target,
        "thresholds": thresholds,
    }
    if isinstance(store, ServerSide):
        found: served.ModelDrift = store.compute("drift", served.ModelDrift, args)
        return found
    return queries.drift(store, **args)


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
    args: dict[str, Any] = {
        "model": model,
        "window": span,
        "version": version,
        "target": target,
        "thresholds": thresholds,
    }
    if isinstance(store, ServerSide):
        parts: list[served.ModelDrift] = store.compute("drift_over_time", list[served.ModelDrift], args)
        return parts
    return queries.drift_over_time(store, **args)


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
    span = as_window(window, since=since, start=start, end=end, every=every)
    args: dict[str, Any] = {"model": str(model), "window": span, "version": version, "task": task}
    if isinstance(store, ServerSide):
        quality: _performance.PerformanceReport = store.compute(
            "performance", _performance.PerformanceReport, args
        )
        return quality
    return queries.performance(store, **args)


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
    if isinstance(store, ServerSide):
        ops: _ops.OpsReport = store.compute("operations", _ops.OpsReport, {"model": model, "window": span})
        return ops
    return queries.operations(store, model, span)


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
