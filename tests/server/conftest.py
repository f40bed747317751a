"""Team servers for tests: a real uvicorn on a free loopback port, in a thread or as `plinth server`.

- `server_factory(store_url, artifacts_url=None, **config)`: the app in a thread of this process.
- `server_process(store_url, artifacts_url=None, workers=1, args=())`: `plinth server` as a
  child process, which a test can kill and start again on the same port; its output is kept.
- `team_server`: a server over the parametrized `store_url` (SQLite, then PostgreSQL).

Each yields an object with `.url` and `.admin_token` (the bootstrap admin's token, set through
PLINTH_ADMIN_TOKEN) and `.client(token)` for an httpx client that sends a token.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from ray_cluster import pytest_collection_modifyitems as pytest_collection_modifyitems
from team_servers import ProcessServer, ThreadServer, new_admin_token, start_thread_server


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ThreadServer]]:
    """Start team servers in threads: `server_factory(store_url, artifacts_url=None, **config)`.

    Extra keyword arguments are `ServerConfig` fields (cors_origins, max_body_bytes, ...);
    `prepare(app)` may add to the app before it serves.
    """
    started: list[ThreadServer] = []

    def start(
        store_url: str,
        artifacts_url: str | None = None,
        *,
        prepare: Callable[[FastAPI], None] | None = None,
        **config: Any,
    ) -> ThreadServer:
        server = start_thread_server(store_url, tmp_path, artifacts_url, prepare, **config)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ProcessServer]]:
    """Start `plinth server` processes: `server_process(store_url, artifacts_url=None, workers=1,
    args=(), env={})`; stopped at the end of the test."""
    started: list[ProcessServer] = []

    def start(
        store_url: str,
        artifacts_url: str | None = None,
        *,
        workers: int = 1,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        scheme: str = "http",
        wait: bool = True,
    ) -> ProcessServer:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
        environ.update(
            PLINTH_HOME=str(tmp_path / "server-home"),
            PLINTH_STORE=store_url,
            PLINTH_ARTIFACTS=artifacts_url or str(tmp_path / "server-artifacts"),
            PLINTH_ADMIN_TOKEN=new_admin_token(),
            PLINTH_USER="server",
        )
        environ.update(env or {})
        log_path = tmp_path / f"server-{len(started)}.log"
        server = ProcessServer([*args, "--workers", str(workers)], environ, log_path, scheme)
        started.append(server)
        return server.start(wait=wait)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def team_server(server_factory: Callable[..., ThreadServer], store_url: str) -> ThreadServer:
    """A team server over the parametrized store (SQLite, then PostgreSQL)."""
    return server_factory(store_url)
