"""`plinth retention`: remove prediction logs older than a retention period."""

from __future__ import annotations

import click

from plinth.cli.options import dry_run_option
from plinth.cli.render import say


@click.group("retention", short_help="Remove prediction logs older than a retention period.")
def retention() -> None:
    """Retention: remove prediction logs, and the labels joined to them, once they are older than a
    period; each removal is audited and leaves a receipt."""


@retention.command("apply", short_help="Remove prediction logs older than --predictions.")
@click.option("--predictions", required=True, help="Keep prediction logs this long, e.g. 90d.")
@dry_run_option
def retention_apply(predictions: str, dry_run: bool) -> None:
    """Remove prediction logs older than --predictions (audited, with a receipt)."""
    from plinth.governance.api import apply_retention

    receipt = apply_retention(predictions, dry_run=dry_run)
    verb = "Would remove" if dry_run else "Removed"
    say(
        f"{verb} {receipt.prediction_logs} prediction logs and {receipt.labels} labels "
        f"older than {predictions} (sha256 {receipt.digest[:12]})."
    )
    if receipt.residue:
        say(receipt.residue)
