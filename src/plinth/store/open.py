"""Open the metadata and artifact stores named by settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.core.settings import Settings
from plinth.store.audit_key import audit_secret
from plinth.store.base import Store

if TYPE_CHECKING:
    from plinth.store.blobs import BlobStore


def open_store(settings: Settings) -> Store:
    """The metadata store for `settings`: SQLite under PLINTH_HOME unless PLINTH_STORE says; its
    prediction segments go to the artifact store, opened when first needed."""
    from plinth.store.sql import SqlStore

    return SqlStore(
        settings.resolved_store_url,
        actor=settings.user,
        audit_key=audit_secret(settings),
        blobs=lambda: open_blobs(settings),
    )


def open_blobs(settings: Settings) -> BlobStore:
    """The artifact store for `settings`: a folder under PLINTH_HOME unless PLINTH_ARTIFACTS says."""
    from plinth.store.blobs import BlobStore

    return BlobStore(settings.resolved_artifacts_url, settings.storage_options)
