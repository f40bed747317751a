"""Fill an MLflow SQLite store with the UI benchmark's runs; run by benchmarks/.venv-mlflow's python.

    python _ui_fill_mlflow.py --db FILE --artifacts DIR --runs N --big-points M [--procs K] [--mode bulk|api]

In-process, through MLflow's own tracking store (`SqlAlchemyStore`, what `mlflow server` runs on).
Through its API: `create_run`, `log_batch` (the run's 20 params and its metrics, a compare-set
run's curves in batches of 1,000 items, MLflow's limit), `update_run_info` to FINISHED, by `K`
worker processes each taking every K-th run (SQLite serializes their writes; its busy timeout
makes them wait). `--mode api` sends every run that way (about 20 runs/s here); `--mode bulk`
(the default) only the compare set, and writes the other runs as the same rows (runs, tags,
params, metrics, latest_metrics) through the store's ORM tables, 1,000 runs per transaction; a
few runs of each kind are read back through the store's search and checked. The big run's points
go in through `log_batch`, 1,000 per call. Prints progress lines, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _ui_data as data

LIMIT = 1_000  # metrics per log_batch call (MLflow's limit)


def _store(db: str, artifacts: str) -> Any:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    return SqlAlchemyStore(f"sqlite:///{db}", artifacts)


def _metrics_of(i: int, metrics: dict[str, float], ts: int) -> list[Any]:
    from mlflow.entities import Metric

    if i >= data.COMPARE_N:
        return [Metric(key, value, ts, 0) for key, value in metrics.items()]
    out = []
    for n, (key, final) in enumerate(metrics.items()):
        series = data.curve(final, i * 100 + n * data.CURVE_STEPS)
        out += [Metric(key, value, ts, step) for step, value in enumerate(series)]
    return out


def fill_one(store: Any, exp_id: str, i: int) -> str:
    """Create, log and finish run number `i`; its id."""
    from mlflow.entities import Param, RunStatus, RunTag

    params, metrics = data.run_values(i)
    ts = int(time.time() * 1000)
    tags = [RunTag("team", "vision" if i % 3 else "nlp")]
    run_id = store.create_run(exp_id, "bench", ts, tags, f"run-{i}").info.run_id
    points = _metrics_of(i, metrics, ts)
    plist = [Param(k, v) for k, v in params.items()]
    first = LIMIT - len(plist)  # the limit counts metrics, params and tags together
    store.log_batch(run_id, points[:first], plist, [])
    for start in range(first, len(points), LIMIT):
        store.log_batch(run_id, points[start : start + LIMIT], [], [])
    store.update_run_info(run_id, RunStatus.FINISHED, ts, None)
    return str(run_id)


def worker(db: str, artifacts: str, exp_id: str, n: int, procs: int, index: int, q: Any) -> None:
    """Fill runs index, index + procs, ...; report counts (and the compare set's ids) on `q`."""
    done = 0
    try:
        store = _store(db, artifacts)
        for i in range(index, n, procs):
            run_id = fill_one(store, exp_id, i)
            done += 1
            if i < data.COMPARE_N:
                q.put(("compare", i, run_id))
            if done % 100 == 0:
                q.put(("done", 100, None))
        q.put(("done", done % 100, None))
    except BaseException:
        q.put(("error", index, traceback.format_exc()))
        raise
    finally:
        q.put(("exit", index, None))


def fill_runs(db: str, artifacts: str, exp_id: str, n: int, procs: int) -> list[str]:
    """All `n` runs, by `procs` processes; the compare set's ids in run order."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    workers = [ctx.Process(target=worker, args=(db, artifacts, exp_id, n, procs, k, q)) for k in range(procs)]
    for w in workers:
        w.start()
    compare: dict[int, str] = {}
    done, left = 0, procs
    while left:
        kind, a, b = q.get()
        if kind == "compare":
            compare[a] = b
        elif kind == "error":
            print(b, file=sys.stderr, flush=True)
        elif kind == "done":
            done += a
            data.progress("runs", done, n)
        else:
            left -= 1
    for w in workers:
        w.join()
        if w.exitcode != 0:
            raise SystemExit(f"a fill process failed (exit {w.exitcode})")
    return [compare[i] for i in sorted(compare)]


def fill_bulk(store: Any, exp_id: str, start: int, n: int) -> None:
    """Runs `start`..`n` - 1 written as the rows create_run + log_batch + update_run_info make
    (runs, tags, params, metrics, latest_metrics), 1,000 runs per transaction, through the
    store's own ORM tables and session."""
    import uuid

    from mlflow.entities import RunStatus, SourceType
    from mlflow.entities.lifecycle_stage import LifecycleStage
    from mlflow.store.tracking.dbmodels import models as m
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
    from sqlalchemy import insert

    location = store.get_experiment(exp_id).artifact_location.rstrip("/")
    finished = RunStatus.to_string(RunStatus.FINISHED)
    for lo in range(start, n, LIMIT):
        runs, tags, params, metrics = [], [], [], []
        ts = int(time.time() * 1000)
        for i in range(lo, min(n, lo + LIMIT)):
            run_id = uuid.uuid4().hex
            p, values = data.run_values(i)
            runs.append(
                {
                    "run_uuid": run_id,
                    "name": f"run-{i}",
                    "source_type": SourceType.to_string(SourceType.UNKNOWN),
                    "source_name": "",
                    "entry_point_name": "",
                    "user_id": "bench",
                    "status": finished,
                    "start_time": ts,
                    "end_time": ts,
                    "deleted_time": None,
                    "source_version": "",
                    "lifecycle_stage": LifecycleStage.ACTIVE,
                    "artifact_uri": f"{location}/{run_id}/artifacts",
                    "experiment_id": int(exp_id),
                }
            )
            tags += [
                {"run_uuid": run_id, "key": "team", "value": "vision" if i % 3 else "nlp"},
                {"run_uuid": run_id, "key": MLFLOW_RUN_NAME, "value": f"run-{i}"},
            ]
            params += [{"run_uuid": run_id, "key": k, "value": v} for k, v in p.items()]
            metrics += [
                {"run_uuid": run_id, "key": k, "value": v, "timestamp": ts, "step": 0, "is_nan": False}
                for k, v in values.items()
            ]
        with store.ManagedSessionMaker(read_only=False) as session:
            session.execute(insert(m.SqlRun), runs)
            session.execute(insert(m.SqlTag), tags)
            session.execute(insert(m.SqlParam), params)
            session.execute(insert(m.SqlMetric), metrics)
            session.execute(insert(m.SqlLatestMetric), metrics)
        data.progress("runs", min(n, lo + LIMIT), n)


def check_run(store: Any, exp_id: str, i: int) -> None:
    """Read run `i` back through the store's search and check what it holds (raises if wrong)."""
    from mlflow.entities import ViewType

    found = store.search_runs([exp_id], f"attributes.run_name = 'run-{i}'", ViewType.ALL, max_results=2)
    if len(found) != 1:
        raise SystemExit(f"run-{i}: {len(found)} runs found")
    params, metrics = data.run_values(i)
    run = found[0]
    if run.data.params != params or run.data.metrics != metrics or run.info.status != "FINISHED":
        raise SystemExit(f"run-{i} reads back different from what was written")


def fill_big(store: Any, exp_id: str, n: int) -> str:
    """The run whose metric `big` has `n` points, through log_batch; its id."""
    from mlflow.entities import Metric, RunStatus

    ts = int(time.time() * 1000)
    run_id = store.create_run(exp_id, "bench", ts, [], data.BIG_RUN).info.run_id
    batch = []
    for step, value in data.big_series(n):
        batch.append(Metric(data.BIG_METRIC, value, ts, step))
        if len(batch) == LIMIT:
            store.log_batch(run_id, batch, [], [])
            batch = []
            if (step + 1) % 20_000 == 0:
                data.progress("big", step + 1, n)
    if batch:
        store.log_batch(run_id, batch, [], [])
    data.progress("big", n, n)
    store.update_run_info(run_id, RunStatus.FINISHED, int(time.time() * 1000), None)
    return str(run_id)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--artifacts", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--big-points", type=int, required=True)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--mode", choices=["bulk", "api"], default="bulk")
    args = ap.parse_args()
    store = _store(args.db, args.artifacts)  # creates the schema
    exp_id = store.create_experiment(data.EXPERIMENT)
    t0 = time.perf_counter()
    api_n = args.runs if args.mode == "api" else min(args.runs, data.COMPARE_N)
    compare = fill_runs(args.db, args.artifacts, exp_id, api_n, args.procs)
    if args.mode == "bulk":
        fill_bulk(store, exp_id, api_n, args.runs)
    runs_s = time.perf_counter() - t0
    for i in {0, api_n - 1, api_n, args.runs - 1}:
        check_run(store, exp_id, i)
    t1 = time.perf_counter()
    big = fill_big(store, exp_id, args.big_points)
    big_s = time.perf_counter() - t1
    doc = {"compare": compare, "big": big, "experiment_id": exp_id, "runs_s": runs_s, "big_s": big_s}
    print(json.dumps({**doc, "procs": args.procs, "mode": args.mode}), flush=True)


if __name__ == "__main__":
    main()
