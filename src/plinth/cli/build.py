"""`plinth build`: a container image that serves a model version, or runs a flow's steps."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from plinth.cli.options import json_option
from plinth.cli.render import console, emit_json, say, size

if TYPE_CHECKING:
    from plinth.deploy.build import Phase
    from plinth.deploy.engine import Progress as StepProgress


@click.command("build", short_help="Build a container image that serves a model (or runs a flow).")
@click.argument("ref", required=False)
@click.option("-t", "--tag", default=None, help="Image tag [default: plinth/NAME:VERSION].")
@click.option(
    "--base", default=None, help="Base image; it must run the model's Python [default: python:X.Y-slim]."
)
@click.option("--port", default=8000, show_default=True, help="Port `plinth serve` listens on in the image.")
@click.option(
    "--push", default=None, metavar="REGISTRY/REPO[:TAG]", help="Push the image there after the build."
)
@click.option(
    "--flow", "flow_file", default=None, metavar="FILE.py", help="Build an image for a flow's steps."
)
@json_option
def build(
    ref: str | None,
    tag: str | None,
    base: str | None,
    port: int,
    push: str | None,
    flow_file: str | None,
    as_json: bool,
) -> None:
    """Build an OCI image of REF (NAME, NAME/VERSION or NAME@ALIAS) that serves it with
    `plinth serve` on port 8000, as a non-root user, with a health check on /healthz.

    \b
    The image holds the version's verified bytes and record (it serves with no store; prediction
    logs go to PLINTH_STORE when the container has one), plinth's serving extra, and the model's
    flavor libraries with their dependencies at the versions its environment lock recorded.
    Packages are resolved and downloaded here (pip's settings apply) and installed in the
    image with no network. A package installed from a local path or in editable mode is built
    into a wheel. A rebuild with nothing changed reuses every layer. The image's id (and
    digest, once pushed) is recorded on the version and in `plinth lineage`.

    \b
    Labels: dev.plinth.model.name, .version, .sha256 (the manifest), .flavor.
    With --flow FILE.py: an image with the packages the flow imports and the file, for
    `@step(image=...)`. Needs a Docker engine (DOCKER_HOST, else the local socket).
    """
    from plinth.core.errors import InvalidInput
    from plinth.deploy.build import build_flow_image, build_model_image

    if (ref is None) == (flow_file is None):
        raise InvalidInput("Give a model (NAME@ALIAS) or --flow FILE.py, not both and not neither.")
    with _progress(not as_json) as (phase, step):
        if flow_file is not None:
            result = build_flow_image(flow_file, tag=tag, base=base, push=push, phase=phase, progress=step)
        else:
            assert ref is not None
            result = build_model_image(
                ref, tag=tag, base=base, port=port, push=push, phase=phase, progress=step
            )
    image = result.image
    if as_json:
        emit_json(
            {
                "image_id": image.image_id,
                "tags": list(image.tags),
                "repo_digest": image.repo_digest,
                "size_bytes": image.size_bytes,
                "labels": image.labels,
                "packages": list(result.wheelhouse.requirements),
                "all_cached": result.all_cached,
                "seconds": round(result.seconds, 3),
            }
        )
        return
    reused = " (every layer reused)" if result.all_cached else ""
    took = f"{result.seconds:.1f} s{reused}"
    say(f"Built {image.tags[0]}  {image.image_id[:19]}  {size(image.size_bytes)}  in {took}")
    say(f"  {len(result.wheelhouse.requirements)} packages; run it: docker run -p 8000:8000 {image.tags[0]}")
    if image.repo_digest:
        say(f"  pushed: {image.repo_digest}")


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[tuple[Phase, StepProgress | None]]:
    """(phase, step) callbacks drawing a progress bar on a terminal; phases as lines elsewhere,
    nothing at all with --json."""
    if not show:
        yield (lambda _text: None), None
        return
    if not sys.stderr.isatty():
        yield say, None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("preparing", total=None)

        def phase(text: str) -> None:
            bar.update(task, description=text, completed=0, total=None)

        def step(number: int, total: int, what: str) -> None:
            bar.update(task, completed=number, total=total)

        yield phase, step
