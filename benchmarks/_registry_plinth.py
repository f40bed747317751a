"""plinth side of `benchmarks/bench_registry.py`; runs in the project's interpreter.

Usage: python _registry_plinth.py --workdir DIR --data DATA [--quick]
       python _registry_plinth.py --prepare --data DATA

`--prepare` trains the benchmark's models and writes model.pkl, small.pkl, data.npz and
model.json into DATA (run once, before either side). Otherwise: points PLINTH_HOME at DIR before importing
plinth, registers, loads and predicts, and prints one JSON line of results on stdout
(progress goes to stderr). The workload mirrors `_registry_mlflow.py`; the shared helpers
live in `bench_registry.py`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time

from bench_registry import (
    BIG_ROWS,
    DATA_FILE,
    META_FILE,
    MODEL_FILE,
    MODEL_NAME,
    N_FEATURES,
    SEED,
    SMALL_FILE,
    SMALL_NAME,
    TRAIN_ROWS,
    columns,
    load_inputs,
    load_small,
    median_time,
    predict_workload,
    sizes,
)


def _progress(msg: str) -> None:
    print(f"[plinth] {msg}", file=sys.stderr, flush=True)


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def prepare(data_dir: str) -> None:
    """Train the models once; save them (pickle protocol 5) and the inputs both sides use."""
    import pickle

    import numpy as np
    import pandas as pd
    import sklearn
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    os.makedirs(data_dir, exist_ok=True)
    X, y = make_classification(
        n_samples=TRAIN_ROWS + BIG_ROWS,
        n_features=N_FEATURES,
        n_informative=10,
        n_redundant=5,
        random_state=SEED,
    )
    cols = columns()
    train = pd.DataFrame(X[:TRAIN_ROWS], columns=cols)
    model = RandomForestClassifier(n_estimators=100, random_state=SEED).fit(train, y[:TRAIN_ROWS])
    path = os.path.join(data_dir, MODEL_FILE)
    with open(path, "wb") as fh:
        pickle.dump(model, fh, protocol=5)
    small = LogisticRegression(max_iter=1000).fit(train, y[:TRAIN_ROWS])
    small_path = os.path.join(data_dir, SMALL_FILE)
    with open(small_path, "wb") as fh:
        pickle.dump(small, fh, protocol=5)
    test = X[TRAIN_ROWS:]
    np.savez(
        os.path.join(data_dir, DATA_FILE),
        columns=np.array(cols),
        example=X[:5],
        row=test[:1],
        big=test[:BIG_ROWS],
    )
    meta = {
        "class": type(model).__name__,
        "n_estimators": model.n_estimators,
        "train_rows": TRAIN_ROWS,
        "pickle_bytes": os.path.getsize(path),
        "small_class": type(small).__name__,
        "small_pickle_bytes": os.path.getsize(small_path),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
    with open(os.path.join(data_dir, META_FILE), "w") as fh:
        json.dump(meta, fh)
    print(json.dumps(meta), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir")
    ap.add_argument("--data", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--prepare", action="store_true")
    args = ap.parse_args()
    data_dir = os.path.abspath(args.data)
    if args.prepare:
        prepare(data_dir)
        return
    if not args.workdir:
        ap.error("--workdir is required")
    s = sizes(args.quick)

    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    os.environ["PLINTH_HOME"] = workdir

    src_fallback = False
    try:
        import plinth
    except ImportError:  # not installed: use the checkout's src/ layout
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(os.path.dirname(here), "src"))
        src_fallback = True
        import plinth
    import sklearn

    version = getattr(plinth, "__version__", None) or _dist_version("plinth")
    _progress(f"plinth {version} from {os.path.dirname(plinth.__file__)}")
    model, example, row, big = load_inputs(data_dir)
    out: dict[str, object] = {
        "side": "plinth",
        "version": version,
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "quick": args.quick,
    }

    # 1. register the same estimator `register_reps` times (versions 1..n).
    reps = s["register_reps"]
    _progress(f"1. register_model x {reps}")
    times, versions = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        mv = plinth.register_model(MODEL_NAME, model, input_example=example)
        times.append(time.perf_counter() - t0)
        versions.append(mv.version)
    out["register_times"] = times
    out["register_median_s"] = statistics.median(times)
    out["versions"] = versions

    # 2. load version 1 in-process: one warm-up load, then the median of `load_reps`.
    ref = f"{MODEL_NAME}/1"
    reps = s["load_reps"]
    _progress(f"2. load_model({ref!r}) x {reps} after a warm-up")
    loaded = plinth.load_model(ref)
    out["load_median_s"], out["load_times"] = median_time(lambda: plinth.load_model(ref), reps)

    plinth.set_alias(MODEL_NAME, "champion", version=1)
    out["alias_ok"] = plinth.load_model(f"{MODEL_NAME}@champion").version == 1

    # 5. the small model whose first load in a fresh process bench_registry.py times.
    plinth.register_model(SMALL_NAME, load_small(data_dir))

    # 4. predict overhead over the raw estimator (1 row and 10,000 rows).
    _progress(f"4. predict: {s['predict1_calls']} x 1 row, {s['predict_big_reps']} x {len(big)} rows")
    out.update(predict_workload(model, loaded, row, big, args.quick))

    # 3. the fresh-process run is timed by bench_registry.py against this store.
    env = {"PLINTH_HOME": workdir}
    if src_fallback:
        env["PYTHONPATH"] = sys.path[0]
    out["cold"] = {
        "import": "import plinth",
        "load": f"plinth.load_model({ref!r})",
        "env": env,
        "cwd": workdir,
    }
    out["first"] = {**out["cold"], "load": f"plinth.load_model('{SMALL_NAME}/1')"}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
