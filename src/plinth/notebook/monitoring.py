"""Notebook views of monitoring results: drift, drift over time, performance and operations.

Drift reads most-moved first, as in the HTML report (`plinth.monitoring.report_html.by_drift`):
drifted features lead, each group by PSI, highest first, in the table and in the bar chart of
PSI beside it. Results over time draw one sparkline per feature or metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from plinth.monitoring.report_html import by_drift
from plinth.notebook import links, svg
from plinth.notebook.html import (
    Table,
    badge,
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
from plinth.notebook.style import document

if TYPE_CHECKING:
    from plinth.monitoring.drift import DriftReport, FeatureDrift
    from plinth.monitoring.ops import OpsReport, OpsWindow
    from plinth.monitoring.performance import PerformanceReport
    from plinth.monitoring.served import ModelDrift

CHARTED = 12
"""Features the PSI bar chart draws (the most moved); the table lists every one."""


def feature_table(report: DriftReport) -> str:
    """One row per feature, drifted first then by PSI, the predictions column last."""
    headers = (
        "feature",
        "status",
        "PSI",
        "JS",
        "p-value",
        "test",
        "missing (ref → now)",
        "unseen",
        "reasons",
    )
    table = Table(headers, numeric=frozenset({2, 3, 4, 7}), name="drift")
    rows = [(f, False) for f in by_drift(report.features)]
    if report.prediction is not None:
        rows.append((report.prediction, True))
    for feature, is_prediction in rows:
        name = esc(feature.name) + (' <span class="muted">(predictions)</span>' if is_prediction else "")
        table.add(
            [
                name,
                badge("drifted" if feature.drifted else "ok"),
                number(feature.psi),
                number(feature.js_distance),
                number(feature.p_value),
                esc(feature.test),
                f"{percent(feature.reference_missing_rate)} → {percent(feature.current_missing_rate)}",
                percent(feature.unseen_rate),
                esc(", ".join(feature.reasons)),
            ],
            css="drifted" if feature.drifted else "",
            key=feature.name,
        )
    return table.render(shown=max(20, len(report.drifted_features)), more="features")


def psi_chart(report: DriftReport) -> str:
    """PSI of the most moved features as bars, the drifted in red, the threshold dotted."""
    ranked = by_drift(report.features)[:CHARTED]
    if not ranked:
        return ""
    return svg.bars(
        [f.name for f in ranked],
        [f.psi for f in ranked],
        threshold=report.thresholds.psi,
        marked=frozenset(f.name for f in ranked if f.drifted),
        label="PSI per feature",
    )


def drift_report_html(report: DriftReport) -> str:
    """A drift comparison: how many features drifted, the PSI chart and the feature table."""
    return document("drift", _drift_body(report), drifted=",".join(report.drifted_features))


def _drift_body(report: DriftReport) -> str:
    drifted = report.drifted_features
    t = report.thresholds
    summary = head(
        badge("drifted" if drifted else "ok"),
        f'<span class="title">{len(drifted)} of {len(report.features)} features drifted</span>',
        f'<span class="muted">{report.current_rows:,} rows against {report.reference_rows:,} '
        "reference rows</span>",
    )
    rule = muted(
        f"A feature drifts when PSI > {t.psi:g} or JS distance > {t.js:g} with p < {t.p_value:g}, "
        f"or when its missing rate moves by more than {t.missing_rate:g}."
    )
    return summary + psi_chart(report) + feature_table(report) + rule


def feature_drift_html(feature: FeatureDrift) -> str:
    """One feature's comparison as a key-value list."""
    items = [
        ("Feature", esc(feature.name)),
        ("Status", badge("drifted" if feature.drifted else "ok")),
        ("PSI", number(feature.psi)),
        ("JS distance", number(feature.js_distance)),
        (f"Test ({feature.test})", f"statistic {number(feature.statistic)}, p {number(feature.p_value)}"),
        ("Missing", f"{percent(feature.reference_missing_rate)} → {percent(feature.current_missing_rate)}"),
        ("Values", f"{feature.reference_count:,} reference, {feature.current_count:,} now"),
        ("Reasons", esc(", ".join(feature.reasons)) or "none"),
    ]
    return document("feature-drift", kv(items), feature=feature.name)


