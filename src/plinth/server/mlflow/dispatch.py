"""MLflow's hot paths: its tracking and registry routes answered without FastAPI's routing and
dependency layers.

MLflow's client makes several small requests per run (create, a batch, an update) and per
model load (the alias, the version, its download address), so the cost of solving each one's
dependencies and handing it to a worker thread through anyio would be a large share of its
work. `MlflowDispatch` sits in the middleware stack beside the store API's dispatcher
(`plinth.server.store_dispatch`): a tracking or registry request, whose paths hold no
parameters, is found by method and path in one lookup and answered by the function the FastAPI
route calls (`plinth.server.mlflow.tracking.serve` with the route's handler), its errors in
MLflow's shape.
Everything else goes on to FastAPI; the FastAPI routes stay declared for the OpenAPI document
and the route-table test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from plinth.core.errors import InvalidInput, PlinthError
from plinth.server.context import RequestContext, require
from plinth.server.errors import http_error
from plinth.server.mlflow import registry
from plinth.server.mlflow.common import PREFIX, json_body, query_body
from plinth.server.mlflow.errors import mlflow_error_response
from plinth.server.mlflow.tracking import ROUTES, Route, serve
from plinth.server.store_threads import STORE_THREADS, StoreThreads


@dataclass(frozen=True)
class Dispatched:
    """A tracking route as the dispatcher holds it; `path` names it in metrics and logs."""

    route: Route
    path: str
    authorize: Callable[[Request], RequestContext]


class MlflowDispatch:
    """ASGI middleware answering MLflow's tracking and registry requests itself (see the module's
    docstring)."""

    def __init__(self, app: ASGIApp, *, threads: int = STORE_THREADS) -> None:
        self.app = app
        self._threads = StoreThreads(threads)
        self._routes: dict[tuple[str, str], Dispatched] = {}
        for route in dispatched_routes():
            path = f"{PREFIX}/{route.path}"
            for method in route.methods:
                self._routes[(method, path)] = Dispatched(route, path, require(route.right))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hit = self._routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if hit is None or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        scope["route"] = hit
        scope["path_params"] = {}
        request = Request(scope, receive)
        try:
            body: dict[str, object] | InvalidInput
            try:
                body = (
                    query_body(request, hit.route.lists)
                    if request.method == "GET"
                    else await json_body(request)
                )
            except InvalidInput as exc:  # refused once the caller is known to hold the right
                body = exc
            response = await self._threads.run(serve, hit.authorize, hit.route.handler, request, body)
        except PlinthError as exc:
            response = mlflow_error_response(exc)
        except HTTPException as exc:  # the body limit, while reading the body
            response = http_error(request, exc)
        await response(scope, receive, send)


def dispatched_routes() -> list[Route]:
    """The tracking routes, then the registry's, as the dispatcher serves them."""
    models = [
        Route((method,), path, right, handler, registry.LISTS)
        for path, method, handler, right in registry.ROUTES
    ]
    return [*ROUTES, *models]
