"""`plinth labels`: delayed ground truth for served predictions."""

from __future__ import annotations

import click

from plinth.cli.render import say


@click.group("labels", short_help="Log delayed ground truth for served predictions.")
def labels() -> None:
    """Delayed labels: the true outcome of served requests, joined to them by request id."""


@labels.command("log", short_help="Store the labels in a file for a model's served requests.")
@click.argument("model")
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV, JSON lines or Parquet with columns request_id, label and optionally subject_id.",
)
def labels_log(model: str, path: str) -> None:
    """Store the labels in --file for MODEL's served requests (a later label replaces an earlier one).

    A request that predicted several rows takes a JSON list with one label per row.
    Every row is checked first; on any bad row nothing is stored.
    """
    from plinth.monitoring.api import log_labels
    from plinth.monitoring.labels import read_label_file

    written = log_labels(model, read_label_file(path))
    say(f"Stored {written} labels for {model}.")
