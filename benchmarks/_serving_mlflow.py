"""MLflow side of `benchmarks/bench_serving.py`; runs in benchmarks/.venv-mlflow, not the project venv.

Usage: python _serving_mlflow.py --workdir DIR --data DATA

Logs the benchmark's estimator (DATA/model.pkl) with `mlflow.sklearn.log_model` into a SQLite
tracking + registry store with a local artifact root in DIR, registered as "bc" version 1
(input example: the first 3 rows, so MLflow infers a signature and checks requests against
it), and prints one JSON line: the model URI and the environment `mlflow models serve` needs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import platform
import sys
import warnings

from bench_serving import MODEL_FILE, MODEL_NAME

QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
}
for _k, _v in QUIET_ENV.items():
    os.environ.setdefault(_k, _v)

# MLflow 3.17's default sklearn format is skops; the registry benchmark explains why the
# benchmarks log with cloudpickle (a pickle, like plinth's).
FORMAT = "cloudpickle"


def _progress(msg: str) -> None:
    print(f"[mlflow] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    data_dir = os.path.abspath(args.data)
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    warnings.filterwarnings("ignore")

    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow.tracking import MlflowClient
    from sklearn.datasets import load_breast_cancer

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    uri = f"sqlite:///{os.path.join(workdir, 'mlflow.db')}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    artifacts = "file://" + os.path.join(workdir, "artifacts")
    exp = client.create_experiment("bench", artifact_location=f"{artifacts}/bench")
    mlflow.set_experiment(experiment_id=exp)

    with open(os.path.join(data_dir, MODEL_FILE), "rb") as fh:
        clf = pickle.load(fh)
    X = load_breast_cancer(as_frame=True).data
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            clf,
            name="model",
            registered_model_name=MODEL_NAME,
            input_example=X[:3],
            serialization_format=FORMAT,
        )
    version = int(info.registered_model_version)
    _progress(f"mlflow {mlflow.__version__}: logged and registered {MODEL_NAME} version {version}")
    out = {
        "side": "mlflow",
        "version": mlflow.__version__,
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "format": FORMAT,
        "model_uri": f"models:/{MODEL_NAME}/{version}",
        "env": {**QUIET_ENV, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri},
        "cwd": workdir,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
