"""The team server: `create_app(config)` gives the ASGI app (FastAPI) that `plinth server` runs.

One app per process holds the identity store, one store per workspace, the authorizer and the
artifact store (`ServerState`, in `app.state.plinth`). Routes come from one module per area:
the store API (`store_routes`), the admin API (`admin_routes`), artifacts (`blob_routes`),
monitoring and lineage computed where the logs are (`compute_routes`), single sign-on
(`oidc`, when configured), and the probes and metrics (`health`). Every route names the right
it needs; the route-table test holds every route to it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from plinth import __version__
from plinth.core.access import DEFAULT_WORKSPACE, Right
from plinth.core.collector import quiet_gc
from plinth.core.errors import PlinthError
from plinth.core.identity import Principal, PrincipalKind
from plinth.server import errors
from plinth.server.access_log import AccessLog
from plinth.server.admin_routes import admin_router
from plinth.server.blob_routes import blob_router
from plinth.server.compute_routes import compute_router
from plinth.server.config import ServerConfig
from plinth.server.context import RIGHT_KEY, WORKSPACE_HEADER, ServerState
from plinth.server.health import health_router
from plinth.server.metrics import ServerMetrics
from plinth.server.middleware import ServerGuard
from plinth.server.mlflow import ARTIFACTS_PREFIX, mlflow_routers
from plinth.server.mlflow.dispatch import MlflowDispatch
from plinth.server.route_index import index_routes
from plinth.server.store_dispatch import StoreDispatch
from plinth.server.store_routes import store_router
from plinth.server.ui_routes import ui_router
from plinth.server.views import views_routers

if TYPE_CHECKING:
    from plinth.store.blobs import BlobStore

log = logging.getLogger("plinth.server")

API = "/api/v1"
BLOBS = f"{API}/blobs"
"""Artifact chunk routes limit their own bodies (a chunk may pass the JSON limit)."""

SECURITY_SCHEME = "bearer"


def create_app(config: ServerConfig) -> FastAPI:
    """The team server over the stores `config` names.

    Opens the default workspace's store (upgrading its schema) when called; other workspaces
    open on first use. Closed with the app's lifespan.

    Raises:
        ConfigError: the store or artifact URL cannot be used.
        StoreError: the store cannot be reached.
    """
    state = open_state(config)
    metrics = ServerMetrics()
    access = AccessLog() if config.access_log else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        quiet_gc()  # after the default workspace's store has opened
        try:
            yield
        finally:
            close_state(state)
            if access is not None:
                access.close()

    otel = config.settings.opentelemetry
    app = FastAPI(
        title="plinth team server",
        version=__version__,
        description=(
            "Experiments, datasets, models, flows and their governance, shared by a team. Send "
            "`Authorization: Bearer <token>`; `X-Plinth-Workspace` picks the workspace. A store "
            "write sent with `Prefer: return=minimal` is answered 204, without its result."
        ),
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry layer asks for the global providers on every request: only
        # when asked for (PLINTH_OPENTELEMETRY), as the server counts and times requests itself
        telemetry={"tracing": otel, "metrics": otel, "logs": otel},
    )
    app.state.plinth = state
    app.state.config = config
    app.state.metrics = metrics
    errors.install(app)
    _add_routes(app, health_router(metrics, metrics_open=config.metrics_open))  # probes: found first
    for router in _routers(config):
        _add_routes(app, router)
    _add_routes(app, ui_router())  # last: its catch-all answers the UI's own addresses
    index_routes(app.router)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(MlflowDispatch)  # innermost of ours: inside CORS, the guard and its metrics
    app.add_middleware(StoreDispatch)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["*"],
            allow_headers=["authorization", "content-type", WORKSPACE_HEADER, "range", "content-range"],
            expose_headers=["retry-after", "content-range", "location"],
            max_age=600,
        )
    app.add_middleware(
        ServerGuard,
        metrics=metrics,
        max_body_bytes=config.max_body_bytes,
        exempt=(BLOBS, ARTIFACTS_PREFIX),
        tls_only=bool(config.public_url and config.public_url.startswith("https://")),
        access=access,
    )
    return app


def open_state(config: ServerConfig) -> ServerState:
    """The identity store, the workspaces' stores, the authorizer and the artifact store."""
    from plinth.access import Authorizer, LocalResolver
    from plinth.store.sql.identity import SqlIdentity
    from plinth.store.workspaces import WorkspaceStores

    identity = SqlIdentity.from_settings(config.settings)
    stores = WorkspaceStores(config.settings, identity)
    stores.get(DEFAULT_WORKSPACE)  # fail at start, not on the first request, if it is unusable
    authorizer = Authorizer(LocalResolver(identity), admin_token=config.admin_token, anonymous=_local(config))
    return ServerState(authorizer=authorizer, stores=stores, identity=identity, blobs=_lazy_blobs(config))


