"""Datasets MLflow recorded with `log_input`: plinth dataset versions that hold no bytes.

MLflow keeps a dataset's name, digest, source, schema and profile, never its rows. Each becomes
a plinth dataset version with MLflow's digest, size 0, the row count its profile gives, the
columns its schema gives, and a profile that says the bytes are not held; each run that
consumed it gets a lineage edge dataset_version -consumed_by-> run, whose role is MLflow's
context ("training", "eval", ...). Both are idempotent, so every import writes them again and
only what is new is added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from plinth.core.entities import LineageEdge
from plinth.core.errors import InvalidInput
from plinth.core.ids import now_ms
from plinth.importers.mlflow.context import ImportContext
from plinth.importers.mlflow.records import MlDataset, MlInput, parse_json
from plinth.store.base import NewDataset


def new_dataset(dataset: MlDataset) -> NewDataset:
    """The plinth dataset version of an MLflow dataset (its bytes are not held)."""
    profile = parse_json(dataset.profile)
    schema = parse_json(dataset.schema)
    source = parse_json(dataset.source)
    rows = profile.get("num_rows") if isinstance(profile, dict) else None
    return NewDataset(
        name=dataset.name,
        digest=dataset.digest,
        size=0,
        rows=rows if isinstance(rows, int) and not isinstance(rows, bool) else 0,
        schema=_columns(schema),
        profile={
            "mlflow": {
                "source_type": dataset.source_type,
                "source": source if source is not None else dataset.source,
                "schema": schema,
                "profile": profile,
            },
            "bytes_held": False,
        },
        source=_source_text(source, dataset),
    )


def _columns(schema: Any) -> list[dict[str, str]]:
    """name/type of each column MLflow's schema names (its `mlflow_colspec`); none otherwise."""
    specs = schema.get("mlflow_colspec") if isinstance(schema, dict) else None
    if not isinstance(specs, list):
        return []
    return [
        {"name": str(c.get("name", "")), "type": str(c.get("type", ""))} for c in specs if isinstance(c, dict)
    ]


def _source_text(source: Any, dataset: MlDataset) -> str:
    """Where the data lies: the URI in MLflow's source JSON when it has one, else the text as is."""
    if isinstance(source, dict):
        for key in ("uri", "url", "path", "table_name"):
            if isinstance(source.get(key), str):
                return str(source[key])
    return dataset.source or dataset.source_type


def import_inputs(ctx: ImportContext, inputs: Sequence[MlInput], run_ids: Mapping[str, str]) -> None:
    """Record the datasets the imported runs consumed, and link each to its runs."""
    versions: dict[str, str] = {}  # MLflow dataset id -> plinth dataset version id
    edges: list[LineageEdge] = []
    for item in inputs:
        run_id = run_ids.get(item.run_id)
        if run_id is None:
            continue
        version_id = versions.get(item.dataset.id)
        if version_id is None:
            try:
                version, created = ctx.store.add_dataset_version(new_dataset(item.dataset))
            except InvalidInput as exc:
                ctx.summary.problem(
                    f"Dataset {item.dataset.name!r} of MLflow run {item.run_id} not imported: {exc}"
                )
                continue
            ctx.summary.add("datasets", imported=int(created), existing=int(not created))
            version_id = versions[item.dataset.id] = version.id
        role = {"role": item.context} if item.context else {}
        edges.append(LineageEdge("dataset_version", version_id, "consumed_by", "run", run_id, now_ms(), role))
    _link(ctx, edges)


def _link(ctx: ImportContext, edges: list[LineageEdge]) -> None:
    """Add the edges plinth lacks, counting new and existing ones."""
    if not edges:
        return
    held: set[tuple[str, str]] = set()
    for src in {e.src_id for e in edges}:
        found = ctx.store.edges(src=("dataset_version", src))
        held.update((e.src_id, e.dst_id) for e in found if e.relation == "consumed_by")
    fresh = [e for e in edges if (e.src_id, e.dst_id) not in held]
    if fresh:
        ctx.store.add_edges(fresh)
    ctx.summary.add("dataset links", imported=len(fresh), existing=len(edges) - len(fresh))
