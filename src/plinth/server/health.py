"""Probes and metrics: `/healthz` (the process is up), `/readyz` (the store answers), `/metrics`.

The probes need no token, so an orchestrator can ask them; `/metrics` needs the admin right of
the workspace asked in, unless the server's config sets `metrics_open`.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from plinth.core.access import DEFAULT_WORKSPACE, Right
from plinth.core.errors import StoreError
from plinth.server.context import require, right_extra, server_state
from plinth.server.metrics import ServerMetrics

log = logging.getLogger("plinth.server")


def health_router(metrics: ServerMetrics, *, metrics_open: bool = False) -> APIRouter:
    """The probe routes and `/metrics` (open to anyone only when `metrics_open`)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is up", openapi_extra=right_extra(Right.PUBLIC))
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="The metadata store answers (503 otherwise)",
        openapi_extra=right_extra(Right.PUBLIC),
    )
    async def readyz(request: Request) -> dict[str, str]:
        await run_in_threadpool(_ping, request)
        return {"status": "ready"}

    right = Right.PUBLIC if metrics_open else Right.ADMIN
    summary = "Prometheus metrics: requests and latency per route, with p50/p95/p99"

    if metrics_open:

        @router.get("/metrics", summary=summary, response_class=Response, openapi_extra=right_extra(right))
        async def open_metrics() -> Response:
            return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    else:

        @router.get(
            "/metrics",
            summary=summary,
            response_class=Response,
            openapi_extra=right_extra(right),
            dependencies=[Depends(require(right))],
        )
        def admin_metrics() -> Response:
            return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router


def _ping(request: Request) -> None:
    """One round trip to the default workspace's database; StoreError (503) when it fails."""
    try:
        store = server_state(request).stores.get(DEFAULT_WORKSPACE)
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # the reason goes to the log: the probe answers anyone
        log.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
        raise StoreError("The metadata store does not answer; the server's log says why.") from exc
