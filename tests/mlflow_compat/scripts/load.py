"""Load registered models back in a fresh process, as MLflow's documentation shows it.

Args: {"prefix": registered-model name prefix, "model_ids": {key: "m-..."}}. For each flavor
it loads `models:/<name>@<alias>` (and scikit-learn also by version and by logged-model id),
with the flavor's own loader and with `mlflow.pyfunc.load_model`, and returns the predictions
on the rows scripts/models.py predicted on.
"""

from __future__ import annotations

from typing import Any

from _common import args, emit

ROWS = [0, 50, 100, 75, 149]
"""The iris rows scripts/models.py predicted on."""


def iris_rows() -> Any:
    import pandas as pd
    from sklearn.datasets import load_iris

    X, _y = load_iris(return_X_y=True, as_frame=True)
    return pd.DataFrame(X.to_numpy()[ROWS], columns=["sl", "sw", "pl", "pw"])


def as_list(value: Any) -> list[Any]:
    import numpy as np
    import pandas as pd

    if isinstance(value, pd.DataFrame | pd.Series):
        value = value.to_numpy()
    return np.asarray(value).round(6).tolist()


def main() -> None:
    a = args()
    import mlflow
    import numpy as np
    import torch

    prefix, rows = a["prefix"], iris_rows()
    out: dict[str, Any] = {}
    native = {
        "sklearn": mlflow.sklearn.load_model,
        "xgboost": mlflow.xgboost.load_model,
        "lightgbm": mlflow.lightgbm.load_model,
    }
    for flavor, load in native.items():
        alias = "champion" if flavor == "sklearn" else "prod"
        uri = f"models:/{prefix}-{flavor}@{alias}"
        out[f"{flavor}@{alias}"] = as_list(load(uri).predict(rows))
        out[f"{flavor}@{alias} pyfunc"] = as_list(mlflow.pyfunc.load_model(uri).predict(rows))
    out["sklearn/2"] = as_list(mlflow.sklearn.load_model(f"models:/{prefix}-sklearn/2").predict(rows))
    out["sklearn@challenger"] = as_list(
        mlflow.pyfunc.load_model(f"models:/{prefix}-sklearn@challenger").predict(rows)
    )
    out["sklearn logged model"] = as_list(
        mlflow.sklearn.load_model(f"models:/{a['model_ids']['sklearn']}").predict(rows)
    )
    net = mlflow.pytorch.load_model(f"models:/{prefix}-pytorch@prod")
    with torch.no_grad():
        out["pytorch@prod"] = as_list(net(torch.tensor(rows.to_numpy(), dtype=torch.float32)))
    out["pytorch@prod pyfunc"] = as_list(
        mlflow.pyfunc.load_model(f"models:/{prefix}-pytorch@prod").predict(rows.to_numpy(dtype=np.float32))
    )
    out["pyfunc@prod"] = as_list(mlflow.pyfunc.load_model(f"models:/{prefix}-pyfunc@prod").predict(rows))
    emit({"predictions": out})


if __name__ == "__main__":
    main()
