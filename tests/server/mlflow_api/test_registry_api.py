"""MLflow's model registry API on `plinth server`, over plinth's own registry.

The HTTP tests record a model's files through plinth's own API (as MLflow's client would have
uploaded them) and register them through MLflow's routes; the last test drives the real MLflow
client (3.17.2, in `.venv-mlflow`) from logging a model to loading it by alias in a new process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.datasets import load_iris

import plinth
from plinth.core.entities import LoggedModel
from plinth.core.ids import now_ms
from plinth.core.settings import Settings
from plinth.tracking.context import backend
from team_servers import ThreadServer, free_port
from waiting import wait_until

API = "/api/2.0/mlflow"
REPO = Path(__file__).resolve().parents[3]
MLFLOW_PYTHON = REPO / ".venv-mlflow" / "bin" / "python"
MLMODEL = """\
flavors:
  python_function:
    loader_module: mlflow.sklearn
    model_path: model.pkl
    python_version: 3.11.7
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.2
mlflow_version: 3.17.2
model_uuid: 8e6eb2e9b2494e60999519b23ad3bfec
signature:
  inputs: '[{"type": "double", "name": "a", "required": true}]'
"""


@pytest.fixture
def server(team_server: ThreadServer, tmp_path: Path) -> Iterator[ThreadServer]:
    """The team server, with plinth's own API configured against it as its admin."""
    plinth.configure(
        Settings(
            home=str(tmp_path / "client"),
            store_url=team_server.url,
            token=team_server.admin_token,
            user="tester",
        )
    )
    yield team_server


def call(
    server: ThreadServer, method: str, path: str, body: dict[str, Any] | None = None, **kw: Any
) -> httpx.Response:
    """One request to MLflow's API as MLflow's client sends it (a GET's fields in the query)."""
    with server.client(kw.pop("token", None)) as client:
        if method == "GET":
            return client.get(API + path, params=body)
        return client.request(method, API + path, json=body)


def ok(server: ThreadServer, method: str, path: str, body: dict[str, Any] | None = None, **kw: Any) -> Any:
    response = call(server, method, path, body, **kw)
    assert response.status_code == 200, response.text
    return response.json()


def refused(
    server: ThreadServer,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    code: str,
    status: int = 400,
    **kw: Any,
) -> str:
    """The message of a refusal, checked to come with MLflow's error code and status."""
    response = call(server, method, path, body, **kw)
    assert (response.status_code, response.json()["error_code"]) == (status, code), response.text
    return str(response.json()["message"])


def mlflow_folder(root: Path, mlmodel: str = MLMODEL) -> Path:
    """A folder laid out as MLflow saves a model (the model's bytes are a stand-in)."""
    root.mkdir(parents=True)
    (root / "MLmodel").write_text(mlmodel)
    (root / "model.pkl").write_bytes(b"model bytes " + uuid.uuid4().bytes)
    (root / "requirements.txt").write_text("mlflow==3.17.2\nscikit-learn==1.5.2\n")
    return root


def run_with_model(tmp_path: Path, path: str = "model") -> str:
    """A finished run whose artifacts hold an MLflow model under `path`; its id."""
    folder = mlflow_folder(tmp_path / uuid.uuid4().hex)
    with plinth.start_run("mlflow-registry", capture_env=False, system_metrics=False) as run:
        run.log_artifact(str(folder), path)
    return run.id


def logged_model(tmp_path: Path) -> LoggedModel:
    """An MLflow 3 logged model whose files are its run's artifacts under models/<id>/."""
    folder = mlflow_folder(tmp_path / uuid.uuid4().hex)
    store = backend().store
    with plinth.start_run("mlflow-registry", capture_env=False, system_metrics=False) as run:
        model_id = f"m-{uuid.uuid4().hex}"
        experiment = run.get().experiment_id
        made = store.create_logged_model(
            LoggedModel(model_id, experiment, "model", run.id, "READY", "", run.id, now_ms(), now_ms())
        )
        run.log_artifact(str(folder), f"models/{model_id}")
    return made


def create_model(server: ThreadServer, name: str, **fields: Any) -> Any:
    return ok(server, "POST", "/registered-models/create", {"name": name, **fields})["registered_model"]


