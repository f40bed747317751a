"""The commands of `plinth`, each a thin wrapper over one library call: parse, call, render."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import asdict
from typing import Any

import click
from rich.table import Table

from plinth.cli import render
from plinth.cli.cluster import cluster
from plinth.cli.costs import costs
from plinth.cli.demo import demo
from plinth.cli.flows import flows, scheduler
from plinth.cli.governance import audit, erase, lineage, retention
from plinth.cli.models import models
from plinth.cli.monitor import labels, monitor
from plinth.cli.predict import predict
from plinth.cli.render import console, number, say, table, when
from plinth.cli.serve import serve
from plinth.core.entities import DatasetVersion, Experiment, Run
from plinth.core.errors import NotFound
from plinth.core.refs import DatasetRef

COUNT_CAP = 1000
"""`experiments list` counts runs up to this many per experiment, then shows e.g. `1000+`."""


# experiments -----------------------------------------------------------------------------------
@click.group("experiments", short_help="List experiments (named groups of runs).")
def experiments() -> None:
    """Experiments: named groups of runs, created by `plinth.start_run(experiment=...)`."""


@experiments.command("list")
@render.json_option()
def experiments_list(as_json: bool) -> None:
    """List every experiment, oldest first, with its number of runs."""
    import plinth

    found = [(exp, _run_count(exp)) for exp in plinth.list_experiments()]
    if as_json:
        render.emit_json(
            [{**asdict(exp), "runs": min(n, COUNT_CAP), "runs_capped": n > COUNT_CAP} for exp, n in found]
        )
        return
    if not found:
        say("No experiments yet; start one with plinth.start_run(experiment=...) or `plinth demo`.")
        return
    rows = [
        (exp.name, exp.id, when(exp.created_ms), f"{COUNT_CAP}+" if n > COUNT_CAP else n) for exp, n in found
    ]
    console.print(table(f"Experiments ({len(found)})", ["name", "id", "created", "runs"], rows))


def _run_count(exp: Experiment) -> int:
    """The experiment's number of runs, counted up to COUNT_CAP + 1 (the library has no count)."""
    import plinth

    return len(plinth.search_runs(experiment=exp.id, limit=COUNT_CAP + 1))


# runs ------------------------------------------------------------------------------------------
@click.group("runs", short_help="List, search and inspect runs; reap crashed ones.")
def runs() -> None:
    """Runs: list, search, inspect, and reap the ones whose process died."""


WHERE_HELP = (
    "Filter over metrics., params., tags. and attributes (status, name, user, start_time, "
    'end_time, id), e.g. "metrics.acc > 0.9 and params.lr = 0.1" or "status = \'FAILED\'". '
    "Operators: = != < <= > >= like ilike in, is null; combine with and, or, not, ( )."
)
ORDER_HELP = (
    "Sort key, e.g. -metrics.acc (descending), start_time, params.lr; repeat for ties. Default: newest first."
)
COLUMNS_HELP = (
    "Show these param and metric columns: keys or shell-style patterns, e.g. test_f1, 'params.*' "
    "or 'plinth.*' (repeatable)."
)
ALL_COLUMNS_HELP = "Also show plinth's own bookkeeping metrics (plinth.*, system/*) as columns."


@runs.command("list")
@click.option(
    "--experiment", "-e", multiple=True, metavar="NAME", help="Only runs of this experiment (repeatable)."
)
@click.option("--where", "-w", default=None, metavar="FILTER", help=WHERE_HELP)
@click.option("--order-by", "-o", multiple=True, metavar="KEY", help=ORDER_HELP)
@click.option(
    "--limit",
    "-n",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    metavar="N",
    help="Show at most N runs; 0 for all.",
)
@click.option("--columns", "-c", multiple=True, metavar="PATTERN", help=COLUMNS_HELP)
@click.option("--all-columns", is_flag=True, help=ALL_COLUMNS_HELP)
@render.json_option("with every param, metric and tag")
def runs_list(
    experiment: tuple[str, ...],
    where: str | None,
    order_by: tuple[str, ...],
    limit: int,
    columns: tuple[str, ...],
    all_columns: bool,
    as_json: bool,
) -> None:
    """List runs, filtered and sorted like `plinth.search_runs`.

    The table shows the latest metric values and params, as many columns as fit the
    terminal: those named in --where or --order-by first, then your own metrics and params.
    plinth's bookkeeping (plinth.cpu_s, system/cpu_hours, ...) shows with --all-columns or
    when --columns names it; --json prints every field.
    """
    import plinth

    found: list[Run] = plinth.search_runs(
        experiment=list(experiment) or None, where=where, order_by=list(order_by), limit=limit or None
    )
    if as_json:
        render.emit_json([_run_dict(r) for r in found])
        return
    if not found:
        say("No runs match." if where or experiment else "No runs yet.")
        return
    mentioned = " ".join((where or "", *order_by))
    extras = _pick_columns(found, mentioned, columns, all_columns)
    ours = {k for r in found for k in [*r.metrics, *r.params] if render.is_bookkeeping(k)}
    held = 0 if columns or all_columns else len(ours - {key for _, key in extras})
    console.print(_runs_table(found, extras, one_experiment=len(experiment) == 1, bookkeeping=held))


