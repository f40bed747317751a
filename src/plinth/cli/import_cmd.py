"""`plinth import`: bring another tool's records into plinth (`plinth import mlflow`)."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

import click

from plinth.cli import render
from plinth.cli.options import json_option
from plinth.cli.render import console, err_console, line, number, say, size, table

if TYPE_CHECKING:
    from plinth.importers.mlflow import ImportSummary


@click.group("import", short_help="Import another tool's experiments, runs and models.")
def import_group() -> None:
    """Import what another tool recorded into plinth's store (PLINTH_STORE, or the workspace given)."""


@import_group.command("mlflow")
@click.option(
    "--from",
    "source",
    required=True,
    metavar="URL",
    help="The MLflow store: its database (sqlite:///mlflow.db, postgresql://user@host/db) "
    "or its server (http://host:5000).",
)
@click.option(
    "--artifacts-root",
    default=None,
    metavar="DIR",
    help="Folder holding MLflow's artifacts as MLflow lays them out (<DIR>/<experiment id>/<run id>/"
    "artifacts; a server's --artifacts-destination). Default: each run's recorded location.",
)
@click.option(
    "--experiment",
    "-e",
    "experiments",
    multiple=True,
    metavar="NAME",
    help="Only this experiment, by name or MLflow id (repeatable). Default: all.",
)
@click.option("--models", is_flag=True, help="Also import registered models, their versions and aliases.")
@click.option(
    "--workspace",
    default=None,
    metavar="W",
    help="The plinth workspace to import into (default: PLINTH_WORKSPACE, else the default one).",
)
@click.option(
    "--mlflow-token",
    envvar="MLFLOW_TRACKING_TOKEN",
    default=None,
    metavar="TOKEN",
    help="Bearer token for an MLflow server that asks for one (default: MLFLOW_TRACKING_TOKEN).",
)
@json_option
def import_mlflow_command(
    source: str,
    artifacts_root: str | None,
    experiments: tuple[str, ...],
    models: bool,
    workspace: str | None,
    mlflow_token: str | None,
    as_json: bool,
) -> None:
    """Import an MLflow tracking store, and with --models its registry, into plinth.

    Experiments, runs (params, tags, every metric point with its step and time, status, start,
    end, user, parent runs), artifacts, datasets recorded with log_input, MLflow 3 logged
    models, and with --models registered models with their versions, tags, descriptions and
    aliases. Each imported item keeps its MLflow id as a tag (mlflow.importedRunId, ...):
    importing again adds only what is new, and an import that was stopped continues.

    \b
    Examples:
      plinth import mlflow --from sqlite:///mlflow.db --models
      plinth import mlflow --from postgresql://mlflow@db/mlflow --artifacts-root /mnt/mlruns
      plinth import mlflow --from http://mlflow:5000 -e churn --workspace team-a
    """
    from plinth.core.settings import Settings
    from plinth.importers.mlflow import import_mlflow
    from plinth.tracking.context import open_backend

    settings = Settings.from_env()
    if workspace is not None:
        settings = dataclasses.replace(settings, workspace=workspace)
    be = open_backend(settings)
    started = time.perf_counter()
    try:
        summary = import_mlflow(
            be,
            source,
            artifacts_root=artifacts_root,
            experiments=experiments,
            models=models,
            token=mlflow_token,
            show_progress=not as_json,
        )
    finally:
        be.close()
    took = time.perf_counter() - started
    if as_json:
        render.emit_json(
            {
                "source": summary.source,
                "seconds": round(took, 3),
                "imported": summary.imported,
                "existing": summary.existing,
                "problems": summary.problem_lines(),
                "notes": summary.note_lines(),
            }
        )
        return
    _show(summary, took)


def _show(summary: ImportSummary, took: float) -> None:
    """The summary table on stdout, then notes, then what was left out (on stderr)."""
    rows = [(entity, _amount(entity, new), _amount(entity, held)) for entity, new, held in summary.rows()]
    title = f"Imported from {summary.source} in {render.duration(took)}"
    console.print(table(title, ["what", "imported", "already in plinth"], rows))
    for note in summary.note_lines():
        say(f"note: {note}")
    problems = summary.problem_lines()
    for problem in problems:
        err_console.print(line(("left out:", "bold yellow"), " ", problem))
    if problems:
        err_console.print(
            line(f"{len(problems)} thing{'s' if len(problems) > 1 else ''} left out; the rest was imported.")
        )


def _amount(entity: str, n: int) -> str:
    return size(n) if entity == "artifact bytes" else number(n)
