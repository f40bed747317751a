"""Finding a request's route without trying every route's pattern.

Starlette's router tries each route's regular expression in order until one matches, and the
server has some 250 routes: a request for one near the end of the table paid more for the
search (about 0.4 ms of CPU) than for its own work. `RouteIndex` sits at the router's level
(inside FastAPI's exception handling, so every route's errors answer as before) and tries
only the routes whose literal beginning (the path before its first parameter) the request's
path starts with, in the table's order, so it picks the route the router would pick.
Anything it does not settle (no route matches fully, or the router's table holds something
other than plain routes) goes on to the router itself, which then answers 404, 405 or a
slash redirect as it always did.
"""

from __future__ import annotations

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send


class RouteIndex:
    """Router-level middleware that finds each HTTP request's route among its few candidates.

    Args:
        app: what the router runs (its own matching), for everything not settled here.
        router: the router whose table is indexed; indexed again whenever the table changes.
    """

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router
        self._seen: list[BaseRoute] | None = None
        self._table: list[tuple[str, BaseRoute]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        table = self._indexed() if scope["type"] == "http" else None
        if table is None:
            await self.app(scope, receive, send)
            return
        path = get_route_path(scope)
        for prefix, route in table:
            if not path.startswith(prefix):
                continue
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.setdefault("router", self.router)
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _indexed(self) -> list[tuple[str, BaseRoute]] | None:
        """(literal prefix, route) for every route in order; None when a route is not a plain
        one (a mount, an included router), whose matching the router keeps to itself."""
        routes = self.router.routes
        if routes != self._seen:  # the same routes compare by identity: a pass in C over pointers
            self._seen = list(routes)
            plain = [route for route in routes if isinstance(route, Route)]
            indexable = len(plain) == len(routes)
            self._table = [(literal_prefix(route.path), route) for route in plain] if indexable else None
        return self._table


def literal_prefix(path: str) -> str:
    """The part of a route's path template before its first parameter."""
    brace = path.find("{")
    return path if brace < 0 else path[:brace]


def index_routes(router: Router) -> None:
    """Put a `RouteIndex` in front of `router`'s own matching."""
    router.middleware_stack = RouteIndex(router.middleware_stack, router)