def _local(config: ServerConfig) -> Principal | None:
    """`plinth ui`'s user, who needs no token (the server listens on loopback only)."""
    if config.local_user is None:
        return None
    return Principal(name=config.local_user, kind=PrincipalKind.USER, superuser=True)


def close_state(state: ServerState) -> None:
    """Write the last-used times the authorizer holds, then close the stores."""
    from plinth.access import LocalResolver

    resolver = state.authorizer.resolver
    try:
        if isinstance(resolver, LocalResolver):
            resolver.flush()
    except PlinthError as exc:  # bookkeeping only: the stores still close
        log.warning("could not record when tokens were last used: %s", exc)
    finally:
        state.stores.close()
        state.identity.close()


def _lazy_blobs(config: ServerConfig) -> Callable[[], BlobStore]:
    """The artifact store, opened on first use and kept."""
    from plinth.store.open import open_blobs

    lock = threading.Lock()
    opened: list[BlobStore] = []

    def blobs() -> BlobStore:
        if not opened:
            with lock:
                if not opened:
                    opened.append(open_blobs(config.settings))
        return opened[0]

    return blobs


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """`router`'s routes, added to the app's own table rather than included.

    An included router is matched through a wrapper per router and per route, which cost most
    of a small request's time (0.6 of 0.9 ms of CPU for `/healthz`); a route in the app's own
    table is one pattern match, and `RouteIndex` tries only the few that can match. So the
    routers here set their prefixes, tags and dependencies themselves, and include no other
    router.
    """
    for route in router.routes:
        if not isinstance(route, (APIRoute, Route)):
            raise TypeError(f"{route!r}: add a router's routes one by one, not as an included router")
        app.router.routes.append(route)


def _routers(config: ServerConfig) -> Iterator[APIRouter]:
    yield store_router()
    yield admin_router()
    yield blob_router()
    yield compute_router()
    yield from views_routers(config)
    yield from mlflow_routers()
    if config.oidc:  # authlib and the sealing keys load only when sign-on is configured
        from plinth.server.oidc import oidc_router

        yield oidc_router(config)


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, declaring the bearer scheme on every route that needs a token."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[SECURITY_SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`plinth tokens create`) or a `plinth login` session.",
        }
        for path, route in api_routes(app):
            _secure(doc, path, route)
        app.openapi_schema = doc
        return doc

    return openapi


def api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """Every API route of `app` with its full path template, through included routers."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            yield str(context.path_format or route.path_format), route


def right_of(route: APIRoute) -> Right | None:
    """The right `route` declares (`openapi_extra={"x-plinth-right": ...}`), or None."""
    value = (route.openapi_extra or {}).get(RIGHT_KEY)
    try:
        return Right(str(value))
    except ValueError:
        return None


def _secure(doc: dict[str, Any], path: str, route: APIRoute) -> None:
    public = right_of(route) is Right.PUBLIC
    operations = doc.get("paths", {}).get(path, {})
    for method in route.methods or ():
        operation = operations.get(method.lower())
        if operation is not None:
            operation["security"] = [] if public else [{SECURITY_SCHEME: []}]
