"""Notebook views of datasets: a dataset version's facts and profile, and a list of versions.

The profile table has one row per column, in the dataset's order: its kind and type, the share
missing, min / max / mean / std for numbers with a histogram drawn from the profile's quantile
bins, and the most frequent values for categories.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plinth.core.entities import DatasetVersion
from plinth.notebook import links, svg
from plinth.notebook.html import (
    Table,
    clip,
    code,
    esc,
    head,
    heading,
    kv,
    link,
    muted,
    number,
    percent,
    size,
    when,
)
from plinth.notebook.style import document

TOP_SHOWN = 3
"""Most frequent values a categorical column lists in its row."""


def dataset_html(dataset: DatasetVersion) -> str:
    """A dataset version: facts, then its profile, column by column."""
    columns: list[dict[str, Any]] = list(dataset.profile.get("columns") or [])
    title = head(
        f'<span class="title">dataset {esc(dataset.name)} / version {dataset.version}</span>',
        f'<span class="muted">{dataset.rows:,} rows, {len(columns) or len(dataset.schema)} columns</span>',
        link("lineage in plinth UI ↗", links.dataset_url(dataset.ref)),
    )
    facts = kv(
        [
            ("Dataset", esc(dataset.ref)),
            ("Rows", f"{dataset.rows:,}"),
            ("Size", size(dataset.size) if dataset.size else ""),
            ("Digest", f'<code title="{esc(dataset.digest)}">sha256 {esc(dataset.digest[:12])}</code>'),
            ("Source", clip(dataset.source) if dataset.source else ""),
            ("Created", when(dataset.created_ms)),
            ("Id", code(dataset.id)),
        ]
    )
    profile = profile_html(columns) if columns else _schema(dataset.schema)
    return document("dataset", title + facts + profile, dataset=dataset.ref)


def profile_html(columns: Sequence[dict[str, Any]]) -> str:
    """The profile's columns as one table (numbers with a histogram, categories with top values)."""
    headers = ("column", "kind", "dtype", "missing", "min", "max", "mean", "std", "distribution")
    table = Table(headers, numeric=frozenset({3, 4, 5, 6, 7}), name="profile")
    for column in columns:
        missing = column.get("missing_rate")
        cells = [
            esc(column.get("name", "")),
            esc(column.get("kind", "")),
            code(str(column.get("dtype", ""))),
            f'<span class="bad">{percent(missing)}</span>' if missing else percent(missing),
            *_range(column),
            _distribution(column),
        ]
        table.add(cells, key=str(column.get("name", "")))
    return heading(f"Profile ({len(columns)} columns)") + table.render(more="columns")


def _range(column: dict[str, Any]) -> list[str]:
    if column.get("kind") == "numeric":
        return [number(column.get(k)) for k in ("min", "max", "mean", "std")]
    if column.get("kind") == "datetime":
        return [esc(column.get("min") or "—"), esc(column.get("max") or "—"), "", ""]
    return ["", "", "", ""]


def _distribution(column: dict[str, Any]) -> str:
    if column.get("kind") == "numeric":
        found = column.get("histogram") or {}
        chart = svg.histogram(
            found.get("edges") or [], found.get("counts") or [], label=f"{column.get('name')} histogram"
        )
        infinite = column.get("infinite_count") or 0
        return chart + (f' <span class="muted">{infinite} infinite</span>' if infinite else "")
    top: list[list[Any]] = column.get("top") or []
    if not top:
        return ""
    total = sum(int(count) for _, count in top) + int(column.get("other_count") or 0)
    shown = ", ".join(
        f"{esc(value)} ({percent(int(count) / total if total else None)})" for value, count in top[:TOP_SHOWN]
    )
    distinct = column.get("distinct")
    more = f' <span class="muted">of {distinct} distinct</span>' if distinct and distinct > TOP_SHOWN else ""
    return shown + more


def _schema(schema: Sequence[dict[str, str]]) -> str:
    if not schema:
        return muted("No profile and no schema were recorded.")
    table = Table(("column", "dtype"), name="schema")
    for column in schema:
        table.add([esc(column.get("name", "")), code(column.get("dtype", ""))], key=column.get("name", ""))
    return heading("Schema (no profile recorded)") + table.render(more="columns")


def datasets_html(datasets: Sequence[DatasetVersion]) -> str:
    """Dataset versions in the order given: one row each."""
    table = Table(
        ("dataset", "version", "rows", "size", "created", "source"),
        numeric=frozenset({1, 2, 3}),
        name="datasets",
    )
    for ds in datasets:
        table.add(
            [
                link(esc(ds.name), links.dataset_url(ds.ref)),
                str(ds.version),
                f"{ds.rows:,}",
                size(ds.size) if ds.size else "—",
                when(ds.created_ms),
                clip(ds.source, 60),
            ],
            key=ds.ref,
        )
    title = head(f'<span class="title">{len(datasets)} dataset versions</span>')
    return document("datasets", title + table.render(more="versions"), count=str(len(datasets)))
