"""MLflow 3's logged models on the team server: created, filled, finalized, searched, loaded.

A logged model's files are artifacts of a plinth run under `models/<id>/`: the source run's
while it runs, else a run made for the model. The real MLflow client (`.venv-mlflow`) logs a
scikit-learn model inside a run and loads it back in a fresh process through `runs:/` and
`models:/m-...`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from plinth.core.entities import RunStatus
from team_servers import ThreadServer

MODELS = "/api/2.0/mlflow/logged-models"
FILES = "/api/2.0/mlflow-artifacts/artifacts"
REPO = Path(__file__).resolve().parents[3]
MLFLOW_PYTHON = REPO / ".venv-mlflow" / "bin" / "python"


@pytest.fixture
def server(team_server: ThreadServer) -> ThreadServer:
    return team_server


def new_run(server: ThreadServer, experiment: str = "logged-models") -> tuple[str, str]:
    """(experiment id, run id) of a fresh RUNNING run."""
    run = server.store().create_run(
        experiment=experiment, name="trainer", params={}, tags={}, environment=None, heartbeat_s=600, user="t"
    )
    return run.experiment_id, run.id


def create(http: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = http.post(MODELS, json=body)
    assert answer.status_code == 200, answer.text
    info: dict[str, Any] = answer.json()["model"]["info"]
    return info


def upload(http: httpx.Client, info: dict[str, Any], files: dict[str, bytes]) -> None:
    """PUT each file below the model's artifact_uri, as MLflow's client does."""
    root = info["artifact_uri"].removeprefix("mlflow-artifacts:/")
    for rel, data in files.items():
        http.put(f"{FILES}/{root}/{rel}", content=data).raise_for_status()


def finalize(http: httpx.Client, model_id: str, status: str = "LOGGED_MODEL_READY") -> dict[str, Any]:
    answer = http.patch(f"{MODELS}/{model_id}", json={"model_id": model_id, "status": status})
    assert answer.status_code == 200, answer.text
    info: dict[str, Any] = answer.json()["model"]["info"]
    return info


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error_code"])


def test_a_model_of_a_running_run_keeps_its_files_among_that_runs_artifacts(server: ThreadServer) -> None:
    exp, run = new_run(server)
    files = {"MLmodel": b"flavors: {}\n", "model.pkl": os.urandom(4096), "env/conda.yaml": b"name: x\n"}
    with server.client() as http:
        info = create(
            http,
            experiment_id=exp,
            name="model",
            source_run_id=run,
            model_type="sklearn",
            tags=[{"key": "mlflow.user", "value": "ann"}],
            params=[{"key": "C", "value": "1.0"}],
        )
        model_id = info["model_id"]
        upload(http, info, files)
        ready = finalize(http, model_id)
        got = http.get(f"{MODELS}/{model_id}").json()["model"]
        listed = http.get(f"{MODELS}/{model_id}/artifacts/directories").json()
        inner = http.get(
            f"{MODELS}/{model_id}/artifacts/directories", params={"artifact_directory_path": "env"}
        )
        one = http.get(f"{MODELS}/{model_id}/artifacts/files", params={"artifact_file_path": "model.pkl"})
    assert re.fullmatch(r"m-[0-9a-f]{32}", model_id)
    assert info["status"] == "LOGGED_MODEL_PENDING" and ready["status"] == "LOGGED_MODEL_READY"
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp}/models/{model_id}/artifacts"
    assert (info["source_run_id"], info["experiment_id"], info["model_type"]) == (run, exp, "sklearn")
    assert got["info"]["tags"] == [{"key": "mlflow.user", "value": "ann"}]
    assert got["data"] == {"params": [{"key": "C", "value": "1.0"}], "metrics": []}
    assert listed["root_uri"] == info["artifact_uri"]
    assert listed["files"] == [
        {"path": "MLmodel", "is_dir": False, "file_size": 12},
        {"path": "env", "is_dir": True},
        {"path": "model.pkl", "is_dir": False, "file_size": 4096},
    ]
    assert inner.json()["files"] == [{"path": "env/conda.yaml", "is_dir": False, "file_size": 8}]
    assert one.content == files["model.pkl"]
    store = server.store()
    assert store.get_logged_model(model_id).run_id == run
    assert {a.path for a in store.list_artifacts(run)} == {f"models/{model_id}/{rel}" for rel in files}
    assert store.get_run(run).status is RunStatus.RUNNING


@pytest.mark.parametrize(("status", "ended"), [("LOGGED_MODEL_READY", "FINISHED"), (3, "FAILED")])
def test_a_model_without_a_running_source_gets_a_run_that_ends_with_it(
    server: ThreadServer, status: str | int, ended: str
) -> None:
    with server.client() as http:
        info = create(http, experiment_id="0", name="solo")
        upload(http, info, {"MLmodel": b"m"})
        finalize(http, info["model_id"], status)
    assert info["source_run_id"] == "" and info["experiment_id"] == "0"
    store = server.store()
    holder = store.get_run(store.get_logged_model(info["model_id"]).run_id)
    assert (holder.name, holder.experiment_name, holder.status.value) == ("solo", "Default", ended)
    assert [a.path for a in holder.artifacts] == [f"models/{info['model_id']}/MLmodel"]


def test_an_ended_source_run_holds_the_files_it_logged_late(server: ThreadServer) -> None:
    exp, run = new_run(server)
    server.store().end_run(run, RunStatus.FINISHED, None, 1)
    with server.client() as http:
        info = create(http, experiment_id=exp, name="late", source_run_id=run)
        upload(http, info, {"MLmodel": b"m"})
    assert info["source_run_id"] == run
    assert server.store().get_logged_model(info["model_id"]).run_id == run
    assert [a.path for a in server.store().list_artifacts(run)] == [f"models/{info['model_id']}/MLmodel"]
    assert server.store().get_run(run).status is RunStatus.FINISHED


def test_search_filters_orders_and_pages(server: ThreadServer) -> None:
    exp, run = new_run(server)
    other, _ = new_run(server, "elsewhere")
    with server.client() as http:
        made = [
            create(
                http,
                experiment_id=exp,
                name=name,
                source_run_id=run,
                tags=[{"key": "stage", "value": stage}],
                params=[{"key": "depth", "value": depth}],
            )
            for name, stage, depth in [("a", "prod", "3"), ("b", "dev", "5"), ("model", "prod", "7")]
        ]
        create(http, experiment_id=other, name="model")
        finalize(http, made[0]["model_id"])

        def names(**body: Any) -> list[str]:
            answer = http.post(f"{MODELS}/search", json={"experiment_ids": [exp], **body})
            assert answer.status_code == 200, answer.text
            return [m["info"]["name"] for m in answer.json()["models"]]

        assert names() == ["model", "b", "a"]  # newest first
        assert names(filter="name = 'model'") == ["model"]
        assert names(filter="tags.stage = 'prod' AND params.depth != '3'") == ["model"]
        assert names(filter="status = 'READY'") == ["a"]
        assert names(filter="attributes.name LIKE 'm%'") == ["model"]
        assert names(filter=f"source_run_id = '{run}' and name ILIKE 'B'") == ["b"]
        assert names(order_by=[{"field_name": "name", "ascending": True}]) == ["a", "b", "model"]
        first = http.post(f"{MODELS}/search", json={"experiment_ids": [exp, other], "max_results": 2}).json()
        rest = http.post(
            f"{MODELS}/search",
            json={"experiment_ids": [exp, other], "max_results": 2, "page_token": first["next_page_token"]},
        ).json()
    assert len(first["models"]) == 2 and len(rest["models"]) == 2 and "next_page_token" not in rest
    paged = {m["info"]["model_id"] for m in first["models"] + rest["models"]}
    assert len(paged) == 4


def test_tags_and_params_are_set_and_removed(server: ThreadServer) -> None:
    exp, run = new_run(server)
    with server.client() as http:
        model_id = create(http, experiment_id=exp, name="m", source_run_id=run)["model_id"]
        http.patch(
            f"{MODELS}/{model_id}/tags", json={"tags": [{"key": "a.b", "value": "1"}]}
        ).raise_for_status()
        http.post(
            f"{MODELS}/{model_id}/params", json={"params": [{"key": "p", "value": "2"}]}
        ).raise_for_status()
        http.delete(f"{MODELS}/{model_id}/tags/a.b").raise_for_status()
        again = http.delete(f"{MODELS}/{model_id}/tags/a.b")
        model = http.get(f"{MODELS}/{model_id}").json()["model"]
    assert (again.status_code, error_code(again)) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert model["info"]["tags"] == [] and model["data"]["params"] == [{"key": "p", "value": "2"}]


def test_refusals_answer_in_mlflows_shape(server: ThreadServer) -> None:
    exp, run = new_run(server)
    with server.client() as http:
        model_id = create(http, experiment_id=exp, name="m", source_run_id=run)["model_id"]
        answers = {
            "delete": http.delete(f"{MODELS}/{model_id}"),
            "unknown": http.get(f"{MODELS}/m-{'0' * 32}"),
            "no experiment": http.post(MODELS, json={"name": "x"}),
            "unknown run": http.post(MODELS, json={"experiment_id": exp, "source_run_id": "01NORUN"}),
            "bad filter": http.post(f"{MODELS}/search", json={"experiment_ids": [exp], "filter": "name ="}),
            "metrics": http.post(
                f"{MODELS}/search", json={"experiment_ids": [exp], "filter": "metrics.acc > 0.5"}
            ),
            "no experiments": http.post(f"{MODELS}/search", json={}),
            "pending": http.patch(f"{MODELS}/{model_id}", json={"status": "LOGGED_MODEL_PENDING"}),
            "bad status": http.patch(f"{MODELS}/{model_id}", json={"status": "DONE"}),
        }
    found = {name: (a.status_code, error_code(a)) for name, a in answers.items()}
    assert found == {
        "delete": (501, "NOT_IMPLEMENTED"),
        "unknown": (404, "RESOURCE_DOES_NOT_EXIST"),
        "no experiment": (400, "INVALID_PARAMETER_VALUE"),
        "unknown run": (404, "RESOURCE_DOES_NOT_EXIST"),
        "bad filter": (400, "INVALID_PARAMETER_VALUE"),
        "metrics": (400, "INVALID_PARAMETER_VALUE"),
        "no experiments": (400, "INVALID_PARAMETER_VALUE"),
        "pending": (400, "INVALID_PARAMETER_VALUE"),
        "bad status": (400, "INVALID_PARAMETER_VALUE"),
    }


def test_a_predictor_loads_a_models_files_but_reads_nothing_else(server: ThreadServer) -> None:
    exp, run = new_run(server)
    with server.client() as http:
        info = create(http, experiment_id=exp, name="m", source_run_id=run)
        upload(http, info, {"MLmodel": b"m"})
        http.put(f"{FILES}/{exp}/{run}/artifacts/notes.txt", content=b"private").raise_for_status()
    root = info["artifact_uri"].removeprefix("mlflow-artifacts:/")
    with server.client(server.issue("loader", "predictor")) as http:
        assert http.get(f"{MODELS}/{info['model_id']}").status_code == 200
        assert http.get(f"{FILES}/{root}/MLmodel").content == b"m"
        assert http.get(FILES, params={"path": root}).json()["files"][0]["path"] == "MLmodel"
        assert http.get(f"{FILES}/{exp}/{run}/artifacts/notes.txt").status_code == 403
        assert http.post(f"{MODELS}/search", json={"experiment_ids": [exp]}).status_code == 403
        assert http.post(MODELS, json={"experiment_id": exp}).status_code == 403


# the real MLflow client -----------------------------------------------------------------------

LOG_MODEL = """
import json, sys
import mlflow, numpy as np
from sklearn.linear_model import LogisticRegression
args = json.loads(sys.argv[1])
X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [2.0, 1.0], [0.0, 2.0]])
y = np.array([0, 1, 1, 0, 1, 0])
model = LogisticRegression().fit(X, y)
mlflow.set_experiment("mlflow-3-models")
if args["in_run"]:
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model")
    run_id = run.info.run_id
