"""Views of flows: the list of flow runs, one run's steps and graph, a step's output, and resume.

A flow run's page polls `GET /ui/flow-runs/{id}` while the run is live, so that view answers
from a handful of store calls: the run, its step calls, and the "feeds" lineage edges between
them (the driver records those when a call launches, so a failed or running call has its place
in the graph too). Resume runs the flow in this process (`plinth.server.views.flow_resume`) when
the server allows it; otherwise the page shows the command that does it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Query

from plinth.core.access import Right
from plinth.core.entities import FlowRun, RunStatus, StepRun, StepStatus
from plinth.core.errors import ConflictError, Forbidden, InvalidInput, NotFound
from plinth.core.ids import now_ms
from plinth.server.config import ServerConfig
from plinth.server.context import RequestContext
from plinth.server.views.common import READ, WRITE, needs, runs_by_id, view_router
from plinth.server.views.flow_resume import Resumer
from plinth.store.base import Store

SCAN = 5000
"""Newest flow runs the list reads to filter and to name the flows in its picker."""
LOG_TAIL = 256 * 1024
"""Bytes of a step's output the page shows (the end: where a failure's traceback is)."""
RESUMABLE = frozenset({RunStatus.FAILED, RunStatus.CRASHED, RunStatus.KILLED})
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def router(config: ServerConfig) -> APIRouter:
    """`GET /ui/flow-runs`, `GET /ui/flow-runs/{id}`, its step logs, and `POST …/{id}/resume`."""
    router = view_router()
    resumer = Resumer(config.settings)
    edges = StepEdges()

    @router.get("/flow-runs", openapi_extra=needs(Right.READ))
    def flow_runs(
        flow: str = "",
        status: str = "",
        limit: int = Query(100, ge=1, le=1000),
        ctx: RequestContext = READ,
    ) -> dict[str, Any]:
        """Flow runs, newest first, of one flow and/or one status, with their step counts.

        Raises (answered by the app's error table): InvalidInput for an unknown status.
        """
        wanted = _status(status)
        store = ctx.store
        found = store.list_flow_runs(None, SCAN)
        matching = [
            r for r in found if (not flow or r.flow == flow) and (wanted is None or r.status is wanted)
        ]
        shown = matching[:limit]
        users = _users(store, [r.id for r in shown])
        scheduled = _scheduled(store, {r.flow for r in shown})
        return {
            "flows": sorted({r.flow for r in found}),
            "statuses": [s.value for s in RunStatus],
            "total": len(matching),
            "runs": [
                {
                    **_run(r, users.get(r.id), scheduled),
                    **_step_counts(store.step_runs(r.id)),
                }
                for r in shown
            ],
        }

    @router.get("/flow-runs/{run_id}", openapi_extra=needs(Right.READ))
    def flow_run(run_id: str, ctx: RequestContext = READ) -> dict[str, Any]:
        """One flow run: its step calls (timing, attempts, cache, worker, error) and their graph.

        Raises (answered by the app's error table): NotFound for an unknown flow run.
        """
        store = ctx.store
        run = store.get_flow_run(run_id, now_ms=now_ms())
        steps = store.step_runs(run_id)
        users = _users(store, [run.id])
        later = [] if run.status is RunStatus.RUNNING else _resumed_as(store, run)
        return {
            "run": {
                **_run(run, users.get(run.id), _scheduled(store, {run.flow})),
                "params": run.params,
                "source": run.source,
                "driver": f"pid {run.driver_pid} on {run.driver_host}" if run.driver_pid else None,
                "resumed_by": later,
                **_step_counts(steps),
            },
            "live": run.status is RunStatus.RUNNING,
            "steps": [_step(s, run.start_ms) for s in steps],
            "edges": edges.of(ctx.workspace, store, steps),
            "resume": {
                "possible": run.status in RESUMABLE,
                "allowed": config.allow_resume,
                "resuming": resumer.busy_with(run.id),
                "command": f"plinth flows resume {run.id}",
            },
        }

    @router.get("/flow-runs/{run_id}/steps/{call}/log", openapi_extra=needs(Right.READ))
    def step_log(run_id: str, call: str, ctx: RequestContext = READ) -> dict[str, Any]:
        """The end of what one step call wrote to stdout and stderr, colour codes removed.

        Raises (answered by the app's error table): NotFound for an unknown run or call.
        """
        steps = ctx.store.step_runs(run_id)
        chosen = next((s for s in steps if s.call == call), None)
        if chosen is None:
            ctx.store.get_flow_run(run_id)  # NotFound naming the run when it is the run that is missing
            calls = ", ".join(s.call for s in steps) or "none"
            raise NotFound(f"Flow run {run_id} has no step call {call!r}; its calls are: {calls}.")
        if chosen.log_digest is None:
            return {"call": call, "text": "", "size": 0, "truncated": False}
        data = ctx.blobs.read_bytes(chosen.log_digest, name=f"output of step {call}")
        tail = data[-LOG_TAIL:]
        return {"call": call, "text": readable(tail), "size": len(data), "truncated": len(tail) < len(data)}

    @router.post("/flow-runs/{run_id}/resume", openapi_extra=needs(Right.WRITE))
    def resume(run_id: str, ctx: RequestContext = WRITE) -> dict[str, Any]:
        """Resume a failed flow run in this server's process; answers once the new run exists.

        Raises (answered by the app's error table): Forbidden when the server does not resume
        flow runs (`allow_resume`); ConflictError for a run that did not fail, or while this
        server resumes another; NotFound for an unknown run.
        """
        run = ctx.store.get_flow_run(run_id, now_ms=now_ms())
        if not config.allow_resume:
            raise Forbidden(
                "This server does not resume flow runs (allow_resume is off in its server.toml, "
                f"PLINTH_ALLOW_RESUME); run `plinth flows resume {run_id}` where the flow's code lives."
            )
        if run.status not in RESUMABLE:
            raise ConflictError(
                f"Flow run {run_id} is {run.status.value}; only a FAILED, CRASHED or KILLED run is resumed."
            )
        started = resumer.start(run.id, ctx.workspace)
        ctx.store.record_audit(
            "flow_run.resume", "flow_run", run.id, None, json.dumps({"resumed_as": started})
        )
        return {"resumed_from": run.id, "flow_run_id": started}

    return router


def readable(data: bytes) -> str:
    """Captured output as text to show: colour codes dropped, other control bytes as \\xNN."""
    text = _ANSI.sub("", data.decode(errors="replace"))
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _status(text: str) -> RunStatus | None:
    if not text:
        return None
    try:
        return RunStatus(text.upper())
    except ValueError:
        raise InvalidInput(
            f"status {text!r} is not a flow run status; use one of {', '.join(s.value for s in RunStatus)}."
        ) from None


def _run(run: FlowRun, user: str | None, scheduled: set[str]) -> dict[str, Any]:
    if run.resumed_from:
        trigger = "resume"
    elif run.id in scheduled:
        trigger = "schedule"
    else:
        trigger = "manual"
    return {
        "id": run.id,
        "flow": run.flow,
        "status": run.status.value,
        "user": user,
        "start_ms": run.start_ms,
        "end_ms": run.end_ms,
        "duration_ms": run.end_ms - run.start_ms if run.end_ms is not None else None,
        "trigger": trigger,
        "resumed_from": run.resumed_from,
        "error": run.error,
    }


def _step_counts(steps: list[StepRun]) -> dict[str, int]:
    done = sum(1 for s in steps if s.status.has_result)
    return {"steps_done": done, "steps_total": len(steps), "steps_cached": _count(steps, StepStatus.CACHED)}


def _count(steps: list[StepRun], status: StepStatus) -> int:
    return sum(1 for s in steps if s.status is status)


def _step(step: StepRun, flow_start_ms: int) -> dict[str, Any]:
    usage = step.usage or {}
    return {
        "id": step.id,
        "call": step.call,
        "step": step.step,
        "status": step.status.value,
        "attempts": step.attempts,
        "retries": max(step.attempts - 1, 0),
        "cached": step.status is StepStatus.CACHED,
        "reused_from": step.reused_from,
        "start_ms": step.start_ms,
        "end_ms": step.end_ms,
        "offset_ms": step.start_ms - flow_start_ms if step.start_ms is not None else None,
        "duration_ms": step.end_ms - step.start_ms
        if step.start_ms is not None and step.end_ms is not None
        else None,
        "worker": usage.get("worker") or None,
        "gpus": usage.get("gpus") or [],
        "resources": step.resources,
        "error": step.error,
        "has_log": step.log_digest is not None,
    }


class StepEdges:
    """Which call feeds which, from the "feeds" edges between the runs behind a flow run's calls.

    A reused call stands for the run whose result it took, so its edges are looked up by that
    run, and an edge counts when both of its ends are calls of the flow run. A call's edges are
    stored with its row, so those of a call that ended never change: they are kept here, by the
    call's own row (later runs that reuse the same result add edges into that run), and a live
    page's polls look up only the calls still running.
    """

    LIMIT = 100_000

    def __init__(self) -> None:
        self._ended: dict[tuple[str, str], list[str]] = {}

    def of(self, workspace: str, store: Store, steps: list[StepRun]) -> list[dict[str, str]]:
        """`{"from": call, "to": call}` for every edge between `steps`."""
        call_of = {s.reused_from or s.id: s.call for s in steps}
        found: list[dict[str, str]] = []
        for step in steps:
            key = step.reused_from or step.id
            sources = [call_of[src] for src in self._sources(workspace, store, key, step) if src in call_of]
            found.extend({"from": source, "to": step.call} for source in dict.fromkeys(sources))
        return found

    def _sources(self, workspace: str, store: Store, key: str, step: StepRun) -> list[str]:
        known = self._ended.get((workspace, step.id))
        if known is not None:
            return known
        sources = [e.src_id for e in store.edges(dst=("run", key)) if e.relation == "feeds"]
        if step.end_ms is not None:
            if len(self._ended) >= self.LIMIT:
                self._ended.clear()
            self._ended[(workspace, step.id)] = sources
        return sources


def _resumed_as(store: Store, run: FlowRun) -> list[str]:
    """The flow runs that resumed `run`, oldest first."""
    return [r.id for r in reversed(store.list_flow_runs(run.flow, SCAN)) if r.resumed_from == run.id]


def _users(store: Store, run_ids: list[str]) -> dict[str, str]:
    """Who started each flow run (its tracked run's user), in one search."""
    return {run_id: run.user for run_id, run in runs_by_id(store, run_ids).items()}


def _scheduled(store: Store, flows: set[str]) -> set[str]:
    """Ids of the flow runs a schedule started."""
    return {run_id for name in flows for _, _, run_id in store.triggers(name) if run_id}
