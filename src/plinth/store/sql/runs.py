"""Runs, their params and tags, as a part of `SqlStore`: created, ended, kept alive, reaped."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from plinth.core import entities as e
from plinth.core.errors import ConflictError, InvalidInput, NotFound, RunNotActive
from plinth.core.ids import new_id, now_ms
from plinth.core.validation import MAX_INT64, check_name, storable
from plinth.store import schema as t
from plinth.store.base import NewRun, default_run_name
from plinth.store.engine import driver_cursor, pipeline, refuse_unstorable
from plinth.store.search import stale
from plinth.store.sql.base import mapping_digest
from plinth.store.sql.experiments import SqlExperiments

# A run's start and end go through the driver's cursor: SQLAlchemy's per-statement cost is
# several times the statements' own on this path, which every run takes twice.
_INSERT_RUN = (
    "INSERT INTO runs (id, experiment_id, name, status, user_name, start_ms, heartbeat_ms, heartbeat_s, "
    "env_digest, end_ms, error) "
    'VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}) RETURNING "key"'
)
_INSERT_RUNS = _INSERT_RUN.removesuffix(' RETURNING "key"')
_RUN_KEYS = 'SELECT id, "key" FROM runs WHERE id IN ({marks})'
_INSERT_PARAM = 'INSERT INTO params (run_key, "key", value, value_num) VALUES ({p}, {p}, {p}, {p})'
_PARAMS_OF = 'SELECT "key", value FROM params WHERE run_key = {p} AND "key" IN ({marks})'
_INSERT_TAG = 'INSERT INTO tags (run_key, "key", value) VALUES ({p}, {p}, {p})'
_ENDED = frozenset(status for status in e.RunStatus if status is not e.RunStatus.RUNNING)
"""The statuses a run created ended may have."""
_IDS_PER_SELECT = 500
"""Run ids per statement that reads back the keys of runs inserted together (bound parameters)."""
_END_RUN = "UPDATE runs SET status = {p}, end_ms = {p}, error = {p} WHERE id = {p} AND status = 'RUNNING'"


def _run_row(spec: NewRun, run_id: str, now: int, env_digest: str | None) -> tuple[Any, ...]:
    """The `runs` row of a new run, but for its experiment id (looked up in the transaction).

    It starts at `spec.start_ms` when given (an imported run), else now; its heartbeat is now
    either way, so a run started long ago is not reaped as crashed the moment it is recorded.
    """
    name = spec.name or default_run_name(run_id)
    started = now if spec.start_ms is None else _check_start(spec.start_ms)
    if spec.end_status is None:
        return (run_id, name, "RUNNING", spec.user, started, now, spec.heartbeat_s, env_digest, None, None)
    if spec.end_status not in _ENDED:
        raise InvalidInput(
            "A run created as ended needs a terminal status (FINISHED, FAILED, KILLED), "
            f"not {spec.end_status!r:.40}."
        )
    status = e.RunStatus(spec.end_status).value
    ended = now if spec.end_ms is None else _check_start(spec.end_ms, "end")
    error = storable(spec.end_error)
    return (run_id, name, status, spec.user, started, now, spec.heartbeat_s, env_digest, ended, error)


def _check_start(start_ms: object, which: str = "start") -> int:
    if isinstance(start_ms, bool) or not isinstance(start_ms, int) or not 0 <= start_ms <= MAX_INT64:
        raise InvalidInput(
            f"A run's {which} time is milliseconds since 1970 (0 to 2**63-1), not {start_ms!r:.60}."
        )
    return start_ms


def _texts(specs: Sequence[NewRun], rows: Sequence[tuple[Any, ...]]) -> Iterator[str]:
    """The text new runs bind: ids, names, users, param and tag keys and values."""
    for spec, row in zip(specs, rows, strict=True):
        yield from row[:4]
        yield from spec.params.keys()
        yield from spec.params.values()
        yield from spec.tags.keys()
        yield from spec.tags.values()


def _insert_runs(
    cursor: Any, p: str, specs: Sequence[NewRun], rows: Sequence[tuple[Any, ...]], experiment_ids: list[str]
) -> list[int]:
    """Insert new runs with their params and tags; their keys, in order."""
    full = [(row[0], exp_id, *row[1:]) for row, exp_id in zip(rows, experiment_ids, strict=True)]
    if len(full) == 1:
        cursor.execute(_INSERT_RUN.format(p=p), full[0])
        keys = [int(cursor.fetchone()[0])]
    else:
        cursor.executemany(_INSERT_RUNS.format(p=p), full)
        found: dict[str, int] = {}
        for start in range(0, len(full), _IDS_PER_SELECT):
            ids = [row[0] for row in full[start : start + _IDS_PER_SELECT]]
            cursor.execute(_RUN_KEYS.format(marks=", ".join([p] * len(ids))), ids)
            found.update(cursor.fetchall())
        keys = [found[row[0]] for row in full]
    params = [
        (key, k, v, _num(v)) for spec, key in zip(specs, keys, strict=True) for k, v in spec.params.items()
    ]
    tags = [(key, k, v) for spec, key in zip(specs, keys, strict=True) for k, v in spec.tags.items()]
    if params:
        cursor.executemany(_INSERT_PARAM.format(p=p), params)
    if tags:
        cursor.executemany(_INSERT_TAG.format(p=p), tags)
    return keys


class _NotEnded(RunNotActive):
    """Some runs of an end were missing or no longer running: the write is undone, then explained
    (by `end_runs`; raised as it is from an independent `batch()`, which it undoes whole)."""

    def __init__(self) -> None:
        super().__init__("Some runs to end were not found or had already ended; nothing was written.")


_PARAM_OF_NEW = (
    'INSERT INTO params (run_key, "key", value, value_num) SELECT "key", %s, %s, %s FROM runs WHERE id = %s'
)
_TAG_OF_NEW = 'INSERT INTO tags (run_key, "key", value) SELECT "key", %s, %s FROM runs WHERE id = %s'


def _send_run(
    spec: NewRun, row: tuple[Any, ...], experiment_id: str, keys: list[int], cursor: Any
) -> Callable[[], None]:
    """Send one new run with its params and tags (PostgreSQL), which find it by id; the check puts
    its key in `keys`."""
    run_id = row[0]
    cursor.execute(_INSERT_RUN.format(p="%s"), (run_id, experiment_id, *row[1:]))
    inserted = cursor
    params = [(k, v, _num(v), run_id) for k, v in spec.params.items()]
    tags = [(k, v, run_id) for k, v in spec.tags.items()]
    extra: Any = cursor.connection.cursor() if params or tags else None
    if params:
        extra.executemany(_PARAM_OF_NEW, params)
    if tags:
        extra.executemany(_TAG_OF_NEW, tags)

    def check() -> None:
        if extra is not None:
            extra.close()
        keys.append(int(inserted.fetchone()[0]))

    return check


def _new_run(spec: NewRun, row: tuple[Any, ...], exp: e.Experiment) -> e.Run:
    run_id, name, status, user, started, beat, heartbeat_s, _digest, ended, error = row
    return e.Run(
        id=run_id,
        experiment_id=exp.id,
        experiment_name=exp.name,
        name=name,
        status=e.RunStatus(status),
        user=user,
        start_ms=started,
        end_ms=ended,
        heartbeat_ms=beat,
        heartbeat_s=heartbeat_s,
        params=dict(spec.params),
        tags=dict(spec.tags),
        error=error,
        environment=dict(spec.environment) if spec.environment is not None else None,
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


class SqlRuns(SqlExperiments):
    """Run methods of SqlStore that write: create, log params and tags, heartbeat, end, reap."""

    _last_environment: tuple[Mapping[str, Any], str | None, str | None] | None = None
    """The environment most recently recorded, with its body and digest: runs of one process
    record one environment object (`run_environment`), which is serialized once, not per run."""

    def _environment(self, environment: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
        last = self._last_environment
        if last is not None and last[0] is environment:
            return last[1], last[2]
        body, digest = _environment_body(environment)
        if environment is not None:
            self._last_environment = (environment, body, digest)
        return body, digest

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

    def _run_events(self, rows: Sequence[tuple[Any, ...]]) -> list[dict[str, object]]:
        """The audit events of new runs: each one's creation, and its end if it was created ended."""
        events = [self._event("run.create", "run", row[0], after=row[1]) for row in rows]
        ended = [row for row in rows if row[8] is not None]
        events += [self._event("run.end", "run", row[0], before="RUNNING", after=row[2]) for row in ended]
        return events

    def create_run_deferred(self, spec: NewRun) -> e.Run:
        exp = self._experiments.get(spec.experiment)
        if exp is None or spec.id is not None or spec.start_ms is not None or spec.end_status is not None:
            # the first run of an experiment here (its errors are the caller's, now), or one imported
            return self.create_runs([spec])[0]
        run_id = new_id()
        body, digest = self._environment(spec.environment)
        row = _run_row(spec, run_id, now_ms(), digest)
        refuse_unstorable(_texts([spec], [row]))
        events = self._run_events([row])

        def create(conn: Connection) -> None:
            if digest is not None and digest not in self._known_envs:
                self._insert_ignore(conn, "environments", ("digest", "body"), [(digest, body)])
                self._publish(functools.partial(self._known_envs.add, digest))
            with driver_cursor(conn) as cursor:
                if self._sqlite:
                    (key,) = _insert_runs(cursor, self._placeholder, [spec], [row], [exp.id])
                else:  # the run, its params and its tags in one round trip
                    keys: list[int] = []
                    with pipeline(conn):
                        check = _send_run(spec, row, exp.id, keys, cursor)
                    check()
                    (key,) = keys
            self._append(conn, events)
            self._run_keys[run_id] = key  # the writes after it in this transaction need it
            self._remember(functools.partial(self._run_keys.pop, run_id, None))

        self._hold_back(f"create run {run_id}", create)
        return _new_run(spec, row, exp)

    def create_runs(self, specs: Sequence[NewRun]) -> list[e.Run]:
        started = now_ms()
        prepared = [(spec, spec.id or new_id(), *self._environment(spec.environment)) for spec in specs]
        rows = [_run_row(spec, run_id, started, digest) for spec, run_id, _body, digest in prepared]
        refuse_unstorable(_texts(specs, rows))
        envs = {digest: body for *_, body, digest in prepared if digest is not None}

        def create(conn: Connection) -> tuple[list[e.Experiment], list[int]]:
            named = {n: self._experiment(conn, n, True) for n in dict.fromkeys(s.experiment for s in specs)}
            exps = [named[spec.experiment] for spec in specs]
            fresh = [(digest, body) for digest, body in envs.items() if digest not in self._known_envs]
            if fresh:
                self._insert_ignore(conn, "environments", ("digest", "body"), fresh)
            exp_ids = [exp.id for exp in exps]
            keys: list[int] = []
            if len(specs) != 1 or not self._send_at_commit(
                conn, functools.partial(_send_run, specs[0], rows[0], exp_ids[0], keys)
            ):
                with driver_cursor(conn) as cursor:
                    keys = _insert_runs(cursor, self._placeholder, specs, rows, exp_ids)
            self._append(conn, self._run_events(rows))
            return exps, keys  # keys: filled by the send's check, when sent with the commit

        exps, keys = self._write("create runs", create)
        for digest in envs:  # inside `batch()`, once it commits
            self._publish(functools.partial(self._known_envs.add, digest))
        if len(keys) == len(rows):
            for row, key in zip(rows, keys, strict=True):
                self._run_keys[row[0]] = key
                self._remember(functools.partial(self._run_keys.pop, row[0], None))
        else:  # left to go with an independent batch's commit, which fills in the keys

            def remember_keys() -> None:
                self._run_keys.update((row[0], key) for row, key in zip(rows, keys, strict=True))

            self._publish(remember_keys)
        return [_new_run(spec, row, exp) for spec, row, exp in zip(specs, rows, exps, strict=True)]

    def _insert_params(self, conn: Connection, key: int, params: Mapping[str, str]) -> None:
        if not params:
            return
        refuse_unstorable(itertools.chain(params.keys(), params.values()))
        p = self._placeholder
        names = list(params)
        found: dict[str, str] = {}
        with driver_cursor(conn) as cursor:  # MLflow's clients log params a call at a time
            for start in range(0, len(names), _IDS_PER_SELECT):
                chunk = names[start : start + _IDS_PER_SELECT]
                cursor.execute(_PARAMS_OF.format(p=p, marks=", ".join([p] * len(chunk))), (key, *chunk))
                found.update(cursor.fetchall())
            for name, value in found.items():
                if value != params[name]:
                    raise ConflictError(
                        f"Param {name!r} was already logged as {value!r}; it cannot become "
                        f"{params[name]!r}. Params are immutable: use a tag or a new run."
                    )
            fresh = [(key, k, v, _num(v)) for k, v in params.items() if k not in found]
            if len(fresh) == 1:  # executemany costs a pipeline of its own on PostgreSQL
                cursor.execute(_INSERT_PARAM.format(p=p), fresh[0])
            elif fresh:
                cursor.executemany(_INSERT_PARAM.format(p=p), fresh)

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
            key = self._run_key(conn, run_id)
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

    def rename_run(self, run_id: str, name: str) -> None:
        check_name(name, "run")

        def rename(conn: Connection) -> None:
            run_key = self._run_key(conn, run_id)
            old = conn.execute(select(t.runs.c.name).where(t.runs.c.key == run_key)).scalar()
            if old == name:
                return
            conn.execute(update(t.runs).where(t.runs.c.key == run_key).values(name=name))
            self._audit(conn, "run.rename", "run", run_id, before=old, after=name)

        self._write("rename a run", rename)

    def delete_run_tag(self, run_id: str, key: str) -> None:
        def remove(conn: Connection) -> None:
            run_key = self._run_key(conn, run_id)
            gone = conn.execute(
                delete(t.tags).where(t.tags.c.run_key == run_key, t.tags.c.key == key)
            ).rowcount
            if not gone:
                raise NotFound(f"Run {run_id} has no tag {key!r}; see `plinth runs show {run_id}`.")
            self._audit(conn, "run.tag.delete", "run", run_id, before=key, after=None)

        self._write("delete a run tag", remove)

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

    def reopen_run(self, run_id: str, now_ms: int) -> None:
        def reopen(conn: Connection) -> None:
            run_key = self._run_key(conn, run_id)
            old = conn.execute(select(t.runs.c.status).where(t.runs.c.key == run_key)).scalar()
            if old == "RUNNING":
                return
            conn.execute(
                update(t.runs)
                .where(t.runs.c.key == run_key)
                .values(status="RUNNING", end_ms=None, error=None, heartbeat_ms=now_ms)
            )
            self._audit(conn, "run.reopen", "run", run_id, before=old, after="RUNNING")

        self._write("reopen a run", reopen)

    def end_runs(self, ends: Sequence[tuple[str, e.RunStatus, str | None, int]]) -> None:
        rows = [(st.value, ms, storable(err), run_id) for run_id, st, err, ms in ends]
        refuse_unstorable(run_id for run_id, *_ in ends)
        run_ids = [run_id for run_id, *_ in ends]

        def send(cursor: Any) -> Callable[[], None]:
            if len(rows) == 1:  # executemany costs a pipeline of its own on PostgreSQL
                cursor.execute(_END_RUN.format(p=self._placeholder), rows[0])
            else:
                cursor.executemany(_END_RUN.format(p=self._placeholder), rows)

            def check() -> None:
                if cursor.rowcount != len(rows):
                    raise _NotEnded()

            return check

        def end(conn: Connection) -> None:
            if not self._send_at_commit(conn, send, refuses=True):
                with driver_cursor(conn) as cursor:
                    try:
                        send(cursor)()
                    except _NotEnded:  # explained by what this transaction sees
                        self._explain_end(conn, run_ids)
            self._append(
                conn,
                [
                    self._event("run.end", "run", run_id, before="RUNNING", after=status.value)
                    for run_id, status, _err, _ms in ends
                ],
            )

        if not ends:
            return
        try:
            self._write("end runs", end)
        except _NotEnded:
            self._read("end runs", lambda conn: self._explain_end(conn, run_ids))

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
