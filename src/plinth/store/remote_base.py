"""`RemoteBase`: what every part of `RemoteStore` stands on — one call of a store method over HTTP.

`call("get_run", run_id)` binds the arguments to the `Store` method's signature, sends them as
its `Endpoint` says (path, query or JSON body; see `plinth.store.rpc`), and decodes the answer by
the method's return type. The parts (`remote_tracking`, `remote_registry`, `remote_serving`) are
one line per method, so the type checker sees the `Store` signatures.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from plinth.core.errors import NotFound
from plinth.store import bodies, rpc, wire
from plinth.store.http import Reply, ServerClient

_JSON_HEADERS = {"content-type": rpc.JSON}
_QUIET_HEADERS = {"content-type": rpc.JSON, "prefer": rpc.RETURN_MINIMAL}


class RemoteBase:
    """The client and the one-call machinery of `RemoteStore`.

    Args:
        client: the connection to the team server (token, workspace, TLS, retries).
    """

    def __init__(self, client: ServerClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"RemoteStore({self.client.url!r}, workspace={self.client.workspace!r})"

    def close(self) -> None:
        """Close the connections to the server."""
        self.client.close()

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call `Store.<method>` on the server and return its result.

        Raises:
            PlinthError: what the server's store raised (NotFound, ConflictError...), or
                Unauthorized / Forbidden / ServerUnavailable from the server itself.
        """
        endpoint = rpc.BY_METHOD[method]
        arguments = endpoint.signature.bind(*args, **kwargs).arguments
        response = self.send(endpoint, arguments)
        return self.result(endpoint, response)

    def call_quietly(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Call `Store.<method>` (not a GET) for what it does, not for its result: the server
        answers 204 without it (`Prefer: return=minimal`, RFC 7240), so neither end encodes nor
        decodes it. A server that ignores the preference answers in full; the answer is dropped.

        Raises:
            PlinthError: as `call`.
        """
        endpoint = rpc.BY_METHOD[method]
        self.send(endpoint, endpoint.signature.bind(*args, **kwargs).arguments, quiet=True)

    def send(
        self,
        endpoint: rpc.Endpoint,
        arguments: Mapping[str, Any],
        *,
        content: bytes | None = None,
        quiet: bool = False,
    ) -> Reply:
        """Send the arguments of one call: path arguments in the path; on a GET (or with a binary
        `content`) the others as query parameters, else as a JSON object (asking for no result
        back when `quiet`)."""
        path = endpoint.path
        for name in endpoint.path_params:
            text = rpc.to_query(arguments[name])
            if not text:
                raise NotFound(f"No {name.replace('_', ' ')} is empty; give the one you mean.")
            path = path.replace(f"{{{name}:path}}", rpc.segment(text)).replace(
                f"{{{name}}}", rpc.segment(text)
            )
        rest = {k: v for k, v in arguments.items() if k not in endpoint.path_params}
        if endpoint.verb == "GET" or content is not None:
            defaults = endpoint.signature.parameters
            params = {k: rpc.to_query(v) for k, v in rest.items() if not _is_default(defaults[k], v)}
            headers = {"content-type": "application/octet-stream"} if content is not None else None
            return self.client.request(
                endpoint.verb,
                path,
                params=params,
                content=content,
                headers=headers,
                idempotent=endpoint.idempotent,
            )
        hints = endpoint.hints
        for name, value in rest.items():
            if type(value) is int and rpc.query_hint(hints.get(name)) is int:
                rest[name] = rpc.within_64_bits(value)
        return self.client.request(
            endpoint.verb,
            path,
            content=wire.dumps(rest),
            headers=_QUIET_HEADERS if quiet else _JSON_HEADERS,
            idempotent=endpoint.idempotent,
        )

    def result(self, endpoint: rpc.Endpoint, response: Reply) -> Any:
        """The call's result from the server's answer."""
        media = rpc.BINARY_RESULTS.get(endpoint.method)
        if media == rpc.NPY:
            return bodies.npy_array(response.content)
        if media == rpc.ARROW:
            return bodies.arrow_table(response.content)
        data = wire.loads(response.content, "The server's answer")
        return wire.decode(data, endpoint.hints["return"], "answer")


def _is_default(parameter: inspect.Parameter, value: Any) -> bool:
    default = parameter.default
    return default is not inspect.Parameter.empty and (value is default or value == default)
