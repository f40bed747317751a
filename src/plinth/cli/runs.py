"""`plinth runs`: list, search and inspect tracked runs; reap the ones whose process died."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from plinth.cli import render
from plinth.cli.options import experiment_option, json_option, limit_option, order_by_option, where_option
from plinth.cli.render import (
    console,
    duration,
    fields,
    line,
    metric_unit,
    number,
    plain,
    say,
    size,
    table,
    user_first,
    when,
)
from plinth.core.entities import Run, RunStatus

if TYPE_CHECKING:
    from plinth.tracking.checkpoints import Checkpoint

STATUS_STYLE = {
    RunStatus.RUNNING: "bold blue",
    RunStatus.FINISHED: "bold green",
    RunStatus.FAILED: "bold red",
    RunStatus.KILLED: "bold yellow",
    RunStatus.CRASHED: "bold red",
}


@click.group("runs", short_help="List, search and inspect runs; reap crashed ones.")
def runs() -> None:
    """Runs: list, search, inspect, and reap the ones whose process died."""


@runs.command("list")
@experiment_option
@where_option
@order_by_option
@limit_option(default=20)
@click.option(
    "--columns",
    "-c",
    multiple=True,
    metavar="PATTERN",
    help=(
        "Show these param and metric columns: keys or shell-style patterns, e.g. test_f1, 'params.*' "
        "or 'plinth.*' (repeatable)."
    ),
)
@click.option(
    "--all-columns",
    is_flag=True,
    help="Also show plinth's own bookkeeping metrics (plinth.*, system/*) as columns.",
)
@json_option
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

    found: Sequence[Run] = plinth.search_runs(
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
    found: Sequence[Run], extras: list[tuple[str, str]], one_experiment: bool, bookkeeping: int = 0
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
    return number(run.metrics.get(key), metric_unit(key))


def _pick_columns(
    found: Sequence[Run],
    mentioned: str,
    patterns: tuple[str, ...] = (),
    everything: bool = False,
    most: int = 8,
) -> list[tuple[str, str]]:
    """Param and metric columns, by priority: named in --where/--order-by, then the user's params
    (the knobs, usually few) and metrics, then (with --all-columns) plinth's own; only those
    matching --columns if given."""
    columns: set[tuple[str, str]] = {("metrics", k) for r in found for k in r.metrics}
    columns |= {("params", k) for r in found for k in r.params}
    candidates = sorted(
        columns,
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


@runs.command("show", short_help="Show one run: params, metrics, tags, environment, artifacts.")
@click.argument("run_id")
@json_option
def runs_show(run_id: str, as_json: bool) -> None:
    """Show run RUN_ID: status, times, params, latest metrics, tags, environment, artifacts and
    checkpoints."""
    import plinth

    run = plinth.get_run(run_id)
    checkpoints = plinth.list_checkpoints(run) if any(_is_checkpoint(a.path) for a in run.artifacts) else []
    if as_json:
        data = _run_dict(run, full=True)
        data["checkpoints"] = [_checkpoint_dict(c) for c in checkpoints]
        render.emit_json(data)
    else:
        show_run(run, checkpoints)


@runs.command("reap", short_help="Mark runs whose heartbeats stopped as CRASHED.")
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
    loaded: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return loaded


def _is_checkpoint(path: str) -> bool:
    """Whether an artifact path is a checkpoint's file (`checkpoints/<step>-<uid>/...`)."""
    return path.startswith("checkpoints/") and path.count("/") >= 2


def _checkpoint_dict(ckpt: Checkpoint) -> dict[str, Any]:
    keep = ("id", "step", "metrics", "created_ms", "kind", "size", "path")
    return {name: getattr(ckpt, name) for name in keep}


def show_run(run: Run, checkpoints: Sequence[Checkpoint] = ()) -> None:
    """Print a run's summary, params, metrics, tags, environment, artifacts and checkpoints.

    The files of the checkpoints listed show in their own table, not among the artifacts."""
    console.print(line(("Run ", "bold"), (run.id, "bold"), "  ", run.name))
    console.print(fields(_summary_rows(run)))
    if run.error:
        console.print(line(("error: ", "red"), run.error))
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        ("Params", [(k, run.params[k]) for k in user_first(run.params)]),
        (
            "Metrics (latest value)",
            [(k, number(run.metrics[k], metric_unit(k))) for k in user_first(run.metrics)],
        ),
        ("Tags", [(k, run.tags[k]) for k in user_first(run.tags)]),
    ]
    for title, rows in sections:
        if rows:
            console.print(table(title, ["key", "value"], rows))
    if run.environment:
        console.print(table("Environment", ["what", "value"], _environment_rows(run.environment)))
    folders = tuple(c.path + "/" for c in checkpoints)
    artifacts = [a for a in run.artifacts if not (folders and a.path.startswith(folders))]
    if artifacts:
        files = [(a.path, size(a.size), a.digest[:12]) for a in artifacts]
        console.print(table(f"Artifacts ({len(artifacts)})", ["path", "size", "sha256"], files))
        console.print(plain(f"Fetch one with: plinth artifacts get {run.id} {artifacts[0].path} ."))
    if checkpoints:
        marks = [(str(c.step), _metrics_text(c), when(c.created_ms), size(c.size), c.id) for c in checkpoints]
        columns = ["step", "metrics", "created", "size", "id"]
        console.print(table(f"Checkpoints ({len(checkpoints)})", columns, marks))
        console.print(plain(f'Load one with: plinth.load_checkpoint("{checkpoints[-1].id}")'))


def _metrics_text(ckpt: Checkpoint) -> str:
    return "  ".join(f"{k} {number(ckpt.metrics[k])}" for k in user_first(ckpt.metrics))


def _summary_rows(run: Run) -> list[tuple[str, Text]]:
    return [
        ("status", Text(run.status.value, style=STATUS_STYLE.get(run.status, ""))),
        ("experiment", plain(run.experiment_name)),
        ("user", plain(run.user)),
        ("started", plain(when(run.start_ms))),
        ("ended", plain(when(run.end_ms))),
        ("duration", plain(duration(run.duration_s))),
    ]


def _environment_rows(env: dict[str, Any]) -> list[tuple[str, str]]:
    from plinth.tracking.environment import describe_gpus

    python: dict[str, Any] = env["python"] if isinstance(env.get("python"), dict) else {}
    git = env.get("git")
    packages = env.get("packages") or {}
    rows = [
        ("python", f"{python.get('version', '?')} ({python.get('implementation', '?')})"),
        ("platform", str(env.get("platform"))),
        (
            "host",
            f"{env.get('host')}  {env.get('cpu_count')} CPUs  {size(int(env.get('memory_bytes') or 0))}",
        ),
        ("gpus", describe_gpus(env)),
        ("packages", f"{len(packages)} installed"),
        ("command", str(env.get("command"))),
    ]
    if isinstance(git, dict):
        dirty = " (dirty)" if git.get("dirty") else ""
        rows.append(
            ("git", f"{git.get('commit')}{dirty} {git.get('branch') or ''} {git.get('remote') or ''}")
        )
    else:
        rows.append(("git", "not a git repository"))
    return rows
