"""Fixtures of the MLflow-client tests (helpers in mlflow_clients.py).

- `plinth_server`: a team server in a thread of the test process (SQLite store, local artifacts,
  a bootstrap admin token), one per test module; `.issue(name, role, workspace)` makes tokens.
- `mlflow_server`: MLflow's own `mlflow server` over SQLite, one per test module, for tests that
  compare plinth's answers with MLflow's.
- `mlflow_client`: `mlflow_client(script, server, token=None, **args)` runs an MLflow client
  script from scripts/ against a server; its JSON result.
- `plinth_api`: plinth's own Python API against the `plinth_server` as its admin, which is how
  the tests check that what the MLflow client wrote arrived.

Each test module marks itself with an `xdist_group` of its own, so one worker runs all of it
with that module's servers (and the MLflow client scripts run once per module).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow_clients import MlflowServer, run_script
from mlflow_clients import mlflow_server as start_mlflow_server

import plinth
from plinth.core.settings import Settings
from plinth.tracking import context
from plinth.tracking.context import Backend
from ray_cluster import pytest_collection_modifyitems as pytest_collection_modifyitems
from team_servers import ThreadServer, start_thread_server


@pytest.fixture(scope="module")
def plinth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadServer]:
    """`plinth server` (in a thread) over a fresh SQLite store and local artifacts."""
    base = tmp_path_factory.mktemp("plinth-server")
    server = start_thread_server(f"sqlite:///{base / 'meta' / 'plinth.db'}", base)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """MLflow's `mlflow server` over SQLite in a temporary folder, with proxied artifacts."""
    with start_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


@pytest.fixture
def mlflow_client(tmp_path: Path) -> Callable[..., Any]:
    """`mlflow_client(script, server, token=None, **args)`: run scripts/<script>.py against
    `server` (plinth's or MLflow's); its JSON result. `token` defaults to the plinth server's
    admin token; "" sends none."""
    runs = iter(range(1_000))

    def run(script: str, server: Any, token: str | None = None, **args: Any) -> Any:
        if token is None:
            token = getattr(server, "admin_token", None)
        return run_script(script, server.url, token or None, tmp_path / f"client-{next(runs)}", args)

    return run


@pytest.fixture
def plinth_api(plinth_server: ThreadServer, tmp_path: Path) -> Iterator[Backend]:
    """plinth's Python API (and its store) against the plinth server, as its admin."""
    settings = Settings(
        home=str(tmp_path / "checker"),
        store_url=plinth_server.url,
        token=plinth_server.admin_token,
        user="checker",
    )
    yield plinth.configure(settings)
    context.reset()
