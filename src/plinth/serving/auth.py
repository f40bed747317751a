"""Tokens on the model server (`plinth serve --auth`): who may predict, post labels, read metrics.

The checks are the team server's own (`plinth.access.Authorizer`), one module below both faces,
over the resolver that fits the store: the identity tables of the default workspace's database
when the store is SQL, the team server's `GET /api/v1/whoami` when the store is one
(`PLINTH_STORE=http…`). A decision is reused for at most `auth_cache_s` (≤ 5 s), so a
revoked token is refused within that time and a request with a known token pays a dictionary
lookup, not a query. A token not seen lately is checked on a worker thread: a slow store or
team server never holds up the requests already being answered.

The model server's workspace is `PLINTH_WORKSPACE`, else `default`. Tokens are never logged,
and never copied into prediction logs, tags or audit events.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from plinth.access import Authorizer, LocalResolver
from plinth.access.remote import WhoamiResolver
from plinth.core.access import DEFAULT_WORKSPACE, Right, check_workspace_name
from plinth.core.errors import TooManyAttempts, Unauthorized
from plinth.core.identity import Principal
from plinth.core.settings import Settings
from plinth.store.base import Store
from plinth.store.http import client_from_settings
from plinth.store.sql.identity import SqlIdentity

MAX_REMEMBERED = 10_000
"""Tokens remembered as recently checked; past it, the stale ones are forgotten."""


class Guard:
    """Authenticates a request's bearer token and checks its right in the model's workspace.

    Args:
        authorizer: decides, and caches each decision for at most `cache_s`.
        workspace: the workspace the served models belong to.
        cache_s: the authorizer's cache window; a token checked less than this long ago is a
            cache hit, checked on the event loop, and any other on a worker thread.
        close: releases what the resolver holds (a connection to the team server), or None.
    """

    def __init__(
        self,
        authorizer: Authorizer,
        workspace: str,
        cache_s: float,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.authorizer = authorizer
        self.workspace = check_workspace_name(workspace)
        self._cache_s = cache_s
        self._close = close
        self._checked: dict[str, float] = {}  # token -> when its check began (time.monotonic)

    async def check(self, request: Request, right: Right) -> Principal:
        """The caller, once its token holds `right` in this server's workspace.

        Raises:
            Unauthorized: no token, or an unknown, revoked or expired one (401).
            TooManyAttempts: this client failed too often lately (429).
            Forbidden: the token's role here does not grant `right` (403).
            ServerUnavailable: the team server could not be asked (503).
        """
        secret = bearer(request)
        client = request.client.host if request.client else "unknown"
        began = time.monotonic()
        if secret is None or began - self._checked.get(secret, -math.inf) < self._cache_s:
            principal = self.authorizer.authenticate(secret, client)
        else:
            principal = await run_in_threadpool(self.authorizer.authenticate, secret, client)
            self._remember(secret, began)
        self.authorizer.authorize(principal, self.workspace, right)
        return principal

    def close(self) -> None:
        """Release the resolver's connections."""
        if self._close is not None:
            self._close()

    def _remember(self, secret: str, began: float) -> None:
        if len(self._checked) >= MAX_REMEMBERED:
            self._checked = {s: t for s, t in self._checked.items() if began - t < self._cache_s}
        self._checked[secret] = began


def bearer(request: Request) -> str | None:
    """The token of `Authorization: Bearer …`, or None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def challenge(exc: BaseException) -> Mapping[str, str] | None:
    """The headers a refusal of `exc` carries: how to authenticate (401), when to retry (429)."""
    if isinstance(exc, Unauthorized):
        return {"www-authenticate": 'Bearer realm="plinth"'}
    if isinstance(exc, TooManyAttempts):
        return {"retry-after": str(max(1, math.ceil(exc.retry_after_s)))}
    return None


def acting(store: Store, caller: Principal | None) -> Store:
    """`store` recording audit events as `caller`, where a store names its actor per request
    (a SQL store); a team server records who called it (this server's own token) regardless."""
    acting_as = getattr(store, "acting_as", None)
    if caller is None or acting_as is None:
        return store
    named: Store = acting_as(caller.actor)
    return named


def guard_for(settings: Settings, cache_s: float) -> Guard:
    """The guard of a model server over the store in `settings`.

    A SQL store is checked directly: its default workspace's identity tables (where the team
    server keeps tokens). A team server (`PLINTH_STORE=http…`) is asked who each token is.
    """
    workspace = settings.workspace or DEFAULT_WORKSPACE
    if settings.is_remote:
        remote = WhoamiResolver(lambda: client_from_settings(settings), workspace)
        return Guard(Authorizer(remote, cache_s=cache_s), workspace, cache_s, remote.close)
    identity = SqlIdentity.from_settings(settings)
    return Guard(Authorizer(LocalResolver(identity), cache_s=cache_s), workspace, cache_s, identity.close)
