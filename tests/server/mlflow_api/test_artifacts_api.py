"""MLflow's proxied-artifacts API on the team server: files in, files out, through plinth's runs.

Paths `<exp>/<run>/artifacts/<rel>` are the run's artifact `<rel>`; what is sent lands in the
content-addressed blob store and the run's artifact records, which the tests read back through
the server's own store. The real MLflow client (`.venv-mlflow`) uploads, lists and downloads.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from plinth.core.entities import RunStatus
from plinth.server.mlflow.artifacts import WHOLE_BYTES
from team_servers import ThreadServer

FILES = "/api/2.0/mlflow-artifacts/artifacts"
REPO = Path(__file__).resolve().parents[3]
MLFLOW_PYTHON = REPO / ".venv-mlflow" / "bin" / "python"


@pytest.fixture
def server(team_server: ThreadServer) -> ThreadServer:
    return team_server


def new_run(server: ThreadServer, name: str = "r") -> tuple[str, str]:
    """(experiment id, run id) of a fresh RUNNING run."""
    run = server.store().create_run(
        experiment="mlflow-artifacts",
        name=name,
        params={},
        tags={},
        environment=None,
        heartbeat_s=600,
        user="t",
    )
    return run.experiment_id, run.id


def recorded(server: ThreadServer, run_id: str) -> dict[str, bytes]:
    """Each artifact the run records, with the bytes its blob holds."""
    blobs = server.app.state.plinth.blobs()
    return {a.path: blobs.read_bytes(a.digest) for a in server.store().list_artifacts(run_id)}


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error_code"])


def test_files_round_trip_and_land_as_the_runs_artifacts(server: ThreadServer) -> None:
    exp, run = new_run(server)
    files = {"model.pkl": os.urandom(3 << 20), "plots/données ü.txt": "héllo".encode(), "empty": b""}
    with server.client() as http:
        for rel, data in files.items():
            assert http.put(f"{FILES}/{exp}/{run}/artifacts/{rel}", content=data).json() == {}
        for rel, data in files.items():
            got = http.get(f"{FILES}/{exp}/{run}/artifacts/{rel}")
            assert got.status_code == 200
            assert got.content == data
            assert got.headers["content-length"] == str(len(data))
        root = http.get(FILES, params={"path": f"{exp}/{run}/artifacts"}).json()
        plots = http.get(FILES, params={"path": f"{exp}/{run}/artifacts/plots"}).json()
        of_file = http.get(FILES, params={"path": f"{exp}/{run}/artifacts/model.pkl"}).json()
        missing = http.get(FILES, params={"path": f"{exp}/{run}/artifacts/nothing"}).json()
    assert root == {
        "files": [
            {"path": "empty", "is_dir": False, "file_size": 0},
            {"path": "model.pkl", "is_dir": False, "file_size": 3 << 20},
            {"path": "plots", "is_dir": True},
        ]
    }
    assert plots == {"files": [{"path": "données ü.txt", "is_dir": False, "file_size": 6}]}
    assert of_file == {"files": []} and missing == {"files": []}
    assert recorded(server, run) == files


def test_a_second_upload_to_a_path_replaces_the_file(server: ThreadServer) -> None:
    exp, run = new_run(server)
    with server.client() as http:
        http.put(f"{FILES}/{exp}/{run}/artifacts/a.txt", content=b"one").raise_for_status()
        http.put(f"{FILES}/{exp}/{run}/artifacts/a.txt", content=b"two").raise_for_status()
    assert recorded(server, run) == {"a.txt": b"two"}


@pytest.mark.parametrize(
    ("tail", "code"),
    [
        ("artifacts/a/%2E%2E/b.txt", "INVALID_PARAMETER_VALUE"),
        ("artifacts/%2E%2E", "INVALID_PARAMETER_VALUE"),
        ("artifacts/nul%00.txt", "INVALID_PARAMETER_VALUE"),
        ("artifacts//etc/passwd", "INVALID_PARAMETER_VALUE"),
        ("artifacts/tab%09.txt", "INVALID_PARAMETER_VALUE"),
        ("elsewhere/b.txt", "INVALID_PARAMETER_VALUE"),
        ("artifacts", "INVALID_PARAMETER_VALUE"),
        ("artifacts/line%0Abreak", "ENDPOINT_NOT_FOUND"),  # no route's path holds a line break
    ],
)
def test_a_bad_path_is_refused_and_nothing_is_recorded(server: ThreadServer, tail: str, code: str) -> None:
    exp, run = new_run(server)
    with server.client() as http:
        answer = http.put(httpx.URL(f"{server.url}{FILES}/{exp}/{run}/{tail}"), content=b"x")
    assert error_code(answer) == code, answer.text
    assert answer.status_code == (404 if code == "ENDPOINT_NOT_FOUND" else 400)
    assert server.store().list_artifacts(run) == []


def test_missing_files_runs_and_models_answer_resource_does_not_exist(server: ThreadServer) -> None:
    exp, run = new_run(server)
    with server.client() as http:
        answers = [
            http.get(f"{FILES}/{exp}/{run}/artifacts/absent.txt"),
            http.put(f"{FILES}/{exp}/01NOSUCHRUN0000000000000000/artifacts/a.txt", content=b"x"),
            http.get(f"{FILES}/{exp}/models/m-{'0' * 32}/artifacts/MLmodel"),
        ]
    assert [(a.status_code, error_code(a)) for a in answers] == [(404, "RESOURCE_DOES_NOT_EXIST")] * 3


def test_a_folder_is_not_downloaded_as_a_file(server: ThreadServer) -> None:
    exp, run = new_run(server)
    with server.client() as http:
        http.put(f"{FILES}/{exp}/{run}/artifacts/d/f.txt", content=b"x").raise_for_status()
        answer = http.get(f"{FILES}/{exp}/{run}/artifacts/d")
    assert answer.status_code == 404


def test_an_ended_run_still_takes_files(server: ThreadServer) -> None:
    # as with MLflow: a report or a model can be added to a run after it ended
    exp, run = new_run(server)
    server.store().end_run(run, RunStatus.FINISHED, None, 1)
    with server.client() as http:
        http.put(f"{FILES}/{exp}/{run}/artifacts/late.txt", content=b"x").raise_for_status()
    assert recorded(server, run) == {"late.txt": b"x"}
    assert server.store().get_run(run).status is RunStatus.FINISHED


def test_multipart_presigned_and_delete_are_refused_as_mlflow_expects(server: ThreadServer) -> None:
    exp, run = new_run(server)
    with server.client() as http:
        create = http.post(f"/api/2.0/mlflow-artifacts/mpu/create/{exp}/{run}/artifacts", json={})
        presigned = http.get(f"/api/2.0/mlflow-artifacts/presigned/{exp}/{run}/artifacts/a")
        http.put(f"{FILES}/{exp}/{run}/artifacts/a", content=b"kept").raise_for_status()
        delete = http.delete(f"{FILES}/{exp}/{run}/artifacts/a")
    assert [a.status_code for a in (create, presigned, delete)] == [501, 501, 501]
    # the sentence MLflow's client reads as "send the file in one PUT instead"
    assert create.json()["message"].startswith(
        "Multipart upload is not supported for the current artifact repository"
    )
    assert recorded(server, run) == {"a": b"kept"}


def test_rights_viewers_read_editors_write_predictors_read_no_run_files(server: ThreadServer) -> None:
    exp, run = new_run(server)
    url = f"{FILES}/{exp}/{run}/artifacts/a.txt"
    with server.client() as http:
        http.put(url, content=b"x").raise_for_status()
    viewer, predictor = server.issue("viewer", "viewer"), server.issue("predictor", "predictor")
    with server.client(viewer) as http:
        assert http.get(url).content == b"x"
        assert http.get(FILES, params={"path": f"{exp}/{run}/artifacts"}).status_code == 200
        refused = http.put(url, content=b"y")
    assert (refused.status_code, error_code(refused)) == (403, "PERMISSION_DENIED")
    with server.client(predictor) as http:
        assert http.get(url).status_code == 403
        assert http.get(FILES, params={"path": f"{exp}/{run}/artifacts"}).status_code == 403
    with server.client("") as http:
        assert http.get(url).status_code == 401


def corrupt(server: ThreadServer, data: bytes) -> None:
    blobs = server.app.state.plinth.blobs()
    path = blobs.path_of(hashlib.sha256(data).hexdigest())
    os.chmod(path, 0o644)
    with open(path, "r+b") as fh:
        fh.seek(len(data) - 1)
        fh.write(b"\x00" if data[-1:] != b"\x00" else b"\x01")


def test_a_corrupted_blob_is_never_served_whole(server: ThreadServer) -> None:
    exp, run = new_run(server)
    large, small = os.urandom(WHOLE_BYTES + (1 << 20)), os.urandom(1000)
    with server.client() as http:
        http.put(f"{FILES}/{exp}/{run}/artifacts/w.bin", content=large).raise_for_status()
        http.put(f"{FILES}/{exp}/{run}/artifacts/s.bin", content=small).raise_for_status()
    corrupt(server, large)
    corrupt(server, small)
    with server.client() as http:
        with pytest.raises(httpx.RemoteProtocolError):  # streamed: cut short before its last chunk
            http.get(f"{FILES}/{exp}/{run}/artifacts/w.bin").read()
        answer = http.get(f"{FILES}/{exp}/{run}/artifacts/s.bin")  # whole: refused before any byte
    assert answer.status_code == 500 and answer.content != small and "corrupt" in answer.text.lower()


# the real MLflow client -----------------------------------------------------------------------

LOG_LIST_DOWNLOAD = """
import json, os, sys
import mlflow
args = json.loads(sys.argv[1])
mlflow.set_experiment("artifacts by mlflow")
with mlflow.start_run() as run:
    mlflow.log_artifact(args["file"])
    mlflow.log_artifacts(args["folder"], "folder")
