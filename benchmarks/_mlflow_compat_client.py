"""The MLflow client side of `benchmarks/bench_mlflow_compat.py`: one script, pointed at any server.

Runs under the `.venv-mlflow` virtualenv (MLflow 3.17.2, scikit-learn), never the project's, with
MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_TOKEN for plinth) set by the caller:

    python _mlflow_compat_client.py --workdir DIR [--quick] [--stub] [--search-body FILE]

1. runs: `with mlflow.start_run(): mlflow.log_params({3 params})`, one after the other.
2. points: `MlflowClient.log_batch` with 1,000 metric points a call.
3. search: `MlflowClient.search_runs` over 1,000 runs (filled first, not timed) with a filter
   and an order, 100 results; the median of repeated calls. The raw answer of one such call
   is saved (`--search-body`) so the stub can give the client the same bytes to parse.
4. load_model: `mlflow.pyfunc.load_model("models:/bench-model@champion")` of a registered
   scikit-learn model, in this process after a warm-up load; the median.

Each row is timed in three rounds and the best round is reported (the machine is shared).

With `--stub` (a server that answers at once and stores nothing) every row gives the client's own
floor: row 4 saves the model into `--model-dir`, which the stub serves as `bench-model@champion`,
and also times loading it from that folder with no server at all. The result is one JSON line on
stdout.
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

FULL = {"runs": 300, "points": 99_000, "search_runs": 1_000, "search_reps": 60, "load_reps": 15}
QUICK = {"runs": 45, "points": 21_000, "search_runs": 200, "search_reps": 15, "load_reps": 6}
ROUNDS = 3
"""Each row is timed in this many rounds and the best round reported."""
CHUNK = 1_000
FILL_THREADS = 4
FILTER = "metrics.m0 > 0.5 and params.p1 = '3'"
ORDER_BY = ["metrics.m1 DESC"]
SEARCH_LIMIT = 100
MODEL = "bench-model"


def progress(msg: str) -> None:
    print(f"[client] {msg}", file=sys.stderr, flush=True)


def median_s(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def best_round(rounds: int, fn: Callable[[int], float]) -> float:
    """The shortest of `rounds` timings of `fn(round)`: on a shared machine, the round least
    disturbed by other work is the closest to what the code costs."""
    return min(fn(r) for r in range(rounds))


def measure_runs(n: int) -> dict[str, Any]:
    """Row 1: runs created, given three params and ended, with MLflow's fluent API."""
    import mlflow

    mlflow.set_experiment("bench-runs")
    for _ in range(3):  # warm-up
        with mlflow.start_run():
            mlflow.log_params({"lr": 0.01, "depth": 3, "optimizer": "adam"})
    per_round = n // ROUNDS
    progress(f"1. {per_round * ROUNDS} runs in {ROUNDS} rounds: start_run + log_params(3) + end")

    def one_round(_: int) -> float:
        t0 = time.perf_counter()
        for i in range(per_round):
            with mlflow.start_run():
                mlflow.log_params({"lr": 0.01, "depth": i, "optimizer": "adam"})
        return (time.perf_counter() - t0) / per_round

    run_s = best_round(ROUNDS, one_round)
    return {"runs_n": per_round * ROUNDS, "runs_per_s": 1 / run_s, "run_ms": run_s * 1e3}


