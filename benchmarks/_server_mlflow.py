"""MLflow side of `benchmarks/bench_server.py`; runs in benchmarks/.venv-mlflow, not the project venv.

Usage:
    python _server_mlflow.py --url URL --workdir DIR [--quick] [--clients 50] [--phase main|auth]
    python _server_mlflow.py --worker ...   (one of the concurrent client processes; internal)

Talks to a running `mlflow server` at URL through `MlflowClient` (REST), and prints one JSON line
of results on stdout (progress goes to stderr). The workload mirrors `_server_plinth.py`:

- phase "main" (the plain server): rows 1-5 and the median latency of `get_run` (the baseline of
  row 6);
- phase "auth" (the same store behind `--app-name basic-auth`, credentials in
  MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD): the median latency of the same `get_run`.

MLflow is slow enough that rows 1 and 2 run a smaller count and report the measured rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _mlflow_side import search_rows  # the tracking benchmark's seeded corpus, so the sides match

# Keep MLflow quiet and offline before it is imported.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

CHUNK = 1000  # MLflow's limit on metrics per log_batch call; used on both sides
FILL_THREADS = 4  # threads filling the search corpus (setup, not timed)

FULL = {
    "runs_n": 300,
    "points_n": 100_000,
    "search_runs": 5_000,
    "search_reps": 20,
    "history_points": 100_000,
    "history_reps": 5,
    "conc_runs": 4,  # runs per concurrent client
    "conc_batches": 5,  # write calls per run
    "conc_points": 200,  # points per write call
    "get_reps": 200,
}
QUICK = {
    "runs_n": 50,
    "points_n": 10_000,
    "search_runs": 500,
    "search_reps": 10,
    "history_points": 10_000,
    "history_reps": 3,
    "conc_runs": 2,
    "conc_batches": 2,
    "conc_points": 100,
    "get_reps": 50,
}

FILTER = "metrics.m0 > 0.5 and params.p1 = '3'"
ORDER_BY = ["metrics.m2 DESC"]


def _progress(msg: str) -> None:
    print(f"[mlflow] {msg}", file=sys.stderr, flush=True)


def analyze() -> bool:
    """`ANALYZE` the PostgreSQL database behind the server (BENCH_PG_DSN), as autovacuum would
    within a minute of a bulk load; False where there is none (SQLite)."""
    dsn = os.environ.get("BENCH_PG_DSN")
    if not dsn:
        return False
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
    finally:
        conn.close()
    return True


def _median_ms(fn: Any, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


# --------------------------------------------------------------------------- rows 1-4


def _experiment(client: Any, name: str) -> str:
    """The id of experiment `name`, created when this store does not have it yet (a first round)."""
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def measure_runs(client: Any, n: int) -> dict[str, object]:
    """Row 1: runs created and ended, one after the other, by one client."""
    exp = _experiment(client, "bench-runs")
    for _ in range(5):  # warm-up
        client.set_terminated(client.create_run(exp).info.run_id)
    _progress(f"1. {n} runs: create_run + set_terminated")
    t0 = time.perf_counter()
    for _ in range(n):
        client.set_terminated(client.create_run(exp).info.run_id)
    dt = time.perf_counter() - t0
    return {"runs_n": n, "runs_per_s": n / dt, "store_runs_per_s": n / dt}


def _log_series(client: Any, run_id: str, key: str, n: int) -> None:
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    for start in range(0, n, CHUNK):
        batch = [Metric(key, i * 1e-3, ts, i) for i in range(start, min(start + CHUNK, n))]
        client.log_batch(run_id, metrics=batch)


def measure_points(client: Any, n: int) -> dict[str, object]:
    """Row 2: metric points through log_batch, 1,000 per call; each call returns once stored."""
    exp = client.create_experiment("bench-points")
    run_id = client.create_run(exp).info.run_id
    _log_series(client, run_id, "warmup", CHUNK)
    _progress(f"2. log_batch {n:,} points in calls of {CHUNK}")
    t0 = time.perf_counter()
    _log_series(client, run_id, "loss", n)
    dt = time.perf_counter() - t0
    client.set_terminated(run_id)
    return {"points_n": n, "points_per_s": n / dt, "points_chunk": CHUNK}


def measure_search(client: Any, n: int, reps: int) -> dict[str, object]:
    """Row 3: a filtered, ordered search with limit 10 over `n` runs (filled first, not timed)."""
    setup_s = fill_search(client, n)
    analyzed = analyze()
    return {"search_setup_s": setup_s, "search_analyzed": analyzed, **time_search(client, n, reps)}


def fill_search(client: Any, n: int) -> float:
    """Create the `n` runs row 3 searches (params and one value of each metric); seconds taken."""
    from mlflow.entities import Metric, Param

    exp = client.create_experiment("bench-search")
    _progress(f"3. search: creating {n:,} runs ({FILL_THREADS} threads; setup, not timed)")

    def fill(row: tuple[dict[str, str], dict[str, float]]) -> None:
        params, metrics = row
        r = client.create_run(exp)
        ts = int(time.time() * 1000)
        client.log_batch(
            r.info.run_id,
            metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
        )

    t0 = time.perf_counter()
    with ThreadPoolExecutor(FILL_THREADS) as pool:
        list(pool.map(fill, search_rows(n)))
    return time.perf_counter() - t0


def time_search(client: Any, n: int, reps: int) -> dict[str, object]:
    """Row 3's timing over the runs `fill_search` made: the median of `reps` searches."""
    exp = client.get_experiment_by_name("bench-search").experiment_id

    def search(limit: int) -> list[Any]:
        return list(client.search_runs([exp], filter_string=FILTER, order_by=ORDER_BY, max_results=limit))

    matches = _count_runs(client, exp, FILTER)
    first = search(10)  # warm-up, not timed
    _progress(f"3. search {n:,} runs: filter + order, limit 10, {reps} times")
    ms = _median_ms(lambda: search(10), reps)
    return {
        "search_n_runs": n,
        "search_matches": matches,
        "search_returned": len(first),
        "search_top_m2": [round(r.data.metrics["m2"], 6) for r in first],
        "search_median_ms": ms,
        "search_reps": reps,
    }