else:
    info = mlflow.sklearn.log_model(model, name="model")
    run_id = None
print(json.dumps({"run_id": run_id, "model_id": info.model_id, "expected": model.predict(X).tolist()}))
"""

LOAD_MODEL = """
import hashlib, json, os, sys
import mlflow, numpy as np
args = json.loads(sys.argv[1])
X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [2.0, 1.0], [0.0, 2.0]])
out = {"predicted": {}, "files": {}}
for uri in args["uris"]:
    out["predicted"][uri] = mlflow.sklearn.load_model(uri).predict(X).tolist()
    folder = mlflow.artifacts.download_artifacts(uri)
    for root, _, names in os.walk(folder):
        for name in names:
            if name == "registered_model_meta":  # written by the client's download, not served
                continue
            full = os.path.join(root, name)
            digest = hashlib.sha256(open(full, "rb").read()).hexdigest()
            out["files"].setdefault(uri, {})[os.path.relpath(full, folder)] = digest
print(json.dumps(out))
"""


def model_files(server: ThreadServer, run_id: str, model_id: str) -> dict[str, str]:
    """The digest of each file of a logged model, as its run's artifacts record them."""
    prefix = f"models/{model_id}/"
    found = server.store().list_artifacts(run_id, prefix.rstrip("/"))
    return {a.path.removeprefix(prefix): a.digest for a in found}


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
        "OMP_NUM_THREADS": "1",
        "HOME": str(workdir),
    }
    workdir.mkdir(parents=True, exist_ok=True)
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


