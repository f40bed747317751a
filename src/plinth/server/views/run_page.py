"""Views of the run page: one run's facts, each of its metrics as a series a chart can draw, its datasets.

    GET /ui/runs/{run_id}                  params, tags, status and reason, environment, cost
    GET /ui/runs/{run_id}/metric?key=...   one metric, at most `points` points (extremes kept)
    GET /ui/runs/{run_id}/datasets         dataset versions it consumed and produced, profiled

A metric of a million points is read once from the store and cut down here (min and max per
bucket, `common.downsample`), so the browser gets a couple of thousand points whatever was
logged. An ended run's series no longer change: the cut-down ones are kept for a while, so the
page opened again or by a colleague does not read the million points again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Query, Response

from plinth.core import entities as e
from plinth.core.access import Right
from plinth.core.errors import NotFound
from plinth.monitoring.costs import Prices, run_totals
from plinth.server.config import ServerConfig
from plinth.server.context import RequestContext
from plinth.server.views.common import MAX_POINTS, READ, needs, thin, view_router
from plinth.store.base import Store
from plinth.tracking.system import WALL

SYSTEM_PREFIXES = ("system/", "plinth.")
"""Metrics plinth logs itself (resource sampling, flow step timing): the system tab's, not the user's."""
CACHED_SERIES = 64


def router(config: ServerConfig) -> APIRouter:
    """`GET /ui/runs/{run_id}`, `.../metric` and `.../datasets`."""
    router = view_router()
    prices = Prices.from_settings(config.settings)
    cache = SeriesCache(CACHED_SERIES)

    @router.get("/runs/{run_id}", openapi_extra=needs(Right.READ))
    def run_view(run_id: str, ctx: RequestContext = READ) -> dict[str, Any]:
        """A run as its page shows it (no metric histories, no artifact list: their own views).

        Raises (answered by the app's error table): NotFound for an id the workspace does not hold.
        """
        return overview(ctx.store.get_run(run_id), prices)

    @router.get("/runs/{run_id}/metric", openapi_extra=needs(Right.READ))
    def metric_view(
        run_id: str,
        key: str = Query(..., min_length=1),
        points: int = Query(MAX_POINTS, ge=4, le=100_000),
        ctx: RequestContext = READ,
    ) -> Response:
        """One metric's series, steps, times and values, cut down to at most `points` points.

        Raises (answered by the app's error table): NotFound for an unknown run or a key the
        run never logged.
        """
        run = ctx.store.get_run(run_id)
        if key not in run.metrics:
            raise NotFound(f"Run {run_id} has no metric {key!r}; it logged {_names(run.metrics)}.")
        where = (id(ctx.state), ctx.workspace, run.id, key, points)
        ended = run.end_ms is not None  # a crashed run has no end: it may yet log again
        doc = cache.get(where, run) if ended else None
        if doc is None:
            doc = series(ctx.store, run.id, key, points)
            if ended:
                cache.put(where, run, doc)
        return Response(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    @router.get("/runs/{run_id}/datasets", openapi_extra=needs(Right.READ))
    def datasets_view(run_id: str, ctx: RequestContext = READ) -> dict[str, Any]:
        """The dataset versions the run consumed (with their role) and produced, with profiles.

        Raises (answered by the app's error table): NotFound for an unknown run.
        """
        store = ctx.store
        store.get_run(run_id)
        return datasets(store, run_id)

    return router


def overview(run: e.Run, prices: Prices) -> dict[str, Any]:
    """The run's facts for its page: the user's metrics apart from plinth's own."""
    user = {k: v for k, v in run.metrics.items() if not k.startswith(SYSTEM_PREFIXES)}
    system = {k: v for k, v in run.metrics.items() if k.startswith(SYSTEM_PREFIXES)}
    return {
        "id": run.id,
        "name": run.name,
        "experiment": {"id": run.experiment_id, "name": run.experiment_name},
        "status": run.status.value,
        "error": run.error,
        "user": run.user,
        "start_ms": run.start_ms,
        "end_ms": run.end_ms,
        "heartbeat_ms": run.heartbeat_ms,
        "duration_ms": run.end_ms - run.start_ms if run.end_ms is not None else None,
        "params": dict(sorted(run.params.items())),
        "tags": _user_first(run.tags),
        "metrics": _finite(user),
        "system_metrics": _finite(system),
        "environment": run.environment,
        "cost": cost(run, prices),
        "artifacts": {"files": len(run.artifacts), "bytes": sum(a.size for a in run.artifacts)},
        "flow_run": run.tags.get("plinth.flow_run"),
    }


def series(store: Store, run_id: str, key: str, points: int) -> dict[str, Any]:
    """A metric's history cut down to at most `points` points, each bucket's extremes kept.

    Steps, times and values travel as three arrays of the same length: the page draws against
    steps or against time from the same answer.
    """
    history = store.metric_history(run_id, key)
    picked = thin(history, points)
    return {  # a field of a structured array is strided: each is copied out contiguous
        "key": key,
        "count": len(history),
        "points": len(picked),
        "step": np.ascontiguousarray(picked["step"]),
        "time_ms": np.ascontiguousarray(picked["timestamp_ms"]),
        "value": np.ascontiguousarray(picked["value"]),
    }


def cost(run: e.Run, prices: Prices) -> dict[str, Any] | None:
    """The run's resource-hours (and their price when prices are set); None when nothing was recorded.

    Measured runs logged their totals (`system/wall_hours`, ...); others count their wall time
    times the CPUs and GPUs their allocation tags name, as `plinth costs` does.
    """
    measured = WALL in run.metrics
    if not measured and not any(f"plinth.{k}" in run.tags for k in ("cpu", "gpu", "memory")):
        return None
    totals = run_totals(run)
    priced = bool(prices.cpu_hour or prices.gpu_hour or prices.memory_gb_hour)
    return {
        "measured": measured,
        "wall_hours": totals.wall_hours,
        "cpu_hours": totals.cpu_hours,
        "gpu_hours": totals.gpu_hours,
        "memory_gib_hours": totals.memory_gib_hours,
        "cpu_hours_used": totals.cpu_hours_used if measured else None,
        "gpu_hours_used": totals.gpu_hours_used if measured else None,
        "cost": prices.of(totals) if priced else None,
    }


def datasets(store: Store, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Dataset versions linked to the run by lineage edges, each with its schema and profile."""
    consumed = [
        (edge.src_id, str(edge.attributes.get("role") or edge.relation))
        for edge in store.edges(dst=("run", run_id))
        if edge.src_type == "dataset_version"
    ]
    produced = [
        (edge.dst_id, str(edge.attributes.get("role") or edge.relation))
        for edge in store.edges(src=("run", run_id))
        if edge.dst_type == "dataset_version"
    ]
    if not consumed and not produced:
        return {"consumed": [], "produced": []}
    known = {d.id: d for d in store.list_dataset_versions()}
    return {
        "consumed": [_dataset(known.get(i), i, role) for i, role in consumed],
        "produced": [_dataset(known.get(i), i, role) for i, role in produced],
    }


class SeriesCache:
    """Cut-down series of ended runs, the most recently used kept (an ended run's metrics are final)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[Any, ...], tuple[int | None, dict[str, Any]]] = OrderedDict()

    def get(self, where: tuple[Any, ...], run: e.Run) -> dict[str, Any] | None:
        """The series kept for `where`, if it was cut from this run as it ended."""
        with self._lock:
            found = self._items.get(where)
            if found is None or found[0] != run.end_ms:
                return None
            self._items.move_to_end(where)
            return found[1]

    def put(self, where: tuple[Any, ...], run: e.Run, doc: dict[str, Any]) -> None:
        """Keep `doc`, forgetting the least recently used past `size`."""
        with self._lock:
            self._items[where] = (run.end_ms, doc)
            self._items.move_to_end(where)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _dataset(found: e.DatasetVersion | None, version_id: str, role: str) -> dict[str, Any]:
    if found is None:  # erased or removed since: the edge outlives it
        return {"id": version_id, "role": role, "missing": True}
    return {
        "id": found.id,
        "name": found.name,
        "version": found.version,
        "ref": found.ref,
        "role": role,
        "rows": found.rows,
        "size": found.size,
        "digest": found.digest,
        "source": found.source,
        "created_ms": found.created_ms,
        "schema": found.schema,
        "profile": found.profile,
        "missing": False,
    }


def _user_first(tags: Mapping[str, str]) -> dict[str, str]:
    """Tags with the user's own before plinth's bookkeeping (`plinth.*`), each group by name."""
    return dict(sorted(tags.items(), key=lambda kv: (kv[0].startswith("plinth."), kv[0])))


def _finite(values: Mapping[str, float]) -> dict[str, float | None]:
    """Latest values as JSON numbers (NaN and infinities as null), by name."""
    return {k: (v if v == v and abs(v) != float("inf") else None) for k, v in sorted(values.items())}


def _names(metrics: Mapping[str, float]) -> str:
    names = sorted(metrics)
    if not names:
        return "no metrics"
    shown = ", ".join(repr(n) for n in names[:10])
    return shown + (f" and {len(names) - 10} more" if len(names) > 10 else "")
