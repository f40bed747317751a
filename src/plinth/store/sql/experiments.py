"""Experiments, as a part of `SqlStore`."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

from sqlalchemy import Connection, bindparam, select, text, update

from plinth.core import entities as e
from plinth.core.errors import NotFound
from plinth.core.ids import new_id, now_ms
from plinth.store import schema as t
from plinth.store.sql.base import SqlBase, checked_tags, mapping_digest

_EXPERIMENT = select(t.experiments).where(
    (t.experiments.c.name == bindparam("name")) | (t.experiments.c.id == bindparam("name"))
)
# Two writers may create one experiment at once (PostgreSQL lets both try): the second finds the first's.
_INSERT_EXPERIMENT = text(
    "INSERT INTO experiments (id, name, created_ms, tags) VALUES (:id, :name, :created_ms, '{}') "
    "ON CONFLICT (name) DO NOTHING RETURNING id"
)


class SqlExperiments(SqlBase):
    """Experiment methods of SqlStore; `_experiment` is the cached lookup runs use too."""

    def get_or_create_experiment(self, name: str) -> e.Experiment:
        return self._write("create an experiment", lambda c: self._experiment(c, name, True))

    def get_experiment(self, name_or_id: str) -> e.Experiment:
        # read afresh: another store on the database may have changed its tags since it was cached
        return self._read("read an experiment", lambda c: self._experiment(c, name_or_id, False, fresh=True))

    def known_experiment(self, name_or_id: str) -> e.Experiment:
        """The experiment, from this store's cache when it was looked up before (its tags as
        they were then; experiments are never deleted, so one found once is there still).

        Raises:
            NotFound: no experiment has that name or id.
        """
        cached = self._experiments.get(name_or_id)
        if cached is not None:
            return cached
        return self._read("read an experiment", lambda c: self._experiment(c, name_or_id, False))

    def list_experiments(self) -> list[e.Experiment]:
        def fetch(conn: Connection) -> list[e.Experiment]:
            rows = conn.execute(select(t.experiments).order_by(t.experiments.c.created_ms))
            return [e.Experiment(r.id, r.name, r.created_ms, json.loads(r.tags)) for r in rows]

        return self._read("list experiments", fetch)

    def set_experiment_tags(self, experiment: str, tags: Mapping[str, str]) -> None:
        checked = checked_tags(tags)

        def change(conn: Connection) -> None:
            xt = t.experiments
            row = conn.execute(
                select(xt.c.id, xt.c.tags)
                .where((xt.c.name == experiment) | (xt.c.id == experiment))
                .with_for_update()
            ).first()
            if row is None:
                raise _missing(experiment)
            if not checked:
                return
            old = json.loads(row.tags)
            merged = {**old, **checked}
            conn.execute(update(xt).where(xt.c.id == row.id).values(tags=json.dumps(merged, sort_keys=True)))
            replaced = {k: old[k] for k in checked if k in old}
            self._forget_experiment(row.id)
            self._audit(
                conn,
                "experiment.tags.set",
                "experiment",
                row.id,
                before=mapping_digest(replaced) if replaced else None,
                after=mapping_digest(checked),
            )

        self._write("set experiment tags", change)

    def _forget_experiment(self, exp_id: str) -> None:
        """Drop the cached entries of an experiment whose row changed, now and once the change
        commits (a reader in between may have cached the row as it was)."""

        def forget() -> None:
            for key, found in list(self._experiments.items()):
                if found.id == exp_id:
                    self._experiments.pop(key, None)

        forget()
        self._publish(forget)

    def _experiment(self, conn: Connection, name: str, create: bool, fresh: bool = False) -> e.Experiment:
        cached = None if fresh else self._experiments.get(name)
        if cached is not None:
            return cached
        row = conn.execute(_EXPERIMENT, {"name": name}).first()
        if row is None and create:
            exp_id, created = new_id(), now_ms()
            made = conn.execute(
                _INSERT_EXPERIMENT, {"id": exp_id, "name": name, "created_ms": created}
            ).first()
            if made is not None:
                self._audit(conn, "experiment.create", "experiment", exp_id, after=name)
            row = conn.execute(_EXPERIMENT, {"name": name}).first()  # another writer's, if it won
        if row is None:
            raise _missing(name)
        found = e.Experiment(row.id, row.name, row.created_ms, json.loads(row.tags))
        self._publish(functools.partial(self._experiments.__setitem__, name, found))
        return found


def _missing(name: str) -> NotFound:
    return NotFound(f"No experiment named {name!r}; list them with `plinth experiments list`.")
