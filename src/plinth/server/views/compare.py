"""The compare view: a few runs side by side, with their metric series cut down on the server.

One call answers the whole page (`GET /ui/compare?runs=a,b,...`): the runs come from one
search of the store (`id in (...)`, so only the asked runs are read however large the store
is), and the metrics the page draws come as series of at most `points` points (min/max per
bucket, keeping extremes), kept as numpy arrays and written by orjson in one pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import orjson
from fastapi import APIRouter, Query, Response

from plinth.core import entities as e
from plinth.core.access import Right
from plinth.core.errors import InvalidInput, NotFound
from plinth.server.config import ServerConfig
from plinth.server.context import RequestContext
from plinth.server.views.common import MAX_POINTS, READ, needs, runs_by_id, thin, view_router
from plinth.server.views.tracking import row

if TYPE_CHECKING:
    from plinth.store.base import TrackingStore

MAX_RUNS = 50
"""Runs one compare shows: past this, curves and tables stop being readable."""
NAMED_METRICS = Query(default_factory=list, description="a metric to send series of (repeat it)")
SYSTEM_PREFIXES = ("system/", "plinth.")
"""Metrics plinth logs about a run (resources, cost), shown after the run's own."""


def router(config: ServerConfig) -> APIRouter:
    """`GET /ui/compare`."""
    router = view_router()

    @router.get("/compare", openapi_extra=needs(Right.READ))
    def compare(
        runs: str = "",
        points: int = Query(MAX_POINTS, ge=4, le=100_000),
        metric: list[str] = NAMED_METRICS,
        first_metrics: int = Query(0, ge=0, le=10_000),
        ctx: RequestContext = READ,
    ) -> Response:
        """The asked runs (params, tags, latest metrics, status) and their metric series.

        Series come for the metrics named by `metric` (repeated), else for the first
        `first_metrics` metric names of the runs (sorted; 0: all), so a page that draws a
        dozen charts reads a dozen metrics' points and asks for others when shown.

        Raises (answered by the app's error table): InvalidInput for no runs or more than
        MAX_RUNS; NotFound naming the ids the workspace does not hold.
        """
        found = find_runs(ctx.store, parse_ids(runs))
        names = sorted({key for run in found for key in run.metrics}, key=user_first)
        keys = series_keys(names, metric, first_metrics)
        doc = {
            "runs": [row(run) for run in found],
            "points": points,
            "metric_keys": names,
            "series_keys": keys,
            "series": {run.id: run_series(ctx.store, run, keys, points) for run in found},
        }
        return Response(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    return router


def parse_ids(text: str) -> list[str]:
    """The run ids of `a,b,c` in their order, each once.

    Raises:
        InvalidInput: none given, or more than MAX_RUNS.
    """
    ids = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not ids:
        raise InvalidInput("Choose the runs to compare: /compare?runs=<run id>,<run id>,...")
    if len(ids) > MAX_RUNS:
        raise InvalidInput(
            f"{len(ids)} runs were chosen; compare shows at most {MAX_RUNS}. "
            f"Choose {MAX_RUNS} or fewer (narrow the experiment's runs with a filter first)."
        )
    return ids


def user_first(key: str) -> tuple[bool, str]:
    """Sort key putting the run's own metrics before plinth's (`system/*`, `plinth.*`)."""
    return key.startswith(SYSTEM_PREFIXES), key


def series_keys(names: list[str], named: list[str], first: int) -> list[str]:
    """Which of the runs' metric `names` get series: those `named`, else the `first` (0: all)."""
    if named:
        wanted = set(named)
        return [name for name in names if name in wanted]
    return names[: first or None]


def find_runs(store: TrackingStore, ids: list[str]) -> list[e.Run]:
    """The runs of `ids`, in that order, read with one search.

    Raises:
        NotFound: some ids are not runs of this workspace (the message names them).
    """
    by_id = runs_by_id(store, ids)
    missing = [run_id for run_id in ids if run_id not in by_id]
    if missing:
        raise NotFound(
            f"No run with id {', '.join(repr(m) for m in missing)} in this workspace; "
            "check the address, or pick the runs again from an experiment's runs table."
        )
    return [by_id[run_id] for run_id in ids]


def run_series(
    store: TrackingStore, run: e.Run, keys: list[str], points: int
) -> dict[str, dict[str, np.ndarray]]:
    """Each of `keys` that `run` logged as {step, time, value}: at most `points` points, extremes kept.

    `time` is seconds since the run started, so runs started apart still overlay; `value` is
    float32 (a chart draws no finer, and the answer is half the size), NaN written as null.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in keys:
        if key not in run.metrics:
            continue
        picked = thin(store.metric_history(run.id, key), points)
        out[key] = {
            "step": np.ascontiguousarray(picked["step"]),
            "time": np.round((picked["timestamp_ms"] - run.start_ms) / 1000.0, 3),
            "value": picked["value"].astype(np.float32),
        }
    return out
