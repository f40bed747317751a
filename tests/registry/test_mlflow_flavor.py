"""MLflow model directories, saved by the real MLflow, loaded and served by plinth without MLflow.

One MLflow subprocess (its own virtualenv) saves every model of this module and writes what
MLflow itself predicts for them; plinth, where MLflow is not installed, must answer the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_iris
from starlette.testclient import TestClient

import plinth
from plinth.core.entities import ModelVersion
from plinth.core.errors import InvalidInput, ModelFailed
from plinth.registry.adopt import mlflow_model_meta, register_files
from plinth.registry.flavors.base import DETECTION_ORDER, detect_flavor, flavor_class
from plinth.registry.package import store_files
from plinth.serving.app import create_app
from plinth.serving.options import ServeOptions
from plinth.tracking.context import Backend

REPO = Path(__file__).resolve().parents[2]
MLFLOW_PYTHON = REPO / ".venv-mlflow" / "bin" / "python"
CODE_MODULE = "plinth_mlflow_test_code"
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

# Run by MLflow's own Python: save each model as MLflow documents it, then write what MLflow's
# pyfunc predicts (`<name>.predict.npy`) and, for classifiers, the native predict_proba; last,
# what plinth's mlflow flavor loads and predicts for the custom pyfunc where MLflow is importable.
SAVE_MODELS = """
import hashlib, json, os, sys, traceback
import numpy as np
import mlflow, mlflow.lightgbm, mlflow.pyfunc, mlflow.sklearn, mlflow.xgboost
import lightgbm as lgb, xgboost as xgb
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

out, code_module, plinth_src, plinth_site = sys.argv[1:]
x, y = load_iris(return_X_y=True, as_frame=True)

def save(name, flavor, model, libraries, **options):
    path = os.path.join(out, name)
    flavor.save_model(model, path, pip_requirements=libraries, **options)
    loaded = mlflow.pyfunc.load_model(path)
    np.save(os.path.join(out, f"{name}.predict.npy"), np.asarray(loaded.predict(x)))
    raw = loaded.get_raw_model()
    if hasattr(raw, "predict_proba"):
        np.save(os.path.join(out, f"{name}.proba.npy"), np.asarray(raw.predict_proba(x)))

classifier = LogisticRegression(max_iter=1000).fit(x, y)
pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
save("sk-cloudpickle", mlflow.sklearn, classifier, ["scikit-learn"], serialization_format="cloudpickle")
save("sk-pickle", mlflow.sklearn, classifier, ["scikit-learn"], serialization_format="pickle")
save("pipeline-cloudpickle", mlflow.sklearn, pipeline, ["scikit-learn"], serialization_format="cloudpickle")
save(
    "pipeline-pickle", mlflow.sklearn, pipeline, ["scikit-learn"],
    serialization_format="pickle", input_example=x.head(3),
)
save(
    "sk-predict-proba", mlflow.sklearn, classifier, ["scikit-learn"],
    serialization_format="cloudpickle", pyfunc_predict_fn="predict_proba",
)
save("sk-skops", mlflow.sklearn, classifier, ["scikit-learn", "skops"])  # MLflow's default format

save("xgb-classifier", mlflow.xgboost, xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(x, y), ["xgboost"])
booster = xgb.train({"objective": "multi:softprob", "num_class": 3}, xgb.DMatrix(x, y), 10)
save("xgb-booster", mlflow.xgboost, booster, ["xgboost"], model_format="json")

lgb_classifier = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, y)
save("lgb-classifier", mlflow.lightgbm, lgb_classifier, ["lightgbm"], serialization_format="cloudpickle")
lgb_booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(x, y), 10)
save("lgb-booster", mlflow.lightgbm, lgb_booster, ["lightgbm"])

code = os.path.join(out, "code-src", f"{code_module}.py")
os.makedirs(os.path.dirname(code))
with open(code, "w") as fh:
    fh.write(
        "from sklearn.base import BaseEstimator, TransformerMixin\\n"
        "class Doubled(TransformerMixin, BaseEstimator):\\n"
        "    def fit(self, x, y=None):\\n"
        "        return self\\n"
        "    def transform(self, x):\\n"
        "        return x * 2\\n"
    )
sys.path.insert(0, os.path.dirname(code))
from plinth_mlflow_test_code import Doubled
custom = make_pipeline(Doubled(), LogisticRegression(max_iter=1000)).fit(x, y)
save("sk-code", mlflow.sklearn, custom, ["scikit-learn"], serialization_format="pickle", code_paths=[code])

