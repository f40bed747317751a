"""Logging files and folders as content-addressed artifacts, and getting them back."""

from __future__ import annotations

import os
import shutil
import tempfile

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
    return be.store.add_artifacts(run_id, records, replace=base)


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

    A single file lands at `dest`, or inside it when `dest` is a folder; a folder prefix
    lands as `dest/<last part of path>/…`. All or nothing: the files are fetched and verified
    into a staging folder first, so a missing or corrupted blob leaves `dest` untouched.

    Returns the local paths written.
    """
    prefix = check_artifact_path(path)
    items = be.store.list_artifacts(run_id, prefix)
    if not items:
        raise NotFound(
            f"Run {run_id} has no artifact at {path!r}; see `plinth runs show {run_id}` for its artifacts."
        )
    dest = os.fspath(dest)
    if len(items) == 1 and items[0].path == prefix:
        into = os.path.isdir(dest) or dest.endswith(("/", os.sep))
        targets = [os.path.join(dest, os.path.basename(prefix)) if into else dest]
    else:
        if os.path.exists(dest) and not os.path.isdir(dest):
            raise InvalidInput(f"Cannot copy folder {path!r} into {dest!r}: it is a file.")
        root = os.path.join(dest, os.path.basename(prefix))
        targets = [os.path.join(root, *item.path[len(prefix) :].strip("/").split("/")) for item in items]
    stage = tempfile.mkdtemp(prefix=".plinth-download-", dir=_existing_folder(targets[0]))
    try:
        with progress("Fetching artifacts", total=len(items)) as advance:
            for i, item in enumerate(items):
                name = f"artifact {item.path!r} of run {run_id}"
                be.blobs.get_file(item.digest, os.path.join(stage, str(i)), name=name)
                advance(1)
        for i, target in enumerate(targets):
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            os.replace(os.path.join(stage, str(i)), target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return targets


def _existing_folder(path: str) -> str:
    """The nearest folder above `path` that exists (staging there keeps moves on one disk)."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    return folder
