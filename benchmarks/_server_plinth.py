"""plinth side of `benchmarks/bench_server.py`; runs in the project's interpreter.

Usage:
    python _server_plinth.py --url URL --workdir DIR [--quick] [--clients 50] [--server-log FILE]
    python _server_plinth.py --worker ...   (one of the concurrent client processes; internal)

Runs as a client of a running `plinth server` at URL: PLINTH_STORE=URL and PLINTH_TOKEN are in
its environment (BENCH_ADMIN_TOKEN too, to read the server's /metrics). Prints one JSON line of
results on stdout (progress goes to stderr). The workload mirrors `_server_mlflow.py`; row 6 also
times the token check in-process, on an identity store of its own under DIR.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from _plinth_side import search_rows  # the tracking benchmark's seeded corpus, so the sides match

CHUNK = 1000  # points per log_metric_points call: the same chunking MLflow's log_batch forces
FILL_BATCH = 500  # runs per create_runs call while filling the search corpus (setup, not timed)

FULL = {
    "runs_n": 1_000,
    "points_n": 1_000_000,
    "search_runs": 5_000,
    "search_reps": 20,
    "history_points": 100_000,
    "history_reps": 5,
    "conc_runs": 4,  # runs per concurrent client
    "conc_batches": 5,  # write calls per run
    "conc_points": 200,  # points per write call
    "get_reps": 200,
    "auth_calls": 100_000,
}
QUICK = {
    "runs_n": 100,
    "points_n": 100_000,
    "search_runs": 500,
    "search_reps": 10,
    "history_points": 10_000,
    "history_reps": 3,
    "conc_runs": 2,
    "conc_batches": 2,
    "conc_points": 100,
    "get_reps": 50,
    "auth_calls": 20_000,
}

WHERE = "metrics.m0 > 0.5 and params.p1 = '3'"
ORDER_BY = ["-metrics.m2"]


def _progress(msg: str) -> None:
    print(f"[plinth] {msg}", file=sys.stderr, flush=True)


def _median_ms(fn: Any, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def analyze() -> bool:
    """`ANALYZE` the PostgreSQL database behind the server (BENCH_PG_DSN), as autovacuum would
    within a minute of a bulk load; False where there is none (SQLite)."""
    dsn = os.environ.get("BENCH_PG_DSN")
    if not dsn:
        return False
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return True


# --------------------------------------------------------------------------- rows 1-4


def measure_runs(plinth: Any, url: str, n: int, *, store_row: bool = True) -> dict[str, object]:
    """Row 1: runs started and ended one after the other (`start_run` + `end`); row 1b (unless
    `store_row` is False): the same through the store API (`create_run` + `end_run`, what
    MlflowClient's calls do)."""
    from plinth.core.entities import RunStatus
    from plinth.tracking.context import backend

    for _ in range(5):  # warm-up
        plinth.start_run(experiment="bench-runs").end()
    _progress(f"1. {n} runs: start_run + end")
    before = server_metrics(url)
    t0 = time.perf_counter()
    for _ in range(n):
        plinth.start_run(experiment="bench-runs").end()
    dt = time.perf_counter() - t0
    busy = server_seconds(before, server_metrics(url))
    measured: dict[str, object] = {"runs_n": n, "runs_per_s": n / dt, "runs_s": dt, "runs_server_s": busy}
    if not store_row:
        return measured

    store = backend().store
    _progress(f"1b. {n} runs: store create_run + end_run")
    t1 = time.perf_counter()
    for _ in range(n):
        run = store.create_run(
            experiment="bench-runs-store",
            name=None,
            params={},
            tags={},
            environment=None,
            heartbeat_s=10.0,
            user="bench",
        )
        store.end_run(run.id, RunStatus.FINISHED, None, _now_ms())
    dt_store = time.perf_counter() - t1
    return {**measured, "store_runs_per_s": n / dt_store}


def _log_series(plinth: Any, run: Any, key: str, n: int) -> None:
    import numpy as np

    values = np.arange(n, dtype=np.float64) * 1e-3
    steps = np.arange(n, dtype=np.int64)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        run.log_metric_points(key, values[start:stop], steps[start:stop])


def measure_points(plinth: Any, url: str, n: int) -> dict[str, object]:
    """Row 2: metric points logged in 1,000-point calls, then flushed: durable = acknowledged by
    the server."""
    with plinth.start_run(experiment="bench-points") as run:
        _log_series(plinth, run, "warmup", CHUNK)
        run.flush()
        _progress(f"2. log_metric_points {n:,} points in calls of {CHUNK}, then flush")
        before = server_metrics(url)
        t0 = time.perf_counter()
        _log_series(plinth, run, "loss", n)
        run.flush()
        dt = time.perf_counter() - t0
        busy = server_seconds(before, server_metrics(url))
    return {
        "points_n": n,
        "points_per_s": n / dt,
        "points_s": dt,
        "points_server_s": busy,
        "points_chunk": CHUNK,
    }


def measure_search(plinth: Any, url: str, n: int, reps: int) -> dict[str, object]:
    """Row 3: a filtered, ordered search with limit 10 over `n` runs (filled first, not timed)."""
    setup_s = fill_search(n)
    analyzed = analyze()
    return {"search_setup_s": setup_s, "search_analyzed": analyzed, **time_search(plinth, url, n, reps)}


def fill_search(n: int) -> float:
    """Create the `n` runs row 3 searches (params and one value of each metric); seconds taken."""
    from plinth.core.entities import RunStatus
    from plinth.store.base import NewRun
    from plinth.tracking.context import backend

    store = backend().store
    _progress(f"3. search: creating {n:,} runs ({FILL_BATCH} per create_runs call; setup, not timed)")
    t0 = time.perf_counter()
    rows = search_rows(n)
    seq = 0
    for start in range(0, n, FILL_BATCH):
        chunk = rows[start : start + FILL_BATCH]
        specs = [
            NewRun(
                experiment="bench-search",
                name=None,
                params=params,
                tags={},
                environment=None,
                heartbeat_s=10.0,
                user="bench",
            )
            for params, _ in chunk
        ]
        runs = store.create_runs(specs)
        ts = _now_ms()
        points = []
        for run, (_, metrics) in zip(runs, chunk, strict=True):
            for key, value in metrics.items():
                points.append((run.id, key, 0, seq, ts, value))
                seq += 1
        store.write_metrics(points)
        store.end_runs([(run.id, RunStatus.FINISHED, None, ts) for run in runs])
    return time.perf_counter() - t0


def time_search(plinth: Any, url: str, n: int, reps: int) -> dict[str, object]:
    """Row 3's timing over the runs `fill_search` made: the median of `reps` searches."""

    def search(limit: int | None) -> Any:
        return plinth.search_runs(experiment="bench-search", where=WHERE, order_by=ORDER_BY, limit=limit)

    matches = len(search(None))
    first = search(10)  # warm-up, not timed
    _progress(f"3. search {n:,} runs: filter + order, limit 10, {reps} times")
    before = server_metrics(url)
    ms = _median_ms(lambda: search(10), reps)
    busy = server_seconds(before, server_metrics(url))
    return {
        "search_n_runs": n,
        "search_matches": matches,
        "search_returned": len(first),
        "search_top_m2": [_rounded(r.metrics.get("m2")) for r in first],
        "search_median_ms": ms,
        "search_server_ms": None if busy is None else busy / reps * 1e3,
        "search_reps": reps,
    }


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 6)


