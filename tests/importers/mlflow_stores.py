"""MLflow stores for the import tests, written by the real MLflow 3.17.2 in `.venv-mlflow`.

- `fill(folder, mlflow_url)` runs `mlflow_fill.py` with MLflow's own python against a tracking
  URI (artifacts under folder/mlruns) and returns what it logged (`facts`).
- `MlflowStore`: a filled store, as the fixtures in conftest.py give it.
- `mlflow_env(folder, url)`: the environment of an MLflow process.
- `relocate(db, old, new)`: rewrite the artifact locations a copy of an MLflow SQLite store records.

`scripts/test-services.sh` makes `.venv-mlflow`; a machine without it (or without MLflow's
PostgreSQL driver in it) fails these tests with the command to run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MLFLOW_PYTHON = REPO / ".venv-mlflow" / "bin" / "python"
MLFLOW_VERSION = "3.17.2"
FILL = Path(__file__).resolve().parent / "mlflow_fill.py"
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
QUIET_MLFLOW = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "PYTHONWARNINGS": "ignore",
    "OMP_NUM_THREADS": "1",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


@dataclass(frozen=True)
class MlflowStore:
    """An MLflow store to import: where it is, where its artifacts are, and what it holds."""

    url: str
    folder: Path
    facts: dict[str, Any]


def require_mlflow(driver: str | None = None) -> None:
    """Fail with the fix when `.venv-mlflow` (or MLflow's PostgreSQL driver in it) is missing."""
    found = list(
        (REPO / ".venv-mlflow").glob(f"lib/python3*/site-packages/mlflow-{MLFLOW_VERSION}.dist-info")
    )
    if not MLFLOW_PYTHON.exists() or not found:
        pytest.fail(
            f".venv-mlflow with mlflow=={MLFLOW_VERSION} is missing: run `bash scripts/test-services.sh`."
        )
    if driver and subprocess.run([str(MLFLOW_PYTHON), "-c", f"import {driver}"], check=False).returncode:
        pytest.fail(
            f".venv-mlflow lacks {driver}, MLflow's PostgreSQL driver: run `bash scripts/test-services.sh`."
        )


def mlflow_env(folder: Path, url: str | None = None) -> dict[str, str]:
    """The environment of an MLflow process: no plinth or MLflow variables but the tracking URI."""
    drop = ("PLINTH_", "MLFLOW_", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(QUIET_MLFLOW, HOME=str(folder))
    if url:
        env["MLFLOW_TRACKING_URI"] = url
    return env


def fill(folder: Path, mlflow_url: str) -> dict[str, Any]:
    """Write the test store at `mlflow_url` with MLflow's client, artifacts under folder/mlruns."""
    folder.mkdir(parents=True, exist_ok=True)
    facts = folder / "facts.json"
    proc = subprocess.run(
        [str(MLFLOW_PYTHON), str(FILL), str(folder / "mlruns"), str(facts)],
        cwd=folder,
        env=mlflow_env(folder, mlflow_url),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"mlflow_fill.py failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    loaded: dict[str, Any] = json.loads(facts.read_text())
    return loaded


ARTIFACT_COLUMNS = (
    ("runs", "artifact_uri"),
    ("experiments", "artifact_location"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
)
"""Where an MLflow database records where files lie."""


def relocate(db: Path, old: str, new: str) -> None:
    """Make every artifact location `db` records under `old` one under `new` instead."""
    with sqlite3.connect(db) as conn:
        for table, column in ARTIFACT_COLUMNS:
            conn.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (old, new))
    conn.close()
