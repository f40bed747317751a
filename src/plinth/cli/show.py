"""Detail views: one run, one dataset version."""

from __future__ import annotations

from plinth.cli.render import console, number, size, table, when
from plinth.core.entities import DatasetVersion, Run


def show_run(run: Run) -> None:
    """Print a run's summary, params, metrics, tags, environment and artifacts."""
    console.print(f"[bold]Run {run.id}[/]  {run.name}  ([bold]{run.status.value}[/])", highlight=False)
    console.print(
        f"experiment {run.experiment_name}  user {run.user}  started {when(run.start_ms)}"
        f"  ended {when(run.end_ms)}",
        highlight=False,
    )
    if run.error:
        console.print(f"[red]error:[/] {run.error}", highlight=False)
    if run.params:
        console.print(table("Params", ["key", "value"], sorted(run.params.items())))
    if run.metrics:
        console.print(
            table(
                "Metrics (latest)",
                ["key", "value"],
                [(k, number(v)) for k, v in sorted(run.metrics.items())],
            )
        )
    if run.tags:
        console.print(table("Tags", ["key", "value"], sorted(run.tags.items())))
    if run.environment:
        console.print(table("Environment", ["", ""], _environment_rows(run.environment)))
    if run.artifacts:
        rows = [(a.path, size(a.size), a.digest[:12]) for a in run.artifacts]
        console.print(table("Artifacts", ["path", "size", "sha256"], rows))


def _environment_rows(env: dict[str, object]) -> list[tuple[str, str]]:
    from plinth.tracking.environment import describe_gpus

    python = env.get("python") or {}
    git = env.get("git") or None
    rows = [
        ("python", f"{python.get('version', '?')} ({python.get('implementation', '?')})"),  # type: ignore[union-attr]
        ("platform", str(env.get("platform"))),
        (
            "host",
            f"{env.get('host')}  {env.get('cpu_count')} CPUs  {size(int(env.get('memory_bytes') or 0))}",
        ),  # type: ignore[call-overload]
        ("gpus", describe_gpus(env)),
        ("packages", f"{len(env.get('packages') or {})} installed"),  # type: ignore[arg-type]
        ("command", str(env.get("command"))),
    ]
    if isinstance(git, dict):
        dirty = " (dirty)" if git.get("dirty") else ""
        rows.append(
            (
                "git",
                f"{git.get('commit')}{dirty} {git.get('branch') or ''} {git.get('remote') or ''}",
            )
        )
    else:
        rows.append(("git", "not a git repository"))
    return rows


def show_dataset(ds: DatasetVersion) -> None:
    """Print a dataset version and its per-column profile."""
    console.print(
        f"[bold]Dataset {ds.ref}[/]  {ds.rows} rows  {size(ds.size)}  sha256 {ds.digest}",
        highlight=False,
    )
    console.print(f"source {ds.source}  created {when(ds.created_ms)}", highlight=False)
    rows = []
    for col in ds.profile.get("columns", []):
        summary = _column_summary(col)
        rows.append((col["name"], col["dtype"], col["kind"], f"{col['missing_rate']:.1%}", summary))
    console.print(table("Columns", ["name", "dtype", "kind", "missing", "summary"], rows))


def _column_summary(col: dict[str, object]) -> str:
    if col.get("kind") == "numeric" and col.get("min") is not None:
        return f"min {number(col['min'])}  mean {number(col['mean'])}  max {number(col['max'])}"
    top = col.get("top")
    if isinstance(top, list) and top:
        return "top " + ", ".join(f"{v} ({c})" for v, c in top[:3])
    return ""