def model_drift_html(found: ModelDrift) -> str:
    """Drift of a served model over a window: what it was compared with, then the comparison."""
    how = "training data, through lineage" if found.reference_source == "lineage" else "set_reference"
    facts = kv(
        [
            (
                "Model",
                esc(found.model)
                + (f" version {found.version}" if found.version is not None else ", every version"),
            ),
            ("Window", esc(found.window.describe()) + " (UTC)"),
            ("Requests", f"{found.requests:,}"),
            ("Reference", f"{link(esc(found.reference), links.dataset_url(found.reference))} ({how})"),
        ]
    )
    title = head(f'<span class="title">drift of {esc(found.model)}</span>')
    body = title + facts + _drift_body(found.report)
    return document("model-drift", body, model=found.model, drifted=",".join(found.drifted_features))


def drift_over_time_html(parts: Sequence[ModelDrift]) -> str:
    """`drift_over_time` results: PSI per feature across the windows, most often drifted first."""
    first, latest = parts[0], parts[-1]
    title = head(
        f'<span class="title">drift of {esc(first.model)} over {len(parts)} windows</span>',
        f'<span class="muted">{when(first.window.start_ms)} → {when(latest.window.end_ms)}, '
        f"against {esc(first.reference)}</span>",
    )
    windows = Table(("window start", "requests", "drifted features"), numeric=frozenset({1}), name="windows")
    for part in parts:
        drifted = esc(", ".join(part.drifted_features)) or "none"
        windows.add([when(part.window.start_ms), f"{part.requests:,}", drifted])
    body = title + drift_over_time_body(parts) + heading("Windows") + windows.render(more="windows")
    return document("drift-over-time", body, model=first.model, windows=str(len(parts)))


def drift_over_time_body(parts: Sequence[ModelDrift]) -> str:
    """One row per feature: in how many windows it drifted, its PSI per window, its latest PSI."""
    names = sorted({f.name for p in parts for f in p.report.features})
    series = {n: [_psi(p, n) for p in parts] for n in names}
    drifted = {n: sum(1 for p in parts if n in p.drifted_features) for n in names}
    order = sorted(names, key=lambda n: (-drifted[n], -(series[n][-1] or 0.0), n))
    headers = ("feature", "windows drifted", "PSI per window", "latest PSI")
    table = Table(headers, numeric=frozenset({1, 3}), name="drift-over-time")
    for name in order:
        line = svg.sparkline(series[name], label=f"PSI of {name}")
        table.add(
            [esc(name), f"{drifted[name]}/{len(parts)}", line, number(series[name][-1])],
            css="drifted" if drifted[name] else "",
            key=name,
        )
    return table.render(more="features")


def _psi(part: ModelDrift, name: str) -> float | None:
    return next((f.psi for f in part.report.features if f.name == name), None)


def performance_html(report: PerformanceReport) -> str:
    """Metrics on labeled predictions: overall, per window as sparklines, with label coverage."""
    overall = report.overall
    title = head(
        f'<span class="title">{esc(report.task)} performance of {esc(report.model)}</span>',
        f'<span class="muted">{overall.labeled:,} of {overall.predictions:,} predictions labeled '
        f"({percent(overall.coverage)})</span>",
    )
    return document("performance", title + performance_body(report), model=report.model)


