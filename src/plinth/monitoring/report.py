"""A monitoring report of a served model: drift, predictions, performance and operations over time.

`build_report` gathers everything from a store into a `Report`; `render_html` (in
plinth.monitoring.report_html) draws it as one self-contained HTML page with plotly charts;
`write_html` writes that page atomically; `report` does it all on the default backend.

Sections that have nothing to show (no reference dataset, no labels yet) carry a note instead
of a chart; only a window without any prediction log is an error.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import tempfile
from dataclasses import dataclass
from typing import Literal

import numpy as np

from plinth.core.errors import InvalidInput, NotFound
from plinth.core.ids import now_ms
from plinth.core.windows import Moment, Period, Window, as_window, format_period, period_ms
from plinth.monitoring import ops as _ops
from plinth.monitoring import performance as _performance
from plinth.monitoring import served
from plinth.monitoring.drift import (
    CategoricalReference,
    ColumnReference,
    DriftThresholds,
    NumericReference,
    reference_from_profile,
)
from plinth.monitoring.report_html import render_html
from plinth.monitoring.windows import Logged, OpsColumns
from plinth.store.base import ServerSide, Store
from plinth.tracking.context import backend

__all__ = ["PredictionDistribution", "Report", "build_report", "choose_every", "render_html", "report"]

EVERY_CHOICES = (
    "1m",
    "5m",
    "10m",
    "15m",
    "30m",
    "1h",
    "2h",
    "3h",
    "6h",
    "12h",
    "1d",
    "2d",
    "7d",
    "14d",
    "30d",
)
"""Window lengths `build_report` picks from when `every` is not given."""

MAX_WINDOWS = 48
MAX_CLASSES = 50
"""Predictions with more distinct values than this are drawn as a histogram, not as classes."""

HISTOGRAM_BINS = 30


@dataclass(frozen=True)
class PredictionDistribution:
    """The window's predictions next to the reference's target column.

    Attributes:
        kind: "classes" (bar per class or per reference bucket) or "values" (histogram).
        target: The reference column compared with, or None without a reference target.
        rows: Predicted rows in the window.
        labels: kind "classes": the classes, or the reference's buckets (its categories, or
            its quantile bins when the target was profiled as a number).
        current: Shares per label ("classes"), or densities per bin of `edges` ("values").
        reference: The reference's shares per label, or densities per bin of
            `reference_edges`; None without a reference target.
        edges: kind "values": the current histogram's bin edges.
        reference_edges: kind "values": the reference's quantile bin edges.
        binned: kind "classes": `labels` are the reference's quantile bins, as the target was
            profiled as a number.
    """

    kind: Literal["classes", "values"]
    target: str | None
    rows: int
    labels: tuple[str, ...] = ()
    current: tuple[float, ...] = ()
    reference: tuple[float, ...] | None = None
    edges: tuple[float, ...] = ()
    reference_edges: tuple[float, ...] = ()
    binned: bool = False


@dataclass(frozen=True)
class Report:
    """Everything a monitoring report shows, gathered from the store.

    Attributes:
        model: The model's name.
        span: The window asked for.
        every: Length of the windows the charts are drawn over.
        generated_ms: When the report was built.
        versions: Model versions with requests in the window.
        drift: Drift over the whole window, or None (see `drift_note`).
        drift_windows: Drift per window of `every` (windows without answered requests left out).
        drift_note: Why there is no drift (no reference dataset, no answered request), or None.
        predictions: The predictions' distribution, or None when no request was answered.
        performance: Metrics over the window and per window, with label coverage.
        operations: Requests, errors and latency overall and per version.
        traffic: Requests, errors and latency per window, all versions together.
    """

    model: str
    span: Window
    every: str
    generated_ms: int
    versions: tuple[int, ...]
    drift: served.ModelDrift | None
    drift_windows: tuple[served.ModelDrift, ...]
    drift_note: str | None
    predictions: PredictionDistribution | None
    performance: _performance.PerformanceReport
    operations: _ops.OpsReport
    traffic: tuple[_ops.OpsWindow, ...]

    @property
    def reference(self) -> str | None:
        """The reference dataset version ('NAME/N'), or None."""
        return self.drift.reference if self.drift else None


def report(
    model: str,
    *,
    window: Window | None = None,
    since: Period | None = None,
    start: Moment = None,
    end: Moment = None,
    every: Period | None = None,
    html: str | os.PathLike[str] | None = None,
) -> Report:
    """Build the monitoring report of `model` on the default backend, and write it as HTML.

    `window` (a `Window`), or `since` ('7d') or `start`/`end`, choose the window (default: every
    log); its `every` ('1h') the length of the charts' windows (default: chosen for 12 to 48
    windows over the logs).

    Raises:
        InvalidInput: a bad window or period, or no prediction log of `model` in the window.

    Example:
        >>> plinth.monitoring_report("iris-clf", since="7d", html="report.html")  # doctest: +SKIP
    """
    span = as_window(window, since=since, start=start, end=end, every=every)
    store = backend().store
    if isinstance(store, ServerSide):  # computed where the logs are (see plinth.store.base.ServerSide)
        found: Report = store.compute("report", Report, {"model": model, "span": span})
    else:
        found = build_report(store, model, span)
    if html is not None:
        write_html(found, html)
    return found


def build_report(
    store: Store,
    model: str,
    span: Window,
    *,
    target: str | None = None,
    thresholds: DriftThresholds | None = None,
) -> Report:
    """Gather drift, predictions, performance and operations of `model` in `span` from `store`.

    Args:
        store: The metadata store holding the prediction logs and labels.
        model: The served model's name.
        span: The window to report on; its `every_ms` is the length of the charts' windows
            (default `choose_every` over the logs).
        target: The reference column the predictions are compared with (default: the
            reference's one column that is not a model input).
        thresholds: The drift rule; default `DriftThresholds()`.

    Raises:
        InvalidInput: no prediction log of `model` in `span`.
    """
    logged = Logged.read(store, model, span).unshadowed()  # the one read of the window's logs
    if not logged.requests:
        raise InvalidInput(
            f"No prediction logs of {model!r} in {span.describe()}; widen the window "
            "(e.g. --since 30d) or check the model name with `plinth models list`."
        )
    stats = logged.ops()
    first, last = int(stats.times[0]), int(stats.times[-1])
    step = span.every_ms or period_ms(choose_every(first, last))
    charts = chart_span(span, first, last, step)
    answered = logged.answered()
    whole, parts, note = _drift(store, model, span, charts, answered, target, thresholds)
    labels = store.window_labels(model, since_ms=span.start_ms, until_ms=span.end_ms)
    return Report(
        model=model,
        span=span,
        every=format_period(step),
        generated_ms=now_ms(),
        versions=tuple(sorted(logged.versions())),
        drift=whole,
        drift_windows=parts,
        drift_note=note,
        predictions=_predictions(store, answered, whole),
        performance=_performance.performance_of(model, answered, labels, charts),
        operations=_ops.operations_of(model, stats, Window(charts.start_ms, charts.end_ms)),
        traffic=_all_versions(model, stats, charts),
    )


def write_html(found: Report, path: str | os.PathLike[str]) -> str:
    """Write the report's HTML page to `path` atomically (a temporary file, then a rename).

    Returns:
        The path written.

    Raises:
        InvalidInput: the folder of `path` does not exist.
    """
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise InvalidInput(f"Cannot write {target!r}: the folder {folder!r} does not exist; create it first.")
    page = render_html(found).encode("utf-8")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(page)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return target


def choose_every(first_ms: int, last_ms: int) -> str:
    """The shortest of `EVERY_CHOICES` that covers first_ms..last_ms in at most 48 windows."""
    for choice in EVERY_CHOICES:
        step = period_ms(choice)
        if (_ceil(last_ms + 1, step) - _floor(first_ms, step)) // step <= MAX_WINDOWS:
            return choice
    return EVERY_CHOICES[-1]


def chart_span(span: Window, first_ms: int, last_ms: int, step: int) -> Window:
    """The part of `span` the logs fall in, widened to whole windows of `step` and cut into them."""
    start = max(_floor(first_ms, step), span.start_ms if span.start_ms is not None else first_ms)
    end = min(
        _ceil(last_ms + 1, step), span.end_ms if span.end_ms is not None else max(now_ms(), last_ms + 1)
    )
    return Window(start, end, step)


def _drift(
    store: Store,
    model: str,
    span: Window,
    charts: Window,
    answered: Logged,
    target: str | None,
    thresholds: DriftThresholds | None,
) -> tuple[served.ModelDrift | None, tuple[served.ModelDrift, ...], str | None]:
    """Drift over the whole window and per window, or the reason there is none."""
    try:
        whole = served.drift_of(store, model, span, answered, None, target, thresholds)
        inside = answered.between(charts.start_ms, charts.end_ms)
        parts = served.drift_parts(store, model, charts, inside, None, target, thresholds)
    except (NotFound, InvalidInput) as exc:  # no reference, no answered request: the report says so
        return None, (), str(exc)
    return whole, tuple(parts), None


def _predictions(
    store: Store, answered: Logged, drift: served.ModelDrift | None
) -> PredictionDistribution | None:
    """The distribution of the window's predictions, against the reference's target when known."""
    if not answered.requests:
        return None
    predicted = answered.predictions()
    reference: ColumnReference | None = None
    target = drift.report.prediction.name if drift and drift.report.prediction else None
    if drift is not None and target is not None:
        profile = served.find_dataset(store, drift.reference).profile
        reference = reference_from_profile(profile).columns.get(target)
    return prediction_distribution(predicted, reference)


def prediction_distribution(
    predicted: np.ndarray, reference: ColumnReference | None
) -> PredictionDistribution:
    """Bars per class (or per reference bucket) for classes, a histogram for values."""
    if isinstance(reference, CategoricalReference):
        return _by_category(predicted, reference)
    numeric = reference if isinstance(reference, NumericReference) and reference.edges.size >= 2 else None
    if _discrete(predicted):
        return _by_bucket(predicted, numeric) if numeric is not None else _classes(predicted)
    return _histogram(predicted, numeric)


def _discrete(predicted: np.ndarray) -> bool:
    if predicted.dtype.kind not in "iuf":
        return True
    values = predicted[np.isfinite(predicted)] if predicted.dtype.kind == "f" else predicted
    if not values.size or not np.all(values == np.round(values)):
        return False
    return len(np.unique(values)) <= MAX_CLASSES


def _classes(predicted: np.ndarray) -> PredictionDistribution:
    values = predicted if predicted.dtype.kind in "iufb" else predicted.astype(str)
    labels, counts = np.unique(values, return_counts=True)
    return PredictionDistribution(
        "classes", None, len(predicted), tuple(_text(x) for x in labels.tolist()), _shares(counts)
    )


def _by_category(predicted: np.ndarray, reference: CategoricalReference) -> PredictionDistribution:
    slot_of = {category: i for i, category in enumerate(reference.categories)}
    other = len(reference.categories)
    counts = np.zeros(other + 1, dtype=np.int64)
    for value in predicted.tolist():
        counts[slot_of.get(_text(value), other)] += 1
    keep = slice(None) if counts[-1] or reference.counts[-1] else slice(0, other)
    labels = (*reference.categories, "other")[keep]
    return PredictionDistribution(
        "classes",
        reference.name,
        len(predicted),
        labels,
        _shares(counts[keep]),
        _shares(reference.counts[keep]),
        binned=True,
    )


def _by_bucket(predicted: np.ndarray, reference: NumericReference) -> PredictionDistribution:
    edges = reference.edges
    values = np.sort(predicted.astype(np.float64))
    values = values[~np.isnan(values)]
    positions = np.concatenate(
        (
            [0],
            np.searchsorted(values, edges[:-1], side="left"),
            [np.searchsorted(values, edges[-1], side="right"), values.size],
        )
    )
    counts = np.diff(positions)
    names = [f"< {edges[0]:g}"]
    names += [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(edges[:-1])]
    names += [f"[{edges[-2]:g}, {edges[-1]:g}]", f"> {edges[-1]:g}"]
    keep = [i for i in range(len(names)) if i not in (0, len(names) - 1) or counts[i] or reference.counts[i]]
    return PredictionDistribution(
        "classes",
        reference.name,
        len(predicted),
        tuple(names[i] for i in keep),
        _shares(counts[keep]),
        _shares(reference.counts[keep]),
        binned=True,
    )


def _histogram(predicted: np.ndarray, reference: NumericReference | None) -> PredictionDistribution:
    values = predicted.astype(np.float64)
    values = values[np.isfinite(values)]
    bounds = [values.min(), values.max()] if values.size else [0.0, 1.0]
    if reference is not None:
        bounds += [reference.edges[0], reference.edges[-1]]
    low, high = float(min(bounds)), float(max(bounds))
    if low == high:
        low, high = low - 0.5, high + 0.5
    density, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(low, high), density=bool(values.size))
    ref_density: tuple[float, ...] | None = None
    ref_edges: tuple[float, ...] = ()
    if reference is not None and reference.count:
        widths = np.diff(reference.edges)
        inner = reference.counts[1:-1] / reference.count
        ref_density = tuple(
            float(x) for x in np.where(widths > 0, inner / np.where(widths > 0, widths, 1), 0.0)
        )
        ref_edges = tuple(float(x) for x in reference.edges)
    return PredictionDistribution(
        "values",
        reference.name if reference is not None else None,
        len(predicted),
        current=tuple(float(x) for x in density),
        reference=ref_density,
        edges=tuple(float(x) for x in edges),
        reference_edges=ref_edges,
    )


def _all_versions(model: str, stats: OpsColumns, charts: Window) -> tuple[_ops.OpsWindow, ...]:
    """Operations per window with all versions together (`operations` splits windows by version)."""
    merged = dataclasses.replace(stats, versions=np.zeros_like(stats.versions))
    windows = _ops.operations_of(model, merged, charts).windows
    return tuple(dataclasses.replace(w, version=None) for w in windows)


def _shares(counts: np.ndarray) -> tuple[float, ...]:
    total = counts.sum()
    return tuple(float(c / total) if total else 0.0 for c in counts)


def _text(value: object) -> str:
    """A class as text, as the dataset profile writes it (1.0 as '1' when it is a whole number)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _floor(ms: int, step: int) -> int:
    return ms - ms % step


def _ceil(ms: int, step: int) -> int:
    return -(-ms // step) * step
