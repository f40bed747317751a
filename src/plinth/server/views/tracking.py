"""Views of experiments and their runs table: a page of runs at a time, filtered and sorted in the store.

The runs table pages through the store's search (`search_runs` with an offset, `count_runs`),
so a page of an experiment of 100,000 runs costs what a page of a small one does: the filter
and the order run in the database, only the page's rows travel.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from plinth.core import entities as e
from plinth.core.access import Right
from plinth.core.errors import InvalidInput
from plinth.core.filters import FilterSyntaxError, parse_filter, parse_order_by
from plinth.core.ids import now_ms
from plinth.server.config import ServerConfig
from plinth.server.context import RequestContext
from plinth.server.views.common import READ, needs, view_router

PAGE_SIZES = (25, 50, 100, 200, 500)
DEFAULT_ORDER = "-start_time"


def router(config: ServerConfig) -> APIRouter:
    """`GET /ui/experiments` and `GET /ui/experiments/{name}/runs`."""
    router = view_router()

    @router.get("/experiments", openapi_extra=needs(Right.READ))
    def experiments(ctx: RequestContext = READ) -> list[dict[str, Any]]:
        """Every experiment, newest first, with how many runs each holds."""
        store, now = ctx.store, now_ms()
        found = sorted(store.list_experiments(), key=lambda x: x.created_ms, reverse=True)
        return [
            {
                "id": x.id,
                "name": x.name,
                "created_ms": x.created_ms,
                "tags": x.tags,
                "runs": store.count_runs(experiments=[x.id], where=None, now_ms=now),
            }
            for x in found
        ]

    @router.get("/experiments/{name:path}/runs", openapi_extra=needs(Right.READ))
    def runs(
        name: str,
        filter: str = "",
        order: str = DEFAULT_ORDER,
        page: int = Query(1, ge=1, le=1_000_000),
        page_size: int = Query(100),
        count: bool = True,
        ctx: RequestContext = READ,
    ) -> dict[str, Any]:
        """One page of an experiment's runs, filtered (the filter language) and ordered.

        `count=false` leaves out `total` (null): counting every match of a filter over a large
        experiment costs more than finding a page of them, so the UI asks for it separately
        (`.../runs/count`) and shows the rows first.

        Raises (answered by the app's error table): NotFound for an unknown experiment;
        InvalidInput for a bad filter or order, with the offending position in `problems`.
        """
        if page_size not in PAGE_SIZES:
            raise InvalidInput(
                f"page_size must be one of {', '.join(map(str, PAGE_SIZES))}, got {page_size}."
            )
        where, order_by = _parse(filter, order or DEFAULT_ORDER)
        store, now = ctx.store, now_ms()
        experiment = store.get_experiment(name)
        total = store.count_runs(experiments=[experiment.id], where=where, now_ms=now) if count else None
        found = store.search_runs(
            experiments=[experiment.id],
            where=where,
            order_by=order_by,
            limit=page_size,
            now_ms=now,
            offset=(page - 1) * page_size,
        )
        return {
            "experiment": {"id": experiment.id, "name": experiment.name},
            "total": total,
            "page": page,
            "page_size": page_size,
            "filter": filter,
            "order": order or DEFAULT_ORDER,
            "keys": _keys(found),
            "runs": [row(run) for run in found],
        }

    @router.get("/experiments/{name:path}/runs/count", openapi_extra=needs(Right.READ))
    def runs_count(name: str, filter: str = "", ctx: RequestContext = READ) -> dict[str, Any]:
        """How many runs of an experiment match a filter.

        Raises (answered by the app's error table): NotFound, InvalidInput as for the runs.
        """
        where, _ = _parse(filter, DEFAULT_ORDER)
        store = ctx.store
        experiment = store.get_experiment(name)
        return {"total": store.count_runs(experiments=[experiment.id], where=where, now_ms=now_ms())}

    return router


def row(run: e.Run) -> dict[str, Any]:
    """A run as a row of the runs table (no environment or artifacts: the run page has them)."""
    return {
        "id": run.id,
        "name": run.name,
        "experiment": run.experiment_name,
        "status": run.status.value,
        "user": run.user,
        "start_ms": run.start_ms,
        "end_ms": run.end_ms,
        "error": run.error,
        "params": run.params,
        "metrics": {k: (v if v == v and abs(v) != float("inf") else None) for k, v in run.metrics.items()},
        "tags": run.tags,
    }


def _parse(text: str, order: str) -> tuple[Any, Any]:
    """The parsed filter and order; a syntax error names its position for the search box."""
    try:
        return parse_filter(text or None), parse_order_by(
            [part.strip() for part in order.split(",") if part.strip()]
        )
    except FilterSyntaxError as exc:
        raise InvalidInput(
            str(exc), [{"field": exc.what, "expected": exc.reason, "got": str(exc.position)}]
        ) from exc


def _keys(runs: list[e.Run]) -> dict[str, list[str]]:
    """The param, metric and tag names the page's runs hold (the columns one may show)."""
    params: set[str] = set()
    metrics: set[str] = set()
    tags: set[str] = set()
    for run in runs:
        params.update(run.params)
        metrics.update(run.metrics)
        tags.update(run.tags)
    return {"params": sorted(params), "metrics": sorted(metrics), "tags": sorted(tags)}
