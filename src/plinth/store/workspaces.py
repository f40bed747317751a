"""Workspaces: one database (SQLite) or schema (PostgreSQL) per workspace.

A workspace's experiments, datasets, models, flows and deployments live in its own database, so
no query needs a workspace column and none can see another workspace's rows. The default
workspace is the store URL as configured: a store from before workspaces upgrades in place and
everything in it is in `default`. Workspace `vision` of

    sqlite:///dir/plinth.db                                is  sqlite:///dir/plinth.ws-vision.db
    postgresql://h/db?options=-csearch_path%3Dteam         is  the schema team_ws_vision of db
    postgresql://h/db (no search_path)                     is  the schema plinth_ws_vision of db

Each workspace's database gets every migration when first opened; which workspaces exist is
kept by the identity store (the default workspace's database). Blobs are content-addressed and
shared by every workspace, so garbage collection must count the references of all of them
(`referenced_everywhere`).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from plinth.core.access import DEFAULT_WORKSPACE, check_workspace_name
from plinth.core.errors import ConfigError, NotFound
from plinth.core.settings import Settings
from plinth.store.audit_key import audit_secret
from plinth.store.identity import IdentityStore

# SQLAlchemy, the SQL store and the artifact store load when first used: `open_store` imports
# this module, and `import plinth` stays light
if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from plinth.store.blobs import BlobStore
    from plinth.store.sql import SqlStore

_SEARCH_PATH = "-csearch_path="
_BASE_SCHEMA = "plinth"
_MAX_IDENTIFIER = 63
_SCHEMA_LOCK = 74110004  # PostgreSQL advisory lock: workspace schemas are created one at a time


def workspace_url(base_url: str, workspace: str) -> str:
    """The database URL of `workspace` in the store whose default workspace is `base_url`.

    Raises:
        InvalidInput: `workspace` cannot name a workspace.
        ConfigError: `base_url` is an in-memory SQLite database, which has no siblings, or the
            workspace's PostgreSQL schema name would be too long.
    """
    from sqlalchemy.engine import make_url

    check_workspace_name(workspace)
    if workspace == DEFAULT_WORKSPACE:
        return base_url
    url = make_url(base_url)
    if url.get_backend_name() == "sqlite":
        return _render(url.set(database=_sibling_file(url, workspace)))
    if url.get_backend_name() == "postgresql":
        options = [o for o in _options(url) if not o.startswith(_SEARCH_PATH)]
        schema = f"{base_schema(base_url)}_ws_{workspace.replace('-', '_')}"
        if len(schema.encode()) > _MAX_IDENTIFIER:  # PostgreSQL would cut it short, silently
            raise ConfigError(
                f"The schema of workspace {workspace!r}, {schema!r}, is longer than PostgreSQL's "
                f"{_MAX_IDENTIFIER} bytes; use a shorter workspace name or search_path schema."
            )
        return _render(url.update_query_dict({"options": " ".join([f"{_SEARCH_PATH}{schema}", *options])}))
    return base_url  # make_engine says what is wrong with it


def base_schema(url: str) -> str:
    """The schema a PostgreSQL URL's `options=-csearch_path=X` names first, else `plinth`."""
    from sqlalchemy.engine import make_url

    for option in _options(make_url(url)):
        if option.startswith(_SEARCH_PATH):
            first = option[len(_SEARCH_PATH) :].split(",")[0].strip().strip('"')
            if first:
                return first
    return _BASE_SCHEMA


def open_workspace_store(settings: Settings, workspace: str) -> SqlStore:
    """The metadata store of `workspace` in the store `settings` name (migrated, as `open_store`).

    Raises:
        NotFound: no such workspace (`default` always exists).
    """
    if workspace != DEFAULT_WORKSPACE:
        from plinth.store.sql.identity import SqlIdentity

        identity = SqlIdentity.from_settings(settings)
        try:
            _require(identity, workspace)
        finally:
            identity.close()
    return _open(settings, workspace, functools.cache(lambda: _blob_store(settings)))


