"""Dataset versions: stored once by content, profiled, linked to the runs that use them."""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any

from plinth.core.entities import DatasetVersion, LineageEdge
from plinth.core.errors import InvalidInput
from plinth.core.refs import DatasetRef, check_ref_name
from plinth.core.validation import check_key
from plinth.store.base import NewDataset
from plinth.store.blobs import file_digest
from plinth.tracking.context import Backend
from plinth.tracking.profiles import profile_frame, schema_of, to_frame

if TYPE_CHECKING:
    import pandas as pd


def log_dataset(
    be: Backend,
    data: Any,
    name: str,
    *,
    role: str = "train",
    run_id: str | None = None,
    source: str | None = None,
) -> DatasetVersion:
    """Store `data` as a version of dataset `name` and link it to `run_id` with `role`."""
    check_dataset_name(name)
    check_key(role, "role")
    is_path = isinstance(data, (str, os.PathLike))
    frame = to_frame(data)
    with tempfile.TemporaryDirectory(prefix="plinth-ds-") as tmp:
        if is_path and str(data).lower().endswith((".parquet", ".pq")):
            stored = os.fspath(data)
        else:
            stored = os.path.join(tmp, "data.parquet")
            frame.to_parquet(stored, index=False)
        digest, size = file_digest(stored)
        if not be.blobs.exists(digest):
            be.blobs.put_file(stored)
    new = NewDataset(
        name=name,
        digest=digest,
        size=size,
        rows=len(frame),
        schema=schema_of(frame),
        profile=profile_frame(frame),
        source=source or (os.path.abspath(os.fspath(data)) if is_path else "memory"),
    )
    version, _created = be.store.add_dataset_version(new)
    if run_id is not None:
        be.store.add_edge(
            LineageEdge(
                "dataset_version",
                version.id,
                "consumed_by",
                "run",
                run_id,
                version.created_ms,
                {"role": role},
            )
        )
    return version


def check_dataset_name(name: object) -> str:
    """Validate a dataset name: one every `NAME/N` reference can name (CLI, drift, lineage)."""
    return check_ref_name(name, "dataset")


def find_dataset(be: Backend, name: str | DatasetRef, version: int | None = None) -> DatasetVersion:
    """The dataset version `name` names: a name (then `version`, or the newest) or a reference.

    Raises:
        InvalidInput: a bad reference, or a version given both in the reference and as `version`.
        NotFound: no such dataset or version.
    """
    parsed = DatasetRef.parse(name)
    if version is not None and parsed.version is not None:
        raise InvalidInput(
            f"{str(parsed)!r} already names a version; pass the name {parsed.name!r} with "
            f"version={version}, or the reference alone."
        )
    return be.store.get_dataset_version(parsed.name, parsed.version if version is None else version)


def load_dataset(be: Backend, name: str | DatasetRef, version: int | None = None) -> pd.DataFrame:
    """Read a stored dataset version back as a pandas DataFrame (hash verified)."""
    import pandas as pd

    ds = find_dataset(be, name, version)
    with tempfile.TemporaryDirectory(prefix="plinth-ds-") as tmp:
        path = os.path.join(tmp, "data.parquet")
        be.blobs.get_file(ds.digest, path, name=f"dataset {ds.ref}")
        return pd.read_parquet(path)
