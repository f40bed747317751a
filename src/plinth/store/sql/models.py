"""The model registry's tables, as a part of `SqlStore`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Row, RowMapping, bindparam, delete, func, insert, select, update

from plinth.core import entities as e
from plinth.core.errors import ConflictError, NotFound
from plinth.core.ids import new_id
from plinth.core.ids import now_ms as _now
from plinth.core.refs import MAX_VERSION, check_ref_name
from plinth.core.validation import check_text
from plinth.store import schema as t
from plinth.store.base import ModelRegistryStore, NewModelVersion
from plinth.store.lookup import missing_alias, missing_model, model_version
from plinth.store.sql.base import SqlBase, checked_tags, mapping_digest

_VERSION = select(t.model_versions).where(
    t.model_versions.c.name == bindparam("name"), t.model_versions.c.version == bindparam("version")
)
_LATEST = (
    select(t.model_versions)
    .where(t.model_versions.c.name == bindparam("name"))
    .order_by(t.model_versions.c.version.desc())
    .limit(1)
)
_ALIASES = select(t.model_aliases.c.alias, t.model_aliases.c.version).where(
    t.model_aliases.c.name == bindparam("name")
)
_VERSION_TAGS = select(t.model_version_tags.c.key, t.model_version_tags.c.value).where(
    t.model_version_tags.c.model_version_id == bindparam("id")
)
_MODEL_TAGS = select(t.registered_model_tags.c.key, t.registered_model_tags.c.value).where(
    t.registered_model_tags.c.name == bindparam("name")
)


class SqlModelRegistry(SqlBase, ModelRegistryStore):
    """Registry methods of SqlStore: versions numbered under a row lock, aliases, signatures."""

    def create_model_version(self, new: NewModelVersion) -> e.ModelVersion:
        if new.source is not None:
            check_text(new.source, "source of a model version")

        def create(conn: Connection) -> e.ModelVersion:
            self._lock_model(conn, new.name)
            last = conn.execute(
                select(func.max(t.model_versions.c.version)).where(t.model_versions.c.name == new.name)
            ).scalar()
            version = (last or 0) + 1
            sealed = new.seal(version)  # the manifest names this version; its blob outlives a rollback
            values = {
                "id": new_id(),
                "name": new.name,
                "version": version,
                "flavor": new.flavor,
                "digest": sealed.digest,
                "signature": json.dumps(new.signature) if new.signature else None,
                "environment": json.dumps(new.environment, sort_keys=True),
                "manifest_signature": sealed.signature,
                "signing_key": sealed.signing_key,
                "run_id": new.run_id,
                "description": new.description,
                "creator": self.actor,
                "created_ms": _now(),
                "source": new.source,
            }
            conn.execute(insert(t.model_versions), values)
            files = [
                {"model_version_id": values["id"], "path": f.path, "digest": f.digest, "size": f.size}
                for f in new.files
            ]
            if files:
                conn.execute(insert(t.model_files), files)
            self._audit(
                conn,
                "model.version.create",
                "model_version",
                f"{new.name}/{version}",
                after=sealed.digest,
            )
            return _version(values, ())

        return self._write("register a model version", create)

    def _lock_model(self, conn: Connection, name: str) -> None:
        """Create the name on first use and lock its row so version numbers never collide."""
        rm = t.registered_models
        row = conn.execute(select(rm.c.name).where(rm.c.name == name).with_for_update()).first()
        if row is None:
            sql = (
                "INSERT INTO registered_models (name, description, creator, created_ms) "
                "VALUES ({p}, '', {p}, {p}) ON CONFLICT DO NOTHING"
            ).format(p="?" if conn.dialect.name == "sqlite" else "%s")
            conn.exec_driver_sql(sql, (name, self.actor, _now()))
            conn.execute(select(rm.c.name).where(rm.c.name == name).with_for_update())
            self._audit(conn, "model.create", "model", name, after=name)

    def get_model_version(self, name: str, version: int | None = None) -> e.ModelVersion:
        def fetch(conn: Connection) -> e.ModelVersion:
            if version is None:
                row = conn.execute(_LATEST, {"name": name}).first()
            else:
                row = _version_row(conn, name, version)
            if row is None:
                raise _missing(conn, name, version)
            aliases = self._aliases_of(conn, name, row.version)
            return _version(row._mapping, aliases, _version_tags(conn, row.id))

        return self._read("read a model version", fetch)

    def list_model_versions(self, name: str) -> list[e.ModelVersion]:
        def fetch(conn: Connection) -> list[e.ModelVersion]:
            mv = t.model_versions
            rows = conn.execute(select(mv).where(mv.c.name == name).order_by(mv.c.version)).all()
            if not rows and not _named(conn, name):  # a name created before its first version has none
                raise missing_model(name, None, named=False)
            aliases = dict(conn.execute(_ALIASES, {"name": name}).all())
            tags = _tags_by_version(conn, [r.id for r in rows])
            return [
                _version(
                    r._mapping,
                    tuple(sorted(a for a, v in aliases.items() if v == r.version)),
                    tags.get(r.id, {}),
                )
                for r in rows
            ]

        return self._read("list model versions", fetch)

    def list_registered_models(self) -> list[e.RegisteredModel]:
        def fetch(conn: Connection) -> list[e.RegisteredModel]:
            mv, rm, ma, mt = t.model_versions, t.registered_models, t.model_aliases, t.registered_model_tags
            latest = dict(conn.execute(select(mv.c.name, func.max(mv.c.version)).group_by(mv.c.name)).all())
            aliases: dict[str, dict[str, int]] = {}
            for name, alias, version in conn.execute(select(ma.c.name, ma.c.alias, ma.c.version)):
                aliases.setdefault(name, {})[alias] = version
            tags: dict[str, dict[str, str]] = {}
            for name, key, value in conn.execute(select(mt.c.name, mt.c.key, mt.c.value)):
                tags.setdefault(name, {})[key] = value
            return [
                e.RegisteredModel(
                    r.name,
                    r.description,
                    r.created_ms,
                    latest.get(r.name, 0),
                    aliases.get(r.name, {}),
                    tags.get(r.name, {}),
                )
                for r in conn.execute(select(rm).order_by(rm.c.name))
            ]

        return self._read("list models", fetch)

    def create_registered_model(self, name: str, description: str) -> e.RegisteredModel:
        check_ref_name(name, "model")
        check_text(description, "description")

        def create(conn: Connection) -> e.RegisteredModel:
            created = _now()
            marks = ", ".join([self._placeholder] * 4)
            sql = (
                "INSERT INTO registered_models (name, description, creator, created_ms) "
                f"VALUES ({marks}) ON CONFLICT DO NOTHING"
            )
            made = conn.exec_driver_sql(sql, (name, description, self.actor, created)).rowcount
            if not made:  # a concurrent creation waits for ours, then finds it
                raise ConflictError(
                    f"A model named {name!r} exists already; see `plinth models show {name}`, "
                    "or register a new version of it."
                )
            self._audit(conn, "model.create", "model", name, after=name)
            return e.RegisteredModel(name, description, created, 0)

        return self._write("create a model", create)

    def get_registered_model(self, name: str) -> e.RegisteredModel:
        def fetch(conn: Connection) -> e.RegisteredModel:
            rm, mv = t.registered_models, t.model_versions
            row = conn.execute(select(rm).where(rm.c.name == name)).first()
            if row is None:
                raise missing_model(name, None, named=False)
            latest = conn.execute(select(func.max(mv.c.version)).where(mv.c.name == name)).scalar()
            aliases = {a: int(v) for a, v in conn.execute(_ALIASES, {"name": name})}
            tags = dict(conn.execute(_MODEL_TAGS, {"name": name}).all())
            return e.RegisteredModel(row.name, row.description, row.created_ms, latest or 0, aliases, tags)

        return self._read("read a model", fetch)

    def set_registered_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        checked = checked_tags(tags)

        def change(conn: Connection) -> None:
            if _lock_name(conn, name) is None:
                raise missing_model(name, None, named=False)
            if not checked:
                return
            mt = t.registered_model_tags
            where = [mt.c.name == name]
            old = _upsert(conn, mt, where, mt.c.key, {"name": name}, checked)
            before = mapping_digest(old) if old else None
            self._audit(conn, "model.tags.set", "model", name, before=before, after=mapping_digest(checked))

        self._write("set model tags", change)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        def remove(conn: Connection) -> None:
            if _lock_name(conn, name) is None:
                raise missing_model(name, None, named=False)
            mt = t.registered_model_tags
            gone = conn.execute(delete(mt).where(mt.c.name == name, mt.c.key == key)).rowcount
            if not gone:
                raise NotFound(f"Model {name!r} has no tag {key!r}; see `plinth models show {name}`.")
            self._audit(conn, "model.tag.delete", "model", name, before=key, after=None)

        self._write("delete a model tag", remove)

    def set_model_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        checked = checked_tags(tags)

        def change(conn: Connection) -> None:
            row = _version_row(conn, name, version, lock=True)
            if row is None:
                raise _missing(conn, name, version)
            if not checked:
                return
            vt = t.model_version_tags
            where = [vt.c.model_version_id == row.id]
            old = _upsert(conn, vt, where, vt.c.key, {"model_version_id": row.id}, checked)
            before = mapping_digest(old) if old else None
            self._audit(
                conn,
                "model.version.tags.set",
                "model_version",
                f"{name}/{version}",
                before=before,
                after=mapping_digest(checked),
            )

        self._write("set model version tags", change)

    def delete_model_version_tag(self, name: str, version: int, key: str) -> None:
        def remove(conn: Connection) -> None:
            row = _version_row(conn, name, version, lock=True)
            if row is None:
                raise _missing(conn, name, version)
            vt = t.model_version_tags
            gone = conn.execute(delete(vt).where(vt.c.model_version_id == row.id, vt.c.key == key)).rowcount
            if not gone:
                raise NotFound(
                    f"Model version {name}/{version} has no tag {key!r}; see `plinth models show {name}`."
                )
            self._audit(
                conn, "model.version.tag.delete", "model_version", f"{name}/{version}", before=key, after=None
            )

        self._write("delete a model version tag", remove)

    def model_files(self, version_id: str) -> list[e.ModelFile]:
        def fetch(conn: Connection) -> list[e.ModelFile]:
            mf = t.model_files
            rows = conn.execute(select(mf).where(mf.c.model_version_id == version_id).order_by(mf.c.path))
            return [e.ModelFile(r.path, r.digest, r.size) for r in rows]

        return self._read("list model files", fetch)

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        def move(conn: Connection) -> int | None:
            _lock_name(conn, name)
            if _version_row(conn, name, version) is None:
                raise _missing(conn, name, version)
            ma = t.model_aliases
            old = conn.execute(select(ma.c.version).where(ma.c.name == name, ma.c.alias == alias)).scalar()
            if old is None:
                conn.execute(
                    insert(ma), {"name": name, "alias": alias, "version": version, "updated_ms": _now()}
                )
            else:
                conn.execute(
                    update(ma)
                    .where(ma.c.name == name, ma.c.alias == alias)
                    .values(version=version, updated_ms=_now())
                )
            self._audit(
                conn,
                "model.alias.set",
                "model",
                name,
                before=None if old is None else f"{alias}={old}",
                after=f"{alias}={version}",
            )
            return old

        return self._write("set a model alias", move)

    def delete_alias(self, name: str, alias: str) -> int:
        def remove(conn: Connection) -> int:
            _lock_name(conn, name)
            ma = t.model_aliases
            old = conn.execute(select(ma.c.version).where(ma.c.name == name, ma.c.alias == alias)).scalar()
            if old is None:
                raise NotFound(f"Model {name!r} has no alias {alias!r}; see `plinth models show {name}`.")
            conn.execute(delete(ma).where(ma.c.name == name, ma.c.alias == alias))
            self._audit(conn, "model.alias.delete", "model", name, before=f"{alias}={old}", after=None)
            return int(old)

        return self._write("delete a model alias", remove)

    def resolve_alias(self, name: str, alias: str) -> int:
        def fetch(conn: Connection) -> int:
            ma = t.model_aliases
            found = conn.execute(select(ma.c.version).where(ma.c.name == name, ma.c.alias == alias)).scalar()
            if found is None:
                missing = _missing(conn, name, None)
                if "No model named" in str(missing):
                    raise missing
                raise missing_alias(name, alias, [a for a, _ in conn.execute(_ALIASES, {"name": name})])
            return int(found)

        return self._read("resolve a model alias", fetch)

    def set_model_description(self, name: str, version: int | None, description: str) -> None:
        def change(conn: Connection) -> None:
            if version is None:
                table, where = t.registered_models, [t.registered_models.c.name == name]
            else:
                table = t.model_versions
                where = [table.c.name == name, table.c.version == version]
            if version is not None and not 1 <= version <= MAX_VERSION:
                raise _missing(conn, name, version)
            old = conn.execute(select(table.c.description).where(*where).with_for_update()).first()
            if old is None:
                raise _missing(conn, name, version)
            conn.execute(update(table).where(*where).values(description=description))
            entity = name if version is None else f"{name}/{version}"
            self._audit(conn, "model.description.set", "model", entity, before=old[0], after=description)

        self._write("change a model description", change)

    def sign_model_version(
        self, name: str, version: int, digest: str, signature: str, signing_key: str
    ) -> e.ModelVersion:
        def sign(conn: Connection) -> e.ModelVersion:
            mv = t.model_versions
            row = _version_row(conn, name, version, lock=True)
            if row is None:
                raise _missing(conn, name, version)
            if row.digest != digest:
                raise ConflictError(
                    f"The digest of model {name}/{version} changed while it was checked for signing; "
                    "nothing was signed. Check the version and sign it again."
                )
            conn.execute(
                update(mv)
                .where(mv.c.id == row.id)
                .values(manifest_signature=signature, signing_key=signing_key)
            )
            self._audit(
                conn,
                "model.version.sign",
                "model_version",
                f"{name}/{version}",
                before=row.signing_key,
                after=signing_key,
            )
            values = {**row._mapping, "manifest_signature": signature, "signing_key": signing_key}
            return _version(values, self._aliases_of(conn, name, version), _version_tags(conn, row.id))

        return self._write("sign a model version", sign)

    @staticmethod
    def _aliases_of(conn: Connection, name: str, version: int) -> tuple[str, ...]:
        return tuple(sorted(a for a, v in conn.execute(_ALIASES, {"name": name}) if v == version))


def _lock_name(conn: Connection, name: str) -> Row[Any] | None:
    """Lock the model's row: alias moves of one model take turns, so each reads the value it replaces.

    SQLite's write transactions already take turns; on PostgreSQL two moves would otherwise both
    read the same old value and audit it twice. A model without a row has no versions to alias.
    Returns the row, None when there is no such model.
    """
    rm = t.registered_models
    return conn.execute(select(rm.c.name).where(rm.c.name == name).with_for_update()).first()


def _upsert(
    conn: Connection,
    table: Any,
    where: list[Any],
    key: Any,
    owner: Mapping[str, Any],
    tags: Mapping[str, str],
) -> dict[str, str]:
    """Set tags in a tag table (its owner's row is locked); returns the values they replaced."""
    mine = [*where, key.in_(list(tags))]
    old = {k: v for k, v in conn.execute(select(key, table.c.value).where(*mine))}
    conn.execute(delete(table).where(*mine))
    conn.execute(insert(table), [{**owner, "key": k, "value": v} for k, v in tags.items()])
    return old


def _version_tags(conn: Connection, version_id: str) -> dict[str, str]:
    return {k: v for k, v in conn.execute(_VERSION_TAGS, {"id": version_id})}


def _tags_by_version(conn: Connection, version_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Tags of many versions, by version id."""
    vt = t.model_version_tags
    ids = list(version_ids)
    found: dict[str, dict[str, str]] = {}
    for start in range(0, len(ids), 500):  # bound parameters per statement
        chunk = ids[start : start + 500]
        rows = conn.execute(
            select(vt.c.model_version_id, vt.c.key, vt.c.value).where(vt.c.model_version_id.in_(chunk))
        )
        for version_id, key, value in rows:
            found.setdefault(version_id, {})[key] = value
    return found


def _version_row(conn: Connection, name: str, version: int, lock: bool = False) -> Row[Any] | None:
    """The row of `name/version`, or None; a version outside what the column holds is none."""
    if not 1 <= version <= MAX_VERSION:
        return None
    query = _VERSION.with_for_update() if lock else _VERSION
    return conn.execute(query, {"name": name, "version": version}).first()


def _named(conn: Connection, name: str) -> bool:
    """Whether a model of this name exists (with or without versions)."""
    rm = t.registered_models
    return conn.execute(select(rm.c.name).where(rm.c.name == name)).first() is not None


def _missing(conn: Connection, name: str, version: int | None) -> NotFound:
    return missing_model(name, version, named=_named(conn, name))


def _version(
    row: RowMapping | Mapping[str, Any], aliases: tuple[str, ...], tags: dict[str, str] | None = None
) -> e.ModelVersion:
    return model_version(row, aliases, tags)
