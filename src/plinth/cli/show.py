"""Detail views: one run, one dataset version."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from plinth.cli.render import (
    console,
    duration,
    line,
    metric_unit,
    number,
    plain,
    size,
    table,
    user_first,
    when,
)
from plinth.core.entities import DatasetVersion, Run, RunStatus

STATUS_STYLE = {
    RunStatus.RUNNING: "bold blue",
    RunStatus.FINISHED: "bold green",
    RunStatus.FAILED: "bold red",
    RunStatus.KILLED: "bold yellow",
    RunStatus.CRASHED: "bold red",
}


def show_run(run: Run) -> None:
    """Print a run's summary, params, metrics, tags, environment and artifacts."""
    console.print(line(("Run ", "bold"), (run.id, "bold"), "  ", run.name))
    console.print(_fields(_summary_rows(run)))
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
    if run.artifacts:
        files = [(a.path, size(a.size), a.digest[:12]) for a in run.artifacts]
        console.print(table(f"Artifacts ({len(run.artifacts)})", ["path", "size", "sha256"], files))
        console.print(plain(f"Fetch one with: plinth artifacts get {run.id} {run.artifacts[0].path} ."))


def _summary_rows(run: Run) -> list[tuple[str, Text]]:
    return [
        ("status", Text(run.status.value, style=STATUS_STYLE.get(run.status, ""))),
        ("experiment", plain(run.experiment_name)),
        ("user", plain(run.user)),
        ("started", plain(when(run.start_ms))),
        ("ended", plain(when(run.end_ms))),
        ("duration", plain(duration(run.duration_s))),
    ]


def _fields(rows: list[tuple[str, Text]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value)
    return grid


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


def show_dataset(ds: DatasetVersion) -> None:
    """Print a dataset version and its per-column profile."""
    console.print(line(("Dataset ", "bold"), (ds.ref, "bold")))
    summary = [
        ("rows", plain(ds.rows)),
        ("columns", plain(len(ds.schema))),
        ("size", plain(size(ds.size))),
        ("sha256", plain(ds.digest)),
        ("source", plain(ds.source)),
        ("created", plain(when(ds.created_ms))),
    ]
    console.print(_fields(summary))
    rows = [
        (col["name"], col["dtype"], col["kind"], _missing(col), _column_summary(col))
        for col in ds.profile.get("columns", [])
    ]
    if rows:
        console.print(table("Columns", ["name", "dtype", "kind", "missing", "summary"], rows))


def _missing(col: dict[str, Any]) -> str:
    rate = col.get("missing_rate")
    return f"{rate:.1%}" if isinstance(rate, int | float) else ""


def _column_summary(col: dict[str, Any]) -> str:
    if col.get("kind") == "numeric" and col.get("min") is not None:
        return f"min {number(col['min'])}  mean {number(col.get('mean'))}  max {number(col['max'])}"
    top = col.get("top")
    if isinstance(top, list) and top:
        return "top " + ", ".join(f"{v} ({c})" for v, c in top[:3])
    return ""
