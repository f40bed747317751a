"""Flow runs and step runs, as a part of `SqlStore`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, delete, insert, select, update

from plinth.core import entities as e
from plinth.core.errors import NotFound
from plinth.core.ids import now_ms as _now
from plinth.core.validation import storable
from plinth.store import schema as t
from plinth.store.base import FlowStore
from plinth.store.search import stale
from plinth.store.sql.base import SqlBase

_STEP_COLUMNS = (
    "id",
    "flow_run_id",
    "call",
    "step",
    "status",
    "attempts",
    "start_ms",
    "end_ms",
    "input_digest",
    "cache_key",
    "result_digest",
    "log_digest",
    "error",
    "resources",
    "usage",
    "reused_from",
)


class SqlFlows(SqlBase, FlowStore):
    """Flow methods of SqlStore."""

    def create_flow_run(self, run: e.FlowRun) -> None:
        row = {
            "id": run.id,
            "flow": run.flow,
            "status": run.status.value,
            "params": json.dumps(run.params),
            "source": run.source,
            "start_ms": run.start_ms,
            "end_ms": run.end_ms,
            "result_digest": run.result_digest,
            "error": run.error,
            "resumed_from": run.resumed_from,
            "driver_host": run.driver_host,
            "driver_pid": run.driver_pid,
            "driver_ns": run.driver_ns,
        }

        def create(conn: Connection) -> None:
            conn.execute(insert(t.flow_runs), row)
            self._audit(conn, "flow.start", "flow_run", run.id, after=run.flow)

        self._write("record a flow run", create)

    def finish_flow_run(
        self, run_id: str, status: e.RunStatus, end_ms: int, result_digest: str | None, error: str | None
    ) -> None:
        values = {
            "status": status.value,
            "end_ms": end_ms,
            "result_digest": result_digest,
            "error": storable(error),
        }
        fr = t.flow_runs

        def finish(conn: Connection) -> None:
            # A run already marked CRASHED (its driver was taken for dead) keeps that status.
            running = (fr.c.id == run_id) & (fr.c.status == "RUNNING")
            if conn.execute(update(fr).where(running).values(**values)).rowcount:
                self._audit(conn, "flow.end", "flow_run", run_id, before="RUNNING", after=status.value)

        self._write("finish a flow run", finish)

    def crash_flow_run(self, run_id: str, end_ms: int, error: str) -> None:
        fr, sr, runs = t.flow_runs, t.step_runs, t.runs
        crashed = {"status": "CRASHED", "end_ms": end_ms, "error": error}

        def crash(conn: Connection) -> None:
            running = (sr.c.flow_run_id == run_id) & (sr.c.status == "RUNNING")
            steps = list(conn.execute(select(sr.c.id).where(running)).scalars())
            conn.execute(update(sr).where(running).values(**crashed))
            ids = [run_id, *steps]
            ended = select(runs.c.id).where(runs.c.id.in_(ids), runs.c.status == "RUNNING")
            for tracked in list(conn.execute(ended).scalars()):
                conn.execute(update(runs).where(runs.c.id == tracked).values(**crashed))
                self._audit(conn, "run.end", "run", tracked, before="RUNNING", after="CRASHED")
            flow = update(fr).where(fr.c.id == run_id, fr.c.status == "RUNNING").values(**crashed)
            if conn.execute(flow).rowcount:
                self._audit(conn, "flow.crash", "flow_run", run_id, before="RUNNING", after="CRASHED")

        self._write("mark a flow run crashed", crash)

    def get_flow_run(self, run_id: str, *, now_ms: int | None = None) -> e.FlowRun:
        def fetch(conn: Connection) -> e.FlowRun:
            found = self._flow_runs(conn, t.flow_runs.c.id == run_id, now_ms, 1)
            if not found:
                raise NotFound(f"No flow run with id {run_id!r}; list them with `plinth flows list`.")
            return found[0]

        return self._read("read a flow run", fetch)

    def list_flow_runs(self, flow: str | None = None, limit: int | None = 50) -> list[e.FlowRun]:
        where = t.flow_runs.c.flow == flow if flow is not None else None
        return self._read("list flow runs", lambda conn: self._flow_runs(conn, where, None, limit))

    @staticmethod
    def _flow_runs(
        conn: Connection, where: ColumnElement[bool] | None, at_ms: int | None, limit: int | None
    ) -> list[e.FlowRun]:
        fr = t.flow_runs
        crashed = stale(at_ms if at_ms is not None else _now()).label("crashed")
        tracked = t.runs.c.status.label("tracked")
        query = select(fr, crashed, tracked).join(t.runs, t.runs.c.id == fr.c.id)
        query = query.order_by(fr.c.start_ms.desc())
        if where is not None:
            query = query.where(where)
        out = []
        for r in conn.execute(query.limit(limit)):
            # The driver's tracked run went stale, or was reaped, before the flow run was ended.
            gone = r.crashed or r.tracked != "RUNNING"
            status = e.RunStatus.CRASHED if r.status == "RUNNING" and gone else e.RunStatus(r.status)
            out.append(
                e.FlowRun(
                    id=r.id,
                    flow=r.flow,
                    status=status,
                    params=json.loads(r.params),
                    source=r.source,
                    start_ms=r.start_ms,
                    end_ms=r.end_ms,
                    result_digest=r.result_digest,
                    error=r.error,
                    resumed_from=r.resumed_from,
                    driver_host=r.driver_host,
                    driver_pid=r.driver_pid,
                    driver_ns=r.driver_ns,
                )
            )
        return out

    def save_step_runs(self, steps: Sequence[e.StepRun]) -> None:
        rows = [_step_row(s) for s in steps]
        if not rows:
            return

        def save(conn: Connection) -> None:
            ids = [r["id"] for r in rows]
            conn.execute(delete(t.step_runs).where(t.step_runs.c.id.in_(ids)))
            conn.execute(insert(t.step_runs), rows)

        self._write("record step runs", save)

    def step_runs(self, flow_run_id: str) -> list[e.StepRun]:
        def fetch(conn: Connection) -> list[e.StepRun]:
            sr = t.step_runs
            query = select(sr).where(sr.c.flow_run_id == flow_run_id).order_by(sr.c.id)
            return [_step(r._mapping) for r in conn.execute(query)]

        return self._read("read step runs", fetch)

    def cached_step(self, cache_key: str) -> e.StepRun | None:
        def fetch(conn: Connection) -> e.StepRun | None:
            sr = t.step_runs
            query = (
                select(sr)
                .where(sr.c.cache_key == cache_key, sr.c.status.in_(["FINISHED", "CACHED"]))
                .order_by(sr.c.end_ms.desc())
                .limit(1)
            )
            row = conn.execute(query).first()
            return _step(row._mapping) if row is not None else None

        return self._read("look up a cached step", fetch)

    def claim_trigger(self, flow: str, scheduled_ms: int, status: str) -> bool:
        def claim(conn: Connection) -> bool:
            mark = "?" if conn.dialect.name == "sqlite" else "%s"
            sql = (
                "INSERT INTO schedule_triggers (flow, scheduled_ms, status, created_ms) "
                f"VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT DO NOTHING"
            )
            claimed = conn.exec_driver_sql(sql, (flow, scheduled_ms, status, _now())).rowcount == 1
            if claimed:
                self._audit(conn, f"schedule.{status}", "flow", flow, after=str(scheduled_ms))
            return claimed

        return self._write("claim a schedule time", claim)

    def set_trigger_run(self, flow: str, scheduled_ms: int, flow_run_id: str) -> None:
        st = t.schedule_triggers
        stmt = (
            update(st)
            .where(st.c.flow == flow, st.c.scheduled_ms == scheduled_ms)
            .values(flow_run_id=flow_run_id)
        )
        self._write("link a schedule time", lambda conn: conn.execute(stmt))

    def triggers(self, flow: str) -> list[tuple[int, str, str | None]]:
        st = t.schedule_triggers
        query = select(st.c.scheduled_ms, st.c.status, st.c.flow_run_id).where(st.c.flow == flow)
        return self._read(
            "read schedule times",
            lambda conn: [tuple(r) for r in conn.execute(query.order_by(st.c.scheduled_ms))],
        )


def _step_row(step: e.StepRun) -> dict[str, Any]:
    row = {name: getattr(step, name if name != "call" else "call") for name in _STEP_COLUMNS}
    row["status"] = step.status.value
    row["error"] = storable(step.error)
    row["resources"] = json.dumps(step.resources)
    row["usage"] = json.dumps(step.usage)
    return row


def _step(row: RowMapping) -> e.StepRun:
    values = {name: row[name] for name in _STEP_COLUMNS}
    values["status"] = e.StepStatus(values["status"])
    values["resources"] = json.loads(values["resources"])
    values["usage"] = json.loads(values["usage"])
    return e.StepRun(**values)
