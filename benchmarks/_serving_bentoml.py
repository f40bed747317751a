"""BentoML 1.4 service of `benchmarks/bench_serving.py`; `bentoml serve _serving_bentoml:BC` in .venv-bentoml.

The estimator is the benchmark's pickled LogisticRegression (path in $BC_MODEL_PKL). The API
takes the same JSON records as the other servers, {"records": [{column: value, ...}, ...]},
validated by BentoML (pydantic: a list of str -> float mappings), turned into a float64 array in
the model's column order (the venv holds only what `pip install bentoml scikit-learn` brings: no
pandas; an array is also cheaper than the DataFrame MLflow and plinth build), and returns the
labels as a JSON list. $BC_BATCHING=1 turns on BentoML's adaptive batching for the API (`batchable=True`,
BentoML's default max_batch_size and max_latency_ms); otherwise each request is predicted on
its own. Everything else is BentoML's default service configuration (one worker).
"""

from __future__ import annotations

import os
import pickle
import warnings

import bentoml
import numpy as np

BATCHING = os.environ.get("BC_BATCHING") == "1"


@bentoml.service
class BC:
    def __init__(self) -> None:
        with open(os.environ["BC_MODEL_PKL"], "rb") as fh:
            self.clf = pickle.load(fh)
        self.columns = [str(c) for c in self.clf.feature_names_in_]
        # Fitted on a DataFrame, predicting on an array: same numbers, minus this warning per call.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")

    @bentoml.api(batchable=BATCHING)
    def predict(self, records: list[dict[str, float]]) -> list[int]:
        X = np.array([[r[c] for c in self.columns] for r in records], dtype=np.float64)
        return self.clf.predict(X).tolist()