def measure_points(n: int) -> dict[str, Any]:
    """Row 2: metric points through log_batch, 1,000 a call."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    experiment_id = client.create_experiment("bench-points")
    run_id = client.create_run(experiment_id).info.run_id
    ts = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric("warmup", 0.0, ts, i) for i in range(CHUNK)])
    batches = [
        [Metric("loss", i * 1e-3, ts, i) for i in range(start, min(start + CHUNK, n))]
        for start in range(0, n, CHUNK)
    ]
    progress(f"2. log_batch {n:,} points in calls of {CHUNK:,}, in {ROUNDS} rounds")
    per_round = len(batches) // ROUNDS

    def one_round(r: int) -> float:
        t0 = time.perf_counter()
        for batch in batches[r * per_round : (r + 1) * per_round]:
            client.log_batch(run_id, metrics=batch)
        return (time.perf_counter() - t0) / per_round

    batch_s = best_round(ROUNDS, one_round)
    client.set_terminated(run_id)
    return {
        "points_n": per_round * ROUNDS * CHUNK,
        "points_per_s": CHUNK / batch_s,
        "batch_ms": batch_s * 1e3,
    }


def fill_search(client: Any, experiment_id: str, n: int) -> float:
    """`n` runs with five params and five metrics each (4 threads); the seconds it took."""
    from mlflow.entities import Metric, Param

    def one(i: int) -> None:
        run_id = client.create_run(experiment_id, run_name=f"r{i:05d}").info.run_id
        ts = int(time.time() * 1000)
        metrics = [Metric(f"m{k}", ((i * (k + 7)) % 1000) / 1000, ts, 0) for k in range(5)]
        params = [Param(f"p{k}", str((i + k) % 7)) for k in range(5)]
        client.log_batch(run_id, metrics=metrics, params=params)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(FILL_THREADS) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t0


def measure_search(n: int, reps: int, stub: bool, body_path: str | None) -> dict[str, Any]:
    """Row 3: a filtered, ordered search of `n` runs, 100 results; median of `reps` calls."""
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = client.create_experiment("bench-search")
    setup_s = 0.0 if stub else fill_search(client, experiment_id, n)
    if not stub:
        progress(f"3. search: {n:,} runs filled in {setup_s:.1f} s")

    def search() -> list[Any]:
        return list(client.search_runs([experiment_id], FILTER, order_by=ORDER_BY, max_results=SEARCH_LIMIT))

    first = search()  # warm-up, not timed
    if body_path and not stub:
        save_search_body(experiment_id, body_path)
    progress(f"3. search {n:,} runs: filter + order, {SEARCH_LIMIT} results, {reps} times in {ROUNDS} rounds")
    return {
        "search_n": n,
        "search_setup_s": setup_s,
        "search_returned": len(first),
        "search_ms": best_round(ROUNDS, lambda _: median_s(search, reps // ROUNDS)) * 1e3,
        "search_reps": reps // ROUNDS * ROUNDS,
    }


def save_search_body(experiment_id: str, path: str) -> None:
    """The server's raw answer to the timed search, for the stub to give back."""
    import requests

    headers = {}
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
    body = {
        "experiment_ids": [experiment_id],
        "filter": FILTER,
        "order_by": ORDER_BY,
        "max_results": SEARCH_LIMIT,
        "run_view_type": "ACTIVE_ONLY",
    }
    url = os.environ["MLFLOW_TRACKING_URI"].rstrip("/") + "/api/2.0/mlflow/runs/search"
    answer = requests.post(url, json=body, headers=headers, timeout=60)
    answer.raise_for_status()
    with open(path, "w") as fh:
        fh.write(answer.text)


def train() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    return LogisticRegression(max_iter=500).fit(X, y), X


def measure_load(reps: int, model_dir: str | None) -> dict[str, Any]:
    """Row 4: load a registered model by alias. Against the stub (`model_dir`: the folder it
    serves the model from), the model is saved there first, and also loaded from that folder
    directly (no server at all)."""
    import mlflow
    from mlflow import MlflowClient

    model, X = train()
    uri = f"models:/{MODEL}@champion"
    out: dict[str, Any] = {}
    if model_dir:
        mlflow.sklearn.save_model(model, model_dir, pip_requirements=["scikit-learn"])
        mlflow.pyfunc.load_model(model_dir)
        local_s = best_round(
            ROUNDS, lambda _: median_s(lambda: mlflow.pyfunc.load_model(model_dir), reps // ROUNDS)
        )
        out["load_local_ms"] = local_s * 1e3
    else:
        mlflow.set_experiment("bench-models")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        version = mlflow.register_model(info.model_uri, MODEL)
        MlflowClient().set_registered_model_alias(MODEL, "champion", version.version)
    loaded = mlflow.pyfunc.load_model(uri)  # warm-up: imports, first download
    assert len(loaded.predict(X.iloc[:3])) == 3
    progress(f"4. load_model {uri}, {reps} times in {ROUNDS} rounds")
    load_s = best_round(ROUNDS, lambda _: median_s(lambda: mlflow.pyfunc.load_model(uri), reps // ROUNDS))
    return {**out, "load_ms": load_s * 1e3, "load_reps": reps // ROUNDS * ROUNDS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--stub", action="store_true")
    ap.add_argument("--model-dir", help="(--stub) where to save the model the stub serves")
    ap.add_argument("--search-body", help="where to save (not --stub) the raw answer of the timed search")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.makedirs(args.workdir, exist_ok=True)
    os.chdir(args.workdir)
    t0 = time.perf_counter()
    import mlflow

    sizes = QUICK if args.quick else FULL
    out: dict[str, Any] = {
        "version": mlflow.__version__,
        "python": platform.python_version(),
        "import_s": time.perf_counter() - t0,
        "quick": args.quick,
    }
    out.update(measure_runs(sizes["runs"]))
    out.update(measure_points(sizes["points"]))
    out.update(measure_search(sizes["search_runs"], sizes["search_reps"], args.stub, args.search_body))
    out.update(measure_load(sizes["load_reps"], args.model_dir if args.stub else None))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
