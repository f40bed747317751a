"""Runs, their params and tags, as a part of `SqlStore`: created, ended, kept alive, reaped."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from plinth.core import entities as e
from plinth.core.errors import ConflictError, NotFound, RunNotActive
from plinth.core.ids import new_id, now_ms
from plinth.core.validation import storable
from plinth.store import schema as t
from plinth.store.base import NewRun
from plinth.store.search import stale
from plinth.store.sql.base import mapping_digest
from plinth.store.sql.experiments import SqlExperiments

_INSERT_RUN = insert(t.runs).returning(t.runs.c.key)
_END_RUN = (
    update(t.runs)
    .where(t.runs.c.id == bindparam("run_id"), t.runs.c.status == "RUNNING")
    .values(status=bindparam("status"), end_ms=bindparam("end_ms"), error=bindparam("error"))
)


def _num(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _environment_body(environment: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    if environment is None:
        return None, None
    body = json.dumps(environment, sort_keys=True, separators=(",", ":"), default=str)
    return body, hashlib.sha256(body.encode()).hexdigest()


def _default_name(run_id: str) -> str:
    return f"run-{run_id[-8:].lower()}"


class SqlRuns(SqlExperiments):
    """Run methods of SqlStore that write: create, log params and tags, heartbeat, end, reap."""

    def create_run(
        self,
        *,
        experiment: str,
        name: str | None,
        params: Mapping[str, str],
        tags: Mapping[str, str],
        environment: Mapping[str, Any] | None,
        heartbeat_s: float,
        user: str,
    ) -> e.Run:
        spec = NewRun(experiment, name, params, tags, environment, heartbeat_s, user)
        return self.create_runs([spec])[0]

    def create_runs(self, specs: Sequence[NewRun]) -> list[e.Run]:
        started = now_ms()
        prepared = [(spec, spec.id or new_id(), *_environment_body(spec.environment)) for spec in specs]

        def create(conn: Connection) -> list[tuple[e.Experiment, int]]:
            rows: list[dict[str, Any]] = []
            exps: list[e.Experiment] = []
            for spec, run_id, env_body, env_digest in prepared:
                exp = self._experiment(conn, spec.experiment, True)
                if env_digest is not None and env_digest not in self._known_envs:
                    self._insert_ignore(conn, "environments", ("digest", "body"), [(env_digest, env_body)])
                exps.append(exp)
                rows.append(
                    {
                        "id": run_id,
                        "experiment_id": exp.id,
                        "name": spec.name or _default_name(run_id),
                        "status": "RUNNING",
                        "user_name": spec.user,
                        "start_ms": started,
                        "heartbeat_ms": started,
                        "heartbeat_s": spec.heartbeat_s,
                        "env_digest": env_digest,
                    }
                )
            keys = self._insert_runs(conn, rows)
            params = [
                {"run_key": keys[r["id"]], "key": k, "value": v, "value_num": _num(v)}
                for (spec, *_), r in zip(prepared, rows, strict=True)
                for k, v in spec.params.items()
            ]
            tags = [
                {"run_key": keys[r["id"]], "key": k, "value": v}
                for (spec, *_), r in zip(prepared, rows, strict=True)
                for k, v in spec.tags.items()
            ]
            if params:
                conn.execute(insert(t.params), params)
            if tags:
                conn.execute(insert(t.tags), tags)
            events = [self._event("run.create", "run", r["id"], after=r["name"]) for r in rows]
            self._chain.append(conn, events)
            return [(exp, keys[r["id"]]) for exp, r in zip(exps, rows, strict=True)]

        made = self._write("create runs", create)
        runs = []
        for (spec, run_id, _body, env_digest), (exp, key) in zip(prepared, made, strict=True):
            self._run_keys[run_id] = key  # inside `batch()`, forgotten if the batch rolls back
            self._remember(functools.partial(self._run_keys.pop, run_id, None))
            if env_digest is not None:
                self._known_envs.add(env_digest)
                self._remember(functools.partial(self._known_envs.discard, env_digest))
            runs.append(
                e.Run(
                    id=run_id,
                    experiment_id=exp.id,
                    experiment_name=exp.name,
                    name=spec.name or _default_name(run_id),
                    status=e.RunStatus.RUNNING,
                    user=spec.user,
                    start_ms=started,
                    end_ms=None,
                    heartbeat_ms=started,
                    heartbeat_s=spec.heartbeat_s,
                    params=dict(spec.params),
                    tags=dict(spec.tags),
                    environment=dict(spec.environment) if spec.environment is not None else None,
                )
            )
        return runs

    def _insert_runs(self, conn: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
        if len(rows) == 1:
            return {rows[0]["id"]: conn.execute(_INSERT_RUN, rows[0]).scalar_one()}
        conn.execute(insert(t.runs), rows)
        found = conn.execute(
            select(t.runs.c.id, t.runs.c.key).where(t.runs.c.id.in_([r["id"] for r in rows]))
        )
        return dict(found.all())

    def _insert_params(
        self, conn: Connection, key: int, params: Mapping[str, str], new_run: bool = False
    ) -> None:
        if not params:
            return
        found = (
            {}
            if new_run
            else dict(
                conn.execute(
                    select(t.params.c.key, t.params.c.value).where(
                        t.params.c.run_key == key, t.params.c.key.in_(list(params))
                    )
                ).all()
            )
        )
        for name, value in found.items():
            if value != params[name]:
                raise ConflictError(
                    f"Param {name!r} was already logged as {value!r}; it cannot become "
                    f"{params[name]!r}. Params are immutable: use a tag or a new run."
                )
        fresh = [
            {"run_key": key, "key": k, "value": v, "value_num": _num(v)}
            for k, v in params.items()
            if k not in found
        ]
        if fresh:
            conn.execute(insert(t.params), fresh)

    def _upsert_tags(self, conn: Connection, key: int, tags: Mapping[str, str]) -> None:
        if not tags:
            return
        conn.execute(delete(t.tags).where(t.tags.c.run_key == key, t.tags.c.key.in_(list(tags))))
        conn.execute(insert(t.tags), [{"run_key": key, "key": k, "value": v} for k, v in tags.items()])

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        def log(conn: Connection) -> None:
            key = self._require_running(conn, run_id)
            self._insert_params(conn, key, params)
            if params:
                self._audit(conn, "run.params.log", "run", run_id, after=mapping_digest(params))

        self._write("log params", log)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        def log(conn: Connection) -> None:
            key = self._require_running(conn, run_id)
            if not tags:
                return
            old = dict(
                conn.execute(
                    select(t.tags.c.key, t.tags.c.value).where(
                        t.tags.c.run_key == key, t.tags.c.key.in_(list(tags))
                    )
                ).all()
            )
            self._upsert_tags(conn, key, tags)
            before = mapping_digest(old) if old else None
            self._audit(conn, "run.tags.set", "run", run_id, before=before, after=mapping_digest(tags))

        self._write("set tags", log)

    def heartbeat(self, run_ids: Sequence[str], now_ms: int) -> None:
        if not run_ids:
            return
        stmt = (
            update(t.runs)
            .where(t.runs.c.id.in_(list(run_ids)), t.runs.c.status == "RUNNING")
            .values(heartbeat_ms=now_ms)
        )
        self._write("record a heartbeat", lambda conn: conn.execute(stmt))

    def end_run(self, run_id: str, status: e.RunStatus, error: str | None, end_ms: int) -> None:
        self.end_runs([(run_id, status, error, end_ms)])

    def end_runs(self, ends: Sequence[tuple[str, e.RunStatus, str | None, int]]) -> None:
        def end(conn: Connection) -> None:
            params = [
                {"run_id": r, "status": st.value, "end_ms": ms, "error": storable(err)}
                for r, st, err, ms in ends
            ]
            if conn.execute(_END_RUN, params).rowcount != len(params):
                self._explain_end(conn, [run_id for run_id, *_ in ends])
            self._chain.append(
                conn,
                [
                    self._event("run.end", "run", run_id, before="RUNNING", after=status.value)
                    for run_id, status, _err, _ms in ends
                ],
            )

        if ends:
            self._write("end runs", end)

    def _explain_end(self, conn: Connection, run_ids: list[str]) -> None:
        """Raise for the first run that could not be ended (missing, or no longer running)."""
        found = dict(conn.execute(select(t.runs.c.id, t.runs.c.status).where(t.runs.c.id.in_(run_ids))).all())
        for run_id in run_ids:
            if run_id not in found:
                raise NotFound(f"No run with id {run_id!r}.")
            if found[run_id] != "RUNNING" and run_ids.count(run_id) == 1:
                raise RunNotActive(f"Run {run_id} already ended as {found[run_id]}.")
        raise RunNotActive(f"Some of runs {run_ids[:5]} had already ended.")

    def reap_crashed(self, now_ms: int) -> list[str]:
        def reap(conn: Connection) -> list[str]:
            ids = [r[0] for r in conn.execute(select(t.runs.c.id).where(stale(now_ms)))]
            for run_id in ids:
                conn.execute(
                    update(t.runs)
                    .where(t.runs.c.id == run_id, t.runs.c.status == "RUNNING")
                    .values(
                        status="CRASHED",
                        end_ms=now_ms,
                        error="Heartbeats stopped: the process died or lost the store.",
                    )
                )
                self._audit(conn, "run.reap", "run", run_id, before="RUNNING", after="CRASHED")
            return ids

        return self._write("reap crashed runs", reap)
