"""`plinth experiments`: the named groups runs are logged into."""

from __future__ import annotations

from dataclasses import asdict

import click

from plinth.cli import render
from plinth.cli.options import json_option
from plinth.cli.render import console, say, table, when
from plinth.core.entities import Experiment

COUNT_CAP = 1000
"""`experiments list` counts runs up to this many per experiment, then shows e.g. `1000+`."""


@click.group("experiments", short_help="List experiments (named groups of runs).")
def experiments() -> None:
    """Experiments: named groups of runs, created by `plinth.start_run(experiment=...)`."""


@experiments.command("list")
@json_option
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
