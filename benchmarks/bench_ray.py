"""Ray benchmark: plinth on the local executor vs plinth on Ray, with raw Ray as the floor.

    python benchmarks/bench_ray.py [--quick] [--write|--no-write] [--keep]

One process, one single-node Ray started here (`ray.init(num_cpus=CPUs)`, as on a laptop), the
embedded SQLite store and artifact folder in a fresh PLINTH_HOME under benchmarks/.work/ray:

1. Fan-out: a flow of 1,000 trivial steps and a join (`total(noop.map(range(n)))`), run warm (one
   untimed run first) on the local executor and on the Ray executor, and the same fan-out written
   directly in Ray (`noop.remote(i)` x 1,000, then `total.remote(*refs)`), the floor. Rounds
   interleave the three; the table shows medians. Target: plinth on Ray within 20% of raw Ray.
2. Batch prediction of 10,000,000 rows (30 float64 columns, Parquet) with a registered
   scikit-learn LogisticRegression, `batch_predict(batch_size=100_000)`: in this process, with
   2 local worker processes, and with `executor="ray"`; the three outputs must be byte-identical.

The table is printed and, unless --no-write (or --quick), written to benchmarks/RESULTS.md under
"## ray" (how each row is measured is described there).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import harness
from harness import log

WORK = harness.WORK / "ray"
SECTION = "ray"
FULL = {"fan": 1000, "rounds": 5, "rows": 10_000_000}
QUICK = {"fan": 200, "rounds": 1, "rows": 1_000_000}
BATCH_SIZE = 100_000
ROW_GROUP = 1_000_000
SEED = 2026
HEADER = ["row", "local executor", "Ray executor", "raw Ray (floor)", "Ray over floor", "target", "met?"]


# --------------------------------------------------------------------------- 1. fan-out


def fan_out_rows(n: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per run of each side, `rounds` runs each after one untimed warm-up, interleaved."""
    import ray

    from plinth import flow, step

    @step
    def noop(i: int) -> int:
        return i

    @step
    def total(xs: list[int]) -> int:
        return sum(xs)

    @flow(name="bench-fan")
    def fan(n: int = 1000, seed: int = 0) -> int:
        return total(noop.map(range(seed, seed + n)))

    @ray.remote
    def raw_noop(i: int) -> int:
        return i

    @ray.remote
    def raw_total(*xs: int) -> int:
        return sum(xs)

    def raw(seed: int) -> int:
        return int(ray.get(raw_total.remote(*[raw_noop.remote(i) for i in range(seed, seed + n)])))

    def plinth_on(executor: str, seed: int) -> int:
        return int(fan.run(executor=executor, n=n, seed=seed).result)

    sides = {"raw": raw, "ray": lambda s: plinth_on("ray", s), "local": lambda s: plinth_on("local", s)}
    times: dict[str, list[float]] = {side: [] for side in sides}
    for run in sides.values():  # warm-up: worker processes started, code loaded
        assert run(10_000) == sum(range(10_000, 10_000 + n))
    for r in range(1, rounds + 1):
        for k, (side, run) in enumerate(sides.items()):
            seed = 100 * r + k  # every run its own inputs: nothing reused
            t0 = time.perf_counter()
            got = run(seed)
            times[side].append(time.perf_counter() - t0)
            assert got == sum(range(seed, seed + n)), (side, got)
        log(f"fan-out round {r}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()))
    return times


# --------------------------------------------------------------------------- 2. batch


def make_input(path: Path, rows: int) -> float:
    """Write `rows` breast-cancer-like rows (30 float64 columns, seeded); returns seconds."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_breast_cancer

    t0 = time.perf_counter()
    frame = load_breast_cancer(as_frame=True).data
    names = [str(c) for c in frame.columns]
    base = frame.to_numpy(dtype=np.float64)
    rng = np.random.default_rng(SEED)
    schema = pa.schema([(c, pa.float64()) for c in names])
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        done = 0
        while done < rows:
            n = min(ROW_GROUP, rows - done)
            block = base[rng.integers(0, len(base), n)] * rng.normal(1.0, 0.02, (n, len(names)))
            writer.write_table(pa.Table.from_arrays(list(block.T), schema=schema), row_group_size=ROW_GROUP)
            done += n
    return time.perf_counter() - t0


def batch_rows(rows: int) -> dict[str, Any]:
    """Seconds of each batch side and whether the outputs are byte-identical."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    import plinth
    from plinth.serving.batch import batch_predict

    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    plinth.register_model("bc", LogisticRegression(max_iter=5000).fit(x, y), input_example=x[:3])
    source = WORK / "input.parquet"
    gen_s = make_input(source, rows)
    log(f"input: {rows:,} rows, {source.stat().st_size / 2**20:.0f} MiB, written in {gen_s:.1f}s")
    sides = {"local": {}, "local-2": {"workers": 2}, "ray": {"executor": "ray"}}
    out: dict[str, Any] = {"gen_s": gen_s, "input_mib": source.stat().st_size / 2**20}
    digests = {}
    for side, options in sides.items():
        target = WORK / f"out-{side}.parquet"
        t0 = time.perf_counter()
        result = batch_predict("bc", source, target, batch_size=BATCH_SIZE, progress=False, **options)
        out[side] = time.perf_counter() - t0
        digests[side] = result.output_digest
        log(f"batch {side}: {out[side]:.2f}s ({result.rows / out[side]:,.0f} rows/s)")
        target.unlink()
    out["same"] = len(set(digests.values())) == 1
    return out


# --------------------------------------------------------------------------- table


def _s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(fan: dict[str, list[float]], batch: dict[str, Any], n: int, rows: int) -> list[list[str]]:
    med = {k: statistics.median(v) for k, v in fan.items()}
    over = med["ray"] / med["raw"] - 1
    body = [
        [
            f"1. fan-out {n:,} trivial steps + join (median of {len(fan['raw'])})",
            _s(med["local"]),
            _s(med["ray"]),
            _s(med["raw"]),
            f"{over:+.0%}",
            "<= +20%",
            "yes" if over <= 0.20 else "NO",
        ],
        [
            f"2. batch predict {rows:,} rows (local: 1 process / 2 workers)",
            f"{_s(batch['local'])} / {_s(batch['local-2'])}",
            _s(batch["ray"]),
            "-",
            "-",
            "same output",
            "yes" if batch["same"] else "NO",
        ],
        [
            "2. batch rows/s (local: 1 process / 2 workers)",
            f"{rows / batch['local']:,.0f} / {rows / batch['local-2']:,.0f}",
            f"{rows / batch['ray']:,.0f}",
            "-",
            "-",
            "-",
            "-",
        ],
    ]
    return body


def notes(fan: dict[str, list[float]], batch: dict[str, Any], loads: list[str]) -> list[str]:
    """The measured numbers behind the table."""
    raw = ", ".join(f"{k} " + " / ".join(f"{t:.3f}" for t in v) for k, v in fan.items())
    return [
        f"Fan-out per run (s): {raw}.",
        f"Batch input: {batch['input_mib']:.0f} MiB of Parquet, written in {batch['gen_s']:.1f} s (not "
        f"counted); outputs byte-identical: {'yes' if batch['same'] else 'NO'}.",
        f"1-minute load average at start / end: {loads[0]} / {loads[-1]}.",
    ]


def _ray_version() -> str:
    import ray

    return str(ray.__version__)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.add_common_options(
        parser,
        "smaller sizes, one round; writes nothing",
        "a full run",
        "keep benchmarks/.work/ray afterwards",
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    os.environ["PLINTH_HOME"] = str(WORK / "home")
    loads = [harness.load_text()]
    import ray

    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="error", log_to_driver=False)
    try:
        fan = fan_out_rows(sizes["fan"], sizes["rounds"])
        batch = batch_rows(sizes["rows"])
    finally:
        ray.shutdown()
    loads.append(harness.load_text())
    body = table(fan, batch, sizes["fan"], sizes["rows"])
    note_lines = notes(fan, batch, loads)
    info = harness.machine()
    verdicts = [r[-1] for r in body if r[-1] != "-"]
    harness.print_table(body, f"plinth on Ray ({'quick' if args.quick else 'full'})", HEADER, 170)
    harness.report(info, note_lines, sum(v == "yes" for v in verdicts), len(verdicts))
    versions = (
        f"Python {info['python']}; Ray {_ray_version()} (`ray.init(num_cpus={cpus})`); "
        f"plinth {importlib.metadata.version('plinth')}"
    )
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    write = args.write if args.write is not None else not args.quick
    return harness.finish(
        write,
        lambda: harness.section(
            SECTION, "bench_ray.py", args.quick, info, versions, HEADER, body, note_lines
        ),
        SECTION,
        [],
    )


if __name__ == "__main__":
    sys.exit(main())
