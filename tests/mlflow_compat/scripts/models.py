"""MLflow 3 models as its documentation shows them: log_model for scikit-learn, XGBoost, LightGBM,
PyTorch and a Python model (`name=`), register_model, aliases, tags, descriptions, logged-model
reads, registry searches, and `mlflow.autolog()` with scikit-learn.

Args: {"experiment": name, "prefix": registered-model name prefix}. The result holds each
model's id, URI, registered name and version, its predictions on five iris rows
(made in this process, before any round trip) and the sha256 of every file the client
downloads back from the logged model.
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
from _common import args, emit, error_of, tree_digests

FLAVORS = ("sklearn", "xgboost", "lightgbm", "pytorch", "pyfunc")
ROWS = [0, 50, 100, 75, 149]
"""The iris rows every prediction is made on (one of each class, and two more)."""


def iris() -> tuple[Any, Any]:
    import pandas as pd
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    X = pd.DataFrame(X.to_numpy(), columns=["sl", "sw", "pl", "pw"])
    return X, y


def train(flavor: str, X: Any, y: Any) -> Any:
    """A small, deterministic model of each flavor."""
    if flavor == "sklearn":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=500).fit(X, y)
    if flavor == "xgboost":
        import xgboost

        return xgboost.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1, random_state=0).fit(X, y)
    if flavor == "lightgbm":
        import lightgbm

        return lightgbm.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1, n_jobs=1).fit(X, y)
    if flavor == "pytorch":
        import torch

        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 3))
    return None


def predict(flavor: str, model: Any, X: Any) -> list[Any]:
    """The model's predictions on ROWS, as the flavor's own API gives them."""
    rows = X.iloc[ROWS]
    if flavor == "pytorch":
        import torch

        with torch.no_grad():
            return model(torch.tensor(rows.to_numpy(), dtype=torch.float32)).numpy().round(6).tolist()
    if flavor == "pyfunc":
        return (rows + 5).to_numpy().tolist()
    return model.predict(rows).tolist()


def log(flavor: str, model: Any, X: Any, name: str, registered: str | None) -> Any:
    """`mlflow.<flavor>.log_model(..., name=...)`, registering it in the same call when asked."""
    import numpy as np
    from mlflow.models import infer_signature

    example = X.iloc[:3]
    # Named requirements: MLflow would otherwise infer them by loading the model in a child process.
    pip = [flavor if flavor != "sklearn" else "scikit-learn"] if flavor != "pyfunc" else ["pandas"]
    if flavor == "sklearn":
        return mlflow.sklearn.log_model(
            model, name=name, input_example=example, registered_model_name=registered, pip_requirements=pip
        )
    if flavor == "xgboost":
        signature = infer_signature(example, model.predict(example))
        return mlflow.xgboost.log_model(
            model, name=name, signature=signature, params={"max_depth": 2}, pip_requirements=pip
        )
    if flavor == "lightgbm":
        return mlflow.lightgbm.log_model(model, name=name, input_example=example, pip_requirements=pip)
    if flavor == "pytorch":
        return mlflow.pytorch.log_model(
            model, name=name, input_example=example.to_numpy(dtype=np.float32), pip_requirements=["torch"]
        )
    return mlflow.pyfunc.log_model(
        name=name, python_model=AddFive(), input_example=example, pip_requirements=pip
    )


class AddFive(mlflow.pyfunc.PythonModel):
    """A Python model that adds 5 to its input."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        # untyped on purpose: MLflow reads type hints here as an input schema
        return model_input + 5


def log_models(prefix: str, X: Any, y: Any, workdir: str) -> dict[str, Any]:
    """Train, log and register one model of each flavor in one run; a second scikit-learn version."""
    out: dict[str, Any] = {}
    with mlflow.start_run(run_name="models") as run:
        for flavor in FLAVORS:
            model = train(flavor, X, y)
            registered = f"{prefix}-{flavor}"
            info = log(flavor, model, X, f"{flavor}-model", registered if flavor == "sklearn" else None)
            if flavor != "sklearn":
                version = mlflow.register_model(info.model_uri, registered)
            else:
                version = None
            out[flavor] = {
                "model_id": info.model_id,
                "model_uri": info.model_uri,
                "registered": registered,
                "version": str(info.registered_model_version or (version.version if version else "")),
                "predictions": predict(flavor, model, X),
                "files": files_of(info.model_uri, os.path.join(workdir, "models", flavor)),
            }
        second = train("sklearn", X * 1.5, y)
        info2 = mlflow.sklearn.log_model(
            second, name="sklearn-model-v2", input_example=X.iloc[:3], pip_requirements=["scikit-learn"]
        )
        v2 = mlflow.register_model(f"models:/{info2.model_id}", f"{prefix}-sklearn")
        out["sklearn_v2"] = {
            "model_id": info2.model_id,
            "model_uri": info2.model_uri,
            "registered": f"{prefix}-sklearn",
            "version": str(v2.version),
            "predictions": predict("sklearn", second, X),
            "files": files_of(info2.model_uri, os.path.join(workdir, "models", "sklearn_v2")),
        }
    return {"run_id": run.info.run_id, "models": out}


