"""`plinth erase`: remove one subject's prediction logs and labels everywhere, with a receipt."""

from __future__ import annotations

import json

import click

from plinth.cli.options import dry_run_option
from plinth.cli.render import console


@click.command("erase", short_help="Erase a subject's prediction logs and labels, with a receipt.")
@click.option("--subject", required=True, help="The subject id whose data must go.")
@dry_run_option
def erase(subject: str, dry_run: bool) -> None:
    """Erase a subject's prediction logs and labels everywhere, verify none remain, print the receipt."""
    from plinth.governance.api import erase_subject

    receipt = erase_subject(subject, dry_run=dry_run)
    console.file.write(json.dumps(json.loads(receipt.to_json()), indent=2) + "\n")