def measure_history(plinth: Any, url: str, n: int, reps: int) -> dict[str, object]:
    """Row 4: reading one metric's whole history (logged first through the batch path, not timed)."""
    _progress(f"4. metric history: logging {n:,} points (setup, not timed)")
    with plinth.start_run(experiment="bench-history") as run:
        run_id = run.id
        _log_series(plinth, run, "loss", n)
        run.flush()
    analyze()
    hist = plinth.metric_history(run_id, "loss")  # warm-up, not timed
    before = server_metrics(url)
    ms = _median_ms(lambda: plinth.metric_history(run_id, "loss"), reps)
    busy = server_seconds(before, server_metrics(url))
    return {
        "history_points": n,
        "history_returned": len(hist),
        "history_median_ms": ms,
        "history_server_ms": None if busy is None else busy / reps * 1e3,
        "history_reps": reps,
    }


# --------------------------------------------------------------------------- row 5


def worker(args: argparse.Namespace) -> None:
    """One client process of row 5: `threads` clients, each with its own connection to the
    server, creating runs and writing metric points through the store API."""
    from plinth.core.entities import RunStatus
    from plinth.core.settings import Settings
    from plinth.store.open import open_store

    settings = Settings.from_env()
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

    def failed(exc: BaseException) -> None:
        with lock:
            totals["errors"] += 1
            error_text.append(repr(exc)[:300])

    stores = [open_store(settings) for _ in range(args.threads)]

    def client_loop(index: int) -> None:
        store = stores[index]
        for r in range(args.runs):
            try:
                run = timed(
                    store.create_run,
                    experiment=args.exp,
                    name=f"c{args.proc}-{index}-{r}",
                    params={},
                    tags={},
                    environment=None,
                    heartbeat_s=30.0,
                    user="bench",
                )
            except Exception as exc:  # counted, reported, and the client goes on
                failed(exc)
                continue
            with lock:
                totals["runs_ok"] += 1
            for b in range(args.batches):
                ts = _now_ms()
                first = b * args.points
                rows = [(run.id, "loss", s, s, ts, s * 1e-3) for s in range(first, first + args.points)]
                try:
                    timed(store.write_metrics, rows)
                except Exception as exc:
                    failed(exc)
                    continue
                with lock:
                    totals["points_ok"] += args.points
            try:
                timed(store.end_run, run.id, RunStatus.FINISHED, None, _now_ms())
            except Exception as exc:
                failed(exc)

    time.sleep(max(0.0, args.start_at - time.time()))
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for store in stores:
        store.close()
    out = {**totals, "elapsed_s": elapsed, "latencies": latencies, "error_text": error_text[:5]}
    print(json.dumps(out), flush=True)


