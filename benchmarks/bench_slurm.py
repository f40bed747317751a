"""SLURM benchmark: plinth flows on SLURM vs the same calls as plain sbatch jobs and plinth's local executor.

    python benchmarks/bench_slurm.py [--quick] [--only ROWS] [--write|--no-write] [--keep]

Needs the one-node test cluster (`bash scripts/test-services.sh`: slurmctld + slurmd on this host,
sched_interval=2). One process drives every side; plinth uses the embedded SQLite store and
artifact folder in a fresh PLINTH_HOME under benchmarks/.work/slurm (its job folder is
PLINTH_SLURM_WORKDIR's default, <PLINTH_HOME>/slurm).

Rows (each side runs its own inputs, so nothing is reused or cached):

1. Fan-out of N trivial calls (`square(i) = i * i`), N = 100 and 1,000: a plinth flow returning
   `square.map(range(N))`, run with executor="slurm" and executor="local"; plain sbatch as one
   `sbatch --wrap "python -c 'print(i*i)' > out_i"` per call, and as one job array
   (`--array=0-(N-1)`). Timed from the first submit until every result is back in the driver
   (plinth: the flow run has finished and its result is loaded; plain: `squeue` lists none of its
   jobs and every `out_i` is read).
2. A chain of 10 calls (`inc(x) = x + 1`, each on the one before): plinth as above; plain sbatch as
   one job per call linked with `--dependency=afterok:<previous>`, and as one array throttled to
   one task at a time (`--array=0-9%1`).

Target: plinth on SLURM within 1.2x of the best plain-sbatch way, with every call tracked (a run
with its job tag) and its result stored. The table is printed and, on a full run (unless
--no-write), written to benchmarks/RESULTS.md under "## slurm".
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _slurm_plain as plain
import harness
from harness import log

WORK = harness.WORK / "slurm"
SECTION = "slurm"


@dataclass(frozen=True)
class Sizes:
    fans: dict[int, int]  # fan-out width -> rounds
    chain: int
    chain_rounds: int


FULL = Sizes(fans={100: 3, 1000: 1}, chain=10, chain_rounds=3)
QUICK = Sizes(fans={20: 1}, chain=3, chain_rounds=1)
DEADLINE_S = 1800.0
TARGET = 1.2
SIDES = ["plain per call", "plain array", "plinth on SLURM", "plinth local"]
HEADER = ["row", *SIDES, "SLURM over best plain", "target", "met?"]


# --------------------------------------------------------------------------- plinth flows


def _flows() -> tuple[Any, Any]:
    from plinth import flow, step

    @step
    def square(i: int) -> int:
        return i * i

    @step
    def inc(x: int) -> int:
        return x + 1

    @flow(name="bench-slurm-fan")
    def fan(n: int = 100, seed: int = 0) -> list[int]:
        return square.map(range(seed, seed + n))

    @flow(name="bench-slurm-chain")
    def chain(n: int = 10, seed: int = 0) -> int:
        x: Any = seed
        for _ in range(n):
            x = inc(x)
        return x

    return fan, chain


def _tracked_jobs(flow_run_id: str, calls: int) -> int:
    """Distinct SLURM jobs the flow run's calls ran in; fails unless each call is tracked with its job."""
    import plinth

    runs = plinth.search_runs(where=f"tags.`plinth.flow_run` = '{flow_run_id}'", limit=None)
    jobs = [r.tags.get("plinth.slurm_job") for r in runs if r.tags.get("plinth.kind") == "step"]
    if len(jobs) != calls or None in jobs:
        raise SystemExit(f"flow run {flow_run_id}: {len(jobs)} of {calls} calls tracked with their SLURM job")
    return len(set(jobs))


# --------------------------------------------------------------------------- rows


Side = Callable[[int], tuple[float, Any, int | None]]
"""seed -> (seconds, result, SLURM jobs used or None)."""


def _sides(kind: str, n: int) -> dict[str, Side]:
    fan, chain = _flows()
    target = fan if kind == "fan" else chain

    def on(executor: str) -> Side:
        def go(seed: int) -> tuple[float, Any, int | None]:
            t0 = time.perf_counter()
            done = target.run(executor=executor, n=n, seed=seed)
            value = done.result
            took = time.perf_counter() - t0
            jobs = _tracked_jobs(done.id, n) if executor == "slurm" else None
            return took, value, jobs

        return go

    def raw(array: bool) -> Side:
        def go(seed: int) -> tuple[float, Any, int | None]:
            folder = WORK / "plain" / f"{kind}-{n}-{seed}-{'array' if array else 'calls'}"
            run = plain.fan_out if kind == "fan" else plain.chain
            took, value = run(folder, seed, n, array, DEADLINE_S)
            return took, value, 1 if array else n

        return go

    return {
        "plain per call": raw(False),
        "plain array": raw(True),
        "plinth on SLURM": on("slurm"),
        "plinth local": on("local"),
    }


