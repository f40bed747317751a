"""`plinth lineage`: where a run, model version, dataset or flow run came from, and what came of it."""

from __future__ import annotations

import click

from plinth.cli import render
from plinth.cli.options import json_option
from plinth.cli.render import say


@click.command("lineage", short_help="Where a run, model or dataset came from, and what came of it.")
@click.argument("ref")
@click.option(
    "--direction",
    type=click.Choice(["up", "down", "both"]),
    default="both",
    show_default=True,
    help="up: towards the data; down: towards predictions.",
)
@json_option
def lineage(ref: str, direction: str, as_json: bool) -> None:
    """Show the lineage of REF: a run id, flow run id, NAME/VERSION, NAME@ALIAS or DATASET/VERSION.

    Upstream leads towards the data REF came from, downstream towards what was made from it;
    --json prints every node and edge of the graph.
    """
    from plinth.governance.api import lineage as graph_of

    graph = graph_of(ref, direction)
    if as_json:
        render.emit_json(graph.to_dict())
        return
    for way in ("up", "down") if direction == "both" else (direction,):
        say(f"{'Upstream' if way == 'up' else 'Downstream'}:")
        for line in graph.tree(way):
            say(f"  {line}")