def create_version(server: ThreadServer, name: str, source: str, **fields: Any) -> Any:
    body = {"name": name, "source": source, **fields}
    return ok(server, "POST", "/model-versions/create", body)["model_version"]


# registered models -------------------------------------------------------------------------
def test_registered_model_is_created_once_described_and_tagged(server: ThreadServer) -> None:
    made = create_model(server, "churn", description="first", tags=[{"key": "team", "value": "risk"}])
    assert (made["name"], made["description"], made["latest_versions"]) == ("churn", "first", [])
    assert made["tags"] == [{"key": "team", "value": "risk"}]
    message = refused(
        server, "POST", "/registered-models/create", {"name": "churn"}, "RESOURCE_ALREADY_EXISTS"
    )
    assert "churn" in message
    ok(server, "PATCH", "/registered-models/update", {"name": "churn", "description": "second"})
    ok(server, "POST", "/registered-models/set-tag", {"name": "churn", "key": "tier", "value": "gold"})
    ok(server, "DELETE", "/registered-models/delete-tag", {"name": "churn", "key": "team"})
    got = ok(server, "GET", "/registered-models/get", {"name": "churn"})["registered_model"]
    assert (got["description"], got["tags"]) == ("second", [{"key": "tier", "value": "gold"}])
    assert backend().store.get_registered_model("churn").tags == {"tier": "gold"}
    refused(
        server,
        "DELETE",
        "/registered-models/delete-tag",
        {"name": "churn", "key": "team"},
        "RESOURCE_DOES_NOT_EXIST",
        404,
    )
    refused(server, "GET", "/registered-models/get", {"name": "nope"}, "RESOURCE_DOES_NOT_EXIST", 404)


# model versions ----------------------------------------------------------------------------
def test_version_from_a_runs_artifacts_is_a_plinth_version(server: ThreadServer, tmp_path: Path) -> None:
    run_id = run_with_model(tmp_path)
    experiment = plinth.get_run(run_id).experiment_id
    create_model(server, "clf")
    first = create_version(
        server,
        "clf",
        f"runs:/{run_id}/model",
        run_id=run_id,
        description="v1",
        tags=[{"key": "validated", "value": "yes"}],
    )
    assert (first["version"], first["status"], first["current_stage"]) == ("1", "READY", "None")
    assert (first["source"], first["run_id"], first["description"]) == (f"runs:/{run_id}/model", run_id, "v1")
    assert first["tags"] == [{"key": "validated", "value": "yes"}]
    proxied = f"mlflow-artifacts:/{experiment}/{run_id}/artifacts/model"
    second = create_version(server, "clf", proxied)
    assert (second["version"], second["run_id"]) == ("2", run_id)
    for version in ("1", "2"):
        uri = ok(server, "GET", "/model-versions/get-download-uri", {"name": "clf", "version": version})
        assert uri == {"artifact_uri": proxied}

    mv = plinth.get_model_version("clf", 1)
    assert (mv.flavor, mv.source, mv.run_id, mv.tags) == (
        "mlflow",
        f"runs:/{run_id}/model",
        run_id,
        {"validated": "yes"},
    )
    assert mv.signature == {"inputs": {"type": "frame", "columns": [{"name": "a", "dtype": "float64"}]}}
    store = backend().store
    artifacts = {a.path.removeprefix("model/"): a.digest for a in store.list_artifacts(run_id, "model")}
    assert {f.path: f.digest for f in store.model_files(mv.id)} == artifacts
    produced = {(e.relation, e.dst_id) for e in store.edges(src=("run", run_id))}
    assert produced == {("produced", mv.id), ("produced", plinth.get_model_version("clf", 2).id)}


