"""`plinth gc`: free the space of artifact blobs that nothing refers to any more."""

from __future__ import annotations

import click

from plinth.cli.options import dry_run_option
from plinth.cli.render import say, size


@click.command("gc", short_help="Delete artifact blobs nothing refers to.")
@dry_run_option
@click.option(
    "--min-age",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Keep blobs younger than this (a writer may not have recorded them yet).",
)
def gc(dry_run: bool, min_age: float) -> None:
    """Remove artifact blobs that no run, dataset or model refers to, freeing space.

    With --dry-run, list the blobs that would go.
    """
    from plinth.tracking.context import backend
    from plinth.tracking.gc import collect_garbage

    report = collect_garbage(backend(), dry_run=dry_run, min_age_s=min_age)
    verb = "Would remove" if dry_run else "Removed"
    say(f"{verb} {len(report.removed)} blob(s), {size(report.bytes_freed)}; kept {report.kept}.")
    if dry_run:
        for digest in report.removed:
            say(f"  {digest}")
