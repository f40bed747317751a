"""plinth side of `benchmarks/bench_flows.py`; runs in the project's interpreter.

Usage: python _flows_plinth.py ROW [--n N] [--seed S] [--runs K] [--action run|fail|resume|resume-loop]
                                   [--run-id ID]

The parent sets PLINTH_HOME (the store), BENCH_FAIL_MARKER (step 4 of `chain` raises while that
file exists) and BENCH_STEP_LOG (the `chain` steps append their names to it). Runs the row's flow
`--runs` times in this process, each with its own seed, and prints one JSON line: the in-process
seconds of each run, their results, and the run id of the last one.
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

import plinth
from plinth import flow, step

PROBE = 12_345  # the array element both hand-off flows return, so their results can be compared


# --------------------------------------------------------------------------- 1. linear


@step
def inc(x: int) -> int:
    return x + 1


@flow
def linear(n: int = 10, seed: int = 0) -> int:
    x = seed
    for _ in range(n):
        x = inc(x)
    return x


# --------------------------------------------------------------------------- 2./3. fan-out + join


@step
def noop(i: int) -> int:
    return i


@step
def total(xs: list[int]) -> int:
    return sum(xs)


@flow
def fan(n: int = 1000, seed: int = 0) -> int:
    return total(noop.map(range(seed, seed + n)))


# --------------------------------------------------------------------------- 4. hand-off


@step
def make_array(mb: int, seed: int, big: bool) -> Any:
    import numpy as np

    a = np.random.default_rng(seed).random(mb * 125_000)  # mb x 10**6 bytes of float64
    return a if big else float(a[PROBE])


@step
def use_array(a: Any) -> float:
    return a if isinstance(a, float) else float(a[PROBE])


@flow
def handoff(n: int = 100, seed: int = 0) -> float:
    return use_array(make_array(n, seed, True))


@flow
def handoff_tiny(n: int = 100, seed: int = 0) -> float:
    return use_array(make_array(n, seed, False))


# --------------------------------------------------------------------------- 5. resume


def _stage(name: str, x: int) -> int:
    with open(os.environ["BENCH_STEP_LOG"], "a") as f:
        f.write(name + "\n")
    if name == "s4" and os.path.exists(os.environ["BENCH_FAIL_MARKER"]):
        raise RuntimeError("planned failure in step 4 of 5")
    return x + 1


@step
def s1(x: int) -> int:
    return _stage("s1", x)


@step
def s2(x: int) -> int:
    return _stage("s2", x)


@step
def s3(x: int) -> int:
    return _stage("s3", x)


@step
def s4(x: int) -> int:
    return _stage("s4", x)


@step
def s5(x: int) -> int:
    return _stage("s5", x)


@flow
def chain(seed: int = 0) -> int:
    return s5(s4(s3(s2(s1(seed)))))


FLOWS = {"linear": linear, "fan": fan, "handoff": handoff, "handoff_tiny": handoff_tiny, "resume": chain}


# --------------------------------------------------------------------------- main


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
    ap.add_argument("row", choices=sorted(FLOWS))
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--action", choices=["run", "fail", "resume", "resume-loop"], default="run")
    ap.add_argument("--run-id")
    args = ap.parse_args()

    target = FLOWS[args.row]
    params: dict[str, Any] = {"n": args.n} if args.row != "resume" else {}
    times: list[float] = []
    results: list[Any] = []
    executed: list[list[str]] = []
    run_id = None
    marker = os.environ.get("BENCH_FAIL_MARKER", "")
    for k in range(args.runs):
        seed = args.seed + k
        if args.action == "run":
            t0 = time.perf_counter()
            r = target.run(seed=seed, **params)
            value = r.result
            times.append(time.perf_counter() - t0)
        elif args.action == "fail":  # the parent has created the marker
            t0 = time.perf_counter()
            r = target.run(seed=seed, raise_on_failure=False)
            times.append(time.perf_counter() - t0)
            value = r.status.value
        elif args.action == "resume":
            t0 = time.perf_counter()
            r = plinth.resume_flow(args.run_id)
            value = r.result
            times.append(time.perf_counter() - t0)
        else:  # resume-loop: fail then resume, both in this process
            open(marker, "w").close()
            failed = target.run(seed=seed, raise_on_failure=False)
            os.unlink(marker)
            assert failed.status.value == "FAILED", failed.status
            _read_log()
            t0 = time.perf_counter()
            r = plinth.resume_flow(failed.id)
            value = r.result
            times.append(time.perf_counter() - t0)
            executed.append(_read_log())
        results.append(value)
        run_id = r.id
    print(
        json.dumps(
            {
                "side": "plinth",
                "version": importlib.metadata.version("plinth"),
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
