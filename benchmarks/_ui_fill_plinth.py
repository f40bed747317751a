"""Fill a plinth store (PLINTH_HOME=HOME) with the UI benchmark's runs; run by the project venv.

    python _ui_fill_plinth.py --home DIR --runs N --big-points M

The runs go in through the store's bulk calls (`create_runs`, `write_metrics`, `end_runs`, the
path `plinth server` takes for a batch of runs); the big run through `plinth.start_run` and
`run.log_metric_points`. Prints progress lines, then one JSON line with what it made.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _ui_data as data

BATCH = 1_000  # runs per create_runs call
BIG_CHUNK = 100_000  # points per log_metric_points call


def fill_runs(store: Any, n: int) -> list[str]:
    """Create the `n` runs of experiment `bench`, finished; the compare set's ids."""
    from plinth.core.entities import RunStatus
    from plinth.store.base import NewRun

    compare: list[str] = []
    seq = 0
    for start in range(0, n, BATCH):
        indices = range(start, min(n, start + BATCH))
        values = [data.run_values(i) for i in indices]
        specs = [
            NewRun(
                experiment=data.EXPERIMENT,
                name=f"run-{i}",
                params=params,
                tags={"team": "vision" if i % 3 else "nlp"},
                environment=None,
                heartbeat_s=10.0,
                user="bench",
            )
            for i, (params, _) in zip(indices, values, strict=True)
        ]
        runs = store.create_runs(specs)
        ts = int(time.time() * 1000)
        points: list[tuple[str, str, int, int, int, float]] = []
        for i, run, (_, metrics) in zip(indices, runs, values, strict=True):
            if i < data.COMPARE_N:
                compare.append(run.id)
            for key, final in metrics.items():
                series = data.curve(final, i * 100 + len(points)) if i < data.COMPARE_N else [final]
                for step, value in enumerate(series):
                    points.append((run.id, key, step, seq, ts, value))
                    seq += 1
        store.write_metrics(points)
        store.end_runs([(run.id, RunStatus.FINISHED, None, ts) for run in runs])
        data.progress("runs", indices.stop, n)
    return compare


def fill_big(plinth: Any, n: int) -> str:
    """The run whose metric `big` has `n` points, logged in chunks; its id."""
    import numpy as np

    steps = np.arange(n, dtype=np.int64)
    values = np.fromiter((v for _, v in data.big_series(n)), dtype=np.float64, count=n)
    with plinth.start_run(experiment=data.EXPERIMENT, name=data.BIG_RUN) as run:
        for start in range(0, n, BIG_CHUNK):
            stop = min(n, start + BIG_CHUNK)
            run.log_metric_points(data.BIG_METRIC, values[start:stop], steps[start:stop])
            run.flush()
            data.progress("big", stop, n)
        return str(run.id)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--big-points", type=int, required=True)
    args = ap.parse_args()
    home = Path(args.home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["PLINTH_HOME"] = str(home)
    os.environ["PLINTH_SYSTEM_METRICS"] = "false"
    import plinth
    from plinth.tracking.context import backend

    plinth.configure()
    t0 = time.perf_counter()
    compare = fill_runs(backend().store, args.runs)
    runs_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    big = fill_big(plinth, args.big_points)
    big_s = time.perf_counter() - t1
    print(json.dumps({"compare": compare, "big": big, "runs_s": runs_s, "big_s": big_s}), flush=True)


if __name__ == "__main__":
    main()
