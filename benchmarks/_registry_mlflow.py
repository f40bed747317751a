"""MLflow side of `benchmarks/bench_registry.py`; runs in benchmarks/.venv-mlflow, not the project venv.

Usage: python _registry_mlflow.py --workdir DIR --data DATA [--quick]

Uses a SQLite tracking + registry store and a local artifact root in DIR, registers, loads and
predicts the model in DATA, and prints one JSON line of results on stdout (progress goes to
stderr). The workload mirrors `_registry_plinth.py`; the shared helpers live in `bench_registry.py`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings

from bench_registry import (
    MODEL_NAME,
    SMALL_NAME,
    load_inputs,
    load_small,
    median_time,
    predict_workload,
    sizes,
)

# Keep MLflow quiet and offline before it is imported (the fresh processes get the same).
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
}
for _k, _v in QUIET_ENV.items():
    os.environ.setdefault(_k, _v)

# MLflow 3.17's default sklearn format is skops, which refuses a RandomForest unless its tree type
# is listed as trusted. The table uses cloudpickle (a pickle, like plinth's and the floor's);
# the default skops format is also measured, briefly, for the notes.
FORMAT = "cloudpickle"
SKOPS_TRUSTED = ["sklearn.tree._tree.Tree"]
SKOPS_REPS = 3


def _progress(msg: str) -> None:
    print(f"[mlflow] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    s = sizes(args.quick)
    data_dir = os.path.abspath(args.data)

    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    warnings.filterwarnings("ignore")

    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    import sklearn
    from mlflow.tracking import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    t = time.perf_counter()
    uri = f"sqlite:///{os.path.join(workdir, 'mlflow.db')}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    artifacts = "file://" + os.path.join(workdir, "artifacts")
    exp = client.create_experiment("bench", artifact_location=f"{artifacts}/bench")  # schema, not timed
    mlflow.set_experiment(experiment_id=exp)
    _progress(f"mlflow {mlflow.__version__}: {uri} created in {time.perf_counter() - t:.1f}s")
    model, example, row, big = load_inputs(data_dir)
    out: dict[str, object] = {
        "side": "mlflow",
        "version": mlflow.__version__,
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "quick": args.quick,
        "format": FORMAT,
    }

    # 1. log + register the same estimator `register_reps` times, each in its own run.
    reps = s["register_reps"]
    _progress(f"1. sklearn.log_model(registered_model_name=...) x {reps}")
    times, versions = [], []
    for _ in range(reps):
        with mlflow.start_run():
            t0 = time.perf_counter()
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=MODEL_NAME,
                input_example=example,
                serialization_format=FORMAT,
            )
            times.append(time.perf_counter() - t0)
        versions.append(int(info.registered_model_version))
    out["register_times"] = times
    out["register_median_s"] = statistics.median(times)
    out["versions"] = versions

    # 2. load version 1 in-process: one warm-up load, then the median of `load_reps`.
    uri_v1 = f"models:/{MODEL_NAME}/1"
    reps = s["load_reps"]
    _progress(f"2. pyfunc.load_model({uri_v1!r}) x {reps} after a warm-up")
    loaded = mlflow.pyfunc.load_model(uri_v1)
    out["format_saved"] = loaded.metadata.flavors.get("sklearn", {}).get("serialization_format")
    out["load_median_s"], out["load_times"] = median_time(lambda: mlflow.pyfunc.load_model(uri_v1), reps)

    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    by_alias = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    out["alias_ok"] = by_alias.metadata.model_uuid == loaded.metadata.model_uuid

    # 4. predict overhead over the raw estimator (1 row and 10,000 rows).
    _progress(f"4. predict: {s['predict1_calls']} x 1 row, {s['predict_big_reps']} x {len(big)} rows")
    out.update(predict_workload(model, loaded, row, big, args.quick))

    # MLflow's default format (skops): register once, load in-process; for the notes only.
    _progress(f"   skops format: log_model once, load x {SKOPS_REPS} after a warm-up")
    skops_name = f"{MODEL_NAME}-skops"
    with mlflow.start_run():
        t0 = time.perf_counter()
        mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=skops_name,
            input_example=example,
            skops_trusted_types=SKOPS_TRUSTED,
        )
        out["skops_register_s"] = time.perf_counter() - t0
    uri_skops = f"models:/{skops_name}/1"
    skops_loaded = mlflow.pyfunc.load_model(uri_skops)
    out["skops_load_median_s"], _ = median_time(lambda: mlflow.pyfunc.load_model(uri_skops), SKOPS_REPS)
    out["skops_file"] = skops_loaded.metadata.flavors.get("sklearn", {}).get("serialization_format")

    # 5. the small model whose first load in a fresh process bench_registry.py times.
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            load_small(data_dir), name="model", registered_model_name=SMALL_NAME, serialization_format=FORMAT
        )

    # 3. the fresh-process run is timed by bench_registry.py against this store.
    out["cold"] = {
        "import": "import mlflow.pyfunc",
        "load": f"mlflow.pyfunc.load_model({uri_v1!r})",
        "env": {**QUIET_ENV, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri},
        "cwd": workdir,
    }
    out["first"] = {**out["cold"], "load": f"mlflow.pyfunc.load_model('models:/{SMALL_NAME}/1')"}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
