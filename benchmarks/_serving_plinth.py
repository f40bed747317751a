"""plinth side of `benchmarks/bench_serving.py`; runs in the project's interpreter.

Usage: python _serving_plinth.py --prepare --data DATA
       python _serving_plinth.py --register --data DATA      (PLINTH_HOME set by the caller)

`--prepare` trains the benchmark's model once (scikit-learn LogisticRegression(max_iter=5000)
on the bundled breast_cancer data, 569 rows x 30 float64 columns), pickles it to DATA/model.pkl
and writes the request bodies every server gets (the same 1 and 32 seeded rows, in each
server's JSON format) and the labels the raw estimator gives them (DATA/meta.json).
`--register` registers that estimator as plinth model "bc" (input example: the first 3 rows)
and points alias "champion" at version 1. Both print one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import pickle
import platform
import sys

from bench_serving import (
    ALIAS,
    BODY_FORMATS,
    META_FILE,
    MODEL_FILE,
    MODEL_NAME,
    REQUEST_ROWS,
    SEED,
    body_file,
)


def _progress(msg: str) -> None:
    print(f"[plinth] {msg}", file=sys.stderr, flush=True)


def _features() -> tuple[object, object]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


def prepare(data_dir: str) -> dict[str, object]:
    import numpy as np
    import sklearn
    from sklearn.linear_model import LogisticRegression

    os.makedirs(data_dir, exist_ok=True)
    X, y = _features()
    clf = LogisticRegression(max_iter=5000).fit(X, y)
    path = os.path.join(data_dir, MODEL_FILE)
    with open(path, "wb") as fh:
        pickle.dump(clf, fh, protocol=5)
    rng = np.random.default_rng(SEED)
    picked = X.iloc[rng.choice(len(X), REQUEST_ROWS, replace=False)]
    records = [{str(k): float(v) for k, v in r.items()} for r in picked.to_dict(orient="records")]
    expected = [int(v) for v in clf.predict(picked)]
    for rows in (1, REQUEST_ROWS):
        for side, key in BODY_FORMATS.items():
            with open(body_file(data_dir, side, rows), "w") as fh:
                json.dump({key: records[:rows]}, fh)
    meta = {
        "class": type(clf).__name__,
        "columns": [str(c) for c in X.columns],
        "train_rows": len(X),
        "train_accuracy": float(clf.score(X, y)),
        "n_iter": int(clf.n_iter_[0]),
        "pickle_bytes": os.path.getsize(path),
        "sklearn": sklearn.__version__,
        "expected": expected,
        "body_bytes": {
            f"{side}_{rows}": os.path.getsize(body_file(data_dir, side, rows))
            for rows in (1, REQUEST_ROWS)
            for side in BODY_FORMATS
        },
    }
    with open(os.path.join(data_dir, META_FILE), "w") as fh:
        json.dump(meta, fh)
    _progress(f"trained {meta['class']} ({meta['n_iter']} iterations), accuracy {meta['train_accuracy']:.3f}")
    return meta


def register(data_dir: str) -> dict[str, object]:
    if not os.environ.get("PLINTH_HOME"):
        raise SystemExit("set PLINTH_HOME to a temporary folder first")
    import plinth

    with open(os.path.join(data_dir, MODEL_FILE), "rb") as fh:
        clf = pickle.load(fh)
    X, _ = _features()
    mv = plinth.register_model(MODEL_NAME, clf, input_example=X[:3])  # type: ignore[index]
    plinth.set_alias(MODEL_NAME, ALIAS, 1)
    _progress(f"registered {MODEL_NAME} version {mv.version}, alias {ALIAS} -> 1")
    return {
        "side": "plinth",
        "version": importlib.metadata.version("plinth"),
        "python": platform.python_version(),
        "model_version": mv.version,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--prepare", action="store_true")
    what.add_argument("--register", action="store_true")
    args = ap.parse_args()
    data_dir = os.path.abspath(args.data)
    out = prepare(data_dir) if args.prepare else register(data_dir)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
