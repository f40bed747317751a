"""Where an MLflow run's or model's files lie, and how they get into plinth's blob store.

MLflow's database records an artifact location per run (`artifact_uri`) and per logged model,
but not the files: those lie in a folder (a local path or `file://` URI), behind its server
(`mlflow-artifacts:/...`), or in object storage. The importer reads what it can reach from this
machine: a recorded local folder that exists, or, with `--artifacts-root ROOT`, the same files
under ROOT laid out as MLflow lays them out:

    ROOT/<experiment id>/<run id>/artifacts/...            a run's files
    ROOT/<experiment id>/models/<model id>/artifacts/...   a logged model's files (MLflow 3)
    ROOT/<path>           for mlflow-artifacts:/<path> (ROOT = the server's --artifacts-destination)

A source that serves files itself (an MLflow server) lists and streams them instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from plinth.core.errors import InvalidInput, PlinthError
from plinth.core.validation import check_artifact_path
from plinth.importers.mlflow.records import Source, SourceFile
from plinth.store.base import ArtifactRecord

if TYPE_CHECKING:
    from plinth.store.blobs import BlobStore

_PROXY = "mlflow-artifacts"


@dataclass(frozen=True)
class Located:
    """The files found for one run or model, and what could not be read (named for the summary)."""

    files: list[SourceFile]
    problems: list[str]


def local_path(uri: str | None) -> str | None:
    """The local path a recorded location names, or None for a remote one (s3://, mlflow-artifacts:/...)."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return uri
    return None


def proxied_path(uri: str | None) -> str | None:
    """The path below the server's artifact root of an `mlflow-artifacts:` URI, else None."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme != _PROXY:
        return None
    return unquote(parsed.path).lstrip("/")


class Locator:
    """Finds the local folder of a run's or a logged model's artifacts (see the module's docstring)."""

    def __init__(self, root: str | None) -> None:
        self.root = os.path.abspath(os.path.expanduser(root)) if root else None

    def run_folder(self, experiment_id: str, run_id: str, artifact_uri: str | None) -> str | None:
        """The first existing folder among the places a run's artifacts may lie."""
        return _first_folder(self._candidates(artifact_uri, [experiment_id, run_id, "artifacts"]))

    def model_folder(self, experiment_id: str, model_id: str, location: str | None) -> str | None:
        """The first existing folder among the places a logged model's files may lie."""
        return _first_folder(self._candidates(location, [experiment_id, "models", model_id, "artifacts"]))

    def folder(self, location: str | None) -> str | None:
        """The folder a location names, when it is local (or under the root) and exists."""
        return _first_folder(self._candidates(location, None))

    def _candidates(self, uri: str | None, layout: Sequence[str] | None) -> list[str]:
        found: list[str] = []
        if self.root is not None:
            proxied = proxied_path(uri)
            if proxied is not None:
                found.append(os.path.join(self.root, *proxied.split("/")))
            if layout is not None:
                found.append(os.path.join(self.root, *layout))
        local = local_path(uri)
        if local is not None:
            found.append(local)
        return found

    def reachable(self, uri: str | None) -> bool:
        """True when files under `uri` would be read from this machine, were there any."""
        return bool(uri) and (self.root is not None or local_path(uri) is not None)

    def unreachable(self, uri: str | None) -> str:
        """Why a location was not read, in words for the summary."""
        if not uri:
            return "MLflow recorded no artifact location"
        if local_path(uri) is None and self.root is None:
            return f"{uri} is not a local path; give --artifacts-root with a copy of those files"
        return f"no folder at {uri}" + (f" nor under --artifacts-root {self.root}" if self.root else "")


def _first_folder(paths: Sequence[str]) -> str | None:
    return next((p for p in paths if os.path.isdir(p)), None)


def folder_files(folder: str, prefix: str = "") -> Located:
    """Every file under `folder` (links followed), named by its path below it under `prefix`.

    A file whose name plinth cannot store as an artifact path is left out and named.
    """
    files: list[SourceFile] = []
    problems: list[str] = []
    for local, rel in _walk(folder):
        name = f"{prefix}/{rel}" if prefix else rel
        try:
            name = check_artifact_path(name)
            size = os.path.getsize(local)
        except (InvalidInput, OSError) as exc:
            problems.append(f"{local}: {exc}")
            continue
        files.append(SourceFile(name, size, local, local=True))
    return Located(files, problems)


def _walk(folder: str) -> Iterator[tuple[str, str]]:
    """(local path, path below `folder` with `/`) of every file, sorted."""
    for here, dirs, names in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in sorted(names):
            local = os.path.join(here, name)
            yield local, os.path.relpath(local, folder).replace(os.sep, "/")


def remote_files(source: Source, kind: str, owner_id: str, prefix: str = "") -> Located | None:
    """A run's (`kind` "run") or logged model's ("model") files as the source serves them,
    named under `prefix` when given; None when it serves none."""
    listed = source.remote_files(kind, owner_id)
    if listed is None:
        return None
    files, problems = [], []
    for item in listed:
        name = f"{prefix}/{item.path}" if prefix else item.path
        try:
            files.append(SourceFile(check_artifact_path(name), item.size, item.location, local=False))
        except InvalidInput as exc:
            problems.append(f"{item.location}: {exc}")
    return Located(files, problems)


class Uploader:
    """Puts source files into the blob store: local files as they are, remote ones streamed
    through a temporary file. Counts files and bytes for the summary."""

    def __init__(self, source: Source, blobs: BlobStore) -> None:
        self.source = source
        self.blobs = blobs
        self.files = 0
        self.bytes = 0

    def store(self, files: Sequence[SourceFile], problems: list[str]) -> list[ArtifactRecord]:
        """The records of the files stored; each file that could not be read is named in `problems`."""
        records = []
        for file in files:
            try:
                digest, size = self._put(file)
            except (OSError, PlinthError) as exc:
                problems.append(f"{file.location}: {exc}")
                continue
            records.append(ArtifactRecord(file.path, digest, size))
            self.files += 1
            self.bytes += size
        return records

    def _put(self, file: SourceFile) -> tuple[str, int]:
        if file.local:
            return self.blobs.put_file(file.location)
        with tempfile.TemporaryDirectory(prefix="plinth-import-") as tmp:
            dest = os.path.join(tmp, "file")
            self.source.download(file, dest)
            return self.blobs.put_file(dest)
