"""Model packages: a flavor's files plus `plinth-model.json`, stored content-addressed.

The manifest lists every file by sha256 and names the model, version and flavor it belongs to;
a version's digest is the manifest's own sha256. Loading reads the manifest from the blob store
(checking its hash), checks that it describes the version asked for, copies the files into a
local cache once, and hands them to the flavor through a `Package`, which hashes every byte it
gives out. Tampered bytes, in the store or in the cache, are refused before they are deserialized.

Loading a pickle-based flavor (scikit-learn, plain Python, the LightGBM wrapper) runs code that
the package holds: whoever can write the store can run code in every process that loads from it.
The store is the trust root; signed manifests (`plinth.registry.signing`) move that trust to the
holder of a signing key.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, NoReturn

from plinth.core.entities import ModelFile, ModelVersion
from plinth.core.errors import IntegrityError, InvalidInput
from plinth.core.validation import check_artifact_path
from plinth.store.blobs import CHUNK, BlobStore
from plinth.tracking.artifacts import folder_files

MANIFEST = "plinth-model.json"
FORMAT = 1
_DIGEST = re.compile(r"[0-9a-f]{64}")


class VerifiedBytes:
    """Bytes this process has hashed, by sha256, kept in memory up to `limit` bytes (least recently
    used first out).

    A `bytes` object cannot change once hashed, unlike the cached file it was read from, so a
    warm load deserializes exactly what was verified without reading or hashing it again.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget everything kept."""
        with self._lock:
            self._items.clear()
            self._size = 0

    def get(self, digest: str) -> bytes | None:
        """The bytes whose sha256 is `digest`, if this process verified them and kept them."""
        with self._lock:
            data = self._items.get(digest)
            if data is not None:
                self._items.move_to_end(digest)
            return data

    def put(self, digest: str, data: bytes) -> None:
        """Keep `data`, already checked to hash to `digest`, unless it alone exceeds the limit."""
        if len(data) > self.limit:
            return
        with self._lock:
            if digest in self._items:
                return
            self._items[digest] = data
            self._size += len(data)
            while self._size > self.limit:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


VERIFIED = VerifiedBytes(64 * 2**20)


@dataclass(frozen=True)
class Package:
    """A local copy of a model version's files, each checked against the manifest as it is read.

    Nothing is trusted from an earlier check: a cached file rewritten in place (its size and
    modification time restored) is refused at the next read.
    """

    folder: str
    manifest: dict[str, Any]
    ref: str

    @property
    def meta(self) -> dict[str, Any]:
        """What the flavor's `save` returned."""
        meta = self.manifest.get("meta")
        return meta if isinstance(meta, dict) else {}

    def field(self, key: str, kind: type = str) -> Any:
        """`meta[key]`, checked to be a `kind` (a forged manifest may hold anything there).

        Raises:
            IntegrityError: the entry is missing or of another type; nothing was loaded.
        """
        value = self.meta.get(key)
        if not isinstance(value, kind):
            raise IntegrityError(
                f"The manifest of model {self.ref} holds {_shown(value)} as meta.{key}, where a "
                f"{kind.__name__} was expected; it was not loaded. The store was edited by hand or "
                "corrupted: restore it from a backup, or register the model again."
            )
        return value

    def has(self, rel: str) -> bool:
        """True when the manifest lists file `rel`."""
        return any(item["path"] == rel for item in self.manifest["files"])

    def read(self, rel: str) -> bytes:
        """The bytes of file `rel`, checked against the manifest: deserialize these, not the file.

        Raises:
            IntegrityError: the file is missing or its bytes differ from the manifest's
                (the cached copy is removed, so the next load fetches a verified one).
        """
        expected = self._expected(rel)
        data = VERIFIED.get(expected)
        if data is not None:
            return data
        path = self.local_path(rel)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            self._refuse(rel)
        if hashlib.sha256(data).hexdigest() != expected:
            self._refuse(rel)
        VERIFIED.put(expected, data)
        return data

    def path(self, rel: str) -> str:
        """The path of file `rel`, checked now; for libraries that open paths and run no code from them.

        Raises:
            IntegrityError: as `read`.
        """
        expected, path = self._expected(rel), self.local_path(rel)
        if not os.path.isfile(path) or _sha256(path) != expected:
            self._refuse(rel)
        return path

    def contents(self) -> dict[str, bytes]:
        """Every file's checked bytes, by path in the package."""
        return {item["path"]: self.read(item["path"]) for item in self.manifest["files"]}

    def local_path(self, rel: str) -> str:
        """Where file `rel` lies in the folder (its bytes unchecked), links resolved.

        Raises:
            IntegrityError: `rel` is not a plain relative path, or a link in the cached copy
                leads it outside the folder (the copy is removed, as in `read`).
        """
        if not is_plain(rel):
            raise IntegrityError(
                f"The manifest of model {self.ref} names {rel[:200]!r}, which is not a plain relative path."
            )
        target = os.path.join(self.folder, *rel.split("/"))
        base = os.path.realpath(self.folder)
        if os.path.commonpath([base, os.path.realpath(target)]) != base:
            self._refuse(rel)
        return target

    def _expected(self, rel: str) -> str:
        for item in self.manifest["files"]:
            if item["path"] == rel:
                return str(item["digest"])
        raise IntegrityError(f"Model {self.ref} needs file {rel!r}, which its manifest does not list.")

    def _refuse(self, rel: str) -> NoReturn:
        shutil.rmtree(self.folder, ignore_errors=True)
        raise IntegrityError(
            f"The cached copy of file {rel!r} of model {self.ref} was modified; it was removed "
            "and not loaded. Load the model again to fetch a verified copy."
        )


