"""Open the metadata and artifact stores named by settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.core.access import DEFAULT_WORKSPACE
from plinth.core.settings import Settings
from plinth.store.audit_key import audit_secret
from plinth.store.base import Store

if TYPE_CHECKING:
    from plinth.store.blobs import BlobStore


def open_store(settings: Settings) -> Store:
    """The metadata store for `settings`: SQLite under PLINTH_HOME unless PLINTH_STORE says; its
    prediction segments go to the artifact store, opened when first needed.

    A team server's URL (`PLINTH_STORE=http(s)://…`) gives a `RemoteStore` acting as the token's
    principal (no audit key needed here: the server keys the chain); PLINTH_WORKSPACE picks the
    workspace, on a server and in a store opened directly alike.
    """
    if settings.is_remote:
        from plinth.store.http import client_from_settings
        from plinth.store.remote import RemoteStore

        return RemoteStore(client_from_settings(settings))
    if settings.workspace and settings.workspace != DEFAULT_WORKSPACE:
        from plinth.store.workspaces import open_workspace_store

        return open_workspace_store(settings, settings.workspace)
    from plinth.store.sql import SqlStore

    return SqlStore(
        settings.resolved_store_url,
        actor=settings.user,
        audit_key=audit_secret(settings),
        blobs=lambda: open_blobs(settings),
    )


def open_blobs(settings: Settings) -> BlobStore:
    """The artifact store for `settings`: a folder under PLINTH_HOME unless PLINTH_ARTIFACTS says;
    the team server's blobs when PLINTH_STORE names one."""
    from plinth.store.blobs import BlobStore

    if settings.is_remote:
        from plinth.store.http import client_from_settings
        from plinth.store.remote_blobs import RemoteBlobStore

        return RemoteBlobStore(client_from_settings(settings))
    return BlobStore(settings.resolved_artifacts_url, settings.storage_options)