def _runs_table(
    found: list[Run], extras: list[tuple[str, str]], one_experiment: bool, bookkeeping: int = 0
) -> Table:
    """A table of runs with as many of the `extras` param and metric columns as fit the console;
    its caption counts what is left out (and `bookkeeping` columns of plinth's held back)."""
    base = (
        ["id", "name", "status", "started"]
        if one_experiment
        else ["id", "experiment", "name", "status", "started"]
    )

    def build(shown: list[tuple[str, str]]) -> Table:
        rows = [
            (
                r.id,
                *(() if one_experiment else (r.experiment_name,)),
                r.name,
                r.status.value,
                when(r.start_ms),
                *(_cell(r, kind, key) for kind, key in shown),
            )
            for r in found
        ]
        hidden = len(extras) - len(shown)
        notes = [f"{hidden} more param/metric column(s) hidden; see --json"] if hidden else []
        if bookkeeping:
            notes.append(f"{bookkeeping} column(s) of plinth's bookkeeping held back; see --all-columns")
        caption = "\n".join(notes) or None
        return table(f"Runs ({len(found)})", [*base, *(key for _, key in shown)], rows, caption=caption)

    return render.fit_width(build, extras)


def _cell(run: Run, kind: str, key: str) -> str:
    if kind == "params":
        return run.params.get(key, "")
    return number(run.metrics.get(key), render.metric_unit(key))


def _pick_columns(
    found: list[Run], mentioned: str, patterns: tuple[str, ...] = (), everything: bool = False, most: int = 8
) -> list[tuple[str, str]]:
    """Param and metric columns, by priority: named in --where/--order-by, then the user's params
    (the knobs, usually few) and metrics, then (with --all-columns) plinth's own; only those
    matching --columns if given."""
    candidates = sorted(
        {("metrics", k) for r in found for k in r.metrics} | {("params", k) for r in found for k in r.params},
        key=lambda c: (render.is_bookkeeping(c[1]), c[0] != "params", c[1]),
    )
    if patterns:
        return [c for c in candidates if any(_matches(c, p) for p in patterns)]
    named = set(re.findall(r"\b(metrics?|params?)\.([\w./-]+)", mentioned))
    first = [(kind, k) for kind, k in candidates if (kind, k) in named or (kind[:-1], k) in named]
    rest = [c for c in candidates if c not in first and (everything or not render.is_bookkeeping(c[1]))]
    return first + (rest if everything else rest[: max(most - len(first), 0)])


def _matches(column: tuple[str, str], pattern: str) -> bool:
    """Whether a --columns pattern names this column: `test_*`, `metrics.test_*` or `plinth.*`."""
    kind, key = column
    return fnmatch.fnmatchcase(key, pattern) or fnmatch.fnmatchcase(f"{kind}.{key}", pattern)


@runs.command("show")
@click.argument("run_id")
@render.json_option("with environment and artifacts")
def runs_show(run_id: str, as_json: bool) -> None:
    """Show run RUN_ID: status, times, params, latest metrics, tags, environment and artifacts."""
    import plinth
    from plinth.cli.show import show_run

    run = plinth.get_run(run_id)
    if as_json:
        render.emit_json(_run_dict(run, full=True))
    else:
        show_run(run)


@runs.command("reap")
def runs_reap() -> None:
    """Mark RUNNING runs whose heartbeats stopped as CRASHED (their process died).

    A run is stale after three missed heartbeats (PLINTH_HEARTBEAT_S, default 10 s).
    Searches already report such runs as CRASHED; reaping records it for good.
    """
    import plinth

    reaped = plinth.reap_runs()
    say(f"Marked {len(reaped)} run(s) CRASHED.")
    for run_id in reaped:
        say(f"  {run_id}")


def _run_dict(run: Run, full: bool = False) -> dict[str, Any]:
    data = asdict(run)
    data["duration_s"] = run.duration_s
    if not full:
        data.pop("environment", None)
        data.pop("artifacts", None)
    return json.loads(json.dumps(data, default=str))


# artifacts -------------------------------------------------------------------------------------
@click.group("artifacts", short_help="Download files and folders logged by runs.")
def artifacts() -> None:
    """Artifacts: files and folders logged by runs, stored by content hash."""


