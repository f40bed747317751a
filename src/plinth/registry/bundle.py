"""A model version baked into a folder: its record and its bytes, readable with no store.

Layout of a bundle folder:

    version.json        the `ModelVersion` record (every field, aliases included), as JSON
    blobs/ab/cdef…      the manifest and every file of the package, laid out as a `BlobStore`

The same version always gives byte-identical folders (sorted keys, fixed modes and
modification times, nothing recording when it was written), so a container build that copies
one reuses its layer. A `BundleSource` serves the folder to `load_version` as a store would:
every byte is verified against the record and signatures are checked the same way, and
nothing is written into the folder (the package cache lives under the settings' home).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plinth.core.entities import ModelVersion
from plinth.core.errors import IntegrityError, InvalidInput, NotFound
from plinth.core.refs import LATEST
from plinth.registry import signing
from plinth.registry.models import resolve
from plinth.registry.package import read_manifest
from plinth.store import wire
from plinth.store.blobs import BlobStore

if TYPE_CHECKING:
    from plinth.core.settings import Settings
    from plinth.registry.source import ModelSource

VERSION_FILE = "version.json"
BLOBS = "blobs"
_FILE_MODE = 0o644
_FOLDER_MODE = 0o755


def write_bundle(source: ModelSource, mv: ModelVersion, folder: str) -> str:
    """Bake version `mv` (its record, manifest and files, from `source`) into `folder`.

    The folder is written beside its final place and renamed into it, so it is either whole or
    absent; a bundle already there is replaced. Every blob is verified on the way.

    Returns:
        The version's digest (the sha256 of its manifest).

    Raises:
        IntegrityError: the manifest or a file does not match the version's record.
        NotFound: a blob of the version is missing from the artifact store.
        InvalidInput: `folder` holds something other than a bundle, or cannot be written.
    """
    manifest = read_manifest(source.blobs, mv)
    target = os.path.abspath(folder)
    _check_replaceable(target)
    staging = _staging_folder(target)
    try:
        baked = BlobStore(staging)
        for digest, name in _blobs_of(mv, manifest):
            source.blobs.get_file(digest, baked.path_of(digest), name=name)
        with open(os.path.join(staging, VERSION_FILE), "wb") as fh:
            fh.write(version_json(mv))
        _settle(staging, mv.created_ms / 1000.0)
        _publish(staging, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise InvalidInput(
                f"Cannot write the model bundle {target!r}: {exc.strerror or exc}; choose a folder "
                "this user can write, with free space."
            ) from exc
        raise
    return mv.digest


def version_json(mv: ModelVersion) -> bytes:
    """The bytes of a bundle's `version.json`: the record with sorted keys, one way only."""
    text = json.dumps(wire.encode(mv), sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode()


def read_bundle(folder: str) -> ModelVersion:
    """The version baked into `folder` (its record only: bytes are verified when loaded).

    Raises:
        NotFound: no such folder, or it holds no `version.json`.
        IntegrityError: `version.json` is not a version record, or the folder has no blobs.
    """
    if not os.path.isdir(folder):
        raise NotFound(f"No model bundle at {folder!r}: there is no such folder. {_WRITTEN_BY}")
    path = os.path.join(folder, VERSION_FILE)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        missing = f"{folder!r} is not a model bundle: it holds no {VERSION_FILE}."
        raise NotFound(f"{missing} {_WRITTEN_BY}") from None
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path!r}: {exc.strerror or exc}.") from exc
    try:
        mv: ModelVersion = wire.decode(wire.loads(data, VERSION_FILE), ModelVersion, VERSION_FILE)
    except InvalidInput as exc:
        why = f"its {VERSION_FILE} is not a model version record: {exc}"
        raise IntegrityError(_corrupt(folder, why)) from exc
    if not os.path.isdir(os.path.join(folder, BLOBS)):
        raise IntegrityError(_corrupt(folder, f"it has no {BLOBS}/ folder"))
    return mv


_WRITTEN_BY = "Give the folder a bundle was written to (by `plinth build`, or `write_bundle`)."


def _corrupt(folder: str, why: str) -> str:
    return f"The model bundle at {folder!r} is corrupted: {why}. Write the bundle again from its store."