def test_version_from_a_logged_model(server: ThreadServer, tmp_path: Path) -> None:
    model = logged_model(tmp_path)
    create_model(server, "lm")
    made = create_version(server, "lm", f"models:/{model.id}", model_id=model.id)
    assert (made["model_id"], made["run_id"], made["source"]) == (
        model.id,
        model.run_id,
        f"models:/{model.id}",
    )
    uri = ok(server, "GET", "/model-versions/get-download-uri", {"name": "lm", "version": "1"})[
        "artifact_uri"
    ]
    assert uri == f"mlflow-artifacts:/{model.experiment_id}/models/{model.id}/artifacts"
    got = ok(server, "GET", "/model-versions/get", {"name": "lm", "version": "1"})["model_version"]
    assert got == made
    ok(server, "POST", "/registered-models/alias", {"name": "lm", "alias": "champion", "version": "1"})
    copied = create_version(server, "lm", "models:/lm@champion")
    assert (copied["version"], copied["source"]) == ("2", "models:/lm/1")
    ok(server, "POST", "/registered-models/alias", {"name": "lm", "alias": "champion", "version": "2"})
    again = ok(server, "GET", "/model-versions/get-download-uri", {"name": "lm", "version": "2"})
    assert again["artifact_uri"] == uri
    first, second = plinth.get_model_version("lm", 1), plinth.get_model_version("lm", 2)
    store = backend().store
    assert store.model_files(second.id) == store.model_files(first.id) and second.digest != first.digest


def test_sources_that_name_no_model_files_are_refused(server: ThreadServer, tmp_path: Path) -> None:
    run_id = run_with_model(tmp_path)
    other = tmp_path / "plain"
    other.mkdir()
    (other / "notes.txt").write_text("no model here")
    with plinth.start_run("mlflow-registry", capture_env=False, system_metrics=False) as run:
        run.log_artifact(str(other), "notes")
    create_model(server, "bad")
    cases = [
        (f"runs:/{run_id}/elsewhere", "INVALID_PARAMETER_VALUE", 400, "names no files"),
        (f"runs:/{run.id}/notes", "INVALID_PARAMETER_VALUE", 400, "no MLmodel"),
        ("s3://bucket/model", "INVALID_PARAMETER_VALUE", 400, "Invalid model version source"),
        (f"runs:/{run_id}/../x", "INVALID_PARAMETER_VALUE", 400, "'..'"),
        (f"models:/m-{uuid.uuid4().hex}", "RESOURCE_DOES_NOT_EXIST", 404, ""),
        (f"runs:/{uuid.uuid4().hex}/model", "RESOURCE_DOES_NOT_EXIST", 404, ""),
    ]
    for source, code, status, words in cases:
        message = refused(
            server, "POST", "/model-versions/create", {"name": "bad", "source": source}, code, status
        )
        assert words in message, (source, message)
    body = {"name": "unregistered", "source": f"runs:/{run_id}/model"}
    refused(server, "POST", "/model-versions/create", body, "RESOURCE_DOES_NOT_EXIST", 404)
    refused(server, "POST", "/model-versions/create", {"name": "bad"}, "INVALID_PARAMETER_VALUE")
    badly_tagged = {"name": "bad", "source": f"runs:/{run_id}/model", "tags": [{"key": "a//b", "value": "x"}]}
    assert "looks like a file path" in refused(
        server, "POST", "/model-versions/create", badly_tagged, "INVALID_PARAMETER_VALUE"
    )
    assert backend().store.get_registered_model("bad").latest_version == 0


def test_versions_are_described_and_tagged(server: ThreadServer, tmp_path: Path) -> None:
    run_id = run_with_model(tmp_path)
    create_model(server, "tagged")
    create_version(server, "tagged", f"runs:/{run_id}/model")
    key = {"name": "tagged", "version": "1"}
    ok(server, "POST", "/model-versions/set-tag", {**key, "key": "stage", "value": "gold"})
    ok(server, "POST", "/model-versions/set-tag", {**key, "key": "owner", "value": "ana"})
    ok(server, "DELETE", "/model-versions/delete-tag", {**key, "key": "owner"})
    updated = ok(server, "PATCH", "/model-versions/update", {**key, "description": "checked"})[
        "model_version"
    ]
    assert (updated["description"], updated["tags"]) == ("checked", [{"key": "stage", "value": "gold"}])
    assert plinth.get_model_version("tagged", 1).tags == {"stage": "gold"}
    refused(
        server,
        "GET",
        "/model-versions/get",
        {"name": "tagged", "version": "7"},
        "RESOURCE_DOES_NOT_EXIST",
        404,
    )
    refused(
        server, "GET", "/model-versions/get", {"name": "tagged", "version": "one"}, "INVALID_PARAMETER_VALUE"
    )