@artifacts.command("get")
@click.argument("run_id")
@click.argument("path")
@click.argument("dest", required=False, default=".")
def artifacts_get(run_id: str, path: str, dest: str) -> None:
    """Copy artifact PATH of run RUN_ID into DEST (default: the current folder).

    PATH is a file (e.g. confusion_matrix.csv) or a folder prefix (e.g. plots), as listed
    by `plinth runs show RUN_ID`. DEST may be an existing folder, a folder to create
    (end it with /), or a file name for a single file. Every file's sha256 is verified, and
    every file lands inside DEST: a recorded name with '..' or a link in DEST that leads out
    of it stops the copy before anything is written.
    """
    from plinth.tracking.artifacts import download_artifacts
    from plinth.tracking.context import backend

    written = download_artifacts(backend(), run_id, path, dest)
    say(f"Wrote {len(written)} file(s):")
    for item in written:
        say(f"  {item}")


# datasets --------------------------------------------------------------------------------------
@click.group("datasets", short_help="List and inspect versioned datasets.")
def datasets() -> None:
    """Datasets: content-addressed versions logged with run.log_dataset, with schema and profile."""


@datasets.command("list")
@click.argument("name", required=False)
@render.json_option()
def datasets_list(name: str | None, as_json: bool) -> None:
    """List dataset versions: of dataset NAME, or of all datasets."""
    import plinth

    found: list[DatasetVersion] = plinth.list_datasets(name)
    if as_json:
        render.emit_json([_dataset_dict(d, full=False) for d in found])
        return
    if not found:
        say(
            f"No versions of dataset {name!r}."
            if name
            else "No datasets yet; log one with run.log_dataset()."
        )
        return
    rows = [
        (d.name, d.version, d.rows, len(d.schema), render.size(d.size), d.digest[:12], when(d.created_ms))
        for d in found
    ]
    console.print(
        table("Datasets", ["name", "version", "rows", "columns", "size", "sha256", "created"], rows)
    )


@datasets.command("show")
@click.argument("ref")
@render.json_option("with schema and profile")
def datasets_show(ref: str, as_json: bool) -> None:
    """Show dataset version REF: its schema and per-column profile.

    REF is NAME (the latest version) or NAME/VERSION, e.g. digits-train, digits-train/1 or
    org/churn/3 (version 3 of org/churn).
    """
    import plinth
    from plinth.cli.show import show_dataset

    parsed = DatasetRef.parse(ref)
    try:
        found = plinth.get_dataset(parsed)
    except NotFound as exc:
        raise NotFound(f"{exc} REF is NAME or NAME/VERSION, e.g. digits-train/1.") from exc
    if as_json:
        render.emit_json(_dataset_dict(found, full=True))
    else:
        show_dataset(found)


def _dataset_dict(ds: DatasetVersion, full: bool) -> dict[str, Any]:
    data = {**asdict(ds), "ref": ds.ref}
    if not full:
        data.pop("profile")
        data.pop("schema")
        data["columns"] = len(ds.schema)
    return json.loads(json.dumps(data, default=str))


# gc, db ----------------------------------------------------------------------------------------
@click.command("gc", short_help="Delete artifact blobs nothing refers to.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option(
    "--min-age",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Keep blobs younger than this (a writer may not have recorded them yet).",
)
def gc(dry_run: bool, min_age: float) -> None:
    """Remove artifact blobs that no run, dataset or model refers to, freeing space."""
    from plinth.tracking.context import backend
    from plinth.tracking.gc import collect_garbage

    report = collect_garbage(backend(), dry_run=dry_run, min_age_s=min_age)
    verb = "Would remove" if dry_run else "Removed"
    say(f"{verb} {len(report.removed)} blob(s), {render.size(report.bytes_freed)}; kept {report.kept}.")
    if dry_run:
        for digest in report.removed:
            say(f"  {digest}")


@click.group("db", short_help="Manage the metadata database (schema upgrades).")
def db() -> None:
    """The metadata database named by PLINTH_STORE (default: SQLite under PLINTH_HOME)."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations to the store named by PLINTH_STORE (or the SQLite default).

    Opening a store migrates it anyway; run this to migrate a shared PostgreSQL store
    once, on purpose, after upgrading plinth.
    """
    from plinth.core.settings import Settings
    from plinth.store.engine import make_engine
    from plinth.store.migrate import HEAD, upgrade

    url = Settings.from_env().resolved_store_url
    engine = make_engine(url)
    try:
        ran = upgrade(engine)
    finally:
        engine.dispose()
    say(f"Schema of {render.safe_url(url)} {'upgraded to' if ran else 'already at'} revision {HEAD}.")


ALL = [
    experiments,
    runs,
    artifacts,
    datasets,
    models,
    serve,
    predict,
    flows,
    scheduler,
    lineage,
    audit,
    erase,
    retention,
    labels,
    monitor,
    gc,
    db,
    demo,
    costs,
    cluster,
]
