"""Logging files and folders as content-addressed artifacts, and getting them back."""

from __future__ import annotations

import os

from plinth.core.entities import Artifact
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.validation import check_artifact_path
from plinth.store.base import ArtifactRecord
from plinth.tracking.context import Backend
from plinth.tracking.progress import progress


def log_artifact(be: Backend, run_id: str, path: str, artifact_path: str | None) -> list[Artifact]:
    """Store a file or every file of a folder; record them under the run in one transaction."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InvalidInput(f"Cannot log artifact {path!r}: no such file or folder.")
    base = check_artifact_path(artifact_path or os.path.basename(os.path.abspath(path)))
    files = _files(path, base)
    if not files:
        raise InvalidInput(f"Folder {path!r} holds no files to log.")
    records = []
    with progress("Storing artifacts", total=len(files)) as advance:
        for local, logical in files:
            digest, size = be.blobs.put_file(local)
            records.append(ArtifactRecord(logical, digest, size))
            advance(1)
    return be.store.add_artifacts(run_id, records)


def _files(path: str, base: str) -> list[tuple[str, str]]:
    if os.path.isfile(path):
        return [(path, base)]
    found = []
    for root, _dirs, names in os.walk(path):
        for name in sorted(names):
            local = os.path.join(root, name)
            rel = os.path.relpath(local, path).replace(os.sep, "/")
            found.append((local, f"{base}/{rel}"))
    return sorted(found, key=lambda item: item[1])


def download_artifacts(be: Backend, run_id: str, path: str, dest: str) -> list[str]:
    """Copy a run's artifact (a file or a folder prefix) to `dest`, verifying every hash.

    Returns the local paths written.
    """
    prefix = check_artifact_path(path)
    items = be.store.list_artifacts(run_id, prefix)
    if not items:
        raise NotFound(
            f"Run {run_id} has no artifact at {path!r}; see `plinth runs show {run_id}` for its artifacts."
        )
    written = []
    single = len(items) == 1 and items[0].path == prefix
    for item in items:
        if single:
            target = os.path.join(dest, os.path.basename(item.path)) if os.path.isdir(dest) else dest
        else:
            rel = item.path[len(prefix) :].lstrip("/")
            target = os.path.join(dest, os.path.basename(prefix), rel)
        be.blobs.get_file(item.digest, target, name=f"artifact {item.path!r} of run {run_id}")
        written.append(target)
    return written