@dataclass
class ServerMetrics:
    """What the server's /metrics said at one moment."""

    buckets: dict[str, dict[float, float]]  # route -> cumulative count per upper bound (`le`)
    seconds: dict[str, float]  # route -> total seconds spent answering it
    statuses: dict[str, float]  # status -> answers


def server_metrics(url: str, admin: str | None = None) -> ServerMetrics | None:
    """The server's latency histogram per route and its answers per status, from /metrics (read
    with BENCH_ADMIN_TOKEN); None when they cannot be read."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    admin = admin or os.environ.get("BENCH_ADMIN_TOKEN")
    headers = {"Authorization": f"Bearer {admin}"} if admin else {}
    try:
        resp = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        _progress(f"   /metrics: {exc!r}")
        return None
    if resp.status_code != 200:
        _progress(f"   /metrics answered {resp.status_code}")
        return None
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    seconds: dict[str, float] = defaultdict(float)
    statuses: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            if sample.name == "plinth_server_request_latency_seconds_bucket":
                buckets[sample.labels["route"]][float(sample.labels["le"])] += sample.value
            elif sample.name == "plinth_server_request_latency_seconds_sum":
                seconds[sample.labels["route"]] += sample.value
            elif sample.name == "plinth_server_requests_total":
                statuses[sample.labels["status"]] += sample.value
    return ServerMetrics(buckets, seconds, statuses)


def server_seconds(before: ServerMetrics | None, after: ServerMetrics | None) -> float | None:
    """Seconds the server spent answering requests (other than /metrics) between two readings."""
    if before is None or after is None:
        return None
    return sum(v - before.seconds.get(r, 0.0) for r, v in after.seconds.items() if r != "/metrics")


def _quantile(cumulative: dict[float, float], q: float) -> float | None:
    """The `q` quantile of cumulative bucket counts, interpolated as Prometheus does."""
    try:
        from plinth.server.metrics import quantile

        return quantile(cumulative, q)
    except ImportError:
        bounds = sorted(cumulative)
        total = cumulative[bounds[-1]] if bounds else 0.0
        if total <= 0:
            return None
        rank, lower, below = q * total, 0.0, 0.0
        for bound in bounds:
            if cumulative[bound] >= rank:
                if bound == float("inf"):
                    return lower
                count = cumulative[bound]
                return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
            lower, below = bound, cumulative[bound]
        return lower


def count_5xx_logged(log_path: str | None) -> int | None:
    if not log_path:
        return None
    try:
        with open(log_path, errors="replace") as fh:
            return len(re.findall(r'HTTP/1\.[01]" 5\d\d ', fh.read()))
    except OSError:
        return None


def measure_concurrent(
    plinth: Any, url: str, sizes: dict[str, int], clients: int, server_log: str | None
) -> dict[str, object]:
    """Row 5: `clients` concurrent clients (threads spread over up to 5 processes); what the store
    holds afterwards, the server's 5xx answers and its own p99 latency over the phase."""
    exp = "bench-concurrent"
    procs = min(5, clients)
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    before = server_metrics(url)
    before_log = count_5xx_logged(server_log)
    start_at = time.time() + 6.0  # every process has imported plinth by then
    _progress(f"5. {clients} concurrent clients in {procs} processes")
    children = []
    for i, threads in enumerate(per):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--url", url, "--exp", exp]
        cmd += ["--proc", str(i), "--threads", str(threads), "--runs", str(sizes["conc_runs"])]
        cmd += ["--batches", str(sizes["conc_batches"]), "--points", str(sizes["conc_points"])]
        cmd += ["--start-at", str(start_at)]
        children.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    results = []
    for child in children:
        stdout, _ = child.communicate()
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        results.append(json.loads(lines[-1]) if child.returncode == 0 and lines else None)
    after = server_metrics(url)
    after_log = count_5xx_logged(server_log)
    done = [r for r in results if r is not None]
    latencies = sorted(x for r in done for x in r["latencies"])
    runs_ok = sum(r["runs_ok"] for r in done)
    points_ok = sum(r["points_ok"] for r in done)
    elapsed = max((r["elapsed_s"] for r in done), default=0.0)

    _progress("5. counting what the store holds")
    runs = plinth.search_runs(experiment=exp, limit=None) if runs_ok else []
    runs_found = len(runs)
    points_found = sum(len(plinth.metric_history(run.id, "loss")) for run in runs)

    out: dict[str, object] = {
        "conc_clients": clients,
        "conc_procs": procs,
        "conc_failed_procs": sum(r is None for r in results),
        "conc_runs_intended": clients * sizes["conc_runs"],
        "conc_points_intended": clients * sizes["conc_runs"] * sizes["conc_batches"] * sizes["conc_points"],
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
    }
    if before is not None and after is not None:
        total: dict[float, float] = defaultdict(float)
        per_route = {}
        for route, cumulative in after.buckets.items():
            if route == "/metrics":
                continue
            diff = {b: c - before.buckets.get(route, {}).get(b, 0.0) for b, c in cumulative.items()}
            for bound, count in diff.items():
                total[bound] += count
            if diff.get(float("inf"), 0.0) > 0:
                route_p99 = _quantile(diff, 0.99)
                per_route[route] = [None if route_p99 is None else route_p99 * 1e3, int(diff[float("inf")])]
        out["conc_route_p99"] = per_route
        p99 = _quantile(dict(total), 0.99)
        out["conc_p99_ms"] = None if p99 is None else p99 * 1e3
        out["conc_p99_source"] = "server"
        out["conc_server_requests"] = int(total.get(float("inf"), 0.0))
        out["conc_5xx"] = int(
            sum(v - before.statuses.get(s, 0.0) for s, v in after.statuses.items() if s.startswith("5"))
        )
    else:
        out["conc_p99_ms"] = out["conc_client_p99_ms"]
        out["conc_p99_source"] = "client"
        if before_log is not None and after_log is not None:
            out["conc_5xx"] = after_log - before_log
    return out


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1e3


