"""Where a model version is read from: the open backend, or the store's registry read in place.

A process whose first plinth call is `load_model` has no backend open. Opening one imports
SQLAlchemy, checks the schema and may write (the audit key file, on first use), all to read two
rows. Where the settings name a local SQLite store already at this plinth's schema,
those rows are read read-only with the standard library instead (`SqliteModelLookup`), and the
artifacts from their folder; the bytes are verified, and signatures checked, exactly as through
a backend. Any other store is opened as a backend, as every other call opens it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from plinth.core.settings import Settings
from plinth.store.lookup import SqliteModelLookup
from plinth.store.open import open_blobs
from plinth.tracking.context import backend, current

if TYPE_CHECKING:
    from plinth.core.entities import ModelVersion
    from plinth.store.blobs import BlobStore


class VersionReader(Protocol):
    """The store calls that find a model version: a `Store`, or a `SqliteModelLookup`."""

    def get_model_version(self, name: str, version: int | None = None) -> ModelVersion: ...

    def resolve_alias(self, name: str, alias: str) -> int: ...


class ModelSource(Protocol):
    """What loading a model needs: settings (signing, the cache), versions, and their bytes."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> VersionReader: ...

    @property
    def blobs(self) -> BlobStore: ...


@dataclass
class StoreInPlace:
    """A store's registry read in place: versions from `store`, bytes from the artifact store."""

    settings: Settings
    store: SqliteModelLookup
    _blobs: BlobStore | None = field(default=None, repr=False)

    @property
    def blobs(self) -> BlobStore:
        """The artifact store, opened on first use."""
        if self._blobs is None:
            self._blobs = open_blobs(self.settings)
        return self._blobs


@contextlib.contextmanager
def model_source() -> Iterator[ModelSource]:
    """The default backend if one is open; else the store read in place where it can be (see the
    module docstring); else the default backend, opened."""
    be = current()
    if be is not None:
        yield be
        return
    settings = Settings.from_env()
    lookup = SqliteModelLookup.open(settings.resolved_store_url)
    if lookup is None:
        yield backend()
        return
    with contextlib.closing(lookup):
        yield StoreInPlace(settings, lookup)
