"""Model versions read from a SQLite store with the standard library alone.

Loading a model needs two lookups (an alias, then a version's row); opening `SqlStore` for them
costs SQLAlchemy's import and a schema check, many times what the lookups take. A
`SqliteModelLookup` reads the same rows over `sqlite3`, read-only, and only from a database
already at this plinth's schema: anything else (another database, an older or newer schema, a
file that is not there) is left to `SqlStore`, which migrates it or says what is wrong.

The rows become `ModelVersion`s, and a missing model, version or alias becomes `NotFound`, by
the functions here, which `SqlStore` uses too: both read a version the same way.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import quote

from plinth.core.entities import ModelVersion
from plinth.core.errors import NotFound
from plinth.core.refs import MAX_VERSION, version_text
from plinth.store.failures import BUSY_BUDGET_S, store_failure

_MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations", "versions")
_SCRIPT = re.compile(r"(\d{4})_\w+\.py")
# `sqlite:///relative.db` or `sqlite:////absolute.db`; a URL with a query, a percent-escape or
# another driver keeps to SqlStore, which reads it as SQLAlchemy does
_PLAIN_SQLITE = re.compile(r"sqlite:///([^?#%]+)")

_COLUMNS = (
    "id, name, version, flavor, digest, signature, environment, run_id, description, creator, "
    "created_ms, manifest_signature, signing_key, source"
)
_LATEST = f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? ORDER BY version DESC LIMIT 1"
_VERSION = f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? AND version = ?"
_ALIASES = "SELECT alias, version FROM model_aliases WHERE name = ?"
_ALIAS = "SELECT version FROM model_aliases WHERE name = ? AND alias = ?"
_MODEL = "SELECT name FROM registered_models WHERE name = ?"
_TAGS = 'SELECT "key", value FROM model_version_tags WHERE model_version_id = ?'


@functools.cache
def schema_head() -> str:
    """The newest schema revision: migration scripts are named `NNNN_title.py`, revision NNNN."""
    revisions = [m.group(1) for m in map(_SCRIPT.fullmatch, os.listdir(_MIGRATIONS)) if m]
    return max(revisions)


class Row(Protocol):
    """A row whose columns are read by name (SQLAlchemy's `RowMapping`, `sqlite3.Row`, a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...


def model_version(row: Row, aliases: tuple[str, ...], tags: dict[str, str] | None = None) -> ModelVersion:
    """The `ModelVersion` of a `model_versions` row, the aliases pointing at it and its tags."""
    signature = row["signature"]
    return ModelVersion(
        id=row["id"],
        name=row["name"],
        version=row["version"],
        flavor=row["flavor"],
        digest=row["digest"],
        signature=json.loads(signature) if signature else None,
        environment=json.loads(row["environment"]),
        run_id=row["run_id"],
        description=row["description"],
        creator=row["creator"],
        created_ms=row["created_ms"],
        aliases=aliases,
        manifest_signature=row["manifest_signature"],
        signing_key=row["signing_key"],
        tags=tags or {},
        source=row["source"],
    )


def missing_model(name: str, version: int | None, *, named: bool) -> NotFound:
    """NotFound for `name/version` (`version` None: any version), `named` when the name exists."""
    if not named:
        return NotFound(f"No model named {name!r}; list models with `plinth models list`.")
    if version is None:  # a name created before its first version (MLflow creates names first)
        return NotFound(f"Model {name!r} has no versions yet; register one before loading it.")
    return NotFound(
        f"Model {name!r} has no version {version_text(version)}; see `plinth models show {name}`."
    )


def missing_alias(name: str, alias: str, known: list[str]) -> NotFound:
    """NotFound for an alias that model `name` (which exists) lacks; `known` are its aliases."""
    hint = f"its aliases are {', '.join(sorted(known))}" if known else "it has no aliases"
    return NotFound(f"Model {name!r} has no alias {alias!r}; {hint}.")


def sqlite_path(url: str) -> str | None:
    """The database file of a plain SQLite URL (`sqlite:///path`), or None for any other URL."""
    match = _PLAIN_SQLITE.fullmatch(url)
    if match is None or match.group(1) == ":memory:":
        return None
    return match.group(1)


class SqliteModelLookup:
    """`get_model_version` and `resolve_alias` of `SqlStore`, read-only over `sqlite3`.

    Open one with `SqliteModelLookup.open(url)`; close it when done. Nothing is written: the
    database is opened read-only.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, url: str) -> SqliteModelLookup | None:
        """A lookup on the SQLite file `url` names, if it is at this plinth's schema; else None.

        None also for a URL that is not a plain SQLite file, a file that does not exist or
        cannot be read: `SqlStore` opens those, and creates, migrates or refuses them.
        """
        path = sqlite_path(url)
        if path is None or not os.path.isfile(path):
            return None
        try:
            conn = sqlite3.connect(
                f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True, timeout=BUSY_BUDGET_S
            )
        except sqlite3.Error:
            return None
        conn.isolation_level = None  # transactions are begun by `_reading`
        conn.row_factory = sqlite3.Row
        try:
            current = [tuple(r) for r in conn.execute("SELECT version_num FROM alembic_version")]
        except sqlite3.Error:
            current = []
        if current != [(schema_head(),)]:
            conn.close()
            return None
        return cls(conn)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def get_model_version(self, name: str, version: int | None = None) -> ModelVersion:
        """One version (the latest when `version` is None), as `SqlStore.get_model_version`.

        Raises:
            NotFound: no such model or version.
            StoreError: the database cannot be read.
        """
        with self._reading("read a model version") as conn:
            if version is None:
                row = conn.execute(_LATEST, (name,)).fetchone()
            elif 1 <= version <= MAX_VERSION:
                row = conn.execute(_VERSION, (name, version)).fetchone()
            else:
                row = None
            if row is None:
                raise missing_model(name, version, named=_named(conn, name))
            aliases = tuple(sorted(a for a, v in conn.execute(_ALIASES, (name,)) if v == row["version"]))
            return model_version(row, aliases, dict(conn.execute(_TAGS, (row["id"],)).fetchall()))

    def resolve_alias(self, name: str, alias: str) -> int:
        """The version `name@alias` points at, as `SqlStore.resolve_alias`.

        Raises:
            NotFound: no such model, or no such alias of it.
            StoreError: the database cannot be read.
        """
        with self._reading("resolve a model alias") as conn:
            found = conn.execute(_ALIAS, (name, alias)).fetchone()
            if found is not None:
                return int(found[0])
            if not _named(conn, name):
                raise missing_model(name, None, named=False)
            raise missing_alias(name, alias, [a for a, _ in conn.execute(_ALIASES, (name,))])

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[sqlite3.Connection]:
        """The connection inside one read transaction, so every row comes from one snapshot."""
        try:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise store_failure(str(exc), what) from exc


def _named(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute(_MODEL, (name,)).fetchone() is not None
