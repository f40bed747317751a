"""The monitoring report inline: the same summary and sections as its HTML page, drawn without script.

`plinth.monitoring_report(model, html=...)` writes a page with plotly charts, which a notebook
that is not trusted would not run (and an iframe of it would carry its script). This view shows
the same content with the notebook's own tables and SVG: the summary, drift per feature (and
per window), the predictions' distribution against the training target, performance from
labels, and operations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.monitoring.report_html import by_drift
from plinth.notebook import links, svg
from plinth.notebook.html import (
    esc,
    head,
    heading,
    kv,
    link,
    muted,
    number,
    percent,
    when,
)
from plinth.notebook.monitoring import (
    drift_over_time_body,
    feature_table,
    operations_body,
    performance_body,
    psi_chart,
)
from plinth.notebook.style import document

if TYPE_CHECKING:
    from plinth.monitoring.report import PredictionDistribution, Report


def report_html(report: Report) -> str:
    """A monitoring report: summary, drift, predictions, performance and operations."""
    title = head(
        f'<span class="title">monitoring report: {esc(report.model)}</span>',
        f'<span class="muted">{esc(report.span.describe())} (UTC), '
        f"generated {when(report.generated_ms)}</span>",
    )
    sections = [
        title,
        _summary(report),
        heading("Drift per feature") + _drift(report),
        heading("Prediction distribution") + _predictions(report.predictions, report.reference),
        heading("Performance") + performance_body(report.performance),
        heading("Operations")
        + operations_body(report.operations.overall, report.operations.versions, report.traffic),
        muted(f"The interactive page: plinth.monitoring_report({report.model!r}, html='report.html')."),
    ]
    drifted = report.drift.drifted_features if report.drift else []
    return document("monitoring-report", "".join(sections), model=report.model, drifted=",".join(drifted))


def _summary(report: Report) -> str:
    ops = report.operations.overall
    return kv(
        [
            ("Model", esc(report.model)),
            ("Versions seen", ", ".join(str(v) for v in report.versions) or "none"),
            ("Window", f"{esc(report.span.describe())} (charts per {esc(report.every)})"),
            ("Reference dataset", _reference(report)),
            ("Requests", f"{ops.requests:,} ({ops.rows:,} rows predicted)"),
            ("Drifted features", _drifted(report)),
            *_headline(report),
            (
                "p99 latency",
                f"{number(ops.latency_p99_ms)} ms" if ops.latency_p99_ms is not None else "not measured",
            ),
            ("Error rate", f"{percent(ops.error_rate)} ({ops.errors:,} errors)"),
        ]
    )


def _reference(report: Report) -> str:
    if report.drift is None:
        return "none (no drift or distribution comparison)"
    how = "training data, through lineage" if report.drift.reference_source == "lineage" else "set_reference"
    return f"{link(esc(report.drift.reference), links.dataset_url(report.drift.reference))} ({how})"


def _drifted(report: Report) -> str:
    if report.drift is None:
        return "unknown: no drift reference"
    names = [f.name for f in by_drift(report.drift.report.features) if f.drifted]
    text = _names(names) + " over the whole window"
    if report.drift_windows:
        latest = report.drift_windows[-1]
        moved = [f.name for f in by_drift(latest.report.features) if f.drifted]
        text += f"; {_names(moved)} in the latest window ({when(latest.window.start_ms)})"
    return text


def _names(names: list[str]) -> str:
    return f'<span class="bad">{esc(", ".join(names))}</span>' if names else "none"


def _headline(report: Report) -> list[tuple[str, str]]:
    perf = report.performance
    key, label = ("rmse", "RMSE") if perf.task == "regression" else ("accuracy", "Accuracy")
    coverage = ("Label coverage", f"{percent(perf.overall.coverage)} ({perf.overall.labeled:,} labeled)")
    if not perf.overall.labeled:
        return [(label, "no labels yet"), coverage]
    return [(label, f"{number(perf.overall.metrics.get(key))} over the whole window"), coverage]


def _drift(report: Report) -> str:
    if report.drift is None:
        return muted(f"No drift: {report.drift_note or 'no reference'}")
    found = report.drift.report
    out = psi_chart(found) + feature_table(found)
    if len(report.drift_windows) > 1:
        out += heading(f"Over {len(report.drift_windows)} windows of {report.every}")
        out += drift_over_time_body(report.drift_windows)
    return out


def _predictions(found: PredictionDistribution | None, reference: str | None) -> str:
    if found is None:
        return muted("No answered predictions in this window.")
    against = f", against {found.target} in {reference} (grey)" if found.target and reference else ""
    note = muted(f"{found.rows:,} predicted rows{against}.")
    if found.kind == "classes":
        return note + svg.bars(
            list(found.labels),
            list(found.current),
            reference=list(found.reference) if found.reference is not None else None,
            label="share of rows per class",
        )
    current = svg.histogram(
        found.edges, found.current, densities=True, width=420, height=80, label="predictions"
    )
    if found.reference is None:
        return note + current
    past = svg.histogram(
        found.reference_edges, found.reference, densities=True, width=420, height=80, label="reference"
    )
    return note + current + muted("Reference:") + past
