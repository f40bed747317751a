"""`SqlStore`: the Store over SQLAlchemy — SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import json
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DataError, DBAPIError, ProgrammingError
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from plinth.core import entities as e
from plinth.core.errors import ConflictError, InvalidInput, NotFound, RunNotActive, StoreError
from plinth.core.filters import Expr, OrderKey
from plinth.core.ids import new_id, now_ms
from plinth.core.refs import MAX_VERSION, version_text
from plinth.core.validation import check_artifact_path, storable
from plinth.store import schema as t
from plinth.store.audit import AuditChain
from plinth.store.base import ArtifactRecord, NewDataset, NewRun, PointRow, Store
from plinth.store.engine import is_sqlite, make_engine, retrying, writing
from plinth.store.migrate import upgrade
from plinth.store.search import compile_order, compile_where, stale
from plinth.store.sql_flows import SqlFlowStore
from plinth.store.sql_governance import SqlGovernanceStore
from plinth.store.sql_models import SqlModelRegistry
from plinth.store.sql_serving import SqlServingStore

_EXPERIMENT = select(t.experiments).where(
    (t.experiments.c.name == bindparam("name")) | (t.experiments.c.id == bindparam("name"))
)
_INSERT_EXPERIMENT = insert(t.experiments)
_INSERT_RUN = insert(t.runs).returning(t.runs.c.key)
_END_RUN = (
    update(t.runs)
    .where(t.runs.c.id == bindparam("run_id"), t.runs.c.status == "RUNNING")
    .values(status=bindparam("status"), end_ms=bindparam("end_ms"), error=bindparam("error"))
)

HISTORY_DTYPE = np.dtype([("step", "i8"), ("timestamp_ms", "i8"), ("value", "f8")])

_LATEST_UPSERT = (
    "INSERT INTO latest_metrics (run_key, key_id, step, seq, ts_ms, value) VALUES ({p}) "
    "ON CONFLICT (run_key, key_id) DO UPDATE SET step = excluded.step, seq = excluded.seq, "
    "ts_ms = excluded.ts_ms, value = excluded.value WHERE excluded.step > latest_metrics.step "
    "OR (excluded.step = latest_metrics.step AND excluded.seq > latest_metrics.seq)"
)


_REFUSED_DATA = (SqlIntegrityError, DataError, ProgrammingError)
"""Database errors about the values written, not about the database: retrying cannot help."""


def _nan_as_null(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row with its last item, a NaN metric value, as NULL: NULL stands for NaN in every store."""
    return (*row[:-1], None)


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


_IN_CHUNK = 1000
_DIGEST = re.compile(r"[0-9a-f]{64}")


def _check_artifact_records(items: Sequence[ArtifactRecord], replace: str | None) -> None:
    """Refuse records a download could not write where it belongs, before anything is stored."""
    for path in [i.path for i in items] + ([replace] if replace else []):
        if check_artifact_path(path) != path:
            raise InvalidInput(
                f"Artifact path {path!r} is not in plain form; use {check_artifact_path(path)!r}."
            )
    for item in items:
        if not _DIGEST.fullmatch(item.digest) or item.size < 0:
            raise InvalidInput(
                f"Artifact {item.path!r} has no valid sha256 digest and size; store its blob first."
            )
    twice = sorted(path for path, n in collections.Counter(i.path for i in items).items() if n > 1)
    if twice:
        raise InvalidInput(f"Artifact path {twice[0]!r} is given twice; each file needs its own path.")


def mapping_digest(values: Mapping[str, Any]) -> str:
    """'N keys sha256:…' over the canonical JSON of a mapping: what an audit event records of it."""
    body = json.dumps(dict(values), sort_keys=True, separators=(",", ":"), default=str)
    return f"{len(values)} keys sha256:{hashlib.sha256(body.encode()).hexdigest()}"


