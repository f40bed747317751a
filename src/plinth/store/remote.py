"""`RemoteStore`: the Store over HTTP, a client of `plinth server`.

`PLINTH_STORE=http(s)://host:port` (with `PLINTH_TOKEN`, or a `plinth login`) opens one; every
capability above the store works through it unchanged. Each method is one request (see
`plinth.store.rpc` for the routes); the server's store does the work as the token's principal,
in the workspace the client names (`PLINTH_WORKSPACE`), and its errors come back as the same
`PlinthError` subclasses. A client needs no audit key: the server's store keys the chain.
"""

from __future__ import annotations

from plinth.store.base import ServerSide, Store
from plinth.store.remote_compute import RemoteCompute
from plinth.store.remote_registry import RemoteFlows, RemoteRegistry
from plinth.store.remote_serving import RemoteServing
from plinth.store.remote_tracking import RemoteTracking

__all__ = ["RemoteStore"]


class RemoteStore(
    RemoteTracking, RemoteRegistry, RemoteFlows, RemoteServing, RemoteCompute, Store, ServerSide
):
    """The metadata store of a team server.

    Args:
        client: the connection (`plinth.store.http.ServerClient`, or `client_from_settings`).

    Example:
        >>> store = RemoteStore(ServerClient("https://plinth.example.com", token=token))
        >>> store.list_experiments()
    """