@pytest.mark.slow
def test_mlflow_logs_a_sklearn_model_in_a_run_and_loads_it_by_run_and_by_id(
    sqlite_server: ThreadServer, tmp_path: Path
) -> None:
    logged = run_mlflow(sqlite_server, LOG_MODEL, {"in_run": True}, tmp_path / "log")
    run_id, model_id = logged["run_id"], logged["model_id"]
    uris = [f"runs:/{run_id}/model", f"models:/{model_id}"]
    loaded = run_mlflow(sqlite_server, LOAD_MODEL, {"uris": uris}, tmp_path / "load")
    assert loaded["predicted"] == {uri: logged["expected"] for uri in uris}
    model = sqlite_server.store().get_logged_model(model_id)
    assert (model.run_id, model.source_run_id, model.status, model.name) == (run_id, run_id, "READY", "model")
    held = model_files(sqlite_server, run_id, model_id)
    assert "MLmodel" in held and {"model.skops", "model.pkl"} & held.keys()
    assert loaded["files"] == {uri: held for uri in uris}  # the same bytes, whichever way asked


@pytest.mark.slow
def test_mlflow_logs_a_model_outside_any_run_and_loads_it_by_id(
    sqlite_server: ThreadServer, tmp_path: Path
) -> None:
    logged = run_mlflow(sqlite_server, LOG_MODEL, {"in_run": False}, tmp_path / "log")
    uri = f"models:/{logged['model_id']}"
    loaded = run_mlflow(sqlite_server, LOAD_MODEL, {"uris": [uri]}, tmp_path / "load")
    assert loaded["predicted"] == {uri: logged["expected"]}
    store = sqlite_server.store()
    model = store.get_logged_model(logged["model_id"])
    holder = store.get_run(model.run_id)
    assert model.source_run_id is None and holder.status is RunStatus.FINISHED
    assert loaded["files"] == {uri: model_files(sqlite_server, holder.id, model.id)}
