"""MLflow side of `benchmarks/bench_tracking.py`; runs in benchmarks/.venv-mlflow, not the project venv.

Usage: python _mlflow_side.py --workdir DIR [--quick]

Uses a SQLite tracking store in DIR and prints one JSON line of results on stdout
(progress goes to stderr). The workload mirrors `_plinth_side.py`; MLflow is slow enough
that rows 1-3 run a smaller count and report the measured rate. Each search figure is measured
on a fresh store of its own (a database under DIR); the 100,000-run rows are plinth's only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import statistics
import sys
import time
import warnings
from typing import Any

# Keep MLflow quiet and offline before it is imported.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

CHUNK = 1000  # MLflow's limit on metrics per log_batch call; used on both sides

# Nominal sizes (what plinth runs) and what MLflow actually runs.
FULL = {
    "log_metric_n": 2_000,  # nominal 100,000; rate extrapolated
    "batch_points": 100_000,  # nominal 1,000,000; rate extrapolated
    "runs_n": 200,  # nominal 1,000; rate extrapolated
    "search_runs": 5_000,
    "search2k_runs": 2_000,
    "search_reps": 20,
    "history_points": 100_000,
    "history_reps": 5,
}
NOMINAL_LOG_METRIC_N = 100_000


def _progress(msg: str) -> None:
    print(f"[mlflow] {msg}", file=sys.stderr, flush=True)


def _sizes(quick: bool) -> dict[str, int]:
    if not quick:
        return dict(FULL)
    sizes = {k: max(1, v // 10) for k, v in FULL.items()}
    sizes["search_reps"] = FULL["search_reps"]
    sizes["history_reps"] = FULL["history_reps"]
    return sizes


def search_rows(n: int) -> list[tuple[dict[str, str], dict[str, float]]]:
    """Params/metrics of the search corpus; identical to the plinth side (seeded).

    p1 takes 5 values and m0 is uniform in [0, 1), so `m0 > 0.5 and p1 = '3'` matches ~10%.
    """
    rng = random.Random(1234)
    rows = []
    for i in range(n):
        params = {
            "p0": str(i),
            "p1": str(i % 5),
            "p2": rng.choice(["adam", "sgd", "rmsprop"]),
            "p3": str(rng.randint(1, 512)),
            "p4": f"{rng.random():.4f}",
        }
        metrics = {f"m{k}": rng.random() for k in range(5)}
        rows.append((params, metrics))
    return rows


FILTER = "metrics.m0 > 0.5 and params.p1 = '3'"
ORDER_BY = ["metrics.m2 DESC"]


def open_store(workdir: str, name: str) -> tuple[Any, str]:
    """A client of a fresh SQLite store `name` under `workdir` (made the tracking URI), and its URI."""
    import mlflow
    from mlflow.tracking import MlflowClient

    folder = os.path.join(workdir, name)
    os.makedirs(folder, exist_ok=True)
    uri = f"sqlite:///{os.path.join(folder, 'mlflow.db')}"
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri), "file://" + os.path.join(folder, "artifacts")


def measure_logging(workdir: str, sizes: dict[str, int], quick: bool) -> dict[str, object]:
    """Rows 1-3 and 5: logging metrics and runs, and reading a metric's history, in one store."""
    import mlflow
    from mlflow.entities import Metric

    t = time.perf_counter()
    client, artifacts = open_store(workdir, "logging")
    bench_exp = client.create_experiment("bench", artifact_location=f"{artifacts}/bench")  # schema: not timed
    mlflow.set_experiment(experiment_id=bench_exp)
    _progress(f"mlflow {mlflow.__version__}: store created in {time.perf_counter() - t:.1f}s")
    out: dict[str, object] = {"batch_chunk": CHUNK}

    # 1. log_metric calls in one run (each call is synchronous: durable when it returns).
    n = sizes["log_metric_n"]
    _progress(f"1. log_metric x {n}")
    with mlflow.start_run():
        for i in range(20):
            mlflow.log_metric("warmup", i * 1e-3, step=i)
        t0 = time.perf_counter()
        for i in range(n):
            mlflow.log_metric("loss", i * 1e-3, step=i)
        loop_s = time.perf_counter() - t0
    rate = n / loop_s
    out["log_metric_n"] = n
    out["log_metric_calls_per_s"] = rate
    out["log_metric_loop_s"] = loop_s
    out["log_metric_durable_s"] = loop_s
    scale = NOMINAL_LOG_METRIC_N // (10 if quick else 1)
    out["log_metric_nominal_n"] = scale
    out["log_metric_durable_nominal_s"] = scale / rate  # extrapolated: durable = loop

    # 2. batch path: log_batch in chunks of 1000 Metric objects.
    n = sizes["batch_points"]
    _progress(f"2. log_batch {n} points in chunks of {CHUNK}")
    values = [i * 1e-3 for i in range(n)]
    with mlflow.start_run() as run:
        run_id = run.info.run_id
        t0 = time.perf_counter()
        for start in range(0, n, CHUNK):
            ts = int(time.time() * 1000)
            batch = [Metric("loss", values[i], ts, i) for i in range(start, min(start + CHUNK, n))]
            client.log_batch(run_id, metrics=batch)
        dt = time.perf_counter() - t0
    out["batch_points"] = n
    out["batch_points_per_s"] = n / dt
    out["batch_s"] = dt

    # 3. runs started and finished, each with 5 params and 5 metrics.
    n = sizes["runs_n"]
    _progress(f"3. {n} runs with 5 params + 5 metrics")
    t0 = time.perf_counter()
    for i in range(n):
        with mlflow.start_run(experiment_id=bench_exp):
            mlflow.log_params({f"p{k}": f"{i}-{k}" for k in range(5)})
            mlflow.log_metrics({f"m{k}": i * 0.1 + k for k in range(5)})
    dt = time.perf_counter() - t0
    out["runs_n"] = n
    out["runs_per_s"] = n / dt

    # 5. metric history of a long metric (logged via log_batch, not timed).
    n = sizes["history_points"]
    _progress(f"5. metric_history of {n} points")
    with mlflow.start_run(experiment_id=bench_exp) as run:
        run_id = run.info.run_id
        ts = int(time.time() * 1000)
        for start in range(0, n, CHUNK):
            batch = [Metric("loss", i * 1e-3, ts, i) for i in range(start, min(start + CHUNK, n))]
            client.log_batch(run_id, metrics=batch)
    hist = client.get_metric_history(run_id, "loss")  # warm-up, not timed
    times = []
    reps = sizes["history_reps"]
    for _ in range(reps):
        t0 = time.perf_counter()
        hist = client.get_metric_history(run_id, "loss")
        times.append(time.perf_counter() - t0)
    out["history_points"] = n
    out["history_returned"] = len(hist)
    out["history_median_ms"] = statistics.median(times) * 1e3
    out["history_reps"] = reps
    return out