def test_aliases_are_plinth_aliases(server: ThreadServer, tmp_path: Path) -> None:
    run_id = run_with_model(tmp_path)
    create_model(server, "aliased")
    for _ in range(2):
        create_version(server, "aliased", f"runs:/{run_id}/model")
    ok(server, "POST", "/registered-models/alias", {"name": "aliased", "alias": "champion", "version": "1"})
    by_alias = ok(server, "GET", "/registered-models/alias", {"name": "aliased", "alias": "champion"})
    assert (by_alias["model_version"]["version"], by_alias["model_version"]["aliases"]) == ("1", ["champion"])
    assert plinth.get_model_version("aliased@champion").version == 1
    model = ok(server, "GET", "/registered-models/get", {"name": "aliased"})["registered_model"]
    assert model["aliases"] == [{"alias": "champion", "version": "1"}]
    assert [v["version"] for v in model["latest_versions"]] == ["2"]
    ok(server, "DELETE", "/registered-models/alias", {"name": "aliased", "alias": "champion"})
    refused(
        server,
        "GET",
        "/registered-models/alias",
        {"name": "aliased", "alias": "champion"},
        "RESOURCE_DOES_NOT_EXIST",
        404,
    )
    body = {"name": "aliased", "alias": "9lives", "version": "1"}
    assert "not valid" in refused(server, "POST", "/registered-models/alias", body, "INVALID_PARAMETER_VALUE")


def test_latest_versions_are_in_stage_none(server: ThreadServer, tmp_path: Path) -> None:
    run_id = run_with_model(tmp_path)
    create_model(server, "staged")
    assert ok(server, "POST", "/registered-models/get-latest-versions", {"name": "staged"}) == {
        "model_versions": []
    }
    for _ in range(2):
        create_version(server, "staged", f"runs:/{run_id}/model")
    for method in ("POST", "GET"):
        latest = ok(server, method, "/registered-models/get-latest-versions", {"name": "staged"})
        assert [v["version"] for v in latest["model_versions"]] == ["2"]
        none = ok(
            server, method, "/registered-models/get-latest-versions", {"name": "staged", "stages": ["None"]}
        )
        assert none == latest
        prod = ok(
            server,
            method,
            "/registered-models/get-latest-versions",
            {"name": "staged", "stages": ["Production"]},
        )
        assert prod == {"model_versions": []}


# search ------------------------------------------------------------------------------------
def test_search_registered_models(server: ThreadServer) -> None:
    for name, team in [("alpha", "risk"), ("alpine", "ops"), ("beta", "risk"), ("Alps", "")]:
        create_model(server, name, tags=[{"key": "team", "value": team}] if team else [])
    cases = {
        "": ["Alps", "alpha", "alpine", "beta"],
        "name LIKE 'alp%'": ["alpha", "alpine"],
        "name ILIKE 'alp%'": ["Alps", "alpha", "alpine"],
        "name = 'beta'": ["beta"],
        "name != 'beta'": ["Alps", "alpha", "alpine"],
        "name LIKE 'al_ha'": ["alpha"],
        "tags.team = 'risk'": ["alpha", "beta"],
        "tags.`team` != 'risk'": ["alpine"],
        "tags.team = 'risk' AND name LIKE 'a%'": ["alpha"],
        "name IN ('beta', 'alpha')": ["alpha", "beta"],
        "tag.`mlflow.prompt.is_prompt` != 'true'": ["Alps", "alpha", "alpine", "beta"],
    }
    for text, names in cases.items():
        found = ok(server, "GET", "/registered-models/search", {"filter": text})["registered_models"]
        assert [m["name"] for m in found] == names, text
    ordered = ok(server, "GET", "/registered-models/search", {"order_by": ["name DESC"]})["registered_models"]
    assert [m["name"] for m in ordered] == ["beta", "alpine", "alpha", "Alps"]
    first = ok(server, "GET", "/registered-models/search", {"max_results": 3})
    rest = ok(
        server, "GET", "/registered-models/search", {"max_results": 3, "page_token": first["next_page_token"]}
    )
    assert [m["name"] for m in first["registered_models"] + rest["registered_models"]] == cases[""]
    assert "next_page_token" not in rest


