"""The real MLflow client (3.17.2, in `.venv-mlflow`) and MLflow's own server, for the tests here.

- `run_script(script, url, token, workdir, args)` runs `scripts/<script>.py` with
  `.venv-mlflow/bin/python` and MLFLOW_TRACKING_URI / MLFLOW_TRACKING_TOKEN set, and returns the
  JSON object it wrote.
- `mlflow_server(base)`: MLflow's `mlflow server` over SQLite in `base`, with proxied artifacts,
  until the block ends.
- `in_workspace(server, workspace, home)`: plinth's own API reading one workspace of a server.

`scripts/test-services.sh` makes `.venv-mlflow`; a machine without it fails these tests with
the command to run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from plinth.core.settings import Settings
from plinth.tracking import context
from plinth.tracking.context import Backend
from team_servers import ThreadServer, free_port
from waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
MLFLOW_VENV = REPO / ".venv-mlflow"
MLFLOW_PYTHON = MLFLOW_VENV / "bin" / "python"
MLFLOW_VERSION = "3.17.2"
CLIENT_TIMEOUT_S = 600

QUIET_MLFLOW = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "PYTHONWARNINGS": "ignore",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",  # two cores shared with the server under test
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}
"""What keeps MLflow's client and server quiet, off the network (telemetry, git probing) and
from starting work the tests do not need (the server's job runner)."""


def require_mlflow_venv() -> None:
    """Fail with the fix when `.venv-mlflow` is missing or holds another MLflow."""
    found = list(MLFLOW_VENV.glob(f"lib/python3*/site-packages/mlflow-{MLFLOW_VERSION}.dist-info"))
    if not MLFLOW_PYTHON.exists() or not found:
        pytest.fail(
            f"{MLFLOW_VENV} with mlflow=={MLFLOW_VERSION} is missing: run `bash scripts/test-services.sh`."
        )


def mlflow_env(workdir: Path, url: str | None = None, token: str | None = None) -> dict[str, str]:
    """The environment of an MLflow process: this one without plinth's and MLflow's variables,
    plus the tracking URI and token when given."""
    drop = ("PLINTH_", "MLFLOW_", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(QUIET_MLFLOW)
    env["HOME"] = str(workdir)  # MLflow's caches and config stay in the test's folder
    if url:
        env["MLFLOW_TRACKING_URI"] = url
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    return env


def run_script(script: str, url: str, token: str | None, workdir: Path, args: dict[str, Any]) -> Any:
    """Run scripts/<script>.py under `.venv-mlflow` against `url`; its JSON result.

    The script reads `args` from its first argument and writes its result as JSON to the file
    named by its second; what it prints is shown only when it fails.
    """
    require_mlflow_venv()
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{script}-result.json"
    out.unlink(missing_ok=True)
    cmd = [str(MLFLOW_PYTHON), str(SCRIPTS / f"{script}.py"), json.dumps(args), str(out)]
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        env=mlflow_env(workdir, url, token),
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0 or not out.exists():
        raise AssertionError(
            f"MLflow client script {script}.py against {url} exited with {proc.returncode}:\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-8000:]}"
        )
    return json.loads(out.read_text())


@dataclass
class MlflowServer:
    """MLflow's own tracking server, as a child process in its own session."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"`mlflow server` exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        """SIGTERM its process group (uvicorn and its workers), SIGKILL if it lingers."""
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@contextlib.contextmanager
def mlflow_server(base: Path) -> Iterator[MlflowServer]:
    """`mlflow server` over SQLite in `base` with proxied artifacts, ready (/health) for the block."""
    require_mlflow_venv()
    port = free_port()
    cmd = [
        str(MLFLOW_PYTHON),
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{base / 'mlflow.db'}",
    ]
    cmd += ["--artifacts-destination", str(base / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1"]
    log_path = base / "mlflow-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=base, env=mlflow_env(base), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = MlflowServer(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_until(server.healthy, f"`mlflow server` at {server.url} to answer /health", timeout_s=180)
        yield server
    finally:
        server.stop()


def in_workspace(server: ThreadServer, workspace: str, home: Path) -> Backend:
    """plinth's API (not the default backend) reading `workspace` of `server` as its admin; close it."""
    return context.open_backend(
        Settings(
            home=str(home),
            store_url=server.url,
            token=server.admin_token,
            user="checker",
            workspace=workspace,
        )
    )