class SqlStore(SqlModelRegistry, SqlFlowStore, SqlServingStore, SqlGovernanceStore, Store):
    """The metadata store on a SQL database; migrations are applied when it opens.

    Args:
        url: SQLAlchemy URL, e.g. `sqlite:///.plinth/plinth.db` or
            `postgresql+psycopg://postgres@127.0.0.1:5432/plinth`.
        actor: who mutations are recorded as in the audit log.
        audit_key: the store's audit key, which keys the audit chain (`open_store` passes the one
            settings name); None leaves the chain unkeyed, which only suits throwaway stores.
    """

    def __init__(self, url: str, *, actor: str = "unknown", audit_key: str | None = None) -> None:
        self.url = url
        self.actor = actor
        self._chain = AuditChain(audit_key)
        self.engine = make_engine(url)
        self._sqlite = is_sqlite(self.engine)
        self._placeholder = "?" if self._sqlite else "%s"
        self._run_keys: dict[str, int] = {}
        self._key_ids: dict[str, int] = {}
        self._experiments: dict[str, e.Experiment] = {}
        self._known_envs: set[str] = set()
        self._lock = threading.Lock()
        self._batch = threading.local()
        upgrade(self.engine)

    def close(self) -> None:
        """Dispose of pooled connections."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"SqlStore({self.engine.url.render_as_string(hide_password=True)!r})"

    # helpers ---------------------------------------------------------------------------------
    def _write(self, what: str, fn: Any) -> Any:
        shared = getattr(self._batch, "conn", None)
        if shared is not None:  # inside `batch()`: join its transaction
            return fn(shared)

        def attempt() -> Any:
            with self._transaction() as conn:
                return fn(conn)

        return retrying(attempt, what)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Make every write of this thread inside the block one transaction (one commit)."""
        if getattr(self._batch, "conn", None) is not None:
            yield
            return
        with self._transaction() as conn:
            self._batch.conn = conn
            try:
                yield
            finally:
                self._batch.conn = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A write transaction; the cache entries added while it is open go if it rolls back.

        The caches of run keys, metric key ids, experiments and environments hold rows this
        transaction may have created; kept after a rollback, they would name rows that do not exist.
        """
        outer = getattr(self._batch, "undo", None)
        undo: list[Callable[[], object]] = []
        self._batch.undo = undo
        try:
            with writing(self.engine) as conn:
                yield conn
        except BaseException:
            for forget in undo:
                forget()
            raise
        finally:
            self._batch.undo = outer

    def _remember(self, forget: Callable[[], object]) -> None:
        """Note how to drop a cache entry, should this thread's open write transaction roll back."""
        undo = getattr(self._batch, "undo", None)
        if undo is not None:
            undo.append(forget)

    def _read(self, what: str, fn: Any) -> Any:
        def attempt() -> Any:
            with self.engine.connect() as conn:
                return fn(conn)

        return retrying(attempt, what)

    def _audit(self, conn: Connection, action: str, kind: str, entity_id: str, **kw: Any) -> None:
        self._chain.append(conn, [self._event(action, kind, entity_id, **kw)])

    def _run_key(self, conn: Connection, run_id: str) -> int:
        key = self._run_keys.get(run_id)
        if key is None:
            key = conn.execute(select(t.runs.c.key).where(t.runs.c.id == run_id)).scalar()
            if key is None:
                raise NotFound(f"No run with id {run_id!r}; list runs with `plinth runs list`.")
            self._run_keys[run_id] = key
            self._remember(functools.partial(self._run_keys.pop, run_id, None))
        return key

    def _key_id(self, conn: Connection | None, name: str, create: bool) -> int:
        kid = self._key_ids.get(name)
        if kid is not None:
            return kid
        if conn is None:
            return self._read("look up a metric", lambda c: self._key_id(c, name, create))
        kid = conn.execute(select(t.metric_keys.c.id).where(t.metric_keys.c.name == name)).scalar()
        if kid is None and create:
            conn.exec_driver_sql(
                f"INSERT INTO metric_keys (name) VALUES ({self._placeholder}) ON CONFLICT (name) DO NOTHING",
                (name,),
            )
            kid = conn.execute(select(t.metric_keys.c.id).where(t.metric_keys.c.name == name)).scalar()
        if kid is None:
            return -1
        self._key_ids[name] = kid
        self._remember(functools.partial(self._key_ids.pop, name, None))
        return kid

    def _require_running(self, conn: Connection, run_id: str) -> int:
        row = conn.execute(select(t.runs.c.key, t.runs.c.status).where(t.runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"No run with id {run_id!r}; list runs with `plinth runs list`.")
        if row.status != "RUNNING":
            raise RunNotActive(f"Run {run_id} has ended ({row.status}); start a new run to log more.")
        return row.key

    # experiments -----------------------------------------------------------------------------
    def get_or_create_experiment(self, name: str) -> e.Experiment:
        return self._write("create an experiment", lambda c: self._experiment(c, name, True))

    def _experiment(self, conn: Connection, name: str, create: bool) -> e.Experiment:
        cached = self._experiments.get(name)
        if cached is not None:
            return cached
        row = conn.execute(_EXPERIMENT, {"name": name}).first()
        if row is None and create:
            exp_id, created = new_id(), now_ms()
            conn.execute(
                _INSERT_EXPERIMENT, {"id": exp_id, "name": name, "created_ms": created, "tags": "{}"}
            )
            self._audit(conn, "experiment.create", "experiment", exp_id, after=name)
            return e.Experiment(exp_id, name, created, {})
        if row is None:
            raise NotFound(f"No experiment named {name!r}; list them with `plinth experiments list`.")
        found = e.Experiment(row.id, row.name, row.created_ms, json.loads(row.tags))
        self._experiments[name] = found
        self._remember(functools.partial(self._experiments.pop, name, None))
        return found

    def get_experiment(self, name_or_id: str) -> e.Experiment:
        return self._read("read an experiment", lambda c: self._experiment(c, name_or_id, False))

    def list_experiments(self) -> list[e.Experiment]:
        def fetch(conn: Connection) -> list[e.Experiment]:
            rows = conn.execute(select(t.experiments).order_by(t.experiments.c.created_ms))
            return [e.Experiment(r.id, r.name, r.created_ms, json.loads(r.tags)) for r in rows]

        return self._read("list experiments", fetch)

    # runs ------------------------------------------------------------------------------------
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
            rows, exps = [], []
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

    def _event(self, action: str, kind: str, entity_id: str, **kw: Any) -> dict[str, object]:
        return {
            "time_ms": now_ms(),
            "actor": self.actor,
            "action": action,
            "entity_type": kind,
            "entity_id": entity_id,
            "before": kw.get("before"),
            "after": kw.get("after"),
        }

    def _insert_ignore(
        self, conn: Connection, table: str, cols: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        marks = ", ".join([self._placeholder] * len(cols))
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        conn.exec_driver_sql(sql, rows if len(rows) > 1 else rows[0])

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

    def write_metrics(self, points: Sequence[PointRow]) -> None:
        """Append metric points; NaN is stored as NULL, ±inf as is.

        Raises:
            InvalidInput: the database refused the points themselves (a value it cannot store).
            StoreError: the database failed or stayed locked; the points may be written again.
        """
        if not points:
            return

        def write(conn: Connection) -> None:
            self._write_points(conn, points)

        try:
            self._write("write metrics", write)
        except StoreError as exc:
            if isinstance(exc.__cause__, _REFUSED_DATA):
                raise InvalidInput(f"The metadata store refused metric points: {exc.__cause__.orig}") from exc
            raise

    def _audit_points(
        self,
        conn: Connection,
        points: Sequence[PointRow],
        run_keys: Mapping[str, int],
        latest: Mapping[tuple[int, int], tuple[int, int, int, int, int, float]],
    ) -> None:
        """One audit event per run per write: how many points, and a digest of the latest value
        per key they leave (the state a write changes; the points themselves are never updated)."""
        counts = (
            {next(iter(run_keys)): len(points)}
            if len(run_keys) == 1
            else collections.Counter(p[0] for p in points)
        )
        by_run: dict[int, list[tuple[int, int, int, int, float]]] = {}
        for (run, _key), row in latest.items():
            by_run.setdefault(run, []).append(row[1:])
        stamp = now_ms()
        events = []
        for run_id in sorted(counts):
            state = sorted(by_run.get(run_keys[run_id], []))
            digest = hashlib.sha256(repr(state).encode()).hexdigest()
            events.append(
                {
                    "time_ms": stamp,
                    "actor": self.actor,
                    "action": "run.metrics.log",
                    "entity_type": "run",
                    "entity_id": run_id,
                    "before": None,
                    "after": f"{counts[run_id]} points, latest sha256:{digest}",
                }
            )
        self._chain.append(conn, events)

    def _write_points(self, conn: Connection, points: Sequence[PointRow]) -> None:
        """Append the points, move the latest values, and audit the write (one transaction)."""
        run_keys = {rid: self._run_key(conn, rid) for rid in {p[0] for p in points}}
        key_ids = {name: self._key_id(conn, name, True) for name in {p[1] for p in points}}
        rows = [(run_keys[r], key_ids[k], s, q, ts, v) for r, k, s, q, ts, v in points]
        latest: dict[tuple[int, int], tuple[int, int, int, int, int, float]] = {}
        for row in rows:
            seen = latest.get(row[:2])
            if seen is None or (row[2], row[3]) > (seen[2], seen[3]):
                latest[row[:2]] = row
        dbapi = conn.dialect.loaded_dbapi
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if self._sqlite:  # SQLite stores a NaN it is given as NULL
                cursor.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
                cursor.executemany(_LATEST_UPSERT.format(p="?, ?, ?, ?, ?, ?"), list(latest.values()))
            else:
                copy_sql = "COPY metrics (run_key, key_id, step, seq, ts_ms, value) FROM STDIN"
                with cursor.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row if row[5] == row[5] else _nan_as_null(row))
                upsert = _LATEST_UPSERT.format(p="%s, %s, %s, %s, %s, %s")
                cursor.executemany(upsert, [r if r[5] == r[5] else _nan_as_null(r) for r in latest.values()])
        except dbapi.Error as exc:  # as SQLAlchemy's, so `retrying` tells a lock from bad data
            lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
            raise DBAPIError.instance(
                None, None, exc, dbapi.Error, connection_invalidated=lost, dialect=conn.dialect
            ) from exc
        finally:
            cursor.close()
        self._audit_points(conn, points, run_keys, latest)

    def metric_history(self, run_id: str, key: str) -> np.ndarray:
        def fetch(conn: Connection) -> np.ndarray:
            run_key = self._run_key(conn, run_id)
            key_id = self._key_id(conn, key, False)
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                p = self._placeholder
                cursor.execute(
                    f"SELECT step, ts_ms, value FROM metrics WHERE run_key = {p} AND key_id = {p} "
                    "ORDER BY step, seq",
                    (run_key, key_id),
                )
                return np.fromiter(cursor, dtype=HISTORY_DTYPE)
            finally:
                cursor.close()

        return self._read("read a metric history", fetch)

    def metric_keys(self, run_id: str) -> list[str]:
        def fetch(conn: Connection) -> list[str]:
            run_key = self._run_key(conn, run_id)
            rows = conn.execute(
                select(t.metric_keys.c.name)
                .join(t.latest_metrics, t.latest_metrics.c.key_id == t.metric_keys.c.id)
                .where(t.latest_metrics.c.run_key == run_key)
                .order_by(t.metric_keys.c.name)
            )
            return [r[0] for r in rows]

        return self._read("list metrics", fetch)

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
                self._explain_end(conn, [p["run_id"] for p in params])
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

    def get_run(self, run_id: str, *, now_ms: int | None = None) -> e.Run:
        def fetch(conn: Connection) -> e.Run:
            found = self._hydrate(conn, [run_id], now_ms, with_details=True)
            if not found:
                raise NotFound(f"No run with id {run_id!r}; list runs with `plinth runs list`.")
            return found[0]

        return self._read("read a run", fetch)

    def search_runs(
        self,
        *,
        experiments: Sequence[str] | None,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        limit: int | None,
        now_ms: int,
    ) -> list[e.Run]:
        def fetch(conn: Connection) -> list[e.Run]:
            query = select(t.runs.c.id)
            if experiments is not None:
                ids = [self._experiment(conn, name, False).id for name in experiments]
                query = query.where(t.runs.c.experiment_id.in_(ids))

            def key_id(name: str) -> int:
                return self._key_id(conn, name, False)

            if where is not None:
                query = query.where(compile_where(where, key_id, now_ms))
            query = query.order_by(*compile_order(order_by, key_id))
            if limit is not None:
                query = query.limit(limit)
            ids = [r[0] for r in conn.execute(query)]
            return self._hydrate(conn, ids, now_ms, with_details=False)

        return self._read("search runs", fetch)

    def _hydrate(
        self, conn: Connection, ids: list[str], at_ms: int | None, *, with_details: bool
    ) -> list[e.Run]:
        if not ids:
            return []
        at_ms = at_ms if at_ms is not None else now_ms()
        rows = conn.execute(
            select(t.runs, t.experiments.c.name.label("experiment_name"))
            .join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)
            .where(t.runs.c.id.in_(ids))
        ).all()
        keys = [r.key for r in rows]
        params = self._by_run(
            conn,
            select(t.params.c.run_key, t.params.c.key, t.params.c.value).where(t.params.c.run_key.in_(keys)),
        )
        tags = self._by_run(
            conn,
            select(t.tags.c.run_key, t.tags.c.key, t.tags.c.value).where(t.tags.c.run_key.in_(keys)),
        )
        metrics = self._by_run(
            conn,
            select(t.latest_metrics.c.run_key, t.metric_keys.c.name, t.latest_metrics.c.value)
            .join(t.metric_keys, t.metric_keys.c.id == t.latest_metrics.c.key_id)
            .where(t.latest_metrics.c.run_key.in_(keys)),
            null=math.nan,  # NULL stands for a NaN metric
        )
        envs: dict[str, Any] = {}
        arts: dict[int, list[e.Artifact]] = {}
        if with_details:
            digests = [r.env_digest for r in rows if r.env_digest]
            envs = {
                d: json.loads(b)
                for d, b in conn.execute(select(t.environments).where(t.environments.c.digest.in_(digests)))
            }
            for r in rows:
                arts[r.key] = self._artifacts(conn, r.key, r.id, "")
        by_id = {r.id: r for r in rows}
        return [self._run(by_id[i], at_ms, params, tags, metrics, envs, arts) for i in ids if i in by_id]

    @staticmethod
    def _by_run(conn: Connection, query: Any, null: Any = None) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for run_key, key, value in conn.execute(query):
            out.setdefault(run_key, {})[key] = null if value is None else value
        return out

    @staticmethod
    def _run(
        row: Any,
        at_ms: int,
        params: dict[int, dict[str, Any]],
        tags: dict[int, dict[str, Any]],
        metrics: dict[int, dict[str, Any]],
        envs: dict[str, Any],
        arts: dict[int, list[e.Artifact]],
    ) -> e.Run:
        status = e.RunStatus(row.status)
        last = row.heartbeat_ms if row.heartbeat_ms is not None else row.start_ms
        if status is e.RunStatus.RUNNING and last + row.heartbeat_s * 3000 < at_ms:
            status = e.RunStatus.CRASHED
        return e.Run(
            id=row.id,
            experiment_id=row.experiment_id,
            experiment_name=row.experiment_name,
            name=row.name,
            status=status,
            user=row.user_name,
            start_ms=row.start_ms,
            end_ms=row.end_ms,
            heartbeat_ms=row.heartbeat_ms,
            heartbeat_s=row.heartbeat_s,
            params=params.get(row.key, {}),
            tags=tags.get(row.key, {}),
            metrics=metrics.get(row.key, {}),
            error=row.error,
            environment=envs.get(row.env_digest),
            artifacts=arts.get(row.key, []),
        )

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

    # artifacts -------------------------------------------------------------------------------
    def add_artifacts(
        self, run_id: str, items: Sequence[ArtifactRecord], replace: str | None = None
    ) -> list[e.Artifact]:
        created = now_ms()
        _check_artifact_records(items, replace)

        def add(conn: Connection) -> list[e.Artifact]:
            key = self._require_running(conn, run_id)
            paths = [i.path for i in items]
            art = t.artifacts
            if replace:
                # a prefix compared as text: LIKE would fold case on some engines and read `_`, `%`
                under = func.substr(art.c.path, 1, len(replace) + 1) == replace + "/"
                conn.execute(delete(art).where(art.c.run_key == key, (art.c.path == replace) | under))
            rest = [p for p in paths if not replace or (p != replace and not p.startswith(replace + "/"))]
            for start in range(0, len(rest), _IN_CHUNK):  # bound parameters are limited per statement
                chunk = rest[start : start + _IN_CHUNK]
                conn.execute(delete(art).where(art.c.run_key == key, art.c.path.in_(chunk)))
            conn.execute(
                insert(t.artifacts),
                [
                    {
                        "run_key": key,
                        "path": i.path,
                        "digest": i.digest,
                        "size": i.size,
                        "created_ms": created,
                    }
                    for i in items
                ],
            )
            self._audit(conn, "artifact.log", "run", run_id, after=json.dumps(sorted(paths)[:50]))
            return [e.Artifact(run_id, i.path, i.digest, i.size, created) for i in items]

        return self._write("record artifacts", add) if items else []

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[e.Artifact]:
        def fetch(conn: Connection) -> list[e.Artifact]:
            return self._artifacts(conn, self._run_key(conn, run_id), run_id, prefix)

        return self._read("list artifacts", fetch)

    @staticmethod
    def _artifacts(conn: Connection, key: int, run_id: str, prefix: str) -> list[e.Artifact]:
        query = select(t.artifacts).where(t.artifacts.c.run_key == key).order_by(t.artifacts.c.path)
        prefix = prefix.strip("/")
        found = []
        for r in conn.execute(query):
            if not prefix or r.path == prefix or r.path.startswith(prefix + "/"):
                found.append(e.Artifact(run_id, r.path, r.digest, r.size, r.created_ms))
        return found

    def referenced_digests(self) -> set[str]:
        def fetch(conn: Connection) -> set[str]:
            used = {r[0] for r in conn.execute(select(t.artifacts.c.digest).distinct())}
            used |= {r[0] for r in conn.execute(select(t.datasets.c.digest).distinct())}
            used |= {r[0] for r in conn.execute(select(t.model_versions.c.digest).distinct())}
            used |= {r[0] for r in conn.execute(select(t.model_files.c.digest).distinct())}
            for column in (
                t.step_runs.c.result_digest,
                t.step_runs.c.log_digest,
                t.flow_runs.c.result_digest,
            ):
                used |= {r[0] for r in conn.execute(select(column).distinct()) if r[0]}
            return used

        return self._read("list referenced blobs", fetch)

    # datasets --------------------------------------------------------------------------------
    def add_dataset_version(self, new: NewDataset) -> tuple[e.DatasetVersion, bool]:
        def add(conn: Connection) -> tuple[e.DatasetVersion, bool]:
            ds = t.datasets
            row = conn.execute(select(ds).where(ds.c.name == new.name, ds.c.digest == new.digest)).first()
            if row is not None:
                return _dataset(row), False
            last = conn.execute(
                select(ds.c.version).where(ds.c.name == new.name).order_by(ds.c.version.desc()).limit(1)
            ).scalar()
            values = {
                "id": new_id(),
                "name": new.name,
                "version": (last or 0) + 1,
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
                values["id"],
                after=f"{new.name}/{values['version']} {new.digest}",
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

    # lineage and audit -----------------------------------------------------------------------
    def add_edge(self, edge: e.LineageEdge) -> None:
        self.add_edges([edge])

    def add_edges(self, edges: Sequence[e.LineageEdge]) -> None:
        cols = ("src_type", "src_id", "relation", "dst_type", "dst_id", "created_ms", "attributes")
        rows = [
            (
                g.src_type,
                g.src_id,
                g.relation,
                g.dst_type,
                g.dst_id,
                g.created_ms,
                json.dumps(g.attributes, sort_keys=True),
            )
            for g in edges
        ]
        if not rows:
            return
        digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
        first = edges[0]

        def write(conn: Connection) -> None:
            self._insert_ignore(conn, "lineage_edges", cols, rows)
            self._audit(
                conn,
                "lineage.add",
                first.dst_type,
                first.dst_id,
                after=f"{len(rows)} edges sha256:{digest}",
            )

        self._write("record lineage edges", write)

    def edges(
        self, *, src: tuple[str, str] | None = None, dst: tuple[str, str] | None = None
    ) -> list[e.LineageEdge]:
        def fetch(conn: Connection) -> list[e.LineageEdge]:
            le = t.lineage
            query = select(le).order_by(le.c.id)
            if src is not None:
                query = query.where(le.c.src_type == src[0], le.c.src_id == src[1])
            if dst is not None:
                query = query.where(le.c.dst_type == dst[0], le.c.dst_id == dst[1])
            return [
                e.LineageEdge(
                    r.src_type,
                    r.src_id,
                    r.relation,
                    r.dst_type,
                    r.dst_id,
                    r.created_ms,
                    json.loads(r.attributes),
                )
                for r in conn.execute(query)
            ]

        return self._read("read lineage", fetch)

    def record_audit(
        self, action: str, entity_type: str, entity_id: str, before: str | None, after: str | None
    ) -> None:
        self._write(
            "record an audit event",
            lambda conn: self._audit(conn, action, entity_type, entity_id, before=before, after=after),
        )

    def audit_events(
        self,
        *,
        entity_id: str | None = None,
        actor: str | None = None,
        since_ms: int | None = None,
        limit: int | None = None,
    ) -> list[e.AuditEvent]:
        def fetch(conn: Connection) -> list[e.AuditEvent]:
            ae = t.audit_events
            query = select(ae).order_by(ae.c.seq)
            if entity_id is not None:
                query = query.where(ae.c.entity_id == entity_id)
            if actor is not None:
                query = query.where(ae.c.actor == actor)
            if since_ms is not None:
                query = query.where(ae.c.time_ms >= since_ms)
            if limit is not None:
                query = query.limit(limit)
            return [
                e.AuditEvent(
                    r.seq,
                    r.time_ms,
                    r.actor,
                    r.action,
                    r.entity_type,
                    r.entity_id,
                    r.before,
                    r.after,
                    r.prev_hash,
                    r.hash,
                )
                for r in conn.execute(query)
            ]

        return self._read("read the audit log", fetch)


def _dataset(row: Any) -> e.DatasetVersion:
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