client = mlflow.MlflowClient()
top = [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run.info.run_id)]
inner = [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run.info.run_id, "folder/sub")]
out = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=args["dest"])
got = {}
for root, _, names in os.walk(out):
    for name in names:
        full = os.path.join(root, name)
        got[os.path.relpath(full, out)] = open(full, "rb").read().hex()
print(json.dumps({"run_id": run.info.run_id, "top": top, "inner": inner, "got": got}))
"""


def run_mlflow(server: ThreadServer, script: str, args: dict[str, Any], workdir: Path) -> Any:
    """Run `script` with MLflow's client against `server` as its admin; the JSON it printed last."""
    if not MLFLOW_PYTHON.exists():
        pytest.fail(f"{MLFLOW_PYTHON} is missing: run `bash scripts/test-services.sh`.")
    drop = ("PLINTH_", "MLFLOW_", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env |= {
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_TRACKING_TOKEN": server.admin_token,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "GIT_PYTHON_REFRESH": "quiet",
        "PYTHONWARNINGS": "ignore",
        "HOME": str(workdir),
    }
    proc = subprocess.run(
        [str(MLFLOW_PYTHON), "-c", script, json.dumps(args)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def sqlite_server(server_factory: Callable[..., ThreadServer], tmp_path: Path) -> ThreadServer:
    return server_factory(f"sqlite:///{tmp_path / 'meta' / 'plinth.db'}")


def test_mlflow_client_logs_lists_and_downloads_unicode_files(
    sqlite_server: ThreadServer, tmp_path: Path
) -> None:
    single = tmp_path / "résumé.txt"
    single.write_bytes("naïve\n".encode())
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    files = {"a.bin": os.urandom(1 << 20), "sub/日本語.json": b'{"k": 1}'}
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    (tmp_path / "dest").mkdir()
    args = {
        "file": str(single),
        "folder": str(folder),
        "dest": str(tmp_path / "dest"),
    }
    result = run_mlflow(sqlite_server, LOG_LIST_DOWNLOAD, args, tmp_path)
    assert result["top"] == [["folder", True, None], ["résumé.txt", False, 7]]
    assert result["inner"] == [["folder/sub/日本語.json", False, 8]]
    expected = {"résumé.txt": single.read_bytes(), **{f"folder/{k}": v for k, v in files.items()}}
    assert {k: bytes.fromhex(v) for k, v in result["got"].items()} == expected
    assert recorded(sqlite_server, result["run_id"]) == expected
