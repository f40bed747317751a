"""`plinth env …`: environment locks of runs and model versions: show, diff, export, check."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from typing import TYPE_CHECKING

import click
from rich.text import Text

from plinth.cli import render
from plinth.cli.options import json_option
from plinth.cli.render import console, fields, line, plain, say, table

if TYPE_CHECKING:
    from plinth.deploy.lock import Lock, LockDiff, Source

REF = "RUN_ID|NAME@ALIAS"


@click.group("env", short_help="Environment locks of runs and model versions.")
def env() -> None:
    """Environment locks of runs and model versions: show, diff, export, check.

    Every run and model version records a lock: the Python version, the OS, CUDA, and every
    installed package at its exact version with where it came from (an index, a local
    folder, a VCS commit). A REF is a run id, or a model as NAME, NAME/VERSION or NAME@ALIAS.
    """


@env.command("show", short_help="Show a lock: Python, OS, CUDA, flavor libraries, packages.")
@click.argument("ref", metavar=REF)
@json_option
def env_show(ref: str, as_json: bool) -> None:
    """Show the lock of a run or model version: Python, OS, CUDA, the model's flavor libraries,
    packages not installed from an index, then every package."""
    from plinth.deploy.lock import locate

    label, lock = locate(ref)
    if as_json:
        render.emit_json({"ref": label, **lock.to_dict()})
        return
    console.print(line(("Environment of ", "bold"), (label, "bold")))
    console.print(fields(_summary(lock)))
    if not lock.complete:
        say(f"The full lock is missing: {label} was registered before plinth recorded them.")
    rows = [(name, version, _origin(lock.sources.get(name))) for name, version in lock.packages.items()]
    console.print(table(f"Packages ({len(rows)})", ["package", "version", "source"], rows))


@env.command("diff", short_help="What changed between two locks.")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@json_option
def env_diff(a: str, b: str, as_json: bool) -> None:
    """What changed from lock A to lock B (each a run id or NAME, NAME/VERSION, NAME@ALIAS):
    Python, OS, CUDA, and packages added, removed, changed or installed from elsewhere."""
    from plinth.deploy.lock import diff, locate

    label_a, lock_a = locate(a)
    label_b, lock_b = locate(b)
    changes = diff(lock_a, lock_b)
    if as_json:
        render.emit_json({"a": label_a, "b": label_b, **changes.to_dict()})
    elif changes.identical:
        say(f"{label_a} and {label_b}: identical environments.")
    else:
        console.print(
            table(f"{label_a} → {label_b}", ["what", "name", label_a, label_b], _diff_rows(changes))
        )


@env.command("export", short_help="Write a lock as requirements.txt or pylock.toml.")
@click.argument("ref", metavar=REF)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["requirements", "pylock"]),
    default="requirements",
    show_default=True,
    help="A pip requirements file, or a PEP 751 pylock.toml.",
)
@click.option(
    "--model-only",
    is_flag=True,
    help="Only the model's flavor libraries and their dependencies, not every package.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
@click.option(
    "--index-url",
    "index_urls",
    multiple=True,
    metavar="URL",
    help="pylock: the index whose files are listed (repeatable; default: those pip uses here).",
)
def env_export(ref: str, fmt: str, model_only: bool, output: str | None, index_urls: tuple[str, ...]) -> None:
    """Write the lock of REF so that `pip install -r FILE` (or a pylock installer) reproduces it.

    Packages installed from a local folder are written as `name @ file:///path`: that folder
    must exist where the file is installed. A model registered before locks has only its flavor
    libraries recorded: export those with --model-only.
    """
    from plinth.deploy.lock import export_text, locate

    label, lock = locate(ref)
    text = export_text(lock, fmt, model_only=model_only, label=label, indexes=list(index_urls) or None)
    if output is None:
        click.echo(text, nl=False)
        return
    _write_atomically(output, text)
    render.err_console.print(plain(f"Wrote the lock of {label} to {output}."))


@env.command("check", short_help="How this interpreter differs from a model's lock.")
@click.argument("ref", metavar=REF)
@json_option
def env_check(ref: str, as_json: bool) -> None:
    """How this interpreter differs from the lock of REF: flavor libraries first, then other
    packages (missing or at another version), then Python, OS and CUDA.

    Exits with 1 when a flavor library or the Python minor version differs (the model may
    not load or may predict differently), 0 otherwise.
    """
    from plinth.deploy.lock import check, locate

    label, lock = locate(ref)
    found = check(lock)
    blocking = any(d.blocking for d in found)
    if as_json:
        render.emit_json(
            {"ref": label, "blocking": blocking, "differences": [dataclasses.asdict(d) for d in found]}
        )
    elif not found:
        say(f"This interpreter matches the lock of {label}.")
    else:
        rows = [
            (d.kind, d.name, d.recorded or "-", d.running or "not installed", "yes" if d.blocking else "")
            for d in found
        ]
        console.print(
            table(f"Differences from {label}", ["kind", "name", "recorded", "here", "blocking"], rows)
        )
    if blocking:
        click.get_current_context().exit(1)


def _summary(lock: Lock) -> list[tuple[str, Text]]:
    os_facts = lock.os
    kernel = " ".join(str(os_facts[k]) for k in ("system", "release", "machine") if os_facts.get(k))
    system = ", ".join(part for part in (os_facts.get("pretty_name"), kernel) if part) or "unknown"
    cuda = lock.cuda or {}
    gpu = ", ".join(f"{key} {value}" for key, value in cuda.items() if value) or "none"
    libraries = ", ".join(f"{name} {version}" for name, version in lock.libraries.items())
    sources = "; ".join(f"{name}: {_origin(source)}" for name, source in lock.sources.items())
    return [
        ("python", plain(f"{lock.python} ({lock.implementation})")),
        ("os", plain(system)),
        ("cuda", plain(gpu)),
        ("packages", plain(f"{len(lock.packages)}" + ("" if lock.complete else " (flavor libraries only)"))),
        ("flavor libraries", plain(libraries or "-")),
        ("not from an index", plain(sources or "-")),
    ]


def _origin(source: Source | None) -> str:
    if source is None:
        return "index"
    return f"{source.kind} {source.reference}"


def _diff_rows(changes: LockDiff) -> list[tuple[str, str, str, str]]:
    rows = []
    for what, change in (("python", changes.python), ("implementation", changes.implementation)):
        if change is not None:
            rows.append((what, what, change[0] or "-", change[1] or "-"))
    for what, values in (("os", changes.os), ("cuda", changes.cuda), ("changed", changes.changed)):
        rows += [(what, name, a or "-", b or "-") for name, (a, b) in values.items()]
    rows += [("added", name, "-", version) for name, version in changes.added.items()]
    rows += [("removed", name, version, "-") for name, version in changes.removed.items()]
    rows += [("source", name, a or "index", b or "index") for name, (a, b) in changes.sources.items()]
    return rows


def _write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` whole or not at all: a temporary file beside it, then renamed."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".plinth-env-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
