"""`plinth monitor report`: drift, predictions, performance and latency of a model as one HTML file."""

from __future__ import annotations

import click

from plinth.cli.options import since_option
from plinth.cli.render import console, number, say, table


@click.command("report", short_help="Write drift, performance and latency charts as one HTML file.")
@click.argument("model")
@since_option()
@click.option("--start", default=None, help="Start of the window (ISO time, e.g. 2026-11-23T10:00).")
@click.option("--end", default=None, help="End of the window (ISO time; default now).")
@click.option(
    "--every", default=None, help="Length of the charts' windows, e.g. 1h (default: 12-48 windows)."
)
@click.option(
    "--html",
    "path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the report (one self-contained HTML file that opens offline).",
)
def monitor_report(
    model: str, since: str | None, start: str | None, end: str | None, every: str | None, path: str
) -> None:
    """Write MODEL's monitoring report: a summary, then drift per feature, the prediction
    distribution, performance and latency over time, as charts in one HTML file."""
    from plinth.monitoring.report import report

    found = report(model, since=since, start=start, end=end, every=every, html=path)
    ops = found.operations.overall
    perf = found.performance
    drifted = found.drift.drifted_features if found.drift else None
    headline = "rmse" if perf.task == "regression" else "accuracy"
    value = perf.overall.metrics.get(headline)
    rows = [
        ("window", f"{found.span.describe()} (per {found.every})"),
        ("versions", ", ".join(str(v) for v in found.versions)),
        ("reference", found.reference or "none"),
        ("requests", f"{ops.requests:,}"),
        ("drifted features", "unknown (no reference)" if drifted is None else ", ".join(drifted) or "none"),
        (headline, "no labels yet" if value is None else number(value)),
        ("label coverage", f"{perf.overall.coverage:.1%}"),
        ("p99 latency", "-" if ops.latency_p99_ms is None else number(ops.latency_p99_ms, "ms")),
        ("error rate", f"{ops.error_rate:.2%}"),
    ]
    console.print(table(f"Monitoring report of {model}", ["", "value"], rows))
    say(f"Wrote {path}")