def is_plain(path: object) -> bool:
    """True when `path` is a name a package may hold: as `check_artifact_path` would write it."""
    try:
        return check_artifact_path(path) == path
    except InvalidInput:
        return False


def store_files(blobs: BlobStore, folder: str) -> list[ModelFile]:
    """Store every file under `folder`, links followed as `log_artifact` follows them; sorted by path.

    Raises:
        InvalidInput: a file name a package cannot hold, an unreadable file, a link back into a
            folder holding it, or no files at all; nothing is stored.
    """
    files = [ModelFile(rel, *blobs.put_file(local)) for local, rel in folder_files(folder)]
    if not files:
        raise InvalidInput("The flavor wrote no files for this model; nothing to register.")
    return files


def store_manifest(blobs: BlobStore, manifest: dict[str, Any], files: list[ModelFile]) -> str:
    """Store the manifest (`manifest` plus the file list); return its digest, the version's digest.

    Raises:
        InvalidInput: a file's path is not a plain relative path, or is the manifest's own name.
    """
    for item in files:
        if not is_plain(item.path) or item.path == MANIFEST:
            raise InvalidInput(f"A model package cannot hold a file named {item.path[:200]!r}.")
    body = {**manifest, "format": FORMAT, "files": [f.__dict__ for f in files]}
    digest, _ = blobs.put_bytes(json.dumps(body, sort_keys=True, indent=1).encode())
    return digest


def read_manifest(blobs: BlobStore, mv: ModelVersion) -> dict[str, Any]:
    """The manifest a version's digest names, checked to describe that very version.

    Raises:
        IntegrityError: the manifest's bytes do not hash to the digest, or it is not a manifest,
            or it names a file a package cannot hold, or another model, version or flavor (the
            version's record was changed). No file of the package is read or written before.
    """
    if not _DIGEST.fullmatch(mv.digest):
        raise IntegrityError(
            f"Model {mv.ref} records {mv.digest!r:.80} as its digest, which is not a sha256."
        )
    data = blobs.read_bytes(mv.digest, name=f"manifest of model {mv.ref}")
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):
        manifest = None
    if not _is_manifest(manifest):
        raise IntegrityError(f"The digest of model {mv.ref} names a blob that is not a model manifest.")
    _check_paths(manifest, mv)
    _check_describes(manifest, mv)
    return manifest


def _is_manifest(doc: Any) -> bool:
    files = doc.get("files") if isinstance(doc, dict) else None
    return isinstance(files, list) and all(
        isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("digest"), str)
        for f in files
    )


def _check_paths(manifest: dict[str, Any], mv: ModelVersion) -> None:
    seen: set[str] = set()
    for item in manifest["files"]:
        path = item["path"]
        if not is_plain(path) or path in seen or path == MANIFEST:
            raise IntegrityError(
                f"The manifest of model {mv.ref} names the file {path[:200]!r}, which a package cannot "
                "hold (not a plain relative path, listed twice, or the manifest's own name); nothing "
                "was read or written. The store was edited by hand or corrupted: restore it from a "
                "backup, or register the model again."
            )
        seen.add(path)


def _check_describes(manifest: dict[str, Any], mv: ModelVersion) -> None:
    # manifests written before versions were recorded in them carry no "version"
    described = (manifest.get("name"), manifest.get("version", mv.version), manifest.get("flavor"))
    if described != (mv.name, mv.version, mv.flavor):
        name, version, flavor = described
        raise IntegrityError(
            f"The record of model {mv.ref} ({mv.flavor}) points at the package of {name}/{version} "
            f"({flavor}); it was not loaded. Its digest was changed: restore the record from a backup, "
            "or register the model again."
        )


def materialize(blobs: BlobStore, mv: ModelVersion, cache_root: str) -> Package:
    """The version's package in the local cache (fetched and hash-checked on first use)."""
    manifest = read_manifest(blobs, mv)
    folder = os.path.join(cache_root, mv.digest)
    if not os.path.isdir(folder):
        _fetch(blobs, manifest, mv, cache_root, folder)
    return Package(folder, manifest, mv.ref)


def _fetch(
    blobs: BlobStore, manifest: dict[str, Any], mv: ModelVersion, cache_root: str, folder: str
) -> None:
    os.makedirs(cache_root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=cache_root)
    try:
        fresh = Package(staging, manifest, mv.ref)
        for item in manifest["files"]:
            target = fresh.local_path(item["path"])
            blobs.get_file(item["digest"], target, name=f"file {item['path']!r} of model {mv.ref}")
        with open(os.path.join(staging, MANIFEST), "w") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
        try:
            os.rename(staging, folder)
        except OSError:  # another process fetched it first; reads check its copy as they would ours
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _shown(value: Any) -> str:
    """A manifest value for a message: short, and nothing in it printed raw."""
    return "nothing" if value is None else f"{value!r:.200}"


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