@dataclass
class BundleVersions:
    """The registry of a bundle: its one version, by name, number, alias or `latest`."""

    version: ModelVersion
    folder: str

    def get_model_version(self, name: str, version: int | None = None) -> ModelVersion:
        """The baked version, if `name` (and `version`, when given) name it.

        Raises:
            NotFound: another model or version, naming what the bundle holds.
        """
        if name == self.version.name and version in (None, self.version.version):
            return self.version
        raise NotFound(self._holds_only(name if version is None else f"{name}/{version}"))

    def resolve_alias(self, name: str, alias: str) -> int:
        """The baked version's number, if `alias` is `latest` or one of the aliases it had when baked.

        Raises:
            NotFound: another model or alias, naming what the bundle holds.
        """
        if name == self.version.name and (alias == LATEST or alias in self.version.aliases):
            return self.version.version
        raise NotFound(self._holds_only(f"{name}@{alias}"))

    def _holds_only(self, asked: str) -> str:
        mv = self.version
        aliases = ", ".join(f"{mv.name}@{a}" for a in mv.aliases)
        also = f" (also {aliases})" if aliases else ""
        return (
            f"The model bundle at {self.folder!r} holds {mv.ref}{also} only, so {asked} is not in it. "
            f"Serve {mv.name} or {mv.ref}, or bake a bundle of {asked}."
        )


@dataclass
class BundleSource:
    """A `ModelSource` over a bundle folder: its one version, its blobs read in place.

    Args:
        folder: the bundle's folder; only read, never written.
        settings: signing and the package cache (under `settings.home`) come from these.

    Raises:
        NotFound, IntegrityError: as `read_bundle`.
    """

    folder: str
    settings: Settings
    version: ModelVersion = field(init=False)
    _blobs: BlobStore | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.folder = os.path.abspath(self.folder)  # a BlobStore reads an absolute path in place
        self.version = read_bundle(self.folder)

    @property
    def store(self) -> BundleVersions:
        """The bundle's registry: the baked version only."""
        return BundleVersions(self.version, self.folder)

    @property
    def blobs(self) -> BlobStore:
        """The bundle's blobs, read in place."""
        if self._blobs is None:
            self._blobs = BlobStore(self.folder)
        return self._blobs


def check_bundle(folder: str, refs: Sequence[str], settings: Settings) -> list[str]:
    """The references to serve from the bundle at `folder`, checked before any model is loaded.

    No `refs` serves the baked model by name. Each reference must name the baked version, its
    signature must pass the checks `load_model` makes, and its manifest must match its record.

    Raises:
        NotFound: no bundle there, or a reference to something it does not hold.
        IntegrityError: a corrupted bundle; SignatureError: as `load_model`.
    """
    source = BundleSource(folder, settings)
    chosen = list(refs) or [source.version.name]
    for ref in chosen:
        resolve(ref, source)
    signing.check(source.version, settings)
    read_manifest(source.blobs, source.version)
    return chosen


def _blobs_of(mv: ModelVersion, manifest: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(digest, name for messages) of the manifest and of each distinct file it lists."""
    yield mv.digest, f"manifest of model {mv.ref}"
    seen = {mv.digest}
    for item in manifest["files"]:
        if item["digest"] not in seen:
            seen.add(item["digest"])
            yield item["digest"], f"file {item['path']!r} of model {mv.ref}"


def _check_replaceable(target: str) -> None:
    """Refuse a target that holds something other than a bundle (an empty folder is fine)."""
    if not os.path.isdir(target):
        if os.path.lexists(target):
            raise InvalidInput(f"Cannot write a model bundle to {target!r}: it is a file; choose a folder.")
        return
    if os.listdir(target) and not os.path.isfile(os.path.join(target, VERSION_FILE)):
        raise InvalidInput(
            f"Cannot write a model bundle to {target!r}: it holds other files. Choose an empty or new folder."
        )


def _staging_folder(target: str) -> str:
    parent = os.path.dirname(target)
    try:
        os.makedirs(parent, exist_ok=True)
        return tempfile.mkdtemp(prefix=f".{os.path.basename(target)}-", dir=parent)
    except OSError as exc:
        raise InvalidInput(
            f"Cannot write the model bundle {target!r}: {exc.strerror or exc}; choose a folder "
            "this user can write."
        ) from exc


def _settle(root: str, mtime: float) -> None:
    """Give every file and folder under `root` a fixed mode and modification time."""
    for folder, _dirs, names in os.walk(root, topdown=False):
        for name in names:
            path = os.path.join(folder, name)
            os.chmod(path, _FILE_MODE)
            os.utime(path, (mtime, mtime))
        os.chmod(folder, _FOLDER_MODE)
        os.utime(folder, (mtime, mtime))


def _publish(staging: str, target: str) -> None:
    """Move the finished bundle into place; a bundle (or empty folder) already there is replaced."""
    if not os.path.isdir(target):
        os.rename(staging, target)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}-old-", dir=os.path.dirname(target))
    previous = os.path.join(old, "bundle")
    os.rename(target, previous)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(previous, target)
        os.rmdir(old)
        raise
    shutil.rmtree(old, ignore_errors=True)
