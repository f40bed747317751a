"""MLflow stores written by the real MLflow 3.17.2 (`.venv-mlflow`), to import from.

- `mlflow_sqlite`: an MLflow SQLite database and its local artifact folder, filled once per
  module by `mlflow_fill.py` (run by MLflow's own python, through MLflow's client).
- `mlflow_postgres`: the same written into a fresh PostgreSQL database (127.0.0.1:5432),
  dropped at the end of the module.
- `mlflow_http`: MLflow's own `mlflow server` over a copy of the SQLite store.

Each is a `MlflowStore` (mlflow_stores.py): the URL to import from, the artifact folder, and
`facts`, what the fill logged and the ids MLflow gave. Test modules here mark themselves
`xdist_group("mlflow_import")` so that one worker fills the stores once.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from mlflow_stores import MLFLOW_PYTHON, PG_DSN, MlflowStore, fill, mlflow_env, relocate, require_mlflow

from ray_cluster import pytest_collection_modifyitems as pytest_collection_modifyitems
from team_servers import free_port
from waiting import wait_until


@pytest.fixture(scope="module")
def mlflow_sqlite(tmp_path_factory: pytest.TempPathFactory) -> MlflowStore:
    """An MLflow SQLite store with local artifacts, written by MLflow 3.17.2."""
    require_mlflow()
    folder = tmp_path_factory.mktemp("mlflow-sqlite")
    url = f"sqlite:///{folder / 'mlflow.db'}"
    return MlflowStore(url, folder, fill(folder, url))


@pytest.fixture(scope="module")
def mlflow_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowStore]:
    """The same store in a fresh PostgreSQL database (MLflow's own driver, psycopg2), dropped after."""
    import psycopg

    require_mlflow("psycopg2")
    name = f"mlflow_import_{secrets.token_hex(4)}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        folder = tmp_path_factory.mktemp("mlflow-postgres")
        facts = fill(folder, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}")
        yield MlflowStore(f"postgresql://postgres@127.0.0.1:5432/{name}", folder, facts)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def mlflow_http(
    mlflow_sqlite: MlflowStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowStore]:
    """MLflow's `mlflow server` over a copy of the SQLite store, serving its artifacts itself: the
    copy records them as `mlflow-artifacts:/...`, under the server's --artifacts-destination."""
    folder = tmp_path_factory.mktemp("mlflow-http")
    shutil.copy(mlflow_sqlite.folder / "mlflow.db", folder / "mlflow.db")
    artifacts = str(mlflow_sqlite.folder / "mlruns")
    relocate(folder / "mlflow.db", artifacts, "mlflow-artifacts:")
    port = free_port()
    cmd = [
        str(MLFLOW_PYTHON),
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
    ]
    cmd += [
        "--artifacts-destination",
        artifacts,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with open(folder / "server.log", "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=folder,
            env=mlflow_env(folder),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"`mlflow server` exited:\n{(folder / 'server.log').read_text()[-4000:]}")
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, f"`mlflow server` at {url} to answer /health", timeout_s=180)
        yield MlflowStore(url, mlflow_sqlite.folder, mlflow_sqlite.facts)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
