"""Prefect side of `benchmarks/bench_flows.py`; runs under benchmarks/.venv-prefect.

Usage: python _flows_prefect.py ROW [--n N] [--seed S] [--runs K] [--action run|fail|resume|resume-loop]
                                    [--runner thread|process] [--persist]

Same flows, arguments and JSON output as `_flows_plinth.py`. The parent sets PREFECT_HOME (so
the ephemeral API server's database and persisted results live in the work folder),
BENCH_FAIL_MARKER and BENCH_STEP_LOG. Prefect has no resume: `resume` runs the flow again with
the same seed, and the `chain` tasks persist their results with cache_policy=INPUTS + TASK_SOURCE,
so the tasks that finished before the failure are cache hits the second time.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from typing import Any

from prefect import flow, task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.task_runners import ProcessPoolTaskRunner

PROBE = 12_345


@task
def inc(x: int) -> int:
    return x + 1


@task
def noop(i: int) -> int:
    return i


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def make_array(mb: int, seed: int, big: bool) -> Any:
    import numpy as np

    a = np.random.default_rng(seed).random(mb * 125_000)  # mb x 10**6 bytes of float64
    return a if big else float(a[PROBE])


@task
def use_array(a: Any) -> float:
    return a if isinstance(a, float) else float(a[PROBE])


def _stage(name: str, x: int) -> int:
    with open(os.environ["BENCH_STEP_LOG"], "a") as f:
        f.write(name + "\n")
    if name == "s4" and os.path.exists(os.environ["BENCH_FAIL_MARKER"]):
        raise RuntimeError("planned failure in step 4 of 5")
    return x + 1


# INPUTS alone keys on the arguments only, so s2(7) would hit s1(7)'s entry: add the task's source.
_CACHED = {"persist_result": True, "cache_policy": INPUTS + TASK_SOURCE}


@task(**_CACHED)
def s1(x: int) -> int:
    return _stage("s1", x)


@task(**_CACHED)
def s2(x: int) -> int:
    return _stage("s2", x)


@task(**_CACHED)
def s3(x: int) -> int:
    return _stage("s3", x)


@task(**_CACHED)
def s4(x: int) -> int:
    return _stage("s4", x)


@task(**_CACHED)
def s5(x: int) -> int:
    return _stage("s5", x)


def build(runner: str, persist: bool) -> dict[str, Any]:
    """The flows, with the chosen task runner (Prefect's default is ThreadPoolTaskRunner())."""
    task_runner = ProcessPoolTaskRunner(max_workers=os.cpu_count()) if runner == "process" else None
    opts: dict[str, Any] = {"task_runner": task_runner} if task_runner else {}
    arr_make, arr_use = make_array, use_array
    if persist:  # the stored variant of the hand-off: both results pickled to result storage
        arr_make = make_array.with_options(persist_result=True)
        arr_use = use_array.with_options(persist_result=True)

    @flow(**opts)
    def linear(n: int = 10, seed: int = 0) -> int:
        x = seed
        for _ in range(n):
            x = inc(x)
        return x

    @flow(**opts)
    def fan(n: int = 1000, seed: int = 0) -> int:
        return total(noop.map(range(seed, seed + n)))

    @flow(**opts)
    def handoff(n: int = 100, seed: int = 0) -> float:
        return arr_use(arr_make(n, seed, True))

    @flow(**opts)
    def handoff_tiny(n: int = 100, seed: int = 0) -> float:
        return arr_use(arr_make(n, seed, False))

    @flow(**opts)
    def chain(seed: int = 0) -> int:
        return s5(s4(s3(s2(s1(seed)))))

    return {"linear": linear, "fan": fan, "handoff": handoff, "handoff_tiny": handoff_tiny, "resume": chain}


ROWS = ["fan", "handoff", "handoff_tiny", "linear", "resume"]


def _read_log() -> list[str]:
    path = os.environ["BENCH_STEP_LOG"]
    if not os.path.exists(path):
        return []
    with open(path) as f:
        names = f.read().split()
    os.unlink(path)
    return names


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("row", choices=ROWS)
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--action", choices=["run", "fail", "resume", "resume-loop"], default="run")
    ap.add_argument("--run-id")  # unused: the rerun finds its cache by inputs
    ap.add_argument("--runner", choices=["thread", "process"], default="thread")
    ap.add_argument("--persist", action="store_true")
    args = ap.parse_args()

    target = build(args.runner, args.persist)[args.row]
    params: dict[str, Any] = {"n": args.n} if args.row != "resume" else {}
    times: list[float] = []
    results: list[Any] = []
    executed: list[list[str]] = []
    run_id = None
    marker = os.environ.get("BENCH_FAIL_MARKER", "")
    for k in range(args.runs):
        seed = args.seed + k
        if args.action in ("run", "resume"):
            t0 = time.perf_counter()
            state = target(seed=seed, **params, return_state=True)
            value = state.result()
            times.append(time.perf_counter() - t0)
        elif args.action == "fail":  # the parent has created the marker
            t0 = time.perf_counter()
            state = target(seed=seed, return_state=True)
            times.append(time.perf_counter() - t0)
            value = "FAILED" if state.is_failed() else state.type.value
        else:  # resume-loop: fail then rerun, both in this process
            open(marker, "w").close()
            failed = target(seed=seed, return_state=True)
            os.unlink(marker)
            assert failed.is_failed(), failed
            _read_log()
            t0 = time.perf_counter()
            state = target(seed=seed, return_state=True)
            value = state.result()
            times.append(time.perf_counter() - t0)
            executed.append(_read_log())
        results.append(value)
        run_id = str(state.state_details.flow_run_id)
    print(
        json.dumps(
            {
                "side": "prefect",
                "version": importlib.metadata.version("prefect"),
                "python": platform.python_version(),
                "times": times,
                "results": results,
                "run_id": run_id,
                "executed": executed,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