def files_of(model_uri: str, dest: str) -> dict[str, str]:
    """sha256 of every file of a logged model, as the client downloads them."""

    os.makedirs(dest, exist_ok=True)
    path = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=dest)
    files = tree_digests(path)
    # written by the client itself into what it downloads for a registered model
    files.pop("registered_model_meta", None)
    return files


def registry_calls(prefix: str) -> dict[str, Any]:
    """Aliases, tags and descriptions as MlflowClient sets them; what it reads back."""
    from mlflow import MlflowClient

    client = MlflowClient()
    name = f"{prefix}-sklearn"
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    client.set_registered_model_alias(name, "old", "1")
    client.delete_registered_model_alias(name, "old")
    for flavor in FLAVORS[1:]:
        client.set_registered_model_alias(f"{prefix}-{flavor}", "prod", "1")
    client.set_model_version_tag(name, "1", "validated", "true")
    client.set_model_version_tag(name, "2", "validated", "false")
    client.set_model_version_tag(name, "2", "temporary", "x")
    client.delete_model_version_tag(name, "2", "temporary")
    client.set_registered_model_tag(name, "task", "classification")
    client.update_registered_model(name, description="iris classifier")
    client.update_model_version(name, "1", description="baseline")

    model = client.get_registered_model(name)
    versions = {v: client.get_model_version(name, v) for v in ("1", "2")}
    by_alias = client.get_model_version_by_alias(name, "champion")
    return {
        "registered": {
            "name": model.name,
            "description": model.description,
            "aliases": dict(model.aliases),
            "tags": dict(model.tags),
        },
        "versions": {
            v: {
                "version": mv.version,
                "status": mv.status,
                "source": mv.source,
                "run_id": mv.run_id,
                "model_id": getattr(mv, "model_id", None),
                "tags": dict(mv.tags),
                "aliases": list(mv.aliases),
                "description": mv.description,
                "download_uri": client.get_model_version_download_uri(name, v),
            }
            for v, mv in versions.items()
        },
        "champion": by_alias.version,
        "search_versions": sorted(v.version for v in client.search_model_versions(f"name = '{name}'")),
        "search_models": sorted(
            m.name for m in client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'")
        ),
        "errors": {
            "duplicate_model": error_of(lambda: client.create_registered_model(name)),
            "missing_model": error_of(lambda: client.get_registered_model(f"{prefix}-missing")),
            "missing_version": error_of(lambda: client.get_model_version(name, "99")),
            "missing_alias": error_of(lambda: client.get_model_version_by_alias(name, "nope")),
        },
    }


def logged_model_reads(experiment_id: str, models: dict[str, Any]) -> dict[str, Any]:
    """MLflow 3's logged models as the client reads them."""

    got = {}
    for key, m in models.items():
        lm = mlflow.get_logged_model(m["model_id"])
        got[key] = {
            "name": lm.name,
            "status": str(lm.status),
            "source_run_id": lm.source_run_id,
            "params": dict(lm.params),
            "experiment_id": lm.experiment_id,
            "artifact_location": lm.artifact_location,
        }
    found = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list")
    return {"models": got, "search": sorted(lm.name for lm in found)}


def autolog(X: Any, y: Any) -> dict[str, Any]:
    """`mlflow.autolog()` around a scikit-learn fit: params, metrics, tags and a model."""
    from mlflow import MlflowClient
    from sklearn.ensemble import RandomForestClassifier

    mlflow.autolog()
    with mlflow.start_run(run_name="autolog") as run:
        RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    mlflow.autolog(disable=True)
    view = MlflowClient().get_run(run.info.run_id)
    logged = mlflow.search_logged_models(
        filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list"
    )
    return {
        "run_id": run.info.run_id,
        "params": dict(view.data.params),
        "metrics": dict(view.data.metrics),
        "tags": dict(view.data.tags),
        "inputs": [d.dataset.name for d in (view.inputs.dataset_inputs if view.inputs else [])],
        "logged_models": [{"model_id": lm.model_id, "name": lm.name} for lm in logged],
    }


def main() -> None:
    a = args()

    experiment = mlflow.set_experiment(a["experiment"])
    X, y = iris()
    logged = log_models(a["prefix"], X, y, os.getcwd())
    emit(
        {
            "experiment_id": experiment.experiment_id,
            **logged,
            "registry": registry_calls(a["prefix"]),
            "logged_models": logged_model_reads(experiment.experiment_id, logged["models"]),
            "autolog": autolog(X, y),
        }
    )


if __name__ == "__main__":
    main()
