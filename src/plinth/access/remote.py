"""Who a token is, asked of the team server: the resolver of a model server over a remote store.

A model server started with `--auth` while its store is a team server (`PLINTH_STORE=http…`)
has no identity tables to read. It asks the server's `POST /api/v1/tokens/resolve` with its own
token (a `predictor` one) who the caller's token belongs to, and builds the `Principal` from the
answer; the `Authorizer` above caches that decision (at most 5 s), so the server is asked once
per token per window, not per request. Unknown tokens are not counted against the model server
by the team server (it backs off its own callers), so callers cannot lock it out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from plinth.core.access import Role
from plinth.core.errors import PlinthError, ServerUnavailable
from plinth.core.identity import Principal, PrincipalKind

RESOLVE_PATH = "/tokens/resolve"
"""Relative to the client's base URL, which ends in `/api/v1`."""

WORKSPACE_HEADER = "X-Plinth-Workspace"


class WhoamiResponse(Protocol):
    """What the resolver reads of an answer (an `httpx.Response`)."""

    def json(self) -> Any: ...


class WhoamiClient(Protocol):
    """The part of `plinth.store.http.ServerClient` the resolver uses."""

    def request(
        self, verb: str, path: str, *, json: Any = None, headers: Mapping[str, str] | None = None
    ) -> WhoamiResponse: ...

    def close(self) -> None: ...


class WhoamiResolver:
    """A `TokenResolver` asking the team server who a token is.

    Args:
        client_factory: makes the client to the team server (once, on first use), with the
            model server's own token, which needs the `predict` right there.
        workspace: sent as `X-Plinth-Workspace` (the model's workspace); the answer lists the
            principal's roles in every workspace anyway.

    `resolve` answers None for a token the server does not know and raises what the client
    raises otherwise (ServerUnavailable when the server cannot be reached), so an outage is
    a 503 for the caller rather than a refusal of a valid token.

    Example:
        >>> resolver = WhoamiResolver(lambda: client_from_settings(settings), "vision")
        >>> authorizer = Authorizer(resolver)
    """

    def __init__(self, client_factory: Callable[[], WhoamiClient], workspace: str | None = None) -> None:
        self._factory = client_factory
        self._workspace = workspace
        self._client: WhoamiClient | None = None
        self._lock = threading.Lock()

    def resolve(self, secret: str) -> Principal | None:
        """The principal `secret` belongs to, or None if the team server does not know it."""
        headers = {WORKSPACE_HEADER: self._workspace} if self._workspace is not None else None
        answer = self._connection().request("POST", RESOLVE_PATH, json={"token": secret}, headers=headers)
        doc = answer.json()
        found = doc.get("principal") if isinstance(doc, dict) else doc
        return None if found is None else principal_from(found)

    def close(self) -> None:
        """Close the connection to the team server, if one was opened."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _connection(self) -> WhoamiClient:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client


def principal_from(doc: Any) -> Principal:
    """The `Principal` a whoami answer describes.

    Raises:
        ServerUnavailable: the answer is not a whoami document (a proxy's page, another
            service on that port, an incompatible server).
    """
    try:
        roles = doc.get("roles") or {}
        return Principal(
            name=_text(doc["name"]),
            kind=PrincipalKind(doc["kind"]),
            token_name=None if doc.get("token_name") is None else _text(doc["token_name"]),
            superuser=doc.get("superuser") is True,
            roles={_text(ws): Role(role) for ws, role in roles.items()},
            home_workspace=None if doc.get("home_workspace") is None else _text(doc["home_workspace"]),
        )
    except (AttributeError, KeyError, TypeError, ValueError, PlinthError) as exc:
        raise ServerUnavailable(
            f"The team server's answer to POST /api/v1/tokens/resolve is not a principal ({exc!s:.200}); "
            "check that PLINTH_STORE points at a plinth server of the same version."
        ) from exc


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a name, got {value!r:.60}")
    return value