def measure_history(client: Any, n: int, reps: int) -> dict[str, object]:
    """Row 4: reading one metric's whole history (logged first through log_batch, not timed)."""
    exp = client.create_experiment("bench-history")
    run_id = client.create_run(exp).info.run_id
    _progress(f"4. metric history: logging {n:,} points (setup, not timed)")
    _log_series(client, run_id, "loss", n)
    analyze()
    hist = client.get_metric_history(run_id, "loss")  # warm-up, not timed
    ms = _median_ms(lambda: client.get_metric_history(run_id, "loss"), reps)
    return {
        "history_points": n,
        "history_returned": len(hist),
        "history_median_ms": ms,
        "history_reps": reps,
    }


def _count_runs(client: Any, exp: str, filter_string: str = "") -> int:
    """Runs of `exp` matching `filter_string`, counted through every page."""
    total, token = 0, None
    while True:
        page = client.search_runs([exp], filter_string=filter_string, max_results=1000, page_token=token)
        total += len(page)
        token = page.token
        if not token:
            return total


# --------------------------------------------------------------------------- row 5


def worker(args: argparse.Namespace) -> None:
    """One client process of row 5: `threads` clients, each creating runs and logging metrics."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    lock = threading.Lock()
    latencies: list[float] = []
    totals = {"runs_ok": 0, "points_ok": 0, "errors": 0}
    error_text: list[str] = []

    def timed(fn: Any, *a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*a, **kw)
        with lock:
            latencies.append(time.perf_counter() - t0)
        return out

    def client_loop(index: int) -> None:
        client = MlflowClient(tracking_uri=args.url)
        for r in range(args.runs):
            try:
                run_id = timed(client.create_run, args.exp, run_name=f"c{args.proc}-{index}-{r}").info.run_id
            except Exception as exc:  # counted, reported, and the client goes on
                with lock:
                    totals["errors"] += 1
                    error_text.append(repr(exc)[:300])
                continue
            with lock:
                totals["runs_ok"] += 1
            for b in range(args.batches):
                ts = int(time.time() * 1000)
                first = b * args.points
                batch = [Metric("loss", s * 1e-3, ts, s) for s in range(first, first + args.points)]
                try:
                    timed(client.log_batch, run_id, metrics=batch)
                except Exception as exc:
                    with lock:
                        totals["errors"] += 1
                        error_text.append(repr(exc)[:300])
                    continue
                with lock:
                    totals["points_ok"] += args.points
            try:
                timed(client.set_terminated, run_id)
            except Exception as exc:
                with lock:
                    totals["errors"] += 1
                    error_text.append(repr(exc)[:300])

    MlflowClient(tracking_uri=args.url)  # import everything before the common start time
    time.sleep(max(0.0, args.start_at - time.time()))
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = {
        **totals,
        "elapsed_s": time.perf_counter() - t0,
        "latencies": latencies,
        "error_text": error_text[:5],
    }
    print(json.dumps(out), flush=True)


def count_5xx(log_path: str | None) -> int | None:
    """5xx answers in the server's access log (uvicorn's format) so far; None without a log."""
    if not log_path:
        return None
    try:
        with open(log_path, errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    return len(re.findall(r'HTTP/1\.[01]" 5\d\d ', text))


def measure_concurrent(
    client: Any, url: str, sizes: dict[str, int], clients: int, server_log: str | None
) -> dict[str, object]:
    """Row 5: `clients` concurrent clients (threads spread over up to 5 processes).

    MLflow's client retries 5xx answers itself, so they are counted in the server's access log.
    """
    exp = client.create_experiment("bench-concurrent")
    before_5xx = count_5xx(server_log)
    procs = min(5, clients)
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    start_at = time.time() + 8.0  # every process has imported MLflow by then
    _progress(f"5. {clients} concurrent clients in {procs} processes")
    children = []
    for i, threads in enumerate(per):
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            "--url",
            url,
            "--exp",
            exp,
            "--proc",
            str(i),
            "--threads",
            str(threads),
            "--runs",
            str(sizes["conc_runs"]),
            "--batches",
            str(sizes["conc_batches"]),
            "--points",
            str(sizes["conc_points"]),
            "--start-at",
            str(start_at),
        ]
        children.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    results = []
    for child in children:
        stdout, _ = child.communicate()
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        results.append(json.loads(lines[-1]) if child.returncode == 0 and lines else None)
    after_5xx = count_5xx(server_log)
    failed = sum(r is None for r in results)
    done = [r for r in results if r is not None]
    latencies = sorted(x for r in done for x in r["latencies"])
    runs_ok = sum(r["runs_ok"] for r in done)
    points_ok = sum(r["points_ok"] for r in done)
    elapsed = max((r["elapsed_s"] for r in done), default=0.0)
    _progress("5. counting what the store holds")
    runs_found = _count_runs(client, exp)
    points_found = 0
    token = None
    while True:
        page = client.search_runs([exp], max_results=1000, page_token=token)
        for run in page:
            points_found += len(client.get_metric_history(run.info.run_id, "loss"))
        token = page.token
        if not token:
            break
    intended_runs = clients * sizes["conc_runs"]
    intended_points = intended_runs * sizes["conc_batches"] * sizes["conc_points"]
    return {
        "conc_clients": clients,
        "conc_procs": procs,
        "conc_failed_procs": failed,
        "conc_runs_intended": intended_runs,
        "conc_points_intended": intended_points,
        "conc_runs_acked": runs_ok,
        "conc_points_acked": points_ok,
        "conc_runs_found": runs_found,
        "conc_points_found": points_found,
        "conc_lost": max(0, runs_ok - runs_found) + max(0, points_ok - points_found),
        "conc_extra": max(0, runs_found - runs_ok) + max(0, points_found - points_ok),
        "conc_client_errors": sum(r["errors"] for r in done),
        "conc_error_text": [t for r in done for t in r["error_text"]][:5],
        "conc_requests": len(latencies),
        "conc_elapsed_s": elapsed,
        "conc_requests_per_s": len(latencies) / elapsed if elapsed else None,
        "conc_points_per_s": points_ok / elapsed if elapsed else None,
        "conc_client_p50_ms": _pct(latencies, 0.50),
        "conc_client_p99_ms": _pct(latencies, 0.99),
        "conc_p99_ms": _pct(latencies, 0.99),
        "conc_p99_source": "client",
        "conc_5xx": None if before_5xx is None or after_5xx is None else after_5xx - before_5xx,
    }


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1e3


# --------------------------------------------------------------------------- row 6


def measure_get(client: Any, reps: int) -> dict[str, object]:
    """Median latency of `get_run` (one small authenticated read) against this server."""
    exp = client.create_experiment(f"bench-get-{int(time.time() * 1000)}")
    run_id = client.create_run(exp).info.run_id
    for _ in range(5):
        client.get_run(run_id)
    ms = _median_ms(lambda: client.get_run(run_id), reps)
    return {"get_run_median_ms": ms, "get_run_reps": reps}


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--workdir")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument(
        "--phase",
        choices=["main", "again", "auth"],
        default="main",
        help="main: every row; again: rows 1 and 3 over the search runs main made (a later round); "
        "auth: row 6 only",
    )
    ap.add_argument("--server-log", help="the server's log, where its 5xx answers are counted")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--exp")
    ap.add_argument("--proc", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--batches", type=int, default=1)
    ap.add_argument("--points", type=int, default=1)
    ap.add_argument("--start-at", type=float, default=0.0)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    if args.worker:
        worker(args)
        return
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        os.chdir(args.workdir)

    import mlflow
    from mlflow.tracking import MlflowClient

    sizes = QUICK if args.quick else FULL
    client = MlflowClient(tracking_uri=args.url)
    out: dict[str, object] = {
        "side": "mlflow",
        "version": mlflow.__version__,
        "python": platform.python_version(),
        "quick": args.quick,
        "phase": args.phase,
    }
    if args.phase == "main":
        out.update(measure_runs(client, sizes["runs_n"]))
        out.update(measure_points(client, sizes["points_n"]))
        out.update(measure_search(client, sizes["search_runs"], sizes["search_reps"]))
        out.update(measure_history(client, sizes["history_points"], sizes["history_reps"]))
        out.update(measure_concurrent(client, args.url, sizes, args.clients, args.server_log))
    if args.phase == "again":
        out.update(measure_runs(client, sizes["runs_n"]))
        out.update(time_search(client, sizes["search_runs"], sizes["search_reps"]))
        print(json.dumps(out), flush=True)
        return
    _progress(f"6. get_run latency ({args.phase} server)")
    out.update(measure_get(client, sizes["get_reps"]))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