def measure(kind: str, n: int, rounds: int, seq: list[int]) -> dict[str, Any]:
    """Seconds of each side per round (interleaved), and the SLURM jobs each used."""
    sides = _sides(kind, n)
    times: dict[str, list[float]] = {s: [] for s in sides}
    jobs: dict[str, int | None] = {}
    for r in range(rounds):
        for side, go in sides.items():
            seq[0] += 1
            seed = seq[0] * 10_000
            took, value, used = go(seed)
            want = [i * i for i in range(seed, seed + n)] if kind == "fan" else seed + n
            if value != want:
                raise SystemExit(f"{kind} {n} on {side}: wrong result")
            times[side].append(took)
            jobs[side] = used
        log(f"{kind} {n} round {r + 1}: " + ", ".join(f"{s} {v[-1]:.2f}s" for s, v in times.items()))
    return {"times": times, "jobs": jobs}


def _warm_up(seq: list[int]) -> None:
    """One small untimed run per plinth side: imports done, local workers started."""
    fan, _ = _flows()
    for executor in ("local", "slurm"):
        seq[0] += 1
        fan.run(executor=executor, n=2, seed=seq[0] * 10_000)


# --------------------------------------------------------------------------- table


def _s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.3g} s"


def row(label: str, found: dict[str, Any]) -> list[str]:
    med = {s: statistics.median(v) for s, v in found["times"].items()}
    best = min(med["plain per call"], med["plain array"])
    ratio = med["plinth on SLURM"] / best
    rounds = len(found["times"]["plinth local"])
    return [
        f"{label} (median of {rounds})" if rounds > 1 else label,
        *(_s(med[s]) for s in SIDES),
        f"{ratio:.2f}x",
        f"<= {TARGET}x",
        "yes" if ratio <= TARGET else "NO",
    ]


def notes(results: dict[str, dict[str, Any]], loads: list[str]) -> list[str]:
    lines = []
    for label, found in results.items():
        per = "; ".join(f"{s} " + " / ".join(f"{t:.2f}" for t in v) for s, v in found["times"].items())
        jobs = found["jobs"]
        lines.append(
            f"{label}: per run (s): {per}. SLURM jobs: plain per call {jobs['plain per call']}, "
            f"plain array {jobs['plain array']} (one array), plinth {jobs['plinth on SLURM']} "
            "(distinct `plinth.slurm_job` tags of its calls' runs; an array element counts as one)."
        )
    lines.append(f"1-minute load average at start / end: {loads[0]} / {loads[-1]}.")
    return lines


def _slurm_version() -> str:
    out = subprocess.run(["sinfo", "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip() or "slurm ?"


def _check_cluster() -> None:
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    if shutil.which("sbatch") is None or "UP" not in ping.stdout:
        raise SystemExit("No SLURM controller answers here: run `bash scripts/test-services.sh` first.")
    queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
    if queued:
        log(f"warning: {len(queued)} jobs already queued; timings will include waiting for them")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=None, help="rows to run: fan, chain (default: both)")
    parser.add_argument("--fan", type=int, default=None, help="only this fan-out width (one round)")
    harness.add_common_options(
        parser,
        "a 20-way fan-out and a 3-call chain, one round; writes nothing",
        "a full run",
        "keep benchmarks/.work/slurm afterwards",
    )
    args = parser.parse_args()
    only = harness.parse_list(args.only, ["fan", "chain"], "rows")
    sizes = QUICK if args.quick else FULL
    if args.fan is not None:
        sizes = Sizes(fans={args.fan: 1}, chain=sizes.chain, chain_rounds=sizes.chain_rounds)
    _check_cluster()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    os.environ["PLINTH_HOME"] = str(WORK / "home")
    loads = [harness.load_text()]
    seq = [0]
    _warm_up(seq)
    results: dict[str, dict[str, Any]] = {}
    if "fan" in only:
        for n, rounds in sizes.fans.items():
            results[f"1. fan-out {n:,} calls"] = measure("fan", n, rounds, seq)
    if "chain" in only:
        n = sizes.chain
        results[f"2. chain of {n} calls"] = measure("chain", n, sizes.chain_rounds, seq)
    loads.append(harness.load_text())
    body = [row(label, found) for label, found in results.items()]
    note_lines = notes(results, loads)
    info = harness.machine()
    harness.print_table(body, f"plinth on SLURM ({'quick' if args.quick else 'full'})", HEADER, 170)
    harness.report(info, note_lines, sum(r[-1] == "yes" for r in body), len(body))
    plinth_version = importlib.metadata.version("plinth")
    versions = f"Python {info['python']}; {_slurm_version()} (one node); plinth {plinth_version}"
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    full = not args.quick and len(only) == 2
    write = args.write if args.write is not None else full
    return harness.finish(
        write,
        lambda: harness.section(
            SECTION, "bench_slurm.py", args.quick, info, versions, HEADER, body, note_lines
        ),
        SECTION,
        [],
    )


if __name__ == "__main__":
    sys.exit(main())
