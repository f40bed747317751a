"""Reading runs back, one or by search, as a part of `SqlStore`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, select

from plinth.core import entities as e
from plinth.core.errors import NotFound
from plinth.core.filters import Expr, OrderKey
from plinth.core.ids import now_ms
from plinth.store import schema as t
from plinth.store.search import compile_order, compile_where
from plinth.store.sql.artifacts import artifacts_of
from plinth.store.sql.experiments import SqlExperiments


class SqlRunSearch(SqlExperiments):
    """Run methods of SqlStore that read: a run by id, and runs by filter and order."""

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
                arts[r.key] = artifacts_of(conn, r.key, r.id, "")
        by_id = {r.id: r for r in rows}
        return [self._run(by_id[i], at_ms, params, tags, metrics, envs, arts) for i in ids if i in by_id]

    @staticmethod
    def _by_run(
        conn: Connection, query: Select[int, str, Any], null: object = None
    ) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for run_key, key, value in conn.execute(query):
            out.setdefault(run_key, {})[key] = null if value is None else value
        return out

    @staticmethod
    def _run(
        row: Row[Any],
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