def test_search_model_versions(server: ThreadServer, tmp_path: Path) -> None:
    runs = [run_with_model(tmp_path), run_with_model(tmp_path)]
    for name in ("m", "n"):
        create_model(server, name)
        for run_id in runs:
            create_version(server, name, f"runs:/{run_id}/model", tags=[{"key": "run", "value": run_id[-4:]}])
    cases = {
        "name = 'm'": [("m", "2"), ("m", "1")],
        f"run_id = '{runs[0]}'": [("m", "1"), ("n", "1")],
        "name = 'n' AND version_number > 1": [("n", "2")],
        f"tags.run = '{runs[1][-4:]}'": [("m", "2"), ("n", "2")],
        "name IN ('n')": [("n", "2"), ("n", "1")],
        f"source_path LIKE 'runs:/{runs[0]}/%'": [("m", "1"), ("n", "1")],
        "name = 'nobody'": [],
    }
    for text, expected in cases.items():
        found = ok(server, "GET", "/model-versions/search", {"filter": text})["model_versions"]
        assert sorted((v["name"], v["version"]) for v in found) == sorted(expected), text
    both = ok(server, "GET", "/model-versions/search", {"filter": "name = 'm' AND name = 'n'"})
    assert both == {"model_versions": []}
    ordered = ok(server, "GET", "/model-versions/search", {"order_by": ["name DESC", "version_number ASC"]})
    assert [(v["name"], v["version"]) for v in ordered["model_versions"]] == [
        ("n", "1"),
        ("n", "2"),
        ("m", "1"),
        ("m", "2"),
    ]
    first = ok(server, "GET", "/model-versions/search", {"max_results": 3, "order_by": ["name ASC"]})
    rest = ok(
        server,
        "GET",
        "/model-versions/search",
        {"max_results": 3, "page_token": first["next_page_token"], "order_by": ["name ASC"]},
    )
    shown = [(v["name"], v["version"]) for v in first["model_versions"] + rest["model_versions"]]
    assert shown == [("m", "2"), ("m", "1"), ("n", "2"), ("n", "1")]


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/registered-models/search", {"filter": "name ~ 'x'"}, "Invalid filter clause"),
        ("/registered-models/search", {"filter": "owner = 'x'"}, "Invalid filter key 'owner'"),
        ("/registered-models/search", {"filter": "name = x"}, "quote the value"),
        ("/registered-models/search", {"filter": "tags.a IN ('x')"}, "IN is not allowed"),
        ("/registered-models/search", {"order_by": ["size DESC"]}, "Invalid order_by"),
        ("/registered-models/search", {"max_results": 5000}, "between 1 and 1000"),
        ("/registered-models/search", {"page_token": "nonsense"}, "Invalid page_token"),
        ("/model-versions/search", {"filter": "version_number > 'x'"}, "must be an integer"),
        ("/model-versions/search", {"filter": "run_id LIKE"}, "Invalid filter clause"),
        ("/model-versions/search", {"filter": "name = 'm' OR name = 'n'"}, "AND only"),
    ],
)
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_bad_searches_say_what_is_wrong(
    server: ThreadServer, path: str, body: dict[str, Any], words: str
) -> None:
    assert words in refused(server, "GET", path, body, "INVALID_PARAMETER_VALUE")


