"""plinth side of `benchmarks/bench_tracking.py`; runs in the project's interpreter.

Usage: python _plinth_side.py --workdir DIR [--quick]

Points PLINTH_HOME at DIR before importing plinth and prints one JSON line of results on
stdout (progress goes to stderr). The workload mirrors `_mlflow_side.py`. Each search figure is
measured on a fresh store of its own (a folder under DIR, opened with `plinth.configure`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import statistics
import sys
import time
from typing import Any

CHUNK = 1000  # points per log_metric_points call: the same chunking MLflow's log_batch forces

FULL = {
    "log_metric_n": 100_000,
    "batch_points": 1_000_000,
    "runs_n": 1_000,
    "search_runs": 5_000,
    "search2k_runs": 2_000,
    "search100k_runs": 100_000,
    "search_reps": 20,
    "history_points": 100_000,
    "history_reps": 5,
}


def _progress(msg: str) -> None:
    print(f"[plinth] {msg}", file=sys.stderr, flush=True)


def _sizes(quick: bool) -> dict[str, int]:
    if not quick:
        return dict(FULL)
    sizes = {k: max(1, v // 10) for k, v in FULL.items()}
    sizes["search_reps"] = FULL["search_reps"]
    sizes["history_reps"] = FULL["history_reps"]
    return sizes


def search_rows(n: int) -> list[tuple[dict[str, str], dict[str, float]]]:
    """Params/metrics of the search corpus; identical to the MLflow side (seeded).

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


WHERE = "metrics.m0 > 0.5 and params.p1 = '3'"


def fill_search_store(plinth: Any, workdir: str, name: str, n: int) -> float:
    """A fresh store under `workdir` holding the search corpus of `n` runs; seconds taken to fill it."""
    home = os.path.join(workdir, name)
    os.makedirs(home)
    os.environ["PLINTH_HOME"] = home
    plinth.configure()
    _progress(f"   creating {n:,} runs in a fresh store (setup, not timed)")
    t0 = time.perf_counter()
    for params, metrics in search_rows(n):
        with plinth.start_run(experiment="bench-search", params=params) as run:
            run.log_metrics(metrics, step=0)
    return time.perf_counter() - t0


def time_search(plinth: Any, reps: int, **query: Any) -> tuple[float, Any, int]:
    """Median milliseconds of `reps` calls of `plinth.search_runs(**query)`, the warm-up's answer,
    and how many runs match without the limit."""
    matches = len(plinth.search_runs(experiment="bench-search", **{**query, "limit": None}))
    first = plinth.search_runs(experiment="bench-search", **query)  # warm-up, not timed
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        plinth.search_runs(experiment="bench-search", **query)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, first, matches


def measure_logging(plinth: Any, sizes: dict[str, int]) -> dict[str, object]:
    """Rows 1-3 and 5: logging metrics and runs, and reading a metric's history, in one store."""
    import numpy as np

    out: dict[str, object] = {"batch_chunk": CHUNK}
    # 1. log_metric calls in one run; durable = loop + flush.
    n = sizes["log_metric_n"]
    _progress(f"1. log_metric x {n}")
    with plinth.start_run(experiment="bench") as run:
        for i in range(20):
            run.log_metric("warmup", i * 1e-3, step=i)
        run.flush()
        t0 = time.perf_counter()
        for i in range(n):
            run.log_metric("loss", i * 1e-3, step=i)
        t1 = time.perf_counter()
        run.flush()
        t2 = time.perf_counter()
    out["log_metric_n"] = n
    out["log_metric_calls_per_s"] = n / (t1 - t0)
    out["log_metric_loop_s"] = t1 - t0
    out["log_metric_durable_s"] = t2 - t0
    out["log_metric_nominal_n"] = n
    out["log_metric_durable_nominal_s"] = t2 - t0

    # 2. batch path: log_metric_points in chunks, then flush; durable points/s.
    n = sizes["batch_points"]
    _progress(f"2. log_metric_points {n} points in chunks of {CHUNK}")
    values = np.arange(n, dtype=np.float64) * 1e-3
    steps = np.arange(n, dtype=np.int64)
    with plinth.start_run(experiment="bench") as run:
        t0 = time.perf_counter()
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            run.log_metric_points("loss", values[start:stop], steps[start:stop])
        run.flush()
        dt = time.perf_counter() - t0
    out["batch_points"] = n
    out["batch_points_per_s"] = n / dt
    out["batch_s"] = dt

    # 3. runs started and finished, each with 5 params and 5 metrics.
    n = sizes["runs_n"]
    _progress(f"3. {n} runs with 5 params + 5 metrics")
    t0 = time.perf_counter()
    for i in range(n):
        params = {f"p{k}": f"{i}-{k}" for k in range(5)}
        with plinth.start_run(experiment="bench", params=params) as run:
            run.log_metrics({f"m{k}": i * 0.1 + k for k in range(5)})
    dt = time.perf_counter() - t0
    out["runs_n"] = n
    out["runs_per_s"] = n / dt

    # 5. metric history of a long metric (logged via the batch path, not timed).
    n = sizes["history_points"]
    _progress(f"5. metric_history of {n} points")
    values = np.arange(n, dtype=np.float64) * 1e-3
    steps = np.arange(n, dtype=np.int64)
    with plinth.start_run(experiment="bench") as run:
        run_id = run.id
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            run.log_metric_points("loss", values[start:stop], steps[start:stop])
        run.flush()
    hist = plinth.metric_history(run_id, "loss")  # warm-up, not timed
    times = []
    reps = sizes["history_reps"]
    for _ in range(reps):
        t0 = time.perf_counter()
        hist = plinth.metric_history(run_id, "loss")
        times.append(time.perf_counter() - t0)
    out["history_points"] = n
    out["history_returned"] = _len(hist)
    out["history_median_ms"] = statistics.median(times) * 1e3
    out["history_reps"] = reps
    return out


