"""Model packages: a flavor's files plus `plinth-model.json`, stored content-addressed.

The manifest lists every file by sha256; a version's digest is the manifest's own sha256.
Loading copies the files into a local cache, verifying each hash, and re-verifies the cached
copy on every load, so tampered bytes are refused before any of them is deserialized.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from plinth.core.entities import ModelFile, ModelVersion
from plinth.core.errors import IntegrityError, InvalidInput
from plinth.store.blobs import CHUNK, BlobStore

MANIFEST = "plinth-model.json"
FORMAT = 1


@dataclass(frozen=True)
class StoredPackage:
    """What `store_package` wrote: the manifest's digest, the files, and the manifest itself."""

    digest: str
    files: list[ModelFile]
    manifest: dict[str, Any]


def store_package(blobs: BlobStore, folder: str, manifest: dict[str, Any]) -> StoredPackage:
    """Store every file under `folder` and a manifest listing them; return its digest."""
    files = []
    for root, _dirs, names in os.walk(folder):
        for name in sorted(names):
            local = os.path.join(root, name)
            rel = os.path.relpath(local, folder).replace(os.sep, "/")
            digest, size = blobs.put_file(local)
            files.append(ModelFile(rel, digest, size))
    if not files:
        raise InvalidInput("The flavor wrote no files for this model; nothing to register.")
    files.sort(key=lambda f: f.path)
    body = {**manifest, "format": FORMAT, "files": [f.__dict__ for f in files]}
    data = json.dumps(body, sort_keys=True, indent=1).encode()
    digest, _ = blobs.put_bytes(data)
    return StoredPackage(digest, files, body)


def materialize(blobs: BlobStore, mv: ModelVersion, cache_root: str) -> tuple[str, dict[str, Any]]:
    """A verified local copy of a model version's package; returns (folder, manifest)."""
    manifest = json.loads(blobs.read_bytes(mv.digest, name=f"manifest of model {mv.ref}"))
    folder = os.path.join(cache_root, mv.digest)
    if os.path.isdir(folder):
        _verify_local(folder, manifest, mv)
        return folder, manifest
    os.makedirs(cache_root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=cache_root)
    try:
        for item in manifest["files"]:
            target = _safe_join(staging, item["path"], mv)
            blobs.get_file(item["digest"], target, name=f"file {item['path']!r} of model {mv.ref}")
        with open(os.path.join(staging, MANIFEST), "w") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
        try:
            os.rename(staging, folder)
        except OSError:  # another process materialized it first
            shutil.rmtree(staging, ignore_errors=True)
            _verify_local(folder, manifest, mv)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder, manifest


# Files this process has hashed, by (path, size, mtime_ns, inode): an unchanged file is not re-read.
_verified: dict[tuple[str, int, int, int], str] = {}


def _verify_local(folder: str, manifest: dict[str, Any], mv: ModelVersion) -> None:
    for item in manifest["files"]:
        path = _safe_join(folder, item["path"], mv)
        if not os.path.isfile(path) or _digest_of(path) != item["digest"]:
            shutil.rmtree(folder, ignore_errors=True)
            raise IntegrityError(
                f"The cached copy of file {item['path']!r} of model {mv.ref} was modified; it was removed "
                "and not loaded. Load the model again to fetch a verified copy."
            )


def _safe_join(root: str, rel: str, mv: ModelVersion) -> str:
    target = os.path.normpath(os.path.join(root, rel))
    if not target.startswith(os.path.normpath(root) + os.sep):
        raise IntegrityError(f"The manifest of model {mv.ref} names a path outside its package: {rel!r}.")
    return target


def _digest_of(path: str) -> str:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns, st.st_ino)
    digest = _verified.get(key)
    if digest is None:
        digest = _verified[key] = _sha256(path)
    return digest


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
