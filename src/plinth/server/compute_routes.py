"""What the server computes for its clients: monitoring and lineage, where the raw logs are.

Drift, performance, operations, the monitoring report and lineage read logged inputs and
subject ids. A client of the team server asks for the result (`plinth.store.base.ServerSide`)
and the server runs the same functions an embedded store runs (`plinth.monitoring.queries`,
`plinth.governance.lineage`) on its own store, so the raw logs never leave it: a `viewer`
sees aggregates, and lineage without subject ids or label values unless it may read them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from plinth.core.access import Right
from plinth.governance import lineage as graphs
from plinth.monitoring import queries
from plinth.monitoring.report import build_report
from plinth.server.context import RequestContext, require, right_extra
from plinth.store import rpc, wire
from plinth.store.remote_compute import COMPUTE_PATH
from plinth.store.wire import refused


def _lineage(ctx: RequestContext, ref: str, direction: str = "both") -> dict[str, Any]:
    if direction not in ("up", "down", "both"):
        raise refused("body.direction", "'up', 'down' or 'both'", direction)
    personal = ctx.principal.may(ctx.workspace, Right.RAW)
    return graphs.lineage(ctx.store, ref, direction, personal=personal).to_dict()


@dataclass(frozen=True)
class Computation:
    """One question the server answers: the function (of a store, then its arguments)."""

    name: str
    function: Callable[..., Any]
    summary: str
    takes_context: bool = False

    @property
    def parameters(self) -> dict[str, Any]:
        """The arguments a client sends, by name, with their types."""
        hints = typing.get_type_hints(self.function)
        names = list(inspect.signature(self.function).parameters)[1:]  # after the store / context
        return {n: hints[n] for n in names}

    @property
    def required(self) -> set[str]:
        """Arguments without a default."""
        params = list(inspect.signature(self.function).parameters.values())[1:]
        return {p.name for p in params if p.default is inspect.Parameter.empty}


COMPUTATIONS: tuple[Computation, ...] = (
    Computation("drift", queries.drift, "Drift of a model's logged requests against its reference"),
    Computation("drift_over_time", queries.drift_over_time, "Drift per part of a window"),
    Computation("performance", queries.performance, "Quality against delayed labels"),
    Computation("operations", queries.operations, "Requests, errors, latency and batch sizes"),
    Computation("report", build_report, "Everything the monitoring report shows"),
    Computation("lineage", _lineage, "Where an entity came from and what came of it", takes_context=True),
)
BY_NAME: Mapping[str, Computation] = {c.name: c for c in COMPUTATIONS}


def compute_router() -> APIRouter:
    """One route per computation: `POST /api/v1/compute/{name}`, each needing Right.READ."""
    router = APIRouter(prefix=rpc.API)
    for computation in COMPUTATIONS:
        router.add_api_route(
            COMPUTE_PATH.format(name=computation.name),
            _route(computation),
            methods=["POST"],
            summary=computation.summary,
            tags=["compute"],
            operation_id=f"compute_{computation.name}",
            response_class=Response,
            openapi_extra={**right_extra(Right.READ), **_openapi(computation)},
        )
    return router


def _route(computation: Computation) -> Callable[..., Any]:
    authorized = Depends(require(Right.READ))

    async def handle(request: Request, ctx: RequestContext = authorized) -> Response:
        arguments = _arguments(computation, await request.body())
        return await run_in_threadpool(_answer, computation, ctx, arguments)

    handle.__name__ = f"compute_{computation.name}"
    return handle


def _arguments(computation: Computation, body: bytes) -> dict[str, Any]:
    data = wire.loads(body or b"{}")
    if not isinstance(data, dict):
        raise refused("body", "a JSON object of the arguments", data)
    hints = computation.parameters
    found = {}
    for name, value in data.items():
        if name not in hints:
            raise refused(f"body.{name}", f"only the fields {', '.join(hints)}", "an unknown field")
        found[name] = wire.decode(value, hints[name], f"body.{name}")
    missing = sorted(computation.required - set(found))
    if missing:
        raise refused(f"body.{missing[0]}", "a value (it is required)", "nothing")
    return found


def _answer(computation: Computation, ctx: RequestContext, arguments: dict[str, Any]) -> Response:
    first = ctx if computation.takes_context else ctx.store
    result = computation.function(first, **arguments)
    return Response(wire.dumps(result), media_type=rpc.JSON)


def _openapi(computation: Computation) -> dict[str, Any]:
    properties = {n: wire.schema(h) for n, h in computation.parameters.items()}
    body = {"type": "object", "properties": properties, "required": sorted(computation.required)}
    return {"requestBody": {"required": True, "content": {rpc.JSON: {"schema": body}}}}
