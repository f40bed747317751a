"""What a route knows about its request: who asked, in which workspace, and the store to use.

Every route of the team server depends on `require(right)`: it authenticates the bearer token,
or a browser's single sign-on cookie (`credential`; `plinth.access.Authorizer`, decisions cached
at most 5 s), picks the workspace from the
`X-Plinth-Workspace` header (a GET may say `?workspace=` instead, as a browser's image or download
link must; else the token's home workspace, else `default`), checks the
principal's role there grants `right`, and hands the route a store that writes audit events
as that principal. The route's right is also recorded in its OpenAPI operation as
`x-plinth-right`, which the route-table test reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request

from plinth.core.access import DEFAULT_WORKSPACE, Right, check_workspace_name
from plinth.core.errors import Forbidden
from plinth.core.identity import Principal

if TYPE_CHECKING:
    from plinth.access.authorizer import Authorizer
    from plinth.store.blobs import BlobStore
    from plinth.store.identity import IdentityStore
    from plinth.store.sql import SqlStore
    from plinth.store.workspaces import WorkspaceStores

WORKSPACE_HEADER = "x-plinth-workspace"
RIGHT_KEY = "x-plinth-right"
SESSION_COOKIE = "plinth_session"
"""The cookie a browser's single sign-on session token travels in (`plinth.server.oidc`)."""
CSRF_HEADER = "x-requested-with"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class ServerState:
    """What the app holds for its lifetime (`app.state.plinth`)."""

    authorizer: Authorizer
    stores: WorkspaceStores
    identity: IdentityStore
    blobs: Callable[[], BlobStore]


@dataclass(frozen=True)
class RequestContext:
    """One authorized request: the principal, its workspace, and the stores to act in."""

    principal: Principal
    workspace: str
    state: ServerState

    @property
    def store(self) -> SqlStore:
        """The workspace's store, recording audit events as this principal."""
        return self.state.stores.get(self.workspace).acting_as(self.principal.actor)

    @property
    def blobs(self) -> BlobStore:
        """The artifact store (shared by every workspace: blobs are content-addressed)."""
        return self.state.blobs()


def server_state(request: Request) -> ServerState:
    """The app's `ServerState`."""
    state: ServerState = request.app.state.plinth
    return state


def bearer(request: Request) -> str | None:
    """The token of `Authorization: Bearer …`, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def credential(request: Request) -> str | None:
    """The request's token: `Authorization: Bearer …`, else the session cookie, else None.

    A browser sends its cookie with any request, even one a hostile page makes it send; so an
    unsafe method authenticated by the cookie alone must also carry `X-Requested-With`, a header
    no cross-site form can add and no cross-site script may (CORS is off unless configured).

    Raises:
        Forbidden: a cookie-authenticated POST, PUT, PATCH or DELETE without that header.
    """
    token = bearer(request)
    if token is not None:
        return token
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    if request.method not in SAFE_METHODS and not request.headers.get(CSRF_HEADER):
        raise Forbidden(
            f"A {request.method} signed in by the session cookie must send the header "
            "X-Requested-With (cross-site request protection); scripts and clients send it, forms cannot."
        )
    return cookie


def client_of(request: Request) -> str:
    """The address failed logins are counted against (the peer; a proxy's own header is not trusted)."""
    return request.client.host if request.client else "unknown"


def require(right: Right) -> Callable[[Request], RequestContext]:
    """A FastAPI dependency: the request's context once its token holds `right`.

    Raises (answered by the app's error table):
        Unauthorized: no token, or an unknown, revoked or expired one (401).
        TooManyAttempts: this client failed too often lately (429).
        Forbidden: the token's role in the workspace does not grant `right` (403).
    """

    def dependency(request: Request) -> RequestContext:
        state = server_state(request)
        principal = state.authorizer.authenticate(credential(request), client_of(request))
        workspace = (
            request.headers.get(WORKSPACE_HEADER)
            or _query_workspace(request)
            or principal.home_workspace
            or DEFAULT_WORKSPACE
        )
        check_workspace_name(workspace)
        state.authorizer.authorize(principal, workspace, right)
        return RequestContext(principal=principal, workspace=workspace, state=state)

    dependency.__name__ = f"require_{right.value}"
    return dependency


def _query_workspace(request: Request) -> str | None:
    """`?workspace=` of a GET: what a browser's image, download or frame can send (no headers)."""
    return request.query_params.get("workspace") if request.method in SAFE_METHODS else None


def right_extra(right: Right) -> dict[str, Any]:
    """`openapi_extra` recording a route's right (every route passes it)."""
    return {RIGHT_KEY: right.value}
