"""A monitoring `Report` as one self-contained HTML page: a summary, then four plotly charts.

Drift reads most-moved first: drifted features lead, ordered by PSI over the whole window, in
the summary, the table and the chart. The table lists the first few and folds the rest into a
<details> element; the chart draws the first few series and keeps the others in its legend,
one click away (or all at once with its buttons).

plotly.js is embedded once, inline, with the first chart; the page loads nothing from the
network (no CDN, no web fonts), so it opens offline. Every user-provided string is escaped:
with html.escape in the page, and in the charts too, since plotly reads a few HTML tags in
its labels. Chart containers have stable ids: plinth-chart-drift, plinth-chart-predictions,
plinth-chart-performance and plinth-chart-latency.

plotly is imported inside the functions that draw.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from plinth.core.units import format_number

if TYPE_CHECKING:
    from plinth.monitoring.drift import DriftReport, FeatureDrift
    from plinth.monitoring.report import Report
    from plinth.monitoring.served import ModelDrift

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
CSS = f"""
body {{ font-family: {FONT}; margin: 0 auto; max-width: 1200px; padding: 1.5rem; color: #1f2933; }}
h1 {{ font-size: 1.6rem; margin: 0 0 .3rem; }} h2 {{ font-size: 1.25rem; margin: 0 0 .6rem; }}
.meta, .note, footer {{ color: #52606d; }} .note {{ margin: .3rem 0; }}
section {{ border: 1px solid #d9e2ec; border-radius: 6px; padding: 1rem 1.2rem; margin: 1rem 0; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .35rem 1.2rem; margin: 0; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; }} .bad {{ color: #c62828; font-weight: 600; }}
table {{ border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }}
th, td {{ border-bottom: 1px solid #e4e7eb; padding: .25rem .7rem; text-align: left; }}
details summary {{ cursor: pointer; color: #52606d; margin: .3rem 0; }}
"""
CONFIG = {"displaylogo": False, "responsive": True}
CHARTED = 6
"""Drift series drawn when the page opens; the others wait in the legend."""
LISTED = 10
"""Rows of the drift table shown when the page opens (more if more features drifted)."""


def render_html(report: Report) -> str:
    """The report as a self-contained HTML page (plotly.js inline, nothing fetched)."""
    charts = _Charts()
    sections = [
        _section("drift", "Drift per feature over time", *_drift(report), charts),
        _section("predictions", "Prediction distribution", *_predictions(report), charts),
        _section("performance", "Performance over time", *_performance(report), charts),
        _section("latency", "Latency, throughput and errors over time", *_latency(report), charts),
    ]
    title = f"Monitoring report: {escape(report.model)}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header><h1>{title}</h1><p class="meta">{escape(report.span.describe())} (UTC), '
        f"generated {_utc(report.generated_ms)} UTC</p></header>\n"
        f"{_summary(report)}\n{''.join(sections)}"
        "<footer>Made by plinth. Charts drawn with plotly; times in UTC.</footer>\n</body>\n</html>\n"
    )


class _Charts:
    """Turns figures into HTML, embedding plotly.js with the first one only."""

    def __init__(self) -> None:
        self.embedded = False

    def html(self, key: str, figure: Any) -> str:
        import plotly.io as pio

        figure.update_layout(template="plotly_white", font={"family": FONT}, margin={"t": 40, "r": 30})
        out = pio.to_html(
            figure,
            full_html=False,
            include_plotlyjs=not self.embedded,
            div_id=f"plinth-chart-{key}",
            config=CONFIG,
            default_height="460px",
        )
        self.embedded = True
        return f'<div class="plinth-chart">{out}</div>'


def _section(key: str, heading: str, notes: list[str], extra: str, figure: Any, charts: _Charts) -> str:
    """One section: heading, notes (already escaped), an optional table, and the chart if any."""
    body = "".join(f'<p class="note">{note}</p>' for note in notes)
    chart = charts.html(key, figure) if figure is not None else ""
    head = f'<section id="plinth-section-{key}" class="plinth-section">\n<h2>{heading}</h2>\n'
    return f"{head}{body}{extra}{chart}\n</section>\n"


# --------------------------------------------------------------------------- summary


def _summary(report: Report) -> str:
    """The summary list at the top of the page."""
    ops = report.operations.overall
    items = [
        ("model", "Model", escape(report.model)),
        ("versions", "Versions seen", ", ".join(str(v) for v in report.versions)),
        ("window", "Window", f"{escape(report.span.describe())} (charts per {escape(report.every)})"),
        ("reference", "Reference dataset", _reference_text(report)),
        ("requests", "Requests", f"{ops.requests:,} ({ops.rows:,} rows predicted)"),
        ("drifted", "Drifted features", _drifted_text(report)),
        *_performance_items(report),
        ("latency", "p99 latency", _ms(ops.latency_p99_ms)),
        ("errors", "Error rate", f"{ops.error_rate:.2%} ({ops.errors:,} errors)"),
    ]
    rows = "".join(
        f'<dt>{label}</dt><dd id="plinth-summary-{key}">{value}</dd>' for key, label, value in items
    )
    return (
        f'<section id="plinth-summary" class="plinth-summary">\n<h2>Summary</h2>\n<dl>{rows}</dl>\n</section>'
    )


def _reference_text(report: Report) -> str:
    if report.drift is None:
        return "none (no drift or distribution comparison)"
    how = "training data, through lineage" if report.drift.reference_source == "lineage" else "set_reference"
    return f"{escape(report.drift.reference)} ({how})"


def _drifted_text(report: Report) -> str:
    if report.drift is None:
        return "unknown: no drift reference"
    whole = [f.name for f in by_drift(report.drift.report.features) if f.drifted]
    text = _names(whole) + " over the whole window"
    if report.drift_windows:
        latest = report.drift_windows[-1]
        moved = [f.name for f in by_drift(latest.report.features) if f.drifted]
        text += f"; {_names(moved)} in the latest window ({_utc(latest.window.start_ms)})"
    return text


def _names(names: Sequence[str]) -> str:
    if not names:
        return "none"
    return '<span class="bad">' + ", ".join(escape(n) for n in names) + "</span>"


def _performance_items(report: Report) -> list[tuple[str, str, str]]:
    perf = report.performance
    headline = "rmse" if perf.task == "regression" else "accuracy"
    label = "RMSE" if headline == "rmse" else "Accuracy"
    coverage = (
        "coverage",
        "Label coverage",
        f"{perf.overall.coverage:.1%} ({perf.overall.labeled:,} labeled)",
    )
    if not perf.overall.labeled:
        return [("metric", label, "no labels yet"), coverage]
    labeled = [w for w in perf.windows if w.labeled]
    latest = labeled[-1] if labeled else perf.overall
    text = f"{_num(latest.metrics.get(headline))} in the latest labeled window ({_utc(latest.start_ms)})"
    text += f", {_num(perf.overall.metrics.get(headline))} over the whole window"
    return [("metric", label, text), coverage]


# --------------------------------------------------------------------------- sections


def _drift(report: Report) -> tuple[list[str], str, Any]:
    if report.drift is None:
        return [f"No drift: {escape(report.drift_note or 'no reference')}"], "", None
    t = report.drift.report.thresholds
    notes = [
        f"Population stability index (PSI) of each feature per {escape(report.every)} window against "
        f"{escape(report.drift.reference)}. A feature drifts when PSI &gt; {t.psi:g} or Jensen-Shannon "
        f"distance &gt; {t.js:g} with p &lt; {t.p_value:g}, or when its missing rate moves by more than "
        f"{t.missing_rate:g}; drifted windows are marked with a cross."
    ]
    ranked = [f.name for f in by_drift(report.drift.report.features)]
    if report.drift_windows:
        notes.append(
            f"The chart draws the {min(CHARTED, len(ranked))} most drifted of {len(ranked)} features; "
            "click a name in its legend to add or remove a series, or pick a set with the buttons."
        )
    figure = _drift_figure(report.drift_windows, ranked, t.psi) if report.drift_windows else None
    return notes, _drift_table(report.drift.report), figure


def by_drift(features: Sequence[FeatureDrift]) -> list[FeatureDrift]:
    """`features` most moved first: drifted ones before the rest, each by PSI, highest first."""
    return sorted(features, key=lambda f: (not f.drifted, -(f.psi or 0.0), f.name))


def _drift_table(found: DriftReport) -> str:
    ranked = by_drift(found.features)
    shown = max(LISTED, sum(f.drifted for f in ranked))
    first = [*ranked[:shown], *([found.prediction] if found.prediction else [])]
    head = "<tr><th>column (whole window)</th><th>PSI</th><th>JS</th><th>p-value</th><th>status</th></tr>"
    table = f'<table class="plinth-drift-table">{head}{_drift_rows(first, found.prediction)}</table>'
    rest = ranked[shown:]
    if not rest:
        return table
    return (
        f'{table}<details class="plinth-drift-more"><summary>{len(rest)} more features, none drifted'
        f"</summary><table>{head}{_drift_rows(rest, None)}</table></details>"
    )


def _drift_rows(features: Sequence[FeatureDrift], prediction: FeatureDrift | None) -> str:
    return "".join(
        f"<tr><td>{escape(f.name)}{' (predictions)' if f is prediction else ''}</td>"
        f"<td>{_num(f.psi)}</td><td>{_num(f.js_distance)}</td><td>{_num(f.p_value)}</td>"
        f"<td>{'<span class=bad>drifted</span>' if f.drifted else 'ok'}</td></tr>"
        for f in features
    )


def _drift_figure(parts: Sequence[ModelDrift], ranked: Sequence[str], threshold: float) -> Any:
    """PSI per window, one series per feature in `ranked` order; the first CHARTED drawn."""
    import plotly.graph_objects as go

    figure = go.Figure()
    x = [_when(p.window.start_ms) for p in parts]
    first = parts[0].report
    order = {name: i for i, name in enumerate(ranked)}
    names = sorted((f.name for f in first.features), key=lambda n: order.get(n, len(order)))
    columns = [(n, False) for n in names] + ([(first.prediction.name, True)] if first.prediction else [])
    for i, (name, is_prediction) in enumerate(columns):
        found = [_column(p, name, is_prediction) for p in parts]
        figure.add_trace(
            go.Scatter(
                x=x,
                y=[f.psi if f else None for f in found],
                name=escape(f"{name} (predictions)" if is_prediction else name),
                mode="lines+markers",
                line={"dash": "dash"} if is_prediction else {},
                marker={"symbol": ["x" if f and f.drifted else "circle" for f in found], "size": 9},
                visible=True if is_prediction or i < CHARTED else "legendonly",
            )
        )
    moved = {f.name for p in parts for f in p.report.features if f.drifted}
    figure.add_hline(y=threshold, line_dash="dot", line_color="#c62828", annotation_text="PSI threshold")
    figure.update_layout(
        xaxis_title="window start (UTC)",
        yaxis_title="PSI",
        hovermode="x unified",
        updatemenus=[_series_buttons(names, moved, bool(first.prediction))],
    )
    return figure


def _series_buttons(names: Sequence[str], moved: set[str], prediction: bool) -> dict[str, Any]:
    """Buttons that draw the top CHARTED series, those that drifted in some window, or all."""

    def showing(drawn: Sequence[bool]) -> list[dict[str, Any]]:
        return [{"visible": [True if d else "legendonly" for d in drawn] + [True] * prediction}]

    choices = [
        (f"top {min(CHARTED, len(names))}", [i < CHARTED for i in range(len(names))]),
        (f"drifted ({len(moved & set(names))})", [n in moved for n in names]),
        (f"all {len(names)}", [True] * len(names)),
    ]
    return {
        "type": "buttons",
        "direction": "right",
        "showactive": True,
        "x": 0,
        "xanchor": "left",
        "y": 1.12,
        "yanchor": "bottom",
        "buttons": [
            {"label": label, "method": "restyle", "args": showing(drawn)} for label, drawn in choices
        ],
    }


def _column(part: ModelDrift, name: str, is_prediction: bool) -> FeatureDrift | None:
    if is_prediction:
        return part.report.prediction
    return next((f for f in part.report.features if f.name == name), None)


def _predictions(report: Report) -> tuple[list[str], str, Any]:
    found = report.predictions
    if found is None:
        return ["No answered predictions in this window."], "", None
    import plotly.graph_objects as go

    reference = f"{found.target} in {report.reference}" if found.target else None
    notes = [f"{found.rows:,} predicted rows in the window"]
    notes[0] += f", against {escape(reference)} (the training target)." if reference else "."
    if found.binned:
        notes.append(
            "The training target was profiled as a number, so both are shown per its quantile bin "
            "(the buckets drift is measured on)."
        )
    if found.reference is None:
        notes.append(
            "No reference target distribution: the model has no reference dataset with a target column."
        )
    figure = go.Figure()
    if found.kind == "classes":
        figure.add_trace(go.Bar(x=_escaped(found.labels), y=found.current, name="predictions"))
        if found.reference is not None:
            figure.add_trace(
                go.Bar(x=_escaped(found.labels), y=found.reference, name=escape(f"reference: {reference}"))
            )
        figure.update_layout(
            barmode="group",
            yaxis_title="share of rows",
            xaxis_title="bin" if found.binned else "class",
            xaxis_type="category",
        )
    else:
        figure.add_trace(_density_bars(go, found.edges, found.current, "predictions"))
        if found.reference is not None:
            figure.add_trace(
                _density_bars(go, found.reference_edges, found.reference, escape(f"reference: {reference}"))
            )
        figure.update_layout(barmode="overlay", yaxis_title="density", xaxis_title="predicted value")
    return notes, "", figure


def _density_bars(go: Any, edges: Sequence[float], density: Sequence[float], name: str) -> Any:
    pairs = list(itertools.pairwise(edges))
    centers = [(a + b) / 2 for a, b in pairs]
    widths = [b - a for a, b in pairs]
    return go.Bar(x=centers, y=list(density), width=widths, name=name, opacity=0.6)


def _performance(report: Report) -> tuple[list[str], str, Any]:
    perf = report.performance
    if not perf.overall.labeled:
        return (
            [
                f"No labels yet: none of the {perf.overall.predictions:,} predictions in this window "
                "has a label. Log delayed labels with plinth.log_labels(model, labels) "
                "or `plinth labels log`."
            ],
            "",
            None,
        )
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(specs=[[{"secondary_y": True}]])
    x = [_when(w.start_ms) for w in perf.windows]
    figure.add_trace(
        go.Bar(
            x=x,
            y=[w.coverage for w in perf.windows],
            name="label coverage",
            opacity=0.25,
            marker_color="#7b8794",
        ),
        secondary_y=True,
    )
    for name in sorted({k for w in perf.windows for k, v in w.metrics.items() if v is not None}):
        figure.add_trace(
            go.Scatter(x=x, y=[w.metrics.get(name) for w in perf.windows], name=name, mode="lines+markers"),
            secondary_y=False,
        )
    figure.update_yaxes(title_text="metric", secondary_y=False)
    figure.update_yaxes(title_text="label coverage", tickformat=".0%", range=[0, 1], secondary_y=True)
    figure.update_layout(xaxis_title="window start (UTC)", hovermode="x unified")
    notes = [
        f"{perf.task.capitalize()} metrics on the labeled predictions of each window; "
        f"{perf.overall.labeled:,} of {perf.overall.predictions:,} predictions have a label "
        f"({perf.overall.coverage:.1%})."
    ]
    return notes, "", figure


def _latency(report: Report) -> tuple[list[str], str, Any]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    parts = report.traffic
    x = [_when(w.start_ms) for w in parts]
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.6, 0.4],
        vertical_spacing=0.08,
        specs=[[{}], [{"secondary_y": True}]],
    )
    for name, values in (
        ("p50", [w.latency_p50_ms for w in parts]),
        ("p95", [w.latency_p95_ms for w in parts]),
        ("p99", [w.latency_p99_ms for w in parts]),
    ):
        figure.add_trace(
            go.Scatter(x=x, y=values, name=f"{name} latency", mode="lines+markers"), row=1, col=1
        )
    figure.add_trace(
        go.Bar(x=x, y=[w.throughput_rps for w in parts], name="throughput", opacity=0.5), row=2, col=1
    )
    figure.add_trace(
        go.Scatter(
            x=x,
            y=[w.error_rate for w in parts],
            name="error rate",
            mode="lines+markers",
            line_color="#c62828",
        ),
        row=2,
        col=1,
        secondary_y=True,
    )
    figure.update_yaxes(title_text="latency (ms)", row=1, col=1)
    figure.update_yaxes(title_text="requests/s", row=2, col=1, secondary_y=False)
    figure.update_yaxes(
        title_text="error rate", tickformat=".1%", rangemode="tozero", row=2, col=1, secondary_y=True
    )
    figure.update_xaxes(title_text="window start (UTC)", row=2, col=1)
    figure.update_layout(hovermode="x unified", height=560)
    rows = "".join(
        f"<tr><td>{v.version}</td><td>{v.requests:,}</td><td>{v.error_rate:.2%}</td><td>{_ms(v.latency_p50_ms)}</td>"
        f"<td>{_ms(v.latency_p99_ms)}</td></tr>"
        for v in report.operations.versions
    )
    table = (
        '<table class="plinth-versions-table"><tr><th>version</th><th>requests</th><th>errors</th>'
        f"<th>p50</th><th>p99</th></tr>{rows}</table>"
    )
    notes = [f"Per {escape(report.every)} window, all versions together; shadow requests left out."]
    return notes, table, figure


# --------------------------------------------------------------------------- formatting


def _escaped(labels: Sequence[str]) -> list[str]:
    return [escape(label) for label in labels]


def _when(ms: int | None) -> dt.datetime | None:
    """A window start as a naive UTC datetime (plotly.js drops time zone offsets)."""
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).replace(tzinfo=None)


def _utc(ms: int | None) -> str:
    moment = _when(ms)
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _num(value: float | None) -> str:
    return "-" if value is None else format_number(value)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
