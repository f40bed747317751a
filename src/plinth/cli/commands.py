"""The commands of `plinth`, each a thin wrapper over one library call."""

from __future__ import annotations

import json

import click

from plinth.cli import render
from plinth.cli.demo import demo
from plinth.cli.render import console, number, table, when


@click.group("experiments")
def experiments() -> None:
    """Experiments: named groups of runs."""


@experiments.command("list")
def experiments_list() -> None:
    """List every experiment with its run count."""
    import plinth

    rows = []
    for exp in plinth.list_experiments():
        count = len(plinth.search_runs(experiment=exp.id, limit=None))
        rows.append((exp.name, exp.id, when(exp.created_ms), count))
    console.print(table("Experiments", ["name", "id", "created", "runs"], rows))


@click.group("runs")
def runs() -> None:
    """Runs: list, search, inspect, and reap the ones whose process died."""


@runs.command("list")
@click.option("--experiment", "-e", multiple=True, help="Only runs of this experiment (repeatable).")
@click.option("--where", "-w", default=None, help='Filter, e.g. "metrics.acc > 0.9 and params.lr = 0.1".')
@click.option("--order-by", "-o", multiple=True, help="Sort key, e.g. -metrics.acc (repeatable).")
@click.option("--limit", "-n", default=20, show_default=True, help="Show at most this many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs_list(
    experiment: tuple[str, ...],
    where: str | None,
    order_by: tuple[str, ...],
    limit: int,
    as_json: bool,
) -> None:
    """List runs, newest first, filtered and sorted like `plinth.search_runs`."""
    import plinth

    found = plinth.search_runs(
        experiment=list(experiment) or None, where=where, order_by=list(order_by), limit=limit
    )
    if as_json:
        render.emit_json([_run_dict(r) for r in found])
        return
    metric_names = sorted({k for r in found for k in r.metrics})[:6]
    param_names = sorted({k for r in found for k in r.params})[:6]
    columns = ["id", "experiment", "name", "status", "started", *param_names, *metric_names]
    rows = [
        (
            r.id,
            r.experiment_name,
            r.name,
            r.status.value,
            when(r.start_ms),
            *(r.params.get(p, "") for p in param_names),
            *(number(r.metrics[m]) if m in r.metrics else "" for m in metric_names),
        )
        for r in found
    ]
    console.print(table(f"Runs ({len(found)})", columns, rows))


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def runs_show(run_id: str, as_json: bool) -> None:
    """Show a run: status, params, latest metrics, tags, environment and artifacts."""
    import plinth
    from plinth.cli.show import show_run

    run = plinth.get_run(run_id)
    if as_json:
        render.emit_json(_run_dict(run, full=True))
    else:
        show_run(run)


@runs.command("reap")
def runs_reap() -> None:
    """Mark RUNNING runs whose heartbeats stopped as CRASHED (their process died)."""
    import plinth

    reaped = plinth.reap_runs()
    console.print(f"Marked {len(reaped)} run(s) CRASHED." + (" " + " ".join(reaped) if reaped else ""))


@click.group("artifacts")
def artifacts() -> None:
    """Artifacts: files and folders logged by runs."""


@artifacts.command("get")
@click.argument("run_id")
@click.argument("path")
@click.argument("dest", required=False, default=".")
def artifacts_get(run_id: str, path: str, dest: str) -> None:
    """Copy artifact PATH (a file or folder) of RUN_ID to DEST, verifying every hash."""
    from plinth.tracking.artifacts import download_artifacts
    from plinth.tracking.context import backend

    written = download_artifacts(backend(), run_id, path, dest)
    console.print(f"Wrote {len(written)} file(s):")
    for item in written:
        console.print(f"  {item}", highlight=False)


@click.group("datasets")
def datasets() -> None:
    """Datasets: content-addressed versions with schema and profile."""


@datasets.command("list")
@click.argument("name", required=False)
def datasets_list(name: str | None) -> None:
    """List dataset versions (of NAME, or all)."""
    import plinth

    rows = [
        (
            d.name,
            d.version,
            d.rows,
            len(d.schema),
            render.size(d.size),
            d.digest[:12],
            when(d.created_ms),
        )
        for d in plinth.list_datasets(name)
    ]
    console.print(
        table("Datasets", ["name", "version", "rows", "columns", "size", "digest", "created"], rows)
    )


@datasets.command("show")
@click.argument("ref")
def datasets_show(ref: str) -> None:
    """Show a dataset version, REF as NAME or NAME/VERSION: schema and column profile."""
    import plinth
    from plinth.cli.show import show_dataset

    name, _, version = ref.partition("/")
    if version and not version.isdigit():
        raise click.BadParameter(f"{ref!r}: use NAME or NAME/VERSION with a number.", param_hint="REF")
    show_dataset(plinth.get_dataset(name, int(version) if version else None))


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option(
    "--min-age",
    default=3600.0,
    show_default=True,
    help="Keep blobs younger than this many seconds.",
)
def gc(dry_run: bool, min_age: float) -> None:
    """Remove artifact blobs that no run, dataset or model refers to."""
    from plinth.tracking.context import backend
    from plinth.tracking.gc import collect_garbage

    report = collect_garbage(backend(), dry_run=dry_run, min_age_s=min_age)
    verb = "Would remove" if dry_run else "Removed"
    console.print(
        f"{verb} {len(report.removed)} blob(s), {render.size(report.bytes_freed)}; kept {report.kept}."
    )


@click.group("db")
def db() -> None:
    """The metadata database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations to the store named by PLINTH_STORE (or the SQLite default)."""
    from plinth.core.settings import Settings
    from plinth.store.engine import make_engine
    from plinth.store.migrate import HEAD, upgrade

    settings = Settings.from_env()
    engine = make_engine(settings.resolved_store_url)
    try:
        ran = upgrade(engine)
    finally:
        engine.dispose()
    console.print(f"Schema {'upgraded to' if ran else 'already at'} revision {HEAD}.")


def _run_dict(run: object, full: bool = False) -> dict[str, object]:
    from dataclasses import asdict

    data = asdict(run)  # type: ignore[call-overload]
    if not full:
        data.pop("environment", None)
        data.pop("artifacts", None)
    return json.loads(json.dumps(data, default=str))


ALL = [experiments, runs, artifacts, datasets, gc, db, demo]