# refusals and rights -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body", "words"),
    [
        ("POST", "/registered-models/rename", {"name": "kept", "new_name": "other"}, "does not rename"),
        ("DELETE", "/registered-models/delete", {"name": "kept"}, "does not delete models"),
        (
            "DELETE",
            "/model-versions/delete",
            {"name": "kept", "version": "1"},
            "does not delete model versions",
        ),
        (
            "POST",
            "/model-versions/transition-stage",
            {"name": "kept", "version": "1", "stage": "Production"},
            "alias",
        ),
    ],
)
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_what_plinth_does_not_do_is_refused_plainly(
    server: ThreadServer, method: str, path: str, body: dict[str, Any], words: str
) -> None:
    create_model(server, "kept")
    assert words in refused(server, method, path, body, "BAD_REQUEST")
    assert ok(server, "GET", "/registered-models/get", {"name": "kept"})["registered_model"]["name"] == "kept"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_roles_decide_who_reads_registers_and_moves_aliases(server: ThreadServer, tmp_path: Path) -> None:
    run_id = run_with_model(tmp_path)
    create_model(server, "guarded")
    create_version(server, "guarded", f"runs:/{run_id}/model")
    viewer, editor, predictor = (server.issue(role, role) for role in ("viewer", "editor", "predictor"))
    source = {"name": "guarded", "source": f"runs:/{run_id}/model"}
    alias = {"name": "guarded", "alias": "live", "version": "1"}
    ok(server, "GET", "/registered-models/search", {}, token=viewer)
    refused(server, "POST", "/model-versions/create", source, "PERMISSION_DENIED", 403, token=viewer)
    assert (
        ok(server, "POST", "/model-versions/create", source, token=editor)["model_version"]["version"] == "2"
    )
    refused(server, "POST", "/registered-models/alias", alias, "PERMISSION_DENIED", 403, token=editor)
    ok(server, "POST", "/registered-models/alias", alias)
    assert ok(
        server, "GET", "/registered-models/alias", {"name": "guarded", "alias": "live"}, token=predictor
    )
    ok(
        server,
        "GET",
        "/model-versions/get-download-uri",
        {"name": "guarded", "version": "1"},
        token=predictor,
    )
    refused(server, "GET", "/model-versions/search", {}, "PERMISSION_DENIED", 403, token=predictor)
    refused(server, "GET", "/registered-models/search", {}, "UNAUTHENTICATED", 401, token="plt_" + "x" * 43)


# the real MLflow client --------------------------------------------------------------------
LOG_AND_REGISTER = """
import json, sys
import mlflow, mlflow.sklearn
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

out = sys.argv[1]
x, y = load_iris(return_X_y=True, as_frame=True)
model = LogisticRegression(max_iter=500).fit(x, y)
mlflow.set_experiment("iris")
with mlflow.start_run() as run:
    info = mlflow.sklearn.log_model(
        model, name="model", input_example=x.head(3), serialization_format="cloudpickle"
    )
version = mlflow.register_model(info.model_uri, "iris-clf")
client = MlflowClient()
client.set_registered_model_alias("iris-clf", "champion", version.version)
client.set_model_version_tag("iris-clf", version.version, "validated", "yes")
client.set_registered_model_tag("iris-clf", "team", "risk")
client.update_model_version("iris-clf", version.version, description="first iris model")
by_alias = client.get_model_version_by_alias("iris-clf", "champion")
json.dump({
    "run_id": run.info.run_id,
    "model_uri": info.model_uri,
    "model_id": info.model_id,
    "version": version.version,
    "status": version.status,
    "by_alias": [by_alias.version, list(by_alias.aliases), dict(by_alias.tags)],
    "versions": [[v.name, v.version] for v in client.search_model_versions("name = 'iris-clf'")],
    "models": [m.name for m in client.search_registered_models(filter_string="name LIKE 'iris%'")],
    "predicted": model.predict(x).tolist(),
}, open(out, "w"))
"""

LOAD_BY_ALIAS = """
import json, sys
import mlflow.pyfunc
from sklearn.datasets import load_iris

x, _ = load_iris(return_X_y=True, as_frame=True)
loaded = mlflow.pyfunc.load_model("models:/iris-clf@champion")
json.dump({"predicted": [int(v) for v in loaded.predict(x)]}, open(sys.argv[1], "w"))
"""


def mlflow_script(source: str, url: str, token: str | None, workdir: Path, *args: str) -> Any:
    """Run `source` with MLflow's own Python against the server at `url`; the JSON it wrote."""
    if not MLFLOW_PYTHON.exists():
        pytest.fail(f"{MLFLOW_PYTHON} is missing: run `bash scripts/test-services.sh`.")
    workdir.mkdir(parents=True)
    script, out = workdir / "script.py", workdir / "out.json"
    script.write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLINTH_", "MLFLOW_", "VIRTUAL_ENV"))}
    env.update(QUIET, MLFLOW_TRACKING_URI=url, HOME=str(workdir))
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    done = subprocess.run(
        [str(MLFLOW_PYTHON), str(script), str(out), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-6000:]}"
    return json.loads(out.read_text())


QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "PYTHONWARNINGS": "ignore",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """MLflow's own `mlflow server` over SQLite, for answers to compare plinth's with; its URL."""
    if not MLFLOW_PYTHON.exists():
        pytest.fail(f"{MLFLOW_PYTHON} is missing: run `bash scripts/test-services.sh`.")
    base, port = tmp_path / "mlflow-server", free_port()
    base.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLINTH_", "MLFLOW_", "VIRTUAL_ENV"))}
    env.update(QUIET, HOME=str(base))
    command = [
        str(MLFLOW_PYTHON),
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{base / 'db'}",
    ]
    command += [
        "--artifacts-destination",
        str(base / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with open(base / "log", "wb") as log:
        proc = subprocess.Popen(
            command, cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, (base / "log").read_text(errors="replace")[-4000:]
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, f"`mlflow server` at {url} to answer /health", timeout_s=180)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


SEARCH_REGISTRY = """
import json, sys
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

client = MlflowClient()
for name, tags in json.loads(sys.argv[2]).items():
    client.create_registered_model(name, tags=tags, description=f"the {name} model")
answers = {}
for text in json.loads(sys.argv[3]):
    for order in ([], ["name DESC"]):
        try:
            found, token = [], None
            while True:
                page = client.search_registered_models(text or None, 2, order, token)
                found += [[m.name, sorted(m.tags.items()), m.description] for m in page]
                token = page.token
                if not token:
                    break
        except MlflowException as exc:
            found = exc.error_code
        answers[f"{text} {order}"] = found
json.dump(answers, open(sys.argv[1], "w"))
"""
MODELS = {
    "alpha": {"team": "risk"},
    "alpine": {"team": "ops"},
    "beta": {"team": "risk", "tier": "gold"},
    "al_ha": {},
    "Alps": {"team": "Risk"},
    "gamma-1": {"team": "risk", "note": "it's 50%"},
}
FILTERS = [
    "",
    "name = 'beta'",
    "name != 'beta'",
    "name LIKE 'alp%'",
    "name LIKE 'al_ha'",
    "name ILIKE 'ALP%'",
    "name LIKE '%a'",
    "name IN ('beta', 'alpha', 'zeta')",
    "tags.team = 'risk'",
    "tags.team != 'risk'",
    "tags.`team` LIKE 'r%'",
    "tags.team = 'risk' AND name LIKE '%a'",
    "tag.tier = 'gold'",
    "tags.note LIKE '%50%%'",
    "name = 'nobody'",
    "owner = 'x'",
    "name = beta",
]


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_model_searches_answer_as_mlflows_own_server(
    server: ThreadServer, mlflow_server: str, tmp_path: Path
) -> None:
    args = (json.dumps(MODELS), json.dumps(FILTERS))
    theirs = mlflow_script(SEARCH_REGISTRY, mlflow_server, None, tmp_path / "mlflow", *args)
    ours = mlflow_script(SEARCH_REGISTRY, server.url, server.admin_token, tmp_path / "plinth", *args)
    assert ours == theirs


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_mlflow_client_registers_aliases_and_both_load_by_alias(server: ThreadServer, tmp_path: Path) -> None:
    logged = mlflow_script(LOG_AND_REGISTER, server.url, server.admin_token, tmp_path / "log")
    assert (logged["version"], logged["status"]) == ("1", "READY")
    assert logged["by_alias"] == ["1", ["champion"], {"validated": "yes"}]
    assert logged["versions"] == [["iris-clf", "1"]] and logged["models"] == ["iris-clf"]

    loaded = mlflow_script(LOAD_BY_ALIAS, server.url, server.admin_token, tmp_path / "load")  # a new process
    assert loaded["predicted"] == logged["predicted"]

    mv = plinth.get_model_version("iris-clf@champion")
    assert (mv.version, mv.flavor, mv.source) == (1, "mlflow", logged["model_uri"])
    assert (mv.tags, mv.aliases, mv.description) == ({"validated": "yes"}, ("champion",), "first iris model")
    assert backend().store.get_registered_model("iris-clf").tags == {"team": "risk"}
    assert logged["model_uri"] == f"models:/{logged['model_id']}"
    iris, _ = load_iris(return_X_y=True, as_frame=True)
    assert plinth.load_model("iris-clf@champion").predict(iris).tolist() == logged["predicted"]
