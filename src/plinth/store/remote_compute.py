"""`RemoteCompute`: the part of `RemoteStore` that asks the server for computed results.

Monitoring and lineage read raw prediction logs; through a team server they are computed there
(`POST /api/v1/compute/{name}`) and only the result comes back (see `plinth.store.base.ServerSide`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plinth.store import rpc, wire
from plinth.store.remote_base import RemoteBase

COMPUTE_PATH = "/compute/{name}"


class RemoteCompute(RemoteBase):
    """`compute(name, result, arguments)` over HTTP."""

    def compute(self, name: str, result: Any, arguments: Mapping[str, Any]) -> Any:
        """POST the encoded arguments to the server's computation `name`; decode its answer as `result`."""
        response = self.client.request(
            "POST",
            COMPUTE_PATH.format(name=name),
            content=wire.dumps(dict(arguments)),
            headers={"content-type": rpc.JSON},
        )
        return wire.decode(wire.loads(response.content, "The server's answer"), result, "answer")