# --------------------------------------------------------------------------- row 6


def measure_auth(workdir: str, calls: int) -> dict[str, object]:
    """Row 6: the token check the server runs per request (authenticate + authorize) on a cache
    hit, timed in-process over a real identity store (SQLite, under `workdir`)."""
    from plinth.access import Authorizer, LocalResolver
    from plinth.core.access import Right, Role
    from plinth.core.identity import PrincipalKind
    from plinth.store.sql.identity import SqlIdentity

    url = f"sqlite:///{os.path.join(workdir, 'identity.db')}"
    identity = SqlIdentity(url, audit_key=secrets.token_hex(32))
    identity.ensure_principal("bench", PrincipalKind.SERVICE)
    identity.set_member("default", "bench", PrincipalKind.SERVICE, Role.EDITOR, by="admin")
    _, secret = identity.create_token(
        name="bench",
        principal="bench",
        kind=PrincipalKind.SERVICE,
        workspace="default",
        role=Role.EDITOR,
        expires_ms=None,
        by="admin",
    )
    authorizer = Authorizer(LocalResolver(identity), admin_token="plt_" + secrets.token_urlsafe(32))
    principal = authorizer.authenticate(secret, "127.0.0.1")  # fills the cache, not timed
    authorizer.authorize(principal, "default", Right.WRITE)
    _progress(f"6. token check in-process: {calls:,} calls (authenticate + authorize, cache hit)")
    reps = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls // 5):
            p = authorizer.authenticate(secret, "127.0.0.1")
            authorizer.authorize(p, "default", Right.WRITE)
        reps.append((time.perf_counter() - t0) / (calls // 5))
    identity.close()
    return {"auth_check_ms": statistics.median(reps) * 1e3, "auth_calls": calls}


def measure_auth_http(url: str, token: str | None, reps: int) -> dict[str, object]:
    """Row 6, for the notes: an authenticated GET against the unauthenticated /healthz, over HTTP."""
    import httpx

    route = "/api/v1/whoami"
    with httpx.Client(base_url=url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if http.get(route, headers=headers).status_code != 200:
            return {}
        for _ in range(5):
            http.get("/healthz")
            http.get(route, headers=headers)
        health = _median_ms(lambda: http.get("/healthz"), reps)
        authed = _median_ms(lambda: http.get(route, headers=headers), reps)
    return {"health_e2e_ms": health, "auth_e2e_ms": authed, "auth_route": route}


# --------------------------------------------------------------------------- main


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--workdir")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument(
        "--server-log", help="the server's log, where 5xx answers are counted if /metrics cannot be read"
    )
    ap.add_argument(
        "--again",
        action="store_true",
        help="rows 1 and 3 only, over the search runs an earlier run of this script made (a later round)",
    )
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--exp")
    ap.add_argument("--proc", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--batches", type=int, default=1)
    ap.add_argument("--points", type=int, default=1)
    ap.add_argument("--start-at", type=float, default=0.0)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    workdir = os.path.abspath(args.workdir or ".")
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)

    import plinth

    version = getattr(plinth, "__version__", None) or _dist_version("plinth")
    _progress(
        f"plinth {version} from {os.path.dirname(plinth.__file__)}, store {os.environ.get('PLINTH_STORE')}"
    )
    sizes = QUICK if args.quick else FULL
    out: dict[str, object] = {
        "side": "plinth",
        "version": version,
        "python": platform.python_version(),
        "quick": args.quick,
    }
    if args.again:
        out.update(measure_runs(plinth, args.url, sizes["runs_n"], store_row=False))
        out.update(time_search(plinth, args.url, sizes["search_runs"], sizes["search_reps"]))
        print(json.dumps(out), flush=True)
        return
    out.update(measure_runs(plinth, args.url, sizes["runs_n"]))
    out.update(measure_points(plinth, args.url, sizes["points_n"]))
    out.update(measure_search(plinth, args.url, sizes["search_runs"], sizes["search_reps"]))
    out.update(measure_history(plinth, args.url, sizes["history_points"], sizes["history_reps"]))
    out.update(measure_concurrent(plinth, args.url, sizes, args.clients, args.server_log))
    out.update(measure_auth(workdir, sizes["auth_calls"]))
    out.update(measure_auth_http(args.url, os.environ.get("PLINTH_TOKEN"), sizes["get_reps"]))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