def measure_searches(plinth: Any, workdir: str, sizes: dict[str, int]) -> dict[str, object]:
    """Rows 4-4e: searches, each on a fresh store holding only its corpus."""
    out: dict[str, object] = {}
    reps = sizes["search_reps"]
    out["search_reps"] = reps
    n = sizes["search_runs"]
    _progress(f"4. search {n:,} runs: filter + order, limit 10")
    out["search_setup_s"] = fill_search_store(plinth, workdir, "search-5k", n)
    ms, first, out["search_matches"] = time_search(
        plinth, reps, where=WHERE, order_by=["-metrics.m2"], limit=10
    )
    out["search_returned"] = _len(first)
    out["search_top_m2"] = [_metric_of(r, "m2") for r in first]
    out["search_median_ms"] = ms
    out["search_n_runs"] = n

    n = sizes["search2k_runs"]
    _progress(f"4b. search {n:,} runs: filter + order, limit 100")
    out["search2k_setup_s"] = fill_search_store(plinth, workdir, "search-2k", n)
    ms, first, out["search2k_matches"] = time_search(
        plinth, reps, where=WHERE, order_by=["-metrics.m2"], limit=100
    )
    out["search2k_returned"] = _len(first)
    out["search2k_top_m2"] = [_metric_of(r, "m2") for r in first]
    out["search2k_median_ms"] = ms
    out["search2k_n_runs"] = n

    n = sizes["search100k_runs"]
    _progress(f"4c-e. search {n:,} runs, limit 100")
    out["search100k_setup_s"] = fill_search_store(plinth, workdir, "search-100k", n)
    out["search100k_n_runs"] = n
    queries: dict[str, dict[str, Any]] = {
        "filter": {"where": WHERE, "order_by": ["-metrics.m2"]},
        "order": {"order_by": ["-metrics.m2"]},
        "newest": {},
    }
    for name, query in queries.items():
        ms, first, out[f"search100k_{name}_matches"] = time_search(plinth, reps, limit=100, **query)
        out[f"search100k_{name}_median_ms"] = ms
        out[f"search100k_{name}_returned"] = _len(first)
    return out


def _metric_of(run: Any, key: str) -> float | None:
    """A metric of a search result, rounded as the MLflow side rounds it, for cross-checking."""
    value = run.metrics.get(key)
    return None if value is None else round(float(value), 6)


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _len(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None


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
    os.environ["PLINTH_HOME"] = workdir

    try:
        import plinth
    except ImportError:  # not installed: use the checkout's src/ layout
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(os.path.dirname(here), "src"))
        import plinth

    version = getattr(plinth, "__version__", None) or _dist_version("plinth")
    _progress(f"plinth {version} from {os.path.dirname(plinth.__file__)}")
    out: dict[str, object] = {
        "side": "plinth",
        "version": version,
        "python": platform.python_version(),
        "quick": args.quick,
    }

    if not args.search_only:
        out.update(measure_logging(plinth, sizes))
    out.update(measure_searches(plinth, workdir, sizes))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
