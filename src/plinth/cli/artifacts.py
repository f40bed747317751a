"""`plinth artifacts`: copy the files and folders runs logged out of the artifact store."""

from __future__ import annotations

import click

from plinth.cli.render import say


@click.group("artifacts", short_help="Download files and folders logged by runs.")
def artifacts() -> None:
    """Artifacts: files and folders logged by runs, stored by content hash."""


@artifacts.command("get", short_help="Copy a run's artifact file or folder here, verified.")
@click.argument("run_id")
@click.argument("path")
@click.argument("dest", required=False, default=".")
def artifacts_get(run_id: str, path: str, dest: str) -> None:
    """Copy artifact PATH of run RUN_ID into DEST (default: the current folder).

    PATH is a file (e.g. confusion_matrix.csv) or a folder prefix (e.g. plots), as listed
    by `plinth runs show RUN_ID`. DEST may be an existing folder, a folder to create
    (end it with /), or a file name for a single file. Every file's sha256 is verified, and
    every file lands inside DEST: a recorded name with '..' or a link in DEST that leads out
    of it stops the copy before anything is written.
    """
    from plinth.tracking.artifacts import download_artifacts
    from plinth.tracking.context import backend

    written = download_artifacts(backend(), run_id, path, dest)
    say(f"Wrote {len(written)} file(s):")
    for item in written:
        say(f"  {item}")
