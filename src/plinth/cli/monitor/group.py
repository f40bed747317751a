"""`plinth monitor`: drift, performance and operations of served models, their report and alerts."""

from __future__ import annotations

import click

from plinth.cli import render
from plinth.cli.monitor.report import monitor_report
from plinth.cli.monitor.watch import watch as monitor_watch
from plinth.cli.options import every_option, json_option, model_version_option, since_option
from plinth.cli.render import console, number, say, table, when


@click.group("monitor", short_help="Drift, performance and operations of served models.")
def monitor() -> None:
    """Monitoring of served models from their prediction logs and delayed labels."""


@monitor.command("drift", short_help="Per-feature drift of logged inputs against the training data.")
@click.argument("model")
@since_option()
@model_version_option
@json_option
def monitor_drift(model: str, since: str | None, version: int | None, as_json: bool) -> None:
    """Per-feature drift (PSI, KS or chi-square, Jensen-Shannon) of MODEL's logged inputs and
    predictions against its training data's profile (or the reference set with plinth.set_reference)."""
    from plinth.monitoring.api import drift

    found = drift(model, since=since, version=version)
    if as_json:
        render.emit_json(found.to_dict())
        return
    report = found.report
    rows = [
        (
            f.name,
            f.kind,
            number(f.psi),
            number(f.js_distance),
            f.test,
            number(f.p_value),
            "DRIFTED" if f.drifted else "ok",
        )
        for f in (*report.features, *([report.prediction] if report.prediction else []))
    ]
    console.print(
        table(
            f"Drift of {model} over {found.window.describe()} vs {found.reference} "
            f"({found.requests} requests)",
            ["column", "kind", "psi", "js", "test", "p-value", "status"],
            rows,
        )
    )
    drifted = found.drifted_features
    say(
        f"{len(drifted)} of {len(report.features)} features drifted"
        + (f": {', '.join(drifted)}" if drifted else ".")
    )


@monitor.command("performance", short_help="Accuracy, F1, ... (or MAE, RMSE, ...) from delayed labels.")
@click.argument("model")
@since_option()
@every_option
@model_version_option
@json_option
def monitor_performance(
    model: str, since: str | None, every: str | None, version: int | None, as_json: bool
) -> None:
    """Accuracy, precision, recall, F1, ROC AUC (or MAE, RMSE, R²) of MODEL on its labeled
    predictions, with label coverage."""
    from plinth.monitoring.api import performance

    report = performance(model, since=since, every=every, version=version)
    if as_json:
        render.emit_json(report.to_dict())
        return
    names = sorted({k for w in (report.overall, *report.windows) for k in w.metrics})
    rows = [
        (
            "all" if w is report.overall else when(w.start_ms),
            w.predictions,
            w.labeled,
            f"{w.coverage:.0%}",
            *(number(w.metrics.get(k)) for k in names),
        )
        for w in (report.overall, *report.windows)
    ]
    console.print(
        table(
            f"Performance of {model} ({report.task})",
            ["window", "predictions", "labeled", "coverage", *names],
            rows,
        )
    )


@monitor.command("ops", short_help="Requests, throughput, errors, latency, batch sizes per version.")
@click.argument("model")
@since_option()
@every_option
@json_option
def monitor_ops(model: str, since: str | None, every: str | None, as_json: bool) -> None:
    """Requests, throughput, error rate, latency percentiles and batch sizes of MODEL per version."""
    from plinth.monitoring.api import operations

    report = operations(model, since=since, every=every)
    if as_json:
        render.emit_json(report.to_dict())
        return
    rows = [
        (
            "all" if w is report.overall or w in report.versions else when(w.start_ms),
            "all" if w.version is None else w.version,
            w.requests,
            number(w.throughput_rps),
            f"{w.error_rate:.2%}",
            number(w.latency_p50_ms),
            number(w.latency_p95_ms),
            number(w.latency_p99_ms),
            number(w.mean_batch_rows),
        )
        for w in (report.overall, *report.versions, *report.windows)
    ]
    console.print(
        table(
            f"Operations of {model}",
            ["window", "version", "requests", "req/s", "errors", "p50 ms", "p95 ms", "p99 ms", "rows/req"],
            rows,
        )
    )


monitor.add_command(monitor_report)
monitor.add_command(monitor_watch)
