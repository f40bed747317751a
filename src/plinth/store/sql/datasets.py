"""Dataset versions, as a part of `SqlStore`."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Row, insert, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from plinth.core import entities as e
from plinth.core.errors import NotFound
from plinth.core.ids import new_id, now_ms
from plinth.core.refs import MAX_VERSION, version_text
from plinth.store import schema as t
from plinth.store.base import NewDataset
from plinth.store.engine import retrying
from plinth.store.sql.base import SqlBase


class SqlDatasets(SqlBase):
    """Dataset methods of SqlStore: a version per distinct digest, numbered per name."""

    def add_dataset_version(self, new: NewDataset) -> tuple[e.DatasetVersion, bool]:
        def add(conn: Connection) -> tuple[e.DatasetVersion, bool]:
            ds = t.datasets
            row = conn.execute(select(ds).where(ds.c.name == new.name, ds.c.digest == new.digest)).first()
            if row is not None:
                return _dataset(row), False
            last = conn.execute(
                select(ds.c.version).where(ds.c.name == new.name).order_by(ds.c.version.desc()).limit(1)
            ).scalar()
            version_id, version = new_id(), (last or 0) + 1
            values = {
                "id": version_id,
                "name": new.name,
                "version": version,
                "digest": new.digest,
                "size": new.size,
                "rows": new.rows,
                "schema": json.dumps(new.schema),
                "profile": json.dumps(new.profile),
                "source": new.source,
                "created_ms": now_ms(),
            }
            conn.execute(insert(ds).values(**values))
            self._audit(
                conn,
                "dataset.create",
                "dataset_version",
                version_id,
                after=f"{new.name}/{version} {new.digest}",
            )
            return _dataset(values), True

        def attempt() -> tuple[e.DatasetVersion, bool]:
            try:
                with self._transaction() as conn:
                    return add(conn)
            except SqlIntegrityError:  # a concurrent writer took this version number: retry
                return attempt()

        return retrying(attempt, "record a dataset version")

    def get_dataset_version(self, name: str, version: int | None = None) -> e.DatasetVersion:
        if version is not None and not 1 <= version <= MAX_VERSION:  # no column holds it
            raise NotFound(
                f"Dataset {name!r:.120} has no version {version_text(version)}; "
                "list them with `plinth datasets list`."
            )

        def fetch(conn: Connection) -> e.DatasetVersion:
            ds = t.datasets
            query = select(ds).where(ds.c.name == name)
            query = query.where(ds.c.version == version) if version is not None else query
            row = conn.execute(query.order_by(ds.c.version.desc()).limit(1)).first()
            if row is None:
                which = f"{name}/{version}" if version is not None else name
                raise NotFound(f"No dataset version {which!r}; list them with `plinth datasets list`.")
            return _dataset(row)

        return self._read("read a dataset version", fetch)

    def list_dataset_versions(self, name: str | None = None) -> list[e.DatasetVersion]:
        def fetch(conn: Connection) -> list[e.DatasetVersion]:
            ds = t.datasets
            query = select(ds).order_by(ds.c.name, ds.c.version)
            if name is not None:
                query = query.where(ds.c.name == name)
            return [_dataset(r) for r in conn.execute(query)]

        return self._read("list dataset versions", fetch)


def _dataset(row: Row[Any] | dict[str, Any]) -> e.DatasetVersion:
    get = row.__getitem__ if isinstance(row, dict) else row._mapping.__getitem__
    return e.DatasetVersion(
        id=get("id"),
        name=get("name"),
        version=get("version"),
        digest=get("digest"),
        rows=get("rows"),
        schema=json.loads(get("schema")),
        profile=json.loads(get("profile")),
        source=get("source"),
        created_ms=get("created_ms"),
        size=get("size"),
    )