def fill_search_store(workdir: str, name: str, n: int) -> tuple[str, float]:
    """A fresh store holding the search corpus of `n` runs: its experiment id, and seconds to fill it."""
    from mlflow.entities import Metric, Param

    client, artifacts = open_store(workdir, name)
    exp = client.create_experiment("bench-search", artifact_location=f"{artifacts}/bench-search")
    _progress(f"   creating {n:,} runs in a fresh store (setup, not timed)")
    t0 = time.perf_counter()
    for params, metrics in search_rows(n):
        r = client.create_run(exp)
        ts = int(time.time() * 1000)
        client.log_batch(
            r.info.run_id,
            metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
        )
    return exp, time.perf_counter() - t0


def time_search(exp: str, reps: int, limit: int) -> tuple[float, list[Any], int]:
    """Median milliseconds of `reps` filtered, ordered searches; the warm-up's answer; how many match."""
    import mlflow

    def search(max_results: int) -> list[Any]:
        return mlflow.search_runs(
            experiment_ids=[exp],
            filter_string=FILTER,
            order_by=ORDER_BY,
            max_results=max_results,
            output_format="list",
        )

    matches = len(search(50_000))
    first = search(limit)  # warm-up, not timed
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        search(limit)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, first, matches


def measure_searches(workdir: str, sizes: dict[str, int]) -> dict[str, object]:
    """Rows 4 and 4b: searches, each on a fresh store holding only its corpus."""
    reps = sizes["search_reps"]
    out: dict[str, object] = {"search_reps": reps}
    for prefix, runs_key, name, limit in (
        ("search", "search_runs", "search-5k", 10),
        ("search2k", "search2k_runs", "search-2k", 100),
    ):
        n = sizes[runs_key]
        _progress(f"4. search {n:,} runs: filter + order, limit {limit}")
        exp, out[f"{prefix}_setup_s"] = fill_search_store(workdir, name, n)
        ms, first, matches = time_search(exp, reps, limit)
        out[f"{prefix}_matches"] = matches
        out[f"{prefix}_returned"] = len(first)
        out[f"{prefix}_top_m2"] = [round(r.data.metrics["m2"], 6) for r in first]
        out[f"{prefix}_median_ms"] = ms
        out[f"{prefix}_n_runs"] = n
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--search-only", action="store_true", help="measure the search rows only")
    args = ap.parse_args()
    sizes = _sizes(args.quick)

    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    warnings.filterwarnings("ignore")

    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    out: dict[str, object] = {
        "side": "mlflow",
        "version": mlflow.__version__,
        "python": platform.python_version(),
        "quick": args.quick,
    }
    if not args.search_only:
        out.update(measure_logging(workdir, sizes, args.quick))
    out.update(measure_searches(workdir, sizes))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