def performance_body(report: PerformanceReport) -> str:
    """The metrics table of a performance report (shared with the monitoring report's view)."""
    if not report.overall.labeled:
        return muted(
            f"No labels yet: none of the {report.overall.predictions:,} predictions has one. "
            "Log delayed labels with plinth.log_labels(model, labels)."
        )
    windows = report.windows
    labeled = [w for w in windows if w.labeled]
    latest = labeled[-1] if labeled else report.overall
    names = sorted({k for k, v in report.overall.metrics.items() if v is not None})
    headers = ("metric", "overall", "per window", "latest labeled window")
    table = Table(headers, numeric=frozenset({1, 3}), name="performance")
    rows = [
        (name, report.overall.metrics.get(name), [w.metrics.get(name) for w in windows]) for name in names
    ]
    for name, overall, values in rows:
        line = svg.sparkline(values, label=name)
        table.add([esc(name), number(overall), line, number(latest.metrics.get(name))], key=name)
    coverage = [w.coverage for w in windows]
    line = svg.sparkline(coverage, label="label coverage")
    cells = ["label coverage", percent(report.overall.coverage), line, percent(latest.coverage)]
    table.add(cells, key="coverage")
    return table.render(more="metrics")


def operations_html(report: OpsReport) -> str:
    """Requests, errors and latency of a served model: overall, per version and over time."""
    title = head(f'<span class="title">operations of {esc(report.model)}</span>')
    return document(
        "operations",
        title + operations_body(report.overall, report.versions, report.windows),
        model=report.model,
    )


def operations_body(overall: OpsWindow, versions: Sequence[OpsWindow], windows: Sequence[OpsWindow]) -> str:
    """Overall facts, a row per version, and sparklines of traffic, p95 latency and errors over time."""
    facts = kv(
        [
            ("Requests", f"{overall.requests:,} ({overall.rows:,} rows)"),
            ("Errors", f"{overall.errors:,} ({percent(overall.error_rate)})"),
            ("Throughput", f"{number(overall.throughput_rps)} requests/s"),
            ("Latency", _latency(overall)),
            (
                "Mean batch",
                f"{number(overall.mean_batch_rows)} rows" if overall.mean_batch_rows is not None else "",
            ),
        ]
    )
    table = Table(
        ("version", "requests", "errors", "error rate", "p50", "p95", "p99"),
        numeric=frozenset(range(7)),
        name="versions",
    )
    for v in sorted(versions, key=lambda w: -(w.version or 0)):
        table.add(
            [str(v.version), f"{v.requests:,}", f"{v.errors:,}", percent(v.error_rate), *_ms(v)],
            key=str(v.version),
        )
    out = facts + (heading("Per version") + table.render(more="versions") if versions else "")
    return out + _trend(windows)


def _trend(windows: Sequence[OpsWindow]) -> str:
    """Sparklines of requests, p95 latency and error rate per window, for each version apart."""
    by_version: dict[int | None, list[OpsWindow]] = {}
    for window in windows:
        by_version.setdefault(window.version, []).append(window)
    if not any(len(parts) > 1 for parts in by_version.values()):
        return ""
    table = Table(("over time", "per window", "latest"), numeric=frozenset({2}), name="traffic")
    for version, parts in sorted(by_version.items(), key=lambda item: -(item[0] or 0)):
        suffix = f" (v{version})" if version is not None and len(by_version) > 1 else ""
        for name, values in (
            ("requests", [float(w.requests) for w in parts]),
            ("p95 latency (ms)", [w.latency_p95_ms for w in parts]),
            ("error rate", [w.error_rate for w in parts]),
        ):
            table.add(
                [esc(name + suffix), svg.sparkline(values, label=name), number(values[-1])], key=name + suffix
            )
    count = max(len(parts) for parts in by_version.values())
    return heading(f"Over {count} windows") + table.render()


def _ms(window: OpsWindow) -> list[str]:
    return [
        f"{number(v)} ms" if v is not None else "—"
        for v in (window.latency_p50_ms, window.latency_p95_ms, window.latency_p99_ms)
    ]


def _latency(window: OpsWindow) -> str:
    if window.latency_p50_ms is None:
        return "not measured (predictions logged from elsewhere)"
    p50, p95, p99 = _ms(window)
    return f"p50 {p50}, p95 {p95}, p99 {p99}"
