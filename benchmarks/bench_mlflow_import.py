"""`plinth import mlflow` benchmark: an MLflow SQLite store of 10,000 runs x 10 metrics x 100 steps.

    python benchmarks/bench_mlflow_import.py [--runs N] [--procs K] [--keep]

The MLflow store is written once by MLflow 3.17.2 itself (this file run by the MLflow venv's
python with `--fill`): its `SqlAlchemyStore`, what `mlflow server` runs on, `create_run`, then
`log_batch` with the run's params and its 1,000 points (MLflow's limit per call), then
`update_run_info` to FINISHED, in K processes each taking every K-th run. The store is cached
under benchmarks/.work/mlflow-import-<runs>/ (a complete one has `done.json`); delete the folder
to write it again.

The timed part is one `plinth import mlflow --from sqlite:///...` process into a fresh
PLINTH_HOME (a new folder under benchmarks/.work, removed afterwards unless --keep), from its
start to its exit, with the process's startup included. The import is then checked: every run
and every point arrived. Target: at most 60 s for 10,000 runs.

Stdlib only at import time: the MLflow venv runs this same file for the fill.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
METRICS = 10
STEPS = 100
PARAMS = 5
TARGET_S = 60.0
LIMIT = 1_000  # items per log_batch call, MLflow's limit
T0 = 1_700_000_000_000
REPO_MLFLOW_PYTHON = REPO / ".venv-mlflow" / "bin" / "python"
QUIET_MLFLOW = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "GIT_PYTHON_REFRESH": "quiet"}


# --------------------------------------------------------------------------- the fill (MLflow venv)


def fill_run(store: object, exp_id: str, i: int) -> None:
    """Create run `i`, log its params and METRICS x STEPS points, and finish it."""
    from mlflow.entities import Metric, Param, RunStatus, RunTag

    start = T0 + i * 1000
    run = store.create_run(exp_id, "bench", start, [RunTag("team", f"t{i % 7}")], f"run-{i}")  # type: ignore[attr-defined]
    run_id = run.info.run_id
    params = [Param(f"p{k}", str((i * 31 + k) % 97)) for k in range(PARAMS)]
    points = [
        Metric(f"m{k}", math.sin(i + k + s / 10.0), start + s, s)
        for k in range(METRICS)
        for s in range(STEPS)
    ]
    first = LIMIT - len(params)
    store.log_batch(run_id, points[:first], params, [])  # type: ignore[attr-defined]
    for at in range(first, len(points), LIMIT):
        store.log_batch(run_id, points[at : at + LIMIT], [], [])  # type: ignore[attr-defined]
    store.update_run_info(run_id, RunStatus.FINISHED, start + STEPS, None)  # type: ignore[attr-defined]


def fill_worker(db: str, exp_id: str, runs: int, procs: int, index: int) -> None:
    """Write runs index, index + procs, ... (SQLite serializes the processes' writes)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{db}", str(Path(db).parent / "mlruns"))
    for i in range(index, runs, procs):
        fill_run(store, exp_id, i)
        if index == 0 and i % (procs * 500) == 0:
            print(f"[fill] run {i}/{runs}", file=sys.stderr, flush=True)


def fill(db: str, runs: int, procs: int) -> None:
    """Write the whole store: one experiment, `runs` runs, in `procs` processes."""
    import multiprocessing as mp

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{db}", str(Path(db).parent / "mlruns"))
    exp_id = store.create_experiment("bench-import")
    workers = [mp.Process(target=fill_worker, args=(db, exp_id, runs, procs, k)) for k in range(procs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
        if w.exitcode != 0:
            raise SystemExit(f"a fill process failed with exit code {w.exitcode}")


# --------------------------------------------------------------------------- the benchmark (plinth venv)


def mlflow_python() -> str:
    """A python with MLflow 3.17.2: the repository's .venv-mlflow, else benchmarks/.venv-mlflow."""
    if REPO_MLFLOW_PYTHON.exists():
        return str(REPO_MLFLOW_PYTHON)
    sys.path.insert(0, str(HERE))
    import harness

    return harness.ensure_mlflow_venv()


def cached_store(runs: int, procs: int) -> Path:
    """The MLflow SQLite file of `runs` runs, written on first use."""
    folder = WORK / f"mlflow-import-{runs}"
    db = folder / "mlflow.db"
    if (folder / "done.json").exists():
        return db
    folder.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    print(f"[bench] writing the MLflow store of {runs:,} runs with MLflow itself (once)", file=sys.stderr)
    started = time.perf_counter()
    env = {**os.environ, **QUIET_MLFLOW}
    command = [mlflow_python(), __file__, "--fill", str(db), "--runs", str(runs), "--procs", str(procs)]
    subprocess.run(command, check=True, env=env)
    took = time.perf_counter() - started
    (folder / "done.json").write_text(json.dumps({"runs": runs, "fill_s": round(took, 1)}))
    return db


def time_import(db: Path, home: Path) -> float:
    """Seconds `plinth import mlflow` takes in a process of its own, into PLINTH_HOME=home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(PLINTH_HOME=str(home), PLINTH_USER="bench")
    command = [sys.executable, "-m", "plinth", "import", "mlflow", "--from", f"sqlite:///{db}"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"plinth import mlflow failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    print(done.stdout, file=sys.stderr)
    return took


def check_import(home: Path, runs: int) -> int:
    """The points plinth holds after the import; exits when a run or a point is missing."""
    from plinth.core.settings import Settings
    from plinth.store.open import open_store

    settings = Settings.from_env({"PLINTH_HOME": str(home)})
    store = open_store(settings)
    try:
        found = store.count_runs(experiments=["bench-import"], where=None, now_ms=int(time.time() * 1000))
        if found != runs:
            raise SystemExit(f"plinth holds {found} runs after the import, not {runs}")
        sample = store.search_runs(experiments=["bench-import"], where=None, order_by=(), limit=5, now_ms=0)
        for run in sample:
            for k in range(METRICS):
                if len(store.metric_history(run.id, f"m{k}")) != STEPS:
                    raise SystemExit(f"run {run.id} lacks points of m{k}")
    finally:
        store.close()
    return runs * METRICS * STEPS


SECTION = "mlflow_import"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000, help="runs in the MLflow store (default 10,000)")
    ap.add_argument("--procs", type=int, default=2, help="processes writing the MLflow store (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the plinth home the import wrote")
    ap.add_argument("--fill", metavar="DB", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fill:
        fill(args.fill, args.runs, args.procs)
        return 0
    sys.path.insert(0, str(HERE))
    import harness

    db = cached_store(args.runs, args.procs)
    with harness.work_folder("mlflow-import", args.keep) as base:
        load_before = harness.load_text()
        seconds = time_import(db, base / "home")
        points = check_import(base / "home", args.runs)
    met = seconds <= TARGET_S * args.runs / 10_000
    header = ["runs", "points", "seconds", "points/s", "target", "met?"]
    body = [
        [
            f"{args.runs:,}",
            f"{points:,}",
            f"{seconds:.1f}",
            f"{points / seconds:,.0f}",
            f"<= {TARGET_S * args.runs / 10_000:.0f} s",
            "yes" if met else "NO",
        ]
    ]
    harness.print_table(body, "plinth import mlflow from SQLite", header)
    info = harness.machine()
    notes = [
        f"MLflow store: {args.runs:,} runs x 10 metrics x 100 steps, written by MLflow 3.17.2 "
        "(cached under benchmarks/.work/); the time is the whole `plinth import mlflow` command "
        "into a fresh plinth home, and every point is counted back from plinth's store afterwards",
        f"load average before the import: {load_before}, after: {harness.load_text()}",
    ]
    harness.report(info, notes)
    versions = f"MLflow 3.17.2 store (SQLite); plinth (Python {info['python']})"
    make = functools.partial(
        harness.section, SECTION, "bench_mlflow_import.py", False, info, versions, header, body, notes
    )
    return harness.finish(args.runs == 10_000, make, SECTION, [] if met else ["import over the target"])


if __name__ == "__main__":
    sys.exit(main())