class Tripled(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input * 3

pyfunc = os.path.join(out, "pyfunc")
mlflow.pyfunc.save_model(pyfunc, python_model=Tripled(), pip_requirements=["mlflow"])
np.save(os.path.join(out, "pyfunc.predict.npy"), np.asarray(mlflow.pyfunc.load_model(pyfunc).predict(x)))

# plinth's mlflow flavor where MLflow is importable (plinth's sources first on the path, its
# packages last), on a package made of MLflow's own folder: what it loads and predicts
try:
    sys.path.insert(0, plinth_src)
    sys.path.append(plinth_site)
    from plinth.registry.flavors.mlflow import MlflowFlavor
    from plinth.registry.package import Package

    files = []
    for name in os.listdir(pyfunc):
        with open(os.path.join(pyfunc, name), "rb") as fh:
            files.append({"path": name, "digest": hashlib.sha256(fh.read()).hexdigest()})
    flavor = MlflowFlavor()
    raw = flavor.load(Package(pyfunc, {"meta": {}, "files": files}, "tripled/1"))
    answer = {
        "type": f"{type(raw).__module__}.{type(raw).__name__}",
        "proba": flavor.has_proba(raw),
        "predictions": np.asarray(flavor.predict(raw, x)).tolist(),
    }
except Exception:
    answer = {"error": traceback.format_exc()}
with open(os.path.join(out, "pyfunc.plinth.json"), "w") as fh:
    json.dump(answer, fh)
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder where MLflow saved this module's models, with what it predicted for each."""
    if not MLFLOW_PYTHON.exists():
        pytest.fail(f"MLflow's virtualenv is missing ({MLFLOW_PYTHON}); scripts/test-services.sh makes it.")
    out = tmp_path_factory.mktemp("mlflow-models")
    site = next((REPO / ".venv" / "lib").glob("python3*/site-packages"))
    env = {**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [str(MLFLOW_PYTHON), "-c", SAVE_MODELS, str(out), CODE_MODULE, str(REPO / "src"), str(site)],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    return out


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    x, _y = load_iris(return_X_y=True, as_frame=True)
    return x


def register(be: Backend, name: str, folder: Path) -> ModelVersion:
    """Register MLflow's folder as a plinth model version of flavor "mlflow", as its files arrive."""
    files = store_files(be.blobs, str(folder))
    meta, environment, signature = mlflow_model_meta(be.blobs, files)
    return register_files(
        be.store,
        be.blobs,
        name=name,
        files=files,
        source=folder.as_uri(),
        run_id=None,
        meta=meta,
        environment=environment,
        signature=signature,
    )


def expected(saved: Path, name: str, output: str) -> Any:
    file = saved / f"{name}.{output}.npy"
    return np.load(file) if file.exists() else None


NATIVE = {
    "sk-cloudpickle": "LogisticRegression",
    "sk-pickle": "LogisticRegression",
    "sk-predict-proba": "LogisticRegression",  # MLflow's pyfunc predicts probabilities
    "sk-skops": "LogisticRegression",  # MLflow 3's default format (skops ships with plinth[flavors])
    "pipeline-cloudpickle": "Pipeline",
    "pipeline-pickle": "Pipeline",
    "xgb-classifier": "XGBClassifier",
    "xgb-booster": "Booster",
    "lgb-classifier": "LGBMClassifier",
    "lgb-booster": "Booster",
}


@sqlite_only
@pytest.mark.parametrize("name", sorted(NATIVE))
def test_native_flavors_predict_what_mlflow_predicts(
    tracking: Backend, saved: Path, iris: pd.DataFrame, name: str
) -> None:
    register(tracking, name, saved / name)
    model = plinth.load_model(name)
    assert type(model.raw).__name__ == NATIVE[name] and model.flavor.name == "mlflow"
    np.testing.assert_allclose(model.predict(iris), expected(saved, name, "predict"), rtol=1e-6)
    proba = expected(saved, name, "proba")
    assert model.has_proba == (proba is not None)
    if proba is not None:
        np.testing.assert_allclose(model.predict_proba(iris), proba, rtol=1e-6)


@sqlite_only
def test_mlflow_signature_is_enforced(tracking: Backend, saved: Path, iris: pd.DataFrame) -> None:
    register(tracking, "signed", saved / "pipeline-pickle")
    model = plinth.load_model("signed")
    assert [c["name"] for c in model.signature["inputs"]["columns"]] == list(iris.columns)
    reordered = iris[list(reversed(iris.columns))]
    np.testing.assert_array_equal(model.predict(reordered), expected(saved, "pipeline-pickle", "predict"))
    with pytest.raises(InvalidInput, match="petal width"):
        model.predict(iris.drop(columns=["petal width (cm)"]))


@sqlite_only
def test_model_in_a_subfolder_loads(
    tracking: Backend, saved: Path, iris: pd.DataFrame, tmp_path: Path
) -> None:
    package = tmp_path / "package"
    shutil.copytree(saved / "xgb-booster", package / "model")
    (package / "README.md").write_text("a model MLflow saved, one folder down\n")
    register_files(
        tracking.store,
        tracking.blobs,
        name="nested",
        files=store_files(tracking.blobs, str(package)),
        source=package.as_uri(),
        run_id=None,
    )
    predicted = plinth.load_model("nested").predict(iris)
    np.testing.assert_allclose(predicted, expected(saved, "xgb-booster", "predict"), rtol=1e-6)


@sqlite_only
def test_code_folder_is_importable_for_the_pickle(
    tracking: Backend, saved: Path, iris: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the code folder goes at its front
    register(tracking, "custom", saved / "sk-code")
    try:
        model = plinth.load_model("custom")
        assert type(model.raw.steps[0][1]).__module__ == CODE_MODULE
        np.testing.assert_array_equal(model.predict(iris), expected(saved, "sk-code", "predict"))
    finally:
        sys.modules.pop(CODE_MODULE, None)


@sqlite_only
def test_served_like_any_model(tracking: Backend, saved: Path, iris: pd.DataFrame) -> None:
    mv = register(tracking, "served", saved / "pipeline-pickle")
    plinth.set_alias("served", "champion", mv.version)
    app = create_app(["served@champion"], tracking.settings, ServeOptions(alias_poll_s=3600))
    with TestClient(app) as client:
        rows = {"instances": iris[:5].to_dict("records")}
        answer = client.post("/v1/models/served/predict", json=rows)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == expected(saved, "pipeline-pickle", "predict")[:5].tolist()
        proba = client.post("/v1/models/served/predict", json={**rows, "output": "proba"})
        assert proba.status_code == 200, proba.text
        np.testing.assert_allclose(
            proba.json()["predictions"], expected(saved, "pipeline-pickle", "proba")[:5], rtol=1e-6
        )
        [listed] = client.get("/v1/models").json()
        assert listed["flavor"] == "mlflow"


@sqlite_only
def test_skops_format_needs_skops(tracking: Backend, saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skops", None)  # as on a machine without it
    monkeypatch.setitem(sys.modules, "skops.io", None)
    register(tracking, "skops", saved / "sk-skops")
    with pytest.raises(ModelFailed, match=r"skops/1 \(sklearn, python_function\).*skops.*pip install skops"):
        plinth.load_model("skops")


@sqlite_only
def test_pyfunc_without_mlflow_says_what_to_install(tracking: Backend, saved: Path) -> None:
    register(tracking, "tripled", saved / "pyfunc")
    with pytest.raises(
        ModelFailed, match=r"\(python_function\).*MLflow is not installed.*pip install mlflow\.$"
    ):
        plinth.load_model("tripled")


@sqlite_only
def test_other_flavor_names_its_library(tracking: Backend, saved: Path, tmp_path: Path) -> None:
    folder = tmp_path / "torch-model"
    shutil.copytree(saved / "pyfunc", folder)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["pytorch"] = {"model_data": "data", "pytorch_version": "2.13.0"}
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    register(tracking, "torchy", folder)
    with pytest.raises(ModelFailed, match=r"\(pytorch, python_function\).*pip install mlflow torch\.$"):
        plinth.load_model("torchy")


@sqlite_only
def test_a_folder_without_mlmodel_is_named(tracking: Backend, tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"not a model")
    files = store_files(tracking.blobs, str(tmp_path))
    register_files(tracking.store, tracking.blobs, name="bare", files=files, source="file:///x", run_id=None)
    with pytest.raises(ModelFailed, match="holds no MLmodel file"):
        plinth.load_model("bare")


@sqlite_only
def test_a_file_mlmodel_names_but_lacks_is_named(tracking: Backend, saved: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(saved / "lgb-booster", folder)
    (folder / "model.lgb").unlink()
    register(tracking, "broken", folder)
    with pytest.raises(ModelFailed, match=r"names the file 'model\.lgb', which the package does not hold"):
        plinth.load_model("broken")


def test_pyfunc_loads_through_mlflow_where_it_is_installed(saved: Path) -> None:
    answer = json.loads((saved / "pyfunc.plinth.json").read_text())
    assert "error" not in answer, answer["error"]
    assert answer["type"] == "mlflow.pyfunc.PyFuncModel" and not answer["proba"]
    np.testing.assert_allclose(answer["predictions"], expected(saved, "pyfunc", "predict"))


def test_never_detected_never_saved(tmp_path: Path) -> None:
    flavor = flavor_class("mlflow")()
    assert "mlflow" not in DETECTION_ORDER and not flavor.detect(object())
    assert detect_flavor(lambda data: data).name == "python"
    with pytest.raises(InvalidInput, match="plinth import mlflow"):
        flavor.save(object(), str(tmp_path))
