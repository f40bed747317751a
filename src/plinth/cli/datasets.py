"""`plinth datasets`: the versioned datasets runs logged, with their schema and profile."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from plinth.cli import render
from plinth.cli.options import json_option
from plinth.cli.render import console, fields, line, number, plain, say, size, table, when
from plinth.core.entities import DatasetVersion
from plinth.core.errors import NotFound
from plinth.core.refs import DatasetRef


@click.group("datasets", short_help="List and inspect versioned datasets.")
def datasets() -> None:
    """Datasets: content-addressed versions logged with run.log_dataset, with schema and profile."""


@datasets.command("list")
@click.argument("name", required=False)
@json_option
def datasets_list(name: str | None, as_json: bool) -> None:
    """List dataset versions: of dataset NAME, or of all datasets."""
    import plinth

    found: list[DatasetVersion] = plinth.list_datasets(name)
    if as_json:
        render.emit_json([_dataset_dict(d, full=False) for d in found])
        return
    if not found:
        say(
            f"No versions of dataset {name!r}."
            if name
            else "No datasets yet; log one with run.log_dataset()."
        )
        return
    rows = [
        (d.name, d.version, d.rows, len(d.schema), size(d.size), d.digest[:12], when(d.created_ms))
        for d in found
    ]
    console.print(
        table("Datasets", ["name", "version", "rows", "columns", "size", "sha256", "created"], rows)
    )


@datasets.command("show")
@click.argument("ref")
@json_option
def datasets_show(ref: str, as_json: bool) -> None:
    """Show dataset version REF: its schema and per-column profile.

    REF is NAME (the latest version) or NAME/VERSION, e.g. digits-train, digits-train/1 or
    org/churn/3 (version 3 of org/churn).
    """
    import plinth

    parsed = DatasetRef.parse(ref)
    try:
        found = plinth.get_dataset(parsed)
    except NotFound as exc:
        raise NotFound(f"{exc} REF is NAME or NAME/VERSION, e.g. digits-train/1.") from exc
    if as_json:
        render.emit_json(_dataset_dict(found, full=True))
    else:
        show_dataset(found)


def _dataset_dict(ds: DatasetVersion, full: bool) -> dict[str, Any]:
    data = {**asdict(ds), "ref": ds.ref}
    if not full:
        data.pop("profile")
        data.pop("schema")
        data["columns"] = len(ds.schema)
    loaded: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return loaded


def show_dataset(ds: DatasetVersion) -> None:
    """Print a dataset version and its per-column profile."""
    console.print(line(("Dataset ", "bold"), (ds.ref, "bold")))
    summary = [
        ("rows", plain(ds.rows)),
        ("columns", plain(len(ds.schema))),
        ("size", plain(size(ds.size))),
        ("sha256", plain(ds.digest)),
        ("source", plain(ds.source)),
        ("created", plain(when(ds.created_ms))),
    ]
    console.print(fields(summary))
    rows = [
        (col["name"], col["dtype"], col["kind"], _missing(col), _column_summary(col))
        for col in ds.profile.get("columns", [])
    ]
    if rows:
        console.print(table("Columns", ["name", "dtype", "kind", "missing", "summary"], rows))


def _missing(col: dict[str, Any]) -> str:
    rate = col.get("missing_rate")
    return f"{rate:.1%}" if isinstance(rate, int | float) else ""


def _column_summary(col: dict[str, Any]) -> str:
    if col.get("kind") == "numeric" and col.get("min") is not None:
        return f"min {number(col['min'])}  mean {number(col.get('mean'))}  max {number(col['max'])}"
    top = col.get("top")
    if isinstance(top, list) and top:
        return "top " + ", ".join(f"{v} ({c})" for v, c in top[:3])
    return ""
