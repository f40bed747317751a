"""Served-model side of `benchmarks/bench_monitoring.py`: drift and the report over logged requests.

Usage: python _monitoring_served.py --data DIR [--reps N]

Registers a model whose run logged the generated reference frame as its training data, logs the
generated current frame as one request per row (spread over a day) through the public API
(`plinth.log_predictions`; a plinth without it, run for the "before" column with PYTHONPATH set
to an older source tree, gets the same requests as JSON logs through its store), then times
`plinth.drift(model)` (`--reps` times, the first in a process that has read nothing yet) and
`plinth.monitoring_report(model)` over every log. As on the plinth side, imports are not timed
(scipy.special, which drift imports on first use, is imported first). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

import numpy as np

from bench_monitoring import load_frames, progress

MODEL = "served"
START_MS = 1_767_225_600_000  # 2026-01-01 UTC
DAY_MS = 86_400_000
CHUNK = 50_000


class SignOfFirst:
    """The model whose predictions are logged: class 1 where num_00 > 0."""

    def predict(self, frame: Any) -> np.ndarray:
        values = np.asarray(frame["num_00"], dtype=np.float64)
        return (np.nan_to_num(values) > 0).astype(np.int64)


def _fill(plinth: Any, current: Any, predicted: np.ndarray, times: np.ndarray) -> bool:
    """Log every row; True when the public, columnar API took them."""
    if hasattr(plinth, "log_predictions"):
        plinth.log_predictions(f"{MODEL}/1", current, predicted, timestamps=times)
        return True
    import orjson

    from plinth.core.entities import PredictionLog
    from plinth.core.ids import new_id

    store = plinth.tracking.context.backend().store
    for start in range(0, len(current), CHUNK):
        records = current.iloc[start : start + CHUNK].to_dict(orient="records")
        logs = [
            PredictionLog(
                new_id(),
                MODEL,
                1,
                "primary",
                int(times[start + i]),
                0.0,
                None,
                orjson.dumps({"instances": [record]}).decode(),
                orjson.dumps([int(predicted[start + i])]).decode(),
                200,
                1,
            )
            for i, record in enumerate(records)
        ]
        store.write_prediction_logs(logs)
    return False


def served_side(data_dir: str, reps: int) -> dict[str, Any]:
    os.environ["PLINTH_HOME"] = tempfile.mkdtemp(prefix="served-", dir=data_dir)
    import plinth
    import plinth.tracking.context

    reference, current, meta = load_frames(data_dir)
    model = SignOfFirst()
    with plinth.start_run(experiment="served-drift") as run:
        run.log_dataset(reference.assign(target=model.predict(reference)), name="served-train", role="train")
        run.log_model(model, name=MODEL, input_example=reference.head(3), flavor="python")
    predicted = model.predict(current)
    times = START_MS + np.arange(len(current), dtype=np.int64) * (DAY_MS // len(current))
    progress("served", f"logging {len(current):,} requests")
    start = time.perf_counter()
    columnar = _fill(plinth, current, predicted, times)
    fill_s = time.perf_counter() - start
    del current, reference
    import scipy.special  # noqa: F401  (drift imports it on first use; an import, not part of the time)

    runs, found = [], None
    for _ in range(max(1, reps)):
        start = time.perf_counter()
        found = plinth.drift(MODEL)
        runs.append(time.perf_counter() - start)
    assert found is not None
    progress("served", f"drift {', '.join(f'{r:.3f}' for r in runs)} s; building the report")
    start = time.perf_counter()
    report = plinth.monitoring_report(MODEL)
    report_s = time.perf_counter() - start
    return {
        "plinth": os.path.dirname(plinth.__file__),
        "columnar": columnar,
        "rows": meta["rows"],
        "features": len(meta["numeric"]) + len(meta["categorical"]),
        "fill_s": fill_s,
        "runs": runs,
        "report_s": report_s,
        "report_windows": len(report.drift_windows),
        "requests": found.requests,
        "flagged": found.drifted_features,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    print(json.dumps(served_side(args.data, args.reps)))


if __name__ == "__main__":
    main()
