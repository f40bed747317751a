"""MLflow 3's logged models, as a part of `SqlStore`.

A logged model is a row of its own, with its tags in a table beside it (so one can be removed
alone) and its params as a JSON object; its files are artifacts of its run, under
`models/{id}/`, which the store does not track separately.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from plinth.core import entities as e
from plinth.core.errors import ConflictError, InvalidInput, NotFound
from plinth.core.ids import now_ms
from plinth.core.validation import MAX_NAME, check_id, check_name
from plinth.store import schema as t
from plinth.store.sql.base import SqlBase, checked_tags, mapping_digest

MAX_SEARCH = 10_000
"""The most logged models one search returns."""


def _check_status(status: str) -> str:
    if status not in e.LOGGED_MODEL_STATUSES:
        raise InvalidInput(
            f"A logged model's status is one of {', '.join(e.LOGGED_MODEL_STATUSES)}, not {status!r:.60}."
        )
    return status


def _check_model(model: e.LoggedModel) -> dict[str, Any]:
    """The `logged_models` row of a new logged model, its fields checked."""
    check_id(model.id, "logged model id")
    check_name(model.name, "logged model")
    if not isinstance(model.model_type, str) or len(model.model_type) > MAX_NAME:
        raise InvalidInput(f"A logged model's type is text of at most {MAX_NAME} characters.")
    return {
        "id": model.id,
        "experiment_id": model.experiment_id,
        "name": model.name,
        "run_id": model.run_id,
        "status": _check_status(model.status),
        "model_type": model.model_type,
        "source_run_id": model.source_run_id,
        "created_ms": model.created_ms,
        "updated_ms": model.updated_ms,
        "params": json.dumps(checked_tags(model.params, "param"), sort_keys=True),
    }


def _missing(model_id: str) -> NotFound:
    return NotFound(f"No logged model with id {model_id!r}; search a run's logged models for its id.")


class SqlLoggedModels(SqlBase):
    """Logged-model methods of SqlStore."""

    def create_logged_model(self, model: e.LoggedModel) -> e.LoggedModel:
        values = _check_model(model)
        tags = checked_tags(model.tags)

        def create(conn: Connection) -> e.LoggedModel:
            exp = conn.execute(
                select(t.experiments.c.id).where(t.experiments.c.id == model.experiment_id)
            ).first()
            if exp is None:
                raise NotFound(
                    f"No experiment with id {model.experiment_id!r} to log model {model.name!r} in."
                )
            for run_id in {model.run_id, model.source_run_id} - {None}:
                self._run_key(conn, str(run_id))  # NotFound for a run that is not there
            lm = t.logged_models
            if conn.execute(select(lm.c.id).where(lm.c.id == model.id)).first() is not None:
                raise ConflictError(f"A logged model with id {model.id!r} exists already; give a new id.")
            conn.execute(insert(lm), values)
            if tags:
                conn.execute(
                    insert(t.logged_model_tags),
                    [{"model_id": model.id, "key": k, "value": v} for k, v in tags.items()],
                )
            self._audit(conn, "logged_model.create", "logged_model", model.id, after=model.name)
            return self._fetch(conn, model.id)

        return self._write("log a model", create)

    def get_logged_model(self, model_id: str) -> e.LoggedModel:
        return self._read("read a logged model", lambda conn: self._fetch(conn, model_id))

    def update_logged_model(
        self,
        model_id: str,
        *,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> e.LoggedModel:
        new_status = None if status is None else _check_status(status)
        new_tags = checked_tags(tags or {})
        new_params = checked_tags(params or {}, "param")

        def change(conn: Connection) -> e.LoggedModel:
            lm, lt = t.logged_models, t.logged_model_tags
            row = conn.execute(select(lm).where(lm.c.id == model_id).with_for_update()).first()
            if row is None:
                raise _missing(model_id)
            values: dict[str, Any] = {"updated_ms": now_ms()}
            if new_status is not None:
                values["status"] = new_status
            if new_params:
                values["params"] = json.dumps({**json.loads(row.params), **new_params}, sort_keys=True)
            conn.execute(update(lm).where(lm.c.id == model_id).values(**values))
            if new_tags:
                mine = [lt.c.model_id == model_id, lt.c.key.in_(list(new_tags))]
                conn.execute(delete(lt).where(*mine))
                conn.execute(
                    insert(lt), [{"model_id": model_id, "key": k, "value": v} for k, v in new_tags.items()]
                )
            self._audit(
                conn,
                "logged_model.update",
                "logged_model",
                model_id,
                before=row.status,
                after=_change_text(new_status or row.status, new_tags, new_params),
            )
            return self._fetch(conn, model_id)

        return self._write("update a logged model", change)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        def remove(conn: Connection) -> None:
            lm, lt = t.logged_models, t.logged_model_tags
            if conn.execute(select(lm.c.id).where(lm.c.id == model_id).with_for_update()).first() is None:
                raise _missing(model_id)
            gone = conn.execute(delete(lt).where(lt.c.model_id == model_id, lt.c.key == key)).rowcount
            if not gone:
                raise NotFound(f"Logged model {model_id} has no tag {key!r}.")
            self._audit(conn, "logged_model.tag.delete", "logged_model", model_id, before=key, after=None)

        self._write("delete a logged model tag", remove)

    def search_logged_models(
        self,
        *,
        experiment_ids: Sequence[str] | None,
        run_id: str | None = None,
        name: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[e.LoggedModel]:
        if not 0 <= limit <= MAX_SEARCH or offset < 0:
            raise InvalidInput(f"A search takes a limit of 0 to {MAX_SEARCH} and an offset of 0 or more.")
        lm = t.logged_models
        query = select(lm).order_by(lm.c.created_ms.desc(), lm.c.id.desc()).limit(limit).offset(offset)
        if experiment_ids is not None:
            query = query.where(lm.c.experiment_id.in_(list(experiment_ids)))
        if run_id is not None:
            query = query.where(lm.c.run_id == run_id)
        if name is not None:
            query = query.where(lm.c.name == name)

        def fetch(conn: Connection) -> list[e.LoggedModel]:
            rows = conn.execute(query).all()
            tags = _tags_of(conn, [r.id for r in rows])
            return [_logged_model(r, tags.get(r.id, {})) for r in rows]

        return self._read("search logged models", fetch)

    @staticmethod
    def _fetch(conn: Connection, model_id: str) -> e.LoggedModel:
        row = conn.execute(select(t.logged_models).where(t.logged_models.c.id == model_id)).first()
        if row is None:
            raise _missing(model_id)
        return _logged_model(row, _tags_of(conn, [model_id]).get(model_id, {}))


def _change_text(status: str, tags: Mapping[str, str], params: Mapping[str, str]) -> str:
    """What an update audit event records: the status, and digests of the tags and params set."""
    parts = [status]
    if tags:
        parts.append(f"tags {mapping_digest(tags)}")
    if params:
        parts.append(f"params {mapping_digest(params)}")
    return "; ".join(parts)


def _tags_of(conn: Connection, model_ids: list[str]) -> dict[str, dict[str, str]]:
    """Tags of logged models, by model id."""
    lt = t.logged_model_tags
    found: dict[str, dict[str, str]] = {}
    for start in range(0, len(model_ids), 500):  # bound parameters per statement
        chunk = model_ids[start : start + 500]
        for model_id, key, value in conn.execute(
            select(lt.c.model_id, lt.c.key, lt.c.value).where(lt.c.model_id.in_(chunk))
        ):
            found.setdefault(model_id, {})[key] = value
    return found


def _logged_model(row: Row[Any], tags: dict[str, str]) -> e.LoggedModel:
    return e.LoggedModel(
        id=row.id,
        experiment_id=row.experiment_id,
        name=row.name,
        run_id=row.run_id,
        status=row.status,
        model_type=row.model_type,
        source_run_id=row.source_run_id,
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
        tags=tags,
        params=json.loads(row.params),
    )
