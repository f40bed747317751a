"""MLflow 3 models against `plinth server`: logged models, the registry, loading, autolog.

scripts/models.py logs and registers a scikit-learn, XGBoost, LightGBM, PyTorch and Python
model, sets aliases, tags and descriptions and runs `mlflow.autolog()`; scripts/load.py loads
them back by alias in a fresh process. The tests check what the client saw, and through plinth's
own API that every version, alias, tag and file arrived, and that plinth loads the models too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from mlflow_clients import run_script

import plinth
from plinth.tracking.context import Backend
from team_servers import ThreadServer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mlflow_compat_models")]

EXPERIMENT = "compat-models"
PREFIX = "compat"
FLAVORS = ["sklearn", "xgboost", "lightgbm", "pytorch", "pyfunc"]
ROWS = [0, 50, 100, 75, 149]  # the iris rows the scripts predict on


@pytest.fixture(scope="module")
def logged(plinth_server: ThreadServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What scripts/models.py logged, registered and read back."""
    folder = tmp_path_factory.mktemp("models-client")
    args = {"experiment": EXPERIMENT, "prefix": PREFIX}
    return run_script("models", plinth_server.url, plinth_server.admin_token, folder, args)


@pytest.fixture(scope="module")
def loaded(
    plinth_server: ThreadServer, logged: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Predictions of the models as scripts/load.py loads them back in a fresh process."""
    folder = tmp_path_factory.mktemp("load-client")
    args = {"prefix": PREFIX, "model_ids": {k: m["model_id"] for k, m in logged["models"].items()}}
    return run_script("load", plinth_server.url, plinth_server.admin_token, folder, args)["predictions"]


def iris_rows() -> Any:
    import pandas as pd
    from sklearn.datasets import load_iris

    X, _y = load_iris(return_X_y=True, as_frame=True)
    return pd.DataFrame(X.to_numpy()[ROWS], columns=["sl", "sw", "pl", "pw"])


def test_log_model_gives_mlflow_3_logged_models(logged: dict[str, Any]) -> None:
    models = logged["models"]
    reads = logged["logged_models"]["models"]
    for key, model in models.items():
        assert model["model_id"].startswith("m-") and len(model["model_id"]) == 34
        assert model["model_uri"] == f"models:/{model['model_id']}"
        read = reads[key]
        assert read["status"] == "READY"
        assert read["source_run_id"] == logged["run_id"]
        assert read["experiment_id"] == logged["experiment_id"]
        assert read["artifact_location"] == (
            f"mlflow-artifacts:/{logged['experiment_id']}/models/{model['model_id']}/artifacts"
        )
        assert "MLmodel" in model["files"]
    assert reads["xgboost"]["params"] == {"max_depth": "2"}
    assert {r["name"] for r in reads.values()} == {f"{f}-model" for f in FLAVORS} | {"sklearn-model-v2"}
    assert set(logged["logged_models"]["search"]) >= {r["name"] for r in reads.values()}


def test_the_registry_answers_as_mlflows(logged: dict[str, Any]) -> None:
    registry = logged["registry"]
    assert registry["registered"] == {
        "name": f"{PREFIX}-sklearn",
        "description": "iris classifier",
        "aliases": {"champion": "1", "challenger": "2"},
        "tags": {"task": "classification"},
    }
    v1, v2 = registry["versions"]["1"], registry["versions"]["2"]
    assert (v1["status"], v1["tags"], v1["aliases"], v1["description"]) == (
        "READY",
        {"validated": "true"},
        ["champion"],
        "baseline",
    )
    assert (v2["tags"], v2["aliases"]) == ({"validated": "false"}, ["challenger"])
    assert v1["source"] == f"models:/{logged['models']['sklearn']['model_id']}"
    assert v2["source"] == f"models:/{logged['models']['sklearn_v2']['model_id']}"
    assert v1["run_id"] == v2["run_id"] == logged["run_id"]
    assert registry["champion"] == "1"
    assert registry["search_versions"] == ["1", "2"]
    assert registry["search_models"] == sorted(f"{PREFIX}-{f}" for f in FLAVORS)
    errors = registry["errors"]
    assert errors["duplicate_model"]["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert errors["missing_model"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert errors["missing_version"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert errors["missing_alias"]["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")


def test_versions_aliases_and_tags_arrive_in_plinth(logged: dict[str, Any], plinth_api: Backend) -> None:
    store = plinth_api.store
    name = f"{PREFIX}-sklearn"
    registered = store.get_registered_model(name)
    assert registered.latest_version == 2
    assert registered.aliases == {"champion": 1, "challenger": 2}
    assert registered.tags == {"task": "classification"}
    assert registered.description == "iris classifier"
    v1, v2 = plinth.get_model_version(name, 1), plinth.get_model_version(name, 2)
    assert (v1.flavor, v2.flavor) == ("mlflow", "mlflow")
    assert (v1.tags, v2.tags) == ({"validated": "true"}, {"validated": "false"})
    assert (v1.run_id, v2.run_id) == (logged["run_id"], logged["run_id"])
    assert v1.source == f"models:/{logged['models']['sklearn']['model_id']}"
    assert v1.description == "baseline"
    assert store.resolve_alias(name, "champion") == 1
    for flavor in FLAVORS[1:]:
        assert store.resolve_alias(f"{PREFIX}-{flavor}", "prod") == 1
    produced = store.edges(src=("run", logged["run_id"]))
    produced_versions = {
        e.dst_id for e in produced if e.relation == "produced" and e.dst_type == "model_version"
    }
    assert {v1.id, v2.id} <= produced_versions


@pytest.mark.parametrize("key", [*FLAVORS, "sklearn_v2"])
def test_model_version_files_are_the_logged_models_files(
    logged: dict[str, Any], plinth_api: Backend, key: str
) -> None:
    model = logged["models"][key]
    version = plinth.get_model_version(model["registered"], int(model["version"]))
    files = {f.path: f.digest for f in plinth_api.store.model_files(version.id)}
    # every file the client downloads back from the logged model is in the version, byte for byte
    assert {p: files.get(p) for p in model["files"]} == model["files"]
    run_files = {a.path: a.digest for a in plinth_api.store.list_artifacts(logged["run_id"], "models/")}
    prefix = f"models/{model['model_id']}/"
    assert {p.removeprefix(prefix): d for p, d in run_files.items() if p.startswith(prefix)} == model["files"]


def test_load_model_by_alias_in_a_fresh_process(logged: dict[str, Any], loaded: dict[str, Any]) -> None:
    models = logged["models"]
    for flavor in ["sklearn", "xgboost", "lightgbm"]:
        alias = "champion" if flavor == "sklearn" else "prod"
        assert loaded[f"{flavor}@{alias}"] == models[flavor]["predictions"]
        assert loaded[f"{flavor}@{alias} pyfunc"] == models[flavor]["predictions"]
    assert loaded["sklearn/2"] == loaded["sklearn@challenger"] == models["sklearn_v2"]["predictions"]
    assert loaded["sklearn logged model"] == models["sklearn"]["predictions"]
    np.testing.assert_allclose(loaded["pytorch@prod"], models["pytorch"]["predictions"], rtol=1e-5)
    np.testing.assert_allclose(loaded["pytorch@prod pyfunc"], models["pytorch"]["predictions"], rtol=1e-5)
    np.testing.assert_allclose(loaded["pyfunc@prod"], models["pyfunc"]["predictions"])


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "lightgbm"])
def test_plinth_loads_mlflow_models_natively(
    logged: dict[str, Any], plinth_api: Backend, flavor: str
) -> None:
    alias = "champion" if flavor == "sklearn" else "prod"
    model = plinth.load_model(f"{PREFIX}-{flavor}@{alias}")
    predictions = np.asarray(model.predict(iris_rows()))
    assert predictions.tolist() == logged["models"][flavor]["predictions"]


def test_autolog_records_params_metrics_tags_and_a_model(logged: dict[str, Any], plinth_api: Backend) -> None:
    auto = logged["autolog"]
    assert {"n_estimators": "5", "max_depth": "3", "random_state": "0"}.items() <= auto["params"].items()
    assert "training_accuracy_score" in auto["metrics"]
    assert auto["tags"]["estimator_name"] == "RandomForestClassifier"
    assert [m["name"] for m in auto["logged_models"]] == ["model"]
    run = plinth.get_run(auto["run_id"])
    assert run.params == auto["params"]
    assert run.tags.items() >= auto["tags"].items()
    assert run.metrics.keys() >= auto["metrics"].keys()
    for key, value in auto["metrics"].items():
        assert plinth.metric_history(run.id, key).values.tolist() == [value]
    model_id = auto["logged_models"][0]["model_id"]
    assert plinth_api.store.get_logged_model(model_id).source_run_id == auto["run_id"]
    assert any(
        a.path == f"models/{model_id}/MLmodel" for a in plinth_api.store.list_artifacts(auto["run_id"])
    )