class WorkspaceStores:
    """Each workspace's `SqlStore`, opened on first use and kept (one per process, thread-safe).

    Args:
        settings: name the store (its default workspace) and the artifact store.
        identity: says which workspaces exist.
    """

    def __init__(self, settings: Settings, identity: IdentityStore) -> None:
        self.settings = settings
        self.identity = identity
        self._stores: dict[str, SqlStore] = {}
        self._lock = threading.Lock()
        self._blobs: Callable[[], BlobStore] = functools.cache(lambda: _blob_store(settings))

    def get(self, name: str) -> SqlStore:
        """The store of workspace `name`.

        Raises:
            InvalidInput: `name` cannot name a workspace.
            NotFound: no such workspace.
        """
        store = self._stores.get(name)
        if store is not None:
            return store
        check_workspace_name(name)
        with self._lock:
            store = self._stores.get(name)
            if store is None:
                _require(self.identity, name)
                store = self._stores[name] = _open(self.settings, name, self._blobs)
        return store

    def names(self) -> list[str]:
        """Every workspace's name, `default` first."""
        return _names(self.identity)

    def referenced_digests(self) -> set[str]:
        """Every blob digest an entity of any workspace refers to (what garbage collection keeps)."""
        used: set[str] = set()
        for name in self.names():
            used |= self.get(name).referenced_digests()
        return used

    def close(self) -> None:
        """Close every store opened."""
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()


def referenced_everywhere(settings: Settings) -> set[str]:
    """Every blob digest an entity of any workspace of the store `settings` name refers to."""
    from plinth.store.sql.identity import SqlIdentity

    identity = SqlIdentity.from_settings(settings)
    stores = WorkspaceStores(settings, identity)
    try:
        return stores.referenced_digests()
    finally:
        stores.close()
        identity.close()


def _names(identity: IdentityStore) -> list[str]:
    names = {w.name for w in identity.list_workspaces()} - {DEFAULT_WORKSPACE}
    return [DEFAULT_WORKSPACE, *sorted(names)]


def _require(identity: IdentityStore, workspace: str) -> None:
    if not identity.workspace_exists(workspace):
        raise NotFound(f"No workspace {workspace!r}; create it with `plinth workspaces create {workspace}`.")


def _open(settings: Settings, workspace: str, blobs: Callable[[], BlobStore]) -> SqlStore:
    from plinth.store.sql import SqlStore

    url = workspace_url(settings.resolved_store_url, workspace)
    if workspace != DEFAULT_WORKSPACE and url.startswith("postgresql"):
        ensure_schema(url)
    return SqlStore(url, actor=settings.user, audit_key=audit_secret(settings), blobs=blobs)


def ensure_schema(url: str) -> None:
    """Create the schema a workspace's PostgreSQL URL names, unless it exists."""
    from plinth.store.engine import dispose, make_engine, writing

    schema = base_schema(url).replace('"', '""')
    engine = make_engine(url)
    try:
        with writing(engine) as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        dispose(engine)


def _blob_store(settings: Settings) -> BlobStore:
    from plinth.store.blobs import BlobStore

    return BlobStore(settings.resolved_artifacts_url, settings.storage_options)


def _sibling_file(url: URL, workspace: str) -> str:
    path = url.database
    if not path or path == ":memory:":
        raise ConfigError(
            f"Workspaces need the SQLite store in a file, not {url.render_as_string()!r}; "
            "point PLINTH_STORE (or PLINTH_HOME) at one."
        )
    folder, name = os.path.split(path)
    stem, suffix = os.path.splitext(name)
    return os.path.join(folder, f"{stem}.ws-{workspace}{suffix}")


def _options(url: URL) -> list[str]:
    value = url.query.get("options", "")
    text = " ".join(value) if isinstance(value, tuple) else value
    # `-c search_path=x` and `-csearch_path=x` say the same
    return text.replace("-c ", "-c").split()


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)
