"""What every view module shares: the prefix, the rights as dependencies, and series downsampling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, Depends

from plinth.core.access import Right
from plinth.core.filters import Compare, Field
from plinth.core.ids import now_ms
from plinth.server.context import require, right_extra

if TYPE_CHECKING:
    from plinth.core.entities import Run
    from plinth.store.base import TrackingStore

PREFIX = "/api/v1/ui"
READ = Depends(require(Right.READ))
LOAD = Depends(require(Right.LOAD))
RAW = Depends(require(Right.RAW))
AUDIT = Depends(require(Right.AUDIT))
MAINTAIN = Depends(require(Right.MAINTAIN))
WRITE = Depends(require(Right.WRITE))
AUTHENTICATED = Depends(require(Right.AUTHENTICATED))
MAX_POINTS = 2000
"""Points per series a chart gets by default: more than a chart's width in pixels."""


def view_router() -> APIRouter:
    """A router for views: under PREFIX, tagged `ui` in the OpenAPI document."""
    return APIRouter(prefix=PREFIX, tags=["ui"])


def needs(right: Right) -> dict[str, Any]:
    """`openapi_extra` naming a view's right (the route-table test reads it)."""
    return right_extra(right)


def runs_by_id(store: TrackingStore, ids: Sequence[str]) -> dict[str, Run]:
    """The runs of `ids` that exist in the workspace, by id, read with one search."""
    if not ids:
        return {}
    where = Compare(Field("attributes", "id"), "in", tuple(ids))
    found = store.search_runs(experiments=None, where=where, order_by=[], limit=len(ids), now_ms=now_ms())
    return {run.id: run for run in found}


def downsample(x: np.ndarray, y: np.ndarray, points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most about `points` of a series, keeping each bucket's minimum and maximum in order.

    A line drawn from the result shows every spike the full series has: each of `points // 2`
    equal buckets of consecutive points keeps its lowest and highest point (NaN never wins), and
    the first and last points always stay.

    Args:
        x: the series' x values (steps or times), ascending.
        y: its values, the same length.
        points: the most points to return (at least 4).
    """
    n = len(y)
    if n <= points:
        return x, y
    buckets = max(points // 2 - 1, 1)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    bucket_of = np.repeat(np.arange(buckets), np.diff(edges))
    missing = np.isnan(y)
    low_y, high_y = np.where(missing, np.inf, y), np.where(missing, -np.inf, y)
    keep = [np.array([0, n - 1])]
    for values, extremes in ((low_y, np.minimum.reduceat(low_y, edges[:-1])),
                             (high_y, np.maximum.reduceat(high_y, edges[:-1]))):  # fmt: skip
        hits = np.flatnonzero((values == extremes[bucket_of]) & np.isfinite(values))
        _, first = np.unique(bucket_of[hits], return_index=True)  # each bucket's first extreme
        keep.append(hits[first])
    index = np.unique(np.concatenate(keep))
    return x[index], y[index]


def thin(history: np.ndarray, points: int = MAX_POINTS) -> np.ndarray:
    """The rows of a metric history (`metric_history`) a chart draws: at most about `points`,
    each bucket's lowest and highest value kept (`downsample`)."""
    index, _ = downsample(np.arange(len(history), dtype=np.int64), history["value"], points)
    return history[index]
