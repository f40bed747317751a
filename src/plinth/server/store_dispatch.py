"""The store API's hot path: its routes answered without FastAPI's routing and dependency layers.

Every store call is a small request (a run started, a batch of points, a search) and the server
answers thousands a second, so the per-request cost of routing through the whole route table,
solving dependencies and FastAPI's exception layers would be most of its work. `StoreDispatch`
sits in the middleware stack, matches a request against the store endpoints' own table
(`plinth.store.rpc.ENDPOINTS`, with Starlette's path rules) and answers it with the same
functions the FastAPI routes use (`require`, `parse_arguments`, `answer`) and the same error
answers (`plinth.server.errors`). Anything else (other routes, HEAD, an unknown path, a method
a path does not have) goes on to FastAPI, which answers it as before; the FastAPI routes stay
declared for the OpenAPI document and the route-table test.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from starlette._utils import get_route_path
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from plinth.core.access import Right
from plinth.core.errors import PlinthError
from plinth.server.context import RequestContext, require
from plinth.server.errors import http_error, plinth_error
from plinth.server.store_routes import answer, parse_arguments, prefers_quiet, reads_body
from plinth.server.store_threads import STORE_THREADS, StoreThreads
from plinth.server.write_groups import GROUPED, GroupedWrite, WriteGroups
from plinth.store import rpc


@dataclass(frozen=True)
class StoreRoute:
    """One store endpoint as the dispatcher matches it; `path` is its full template, which the
    latency metrics and error logs name (as `scope["route"].path`)."""

    endpoint: rpc.Endpoint
    path: str
    pattern: re.Pattern[str]
    reads_body: bool


class StoreDispatch:
    """ASGI middleware answering the store API's requests itself (see the module's docstring).

    Args:
        app: the rest of the app (FastAPI), for every request that is not a store call.
        threads: how many store calls run at once; the others wait their turn, first come
            first served.
    """

    def __init__(self, app: ASGIApp, *, threads: int = STORE_THREADS) -> None:
        self.app = app
        self._threads = StoreThreads(threads)
        self._groups = WriteGroups(self._threads)
        self.prefix = rpc.API + "/"
        self._routes = _routes()
        self._require: Mapping[Right, Callable[[Request], RequestContext]] = {
            right: require(right) for right in Right
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hit = self._match(scope) if scope["type"] == "http" else None
        if hit is None:
            await self.app(scope, receive, send)
            return
        route, path_params = hit
        scope["route"] = route
        scope["path_params"] = path_params
        request = Request(scope, receive)
        try:
            response = await self._answer(route, request, path_params)
        except PlinthError as exc:
            response = plinth_error(request, exc)
        except HTTPException as exc:  # the body limit, while reading the body
            response = http_error(request, exc)
        await response(scope, receive, send)

    def _match(self, scope: Scope) -> tuple[StoreRoute, dict[str, str]] | None:
        """The first store route whose method and path both match, as Starlette would pick it."""
        path = _route_path(scope)
        candidates = self._routes.get(scope["method"]) if path.startswith(self.prefix) else None
        for route in candidates or ():
            found = route.pattern.match(path)
            if found is not None:
                return route, found.groupdict()
        return None

    async def _answer(self, route: StoreRoute, request: Request, path_params: dict[str, str]) -> Response:
        endpoint = route.endpoint
        ctx = self._require[endpoint.right](request)
        body = await request.body() if route.reads_body else b""
        query_string = request.scope.get("query_string", b"")
        query = _query(query_string) if query_string else []
        headers = request.headers
        media = headers.get("content-type") if body else None
        quiet = prefers_quiet(endpoint, headers.get("prefer"))
        if endpoint.method in GROUPED:
            return await self._groups.run(
                GroupedWrite(
                    ctx,
                    functools.partial(parse_arguments, endpoint, path_params, query, body, media),
                    functools.partial(answer, endpoint, ctx, quiet=quiet),
                )
            )
        return await self._threads.run(_call, endpoint, ctx, path_params, query, body, media, quiet)


def _call(
    endpoint: rpc.Endpoint,
    ctx: RequestContext,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes,
    media_type: str | None,
    quiet: bool,
) -> Response:
    """Decode the arguments (a large body takes a while) and call the store: in a store thread."""
    return answer(endpoint, ctx, parse_arguments(endpoint, path_params, query, body, media_type), quiet=quiet)


def _route_path(scope: Scope) -> str:
    """The request's path below the root path, its lone surrogates kept: the server decodes an
    undecodable byte as U+FFFD, which would turn a lookup by text no store holds into one by
    text that may be stored (see `plinth.store.rpc.segment`)."""
    path = get_route_path(scope)
    raw = scope.get("raw_path")
    if "\ufffd" not in path or not raw or scope.get("root_path"):
        return path
    return rpc.path_text(raw) or path


def _query(query_string: bytes) -> list[tuple[str, str]]:
    """The query's (name, value) pairs, lone surrogates kept as in `_route_path`."""
    found = rpc.query_items(query_string)
    return QueryParams(query_string).multi_items() if found is None else found


def _routes() -> dict[str, list[StoreRoute]]:
    """The store routes by HTTP method, in the order FastAPI declares them."""
    routes: dict[str, list[StoreRoute]] = {}
    for endpoint in rpc.ENDPOINTS:
        path = rpc.API + endpoint.path
        pattern, _format, _convertors = compile_path(path)
        routes.setdefault(endpoint.verb, []).append(StoreRoute(endpoint, path, pattern, reads_body(endpoint)))
    return routes
