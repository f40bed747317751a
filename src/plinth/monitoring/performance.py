"""Model performance from delayed labels joined to prediction logs, over time windows.

Classification: accuracy, precision, recall and F1 (macro-averaged over the classes seen),
and ROC AUC when the logs hold class probabilities (requests made with output=proba).
Regression: MAE, RMSE and R². Metrics come from scikit-learn, computed on the labeled rows
only; coverage says how many of the window's predictions have a label.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from plinth.core.entities import PredictionLog
from plinth.core.errors import InvalidInput
from plinth.core.windows import Window
from plinth.monitoring.windows import Logged

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class PerformanceWindow:
    """Metrics of one window: predictions (rows), how many have labels, and the metrics."""

    start_ms: int | None
    end_ms: int | None
    predictions: int
    labeled: int
    metrics: dict[str, float | None] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        """Share of the window's predicted rows that have a label (0.0 when there are none)."""
        return self.labeled / self.predictions if self.predictions else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, coverage included."""
        return {**asdict(self), "coverage": self.coverage}


@dataclass(frozen=True, repr=False)
class PerformanceReport:
    """Performance of a model over a window, overall and per sub-window."""

    model: str
    task: Task
    overall: PerformanceWindow
    windows: tuple[PerformanceWindow, ...]

    def __repr__(self) -> str:
        return f"<PerformanceReport {self.model} {self.task}: {len(self.windows)} windows>"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "model": self.model,
            "task": self.task,
            "overall": self.overall.to_dict(),
            "windows": [w.to_dict() for w in self.windows],
        }


def performance(
    model: str,
    joined: Sequence[tuple[PredictionLog, str | None]],
    span: Window,
    *,
    task: Task | None = None,
) -> PerformanceReport:
    """Performance of `joined` (logs with their label JSON or None), overall and per part of `span`.

    Parts (`span.every_ms` long) are measured only when `span` has `every_ms`.

    Raises:
        InvalidInput: a label whose row count differs from its request's, or an unknown task.
    """
    times, predicted, truth = _rows(joined)
    return _measure(model, np.asarray(times, dtype=np.int64), predicted, truth, span, task)


def performance_of(
    model: str,
    logged: Logged,
    labels: Mapping[str, str],
    span: Window,
    *,
    task: Task | None = None,
) -> PerformanceReport:
    """`performance` of answered requests read as columns (`Logged.answered`), with the label
    JSON of the labeled ones by request id (`Store.window_labels`).

    Raises:
        InvalidInput: a label whose row count differs from its request's, or an unknown task.
    """
    rows = logged.prediction_rows()
    predicted = rows.outputs()
    ids, counts = logged.output_counts()
    truth = np.full(rows.table.num_rows, None, dtype=object)
    starts = np.cumsum(counts) - counts
    for i, request_id in enumerate(ids.tolist()):
        label = labels.get(request_id)
        if label is not None:
            values = _labels_of(request_id, label, int(counts[i]))
            for k, value in enumerate(values):
                truth[starts[i] + k] = value
    return _measure(model, rows.times, predicted, truth, span, task)


def _measure(
    model: str, times: np.ndarray, predicted: Any, truth: Any, span: Window, task: Task | None
) -> PerformanceReport:
    if task not in (None, "classification", "regression"):
        raise InvalidInput(f"task must be 'classification' or 'regression', not {task!r}.")
    labeled = np.array([t is not None for t in truth], dtype=bool)
    task = task or _guess_task(predicted, [t for t in truth if t is not None])
    overall = _window(span.start_ms, span.end_ms, predicted, truth, labeled, task)
    parts: list[PerformanceWindow] = []
    if span.every_ms is not None and len(times):
        for part in span.parts(int(times[0]), int(times[-1])):
            lo, hi = np.searchsorted(times, np.array([part.start_ms, part.end_ms], dtype=np.int64))
            parts.append(
                _window(part.start_ms, part.end_ms, predicted[lo:hi], truth[lo:hi], labeled[lo:hi], task)
            )
    return PerformanceReport(model, task, overall, tuple(parts))


def _rows(joined: Sequence[tuple[PredictionLog, str | None]]) -> tuple[list[int], list[Any], list[Any]]:
    """One entry per predicted row: its time, prediction and label (None when unlabeled)."""
    import orjson

    times: list[int] = []
    predicted: list[Any] = []
    truth: list[Any] = []
    for entry, label in joined:
        outputs = orjson.loads(entry.outputs)
        n = len(outputs)
        times.extend([entry.time_ms] * n)
        predicted.extend(outputs)
        truth.extend([None] * n if label is None else _labels_of(entry.request_id, label, n))
    return times, predicted, truth


def _labels_of(request_id: str, label: str, n: int) -> list[Any]:
    """A request's label JSON as one value per predicted row.

    Raises:
        InvalidInput: the label has another number of values than the request has predictions.
    """
    value = json.loads(label)
    if n == 1 and not (isinstance(value, list) and len(value) == 1):
        return [value]
    if isinstance(value, list) and len(value) == n:
        return value
    given = len(value) if isinstance(value, list) else 1
    raise InvalidInput(
        f"The label of request {request_id} has {given} value(s) but the request "
        f"predicted {n} rows; log one label per row."
    )


def _guess_task(predicted: Any, truth: list[Any]) -> Task:
    sample = [p for p in list(predicted[:1000]) if not isinstance(p, list | np.ndarray)] + truth[:1000]
    numbers = [v for v in sample if isinstance(v, float) and not isinstance(v, bool)]
    if numbers and any(not float(v).is_integer() for v in numbers):
        return "regression"
    return "classification"


def _window(
    start_ms: int | None,
    end_ms: int | None,
    predicted: Any,
    truth: Any,
    labeled: np.ndarray,
    task: Task,
) -> PerformanceWindow:
    count = len(predicted)
    hits = int(labeled.sum())
    if not hits:
        return PerformanceWindow(start_ms, end_ms, count, 0, {})
    index = np.flatnonzero(labeled)
    chosen = [predicted[i] for i in index]
    y_true = [truth[i] for i in index]
    metrics = _classification(chosen, y_true) if task == "classification" else _regression(chosen, y_true)
    return PerformanceWindow(start_ms, end_ms, count, hits, metrics)


def _classification(predicted: list[Any], truth: list[Any]) -> dict[str, float | None]:
    from sklearn import metrics

    rows = bool(predicted) and isinstance(predicted[0], list | np.ndarray)
    proba = np.asarray(predicted, dtype=np.float64) if rows else None
    y_pred = proba.argmax(axis=1) if proba is not None else np.asarray(predicted)
    y_true = np.asarray(truth)
    if y_pred.dtype.kind != y_true.dtype.kind and {y_pred.dtype.kind, y_true.dtype.kind} <= {
        "i",
        "u",
        "f",
        "b",
    }:
        y_pred, y_true = y_pred.astype(np.float64), y_true.astype(np.float64)
    elif y_pred.dtype.kind != y_true.dtype.kind:
        y_pred, y_true = y_pred.astype(str), y_true.astype(str)
    out: dict[str, float | None] = {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "precision": float(metrics.precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall": float(metrics.recall_score(y_true, y_pred, average="macro", zero_division=0)),
        "f1": float(metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "roc_auc": None,
    }
    if proba is not None:
        out["roc_auc"] = _auc(proba, y_true)
    return out


def _auc(proba: np.ndarray, y_true: np.ndarray) -> float | None:
    """ROC AUC from probability rows whose column i is class i (labels 0..k-1); None when undefined."""
    from sklearn import metrics

    if y_true.dtype.kind not in "iuf" or len(np.unique(y_true)) < 2:
        return None
    classes = y_true.astype(np.int64)
    if classes.min() < 0 or classes.max() >= proba.shape[1]:
        return None
    if proba.shape[1] == 2:
        return float(metrics.roc_auc_score(classes, proba[:, 1]))
    present = np.unique(classes)
    if len(present) < proba.shape[1]:
        return None  # one-vs-rest needs every class among the labels
    return float(metrics.roc_auc_score(classes, proba, multi_class="ovr"))


def _regression(predicted: list[Any], truth: list[Any]) -> dict[str, float | None]:
    from sklearn import metrics

    y_pred = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)[:, 0]
    y_true = np.asarray(truth, dtype=np.float64)
    return {
        "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, y_pred))),
        "r2": float(metrics.r2_score(y_true, y_pred)) if len(y_true) > 1 else None,
    }
