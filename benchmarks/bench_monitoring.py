"""Drift benchmark: plinth.monitoring.drift vs Evidently's DataDriftPreset, same data, same run;
and drift of a served model over the same current frame logged as one request per row.

    python benchmarks/bench_monitoring.py [--quick] [--only plinth|evidently|served]
        [--baseline SRC] [--write|--no-write] [--keep]

A seeded 1,000,000-row current frame and a 100,000-row reference, each with 20 features (16
numeric, 4 categorical as pandas categoricals; 4 of them shifted: 2 numeric, 2 categorical),
are generated once under benchmarks/.work as .npy files; each side loads them in its own
process, so both compare the same bytes. plinth runs under this interpreter (`--side plinth`);
Evidently under its own virtualenv, benchmarks/.venv-evidently, created on first use
(`_monitoring_evidently.py`; `pip install evidently==0.7.23 'pandas<3'`: its import fails on
pandas 3). Each side prints one JSON line: time, memory and the columns it flagged. The
comparison table is printed and, for a full run of both sides, written to
benchmarks/RESULTS.md under "## monitoring" (how each row is measured is described there).

The served side (`_monitoring_served.py`) logs the current frame through `plinth.log_predictions`
and times `plinth.drift` and `plinth.monitoring_report` over the logs; `--baseline SRC` runs it
again with PYTHONPATH=SRC (an older plinth source tree, e.g. `git archive HEAD | tar -x -C
/tmp/base` then `--baseline /tmp/base/src`) for a "before" column. Its table goes under
"## served monitoring".

The "workload" section is shared with `_monitoring_evidently.py` and `_monitoring_served.py`,
which import it: stdlib at import time, numpy and pandas inside the helpers.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from harness import HERE, Result

SECTION = "monitoring"
SERVED_SECTION = "served monitoring"
SERVED_SIDE = HERE / "_monitoring_served.py"
VENV = HERE / ".venv-evidently"
EVIDENTLY_PINS = ["evidently==0.7.23", "pandas<3"]  # its import fails on pandas 3
EVIDENTLY_SIDE = HERE / "_monitoring_evidently.py"

# --------------------------------------------------------------------------- workload (shared)

SEED = 2026
ROWS = 1_000_000
REFERENCE_ROWS = 100_000
MISSING_RATE = 0.02
META_FILE = "meta.json"

# name -> (numpy Generator method, parameters); every column float64
NUMERIC: dict[str, tuple[str, tuple[float, ...]]] = {
    "num_00": ("normal", (0.0, 1.0)),
    "num_01": ("normal", (50.0, 10.0)),
    "num_02": ("lognormal", (0.0, 0.75)),
    "num_03": ("uniform", (0.0, 100.0)),
    "num_04": ("exponential", (2.0,)),
    "num_05": ("poisson", (4.0,)),
    "num_06": ("beta", (2.0, 5.0)),
    "num_07": ("gamma", (2.0, 2.0)),
    "num_08": ("normal", (-5.0, 2.0)),
    "num_09": ("uniform", (-1.0, 1.0)),
    "num_10": ("normal", (100.0, 15.0)),
    "num_11": ("lognormal", (1.0, 0.5)),
    "num_12": ("exponential", (0.5,)),
    "num_13": ("poisson", (10.0,)),
    "num_14": ("normal", (0.0, 1.0)),
    "num_15": ("gamma", (5.0, 1.0)),
}
# name -> (categories, reference proportions); categories "d" of cat_3 is absent from the reference
CATEGORICAL: dict[str, tuple[list[str], list[float]]] = {
    "cat_0": ([f"g{i}" for i in range(8)], [0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05]),
    "cat_1": (["a", "b", "c", "d"], [0.4, 0.3, 0.2, 0.1]),
    "cat_2": (
        [f"z{i:02d}" for i in range(30)],
        [1 / (k + 1) / sum(1 / (j + 1) for j in range(30)) for k in range(30)],
    ),
    "cat_3": (["a", "b", "c", "d"], [0.5, 0.3, 0.2, 0.0]),
}
# the shifted columns, as the current frame draws them
SHIFTS: dict[str, Any] = {
    "num_01": ("normal", (55.0, 10.0)),  # mean + 0.5 sd
    "num_10": ("normal", (100.0, 22.5)),  # sd x 1.5
    "cat_1": [0.2, 0.2, 0.3, 0.3],  # proportions changed
    "cat_3": [0.3, 0.3, 0.2, 0.2],  # a category the reference never saw takes 20%
}
WITH_MISSING = ("num_05", "num_11", "num_14", "cat_0")


def sizes(quick: bool) -> tuple[int, int]:
    """(current rows, reference rows)."""
    return (ROWS // 10, REFERENCE_ROWS // 10) if quick else (ROWS, REFERENCE_ROWS)


def generate(data_dir: Path, quick: bool) -> Result:
    """Write the reference and current columns as .npy files (categoricals as int8 codes)."""
    import numpy as np

    data_dir.mkdir(parents=True, exist_ok=True)
    rows, reference_rows = sizes(quick)
    for frame, n in (("reference", reference_rows), ("current", rows)):
        rng = np.random.default_rng([SEED, n])
        for name, (method, params) in NUMERIC.items():
            if frame == "current" and name in SHIFTS:
                method, params = SHIFTS[name]
            values = getattr(rng, method)(*params, size=n).astype(np.float64)
            if name in WITH_MISSING:
                values[rng.random(n) < MISSING_RATE] = np.nan
            np.save(data_dir / f"{frame}.{name}.npy", values)
        for name, (labels, p) in CATEGORICAL.items():
            p = SHIFTS[name] if frame == "current" and name in SHIFTS else p
            codes = rng.choice(len(labels), size=n, p=np.asarray(p) / np.sum(p)).astype(np.int8)
            if name in WITH_MISSING:
                codes[rng.random(n) < MISSING_RATE] = -1
            np.save(data_dir / f"{frame}.{name}.npy", codes)
    meta = {
        "rows": rows,
        "reference_rows": reference_rows,
        "numeric": list(NUMERIC),
        "categorical": {name: labels for name, (labels, _) in CATEGORICAL.items()},
        "shifted": sorted(SHIFTS),
    }
    (data_dir / META_FILE).write_text(json.dumps(meta))
    return meta


def load_frames(data_dir: str | Path) -> tuple[Any, Any, Result]:
    """(reference, current, meta): the two DataFrames, numeric float64 and pandas categoricals."""
    import numpy as np
    import pandas as pd

    data_dir = Path(data_dir)
    meta = json.loads((data_dir / META_FILE).read_text())
    frames = []
    for frame in ("reference", "current"):
        columns: dict[str, Any] = {
            name: np.load(data_dir / f"{frame}.{name}.npy") for name in meta["numeric"]
        }
        for name, labels in meta["categorical"].items():
            codes = np.load(data_dir / f"{frame}.{name}.npy")
            columns[name] = pd.Categorical.from_codes(codes, categories=labels)
        frames.append(pd.DataFrame(columns))
        del columns
    return frames[0], frames[1], meta


def _load(data_dir: Path, frame: str, name: str) -> Any:
    import numpy as np

    return np.load(data_dir / f"{frame}.{name}.npy", mmap_mode="r")


def frame_mb(*frames: Any) -> float:
    """Memory of the frames' data in MB (pandas memory_usage, deep)."""
    return sum(float(f.memory_usage(deep=True).sum()) for f in frames) / 1e6


def status_mb(key: str) -> float | None:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MB, None where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_mb() -> float | None:
    """Peak RSS since the last reset_peak (or process start), in MB."""
    peak = status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def progress(side: str, msg: str) -> None:
    harness.log(msg, side)


# --------------------------------------------------------------------------- plinth side


def plinth_side(data_dir: str, reps: int) -> Result:
    """Time and measure plinth's drift on the generated data; the result as a dict."""
    rss_start = status_mb("VmRSS")
    start = time.perf_counter()
    import scipy.special  # noqa: F401  (imported by drift's first call; counted with the imports)

    import plinth
    from plinth.monitoring.drift import drift, reference_from_frame, reference_from_profile
    from plinth.tracking.profiles import profile_frame

    import_s = time.perf_counter() - start
    rss_libs = status_mb("VmRSS")
    reference, current, meta = load_frames(data_dir)
    rss_data = status_mb("VmRSS")
    progress("plinth", f"loaded {len(current):,} + {len(reference):,} rows")

    peak_reset = reset_peak()
    runs, peak_first, report = [], None, None
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        ref = reference_from_frame(reference)
        t1 = time.perf_counter()
        report = drift(ref, current)
        t2 = time.perf_counter()
        runs.append({"reference_s": t1 - t0, "drift_s": t2 - t1, "total_s": t2 - t0})
        if peak_first is None:
            peak_first = peak_mb()
    assert report is not None

    t0 = time.perf_counter()
    profile = json.loads(json.dumps(profile_frame(reference)))
    t1 = time.perf_counter()
    by_profile = drift(reference_from_profile(profile), current)
    t2 = time.perf_counter()

    traced = _traced_peak(lambda: drift(ref, current))
    traced_ref = _traced_peak(lambda: reference_from_frame(reference))
    return {
        "version": plinth.__version__,
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "scipy": _version("scipy"),
        "import_s": import_s,
        "rss_start_mb": rss_start,
        "rss_libs_mb": rss_libs,
        "rss_data_mb": rss_data,
        "data_mb": frame_mb(reference, current),
        "current_mb": frame_mb(current),
        "peak_reset": peak_reset,
        "peak_first_mb": peak_first,
        "peak_all_mb": peak_mb(),
        "traced_drift_mb": traced,
        "traced_reference_mb": traced_ref,
        "runs": runs,
        "flagged": report.drifted_features,
        "scores": {f.name: [f.test, f.psi, f.js_distance, f.statistic, f.p_value] for f in report.features},
        "profile_flagged": by_profile.drifted_features,
        "profile_s": {"profile_s": t1 - t0, "drift_s": t2 - t1},
        "rows": meta["rows"],
        "reference_rows": meta["reference_rows"],
    }


def _traced_peak(fn: Any) -> float:
    """Peak bytes (MB) allocated while fn runs, per tracemalloc (NumPy reports its buffers)."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- orchestration


def run_side(name: str, cmd: list[str], pythonpath: str | None = None) -> Result | None:
    """Run one side's process; return its last JSON line, or None on failure."""
    progress("bench", f"{name}: {' '.join(cmd)}")
    start = time.perf_counter()
    env = harness.clean_env("PYTHONPATH")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=False)
    result = harness.last_json(proc.stdout) if proc.returncode == 0 else None
    if result is None:
        progress("bench", f"{name}: FAILED (exit {proc.returncode})")
        print(proc.stdout, file=sys.stderr)
        return None
    result["process_s"] = time.perf_counter() - start
    return result


# --------------------------------------------------------------------------- table

HEADER = ["row", "Evidently", "plinth", "ratio", "target", "met?"]


@dataclass
class Table:
    body: list[list[str]]
    met: int
    checked: int


def _mb(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.0f} MB"


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value >= 10 else f"{value:.2f} s" if value >= 1 else f"{value * 1e3:.0f} ms"


def _yes(ok: bool | None) -> str:
    return "-" if ok is None else "yes" if ok else "NO"


def _total(side: Result | None, key: str = "total_s") -> tuple[float | None, float | None]:
    """(first run, median of runs) of a side's timings."""
    if not side or not side.get("runs"):
        return None, None
    values = [r[key] for r in side["runs"]]
    return values[0], statistics.median(values)


def _with_data(side: Result | None) -> float | None:
    """The data (both frames) plus how far the run raised the peak RSS above the loaded data."""
    if not side or side.get("peak_first_mb") is None or side.get("rss_data_mb") is None:
        return None
    return side["data_mb"] + max(0.0, side["peak_first_mb"] - side["rss_data_mb"])


def table(evidently: Result | None, plinth: Result | None, meta: Result) -> Table:
    """The comparison rows and how many targets were met."""
    rows, reference_rows = meta["rows"], meta["reference_rows"]
    shifted = sorted(meta["shifted"])
    e_first, e_median = _total(evidently)
    p_first, p_median = _total(plinth)
    p_runs = len(plinth["runs"]) if plinth else 0
    e_runs = len(evidently["runs"]) if evidently else 0
    ratio = e_median / p_first if e_median and p_first else None
    time_ok = None if p_first is None else p_first < 1.0 and (ratio is None or ratio >= 30)
    data_mb = (plinth or evidently or {}).get("data_mb")
    e_over, p_over = _with_data(evidently), _with_data(plinth)
    mem_ok = None if p_over is None or not data_mb else p_over < 2 * data_mb
    e_flags = evidently["flagged"] if evidently else None
    p_flags = plinth["flagged"] if plinth else None
    p_profile = plinth["profile_flagged"] if plinth else None

    def flags(value: list[str] | None) -> str:
        return "-" if value is None else ", ".join(value) or "none"

    def same(value: list[str] | None) -> bool | None:
        return None if value is None else sorted(value) == shifted

    e_time = "-" if e_first is None else _s(e_median) + (f" (median of {e_runs})" if e_runs > 1 else "")
    body = [
        [
            f"1. reference + drift, {rows:,} x 20 vs {reference_rows:,} rows "
            f"(plinth: first / median of {p_runs})",
            e_time,
            "-" if p_first is None else f"{_s(p_first)} / {_s(p_median)}",
            "-" if ratio is None else f"{ratio:.0f}x faster",
            "< 1 s; >= 30x",
            _yes(time_ok),
        ],
        [
            "2. peak RSS of the process (libraries + data + run)",
            _mb(evidently.get("peak_first_mb")) if evidently else "-",
            _mb(plinth.get("peak_first_mb")) if plinth else "-",
            "-"
            if not (evidently and plinth)
            else f"{evidently['peak_first_mb'] / plinth['peak_first_mb']:.1f}x less",
            "-",
            "-",
        ],
        [
            f"3. data + the run's peak over it (data {_mb(data_mb)})",
            "-" if e_over is None else f"{_mb(e_over)} ({e_over / data_mb:.1f}x data)",
            "-" if p_over is None else f"{_mb(p_over)} ({p_over / data_mb:.2f}x data)",
            "-" if e_over is None or p_over is None else f"{e_over / p_over:.1f}x less",
            "< 2x data",
            _yes(mem_ok),
        ],
        [
            "4. columns flagged (frame reference)",
            flags(e_flags),
            flags(p_flags),
            "same" if e_flags is not None and sorted(e_flags) == sorted(p_flags or []) else "-",
            f"the {len(shifted)} shifted only",
            _yes(same(p_flags)),
        ],
        [
            "5. columns flagged, plinth from the stored profile",
            "-",
            flags(p_profile),
            "-",
            "same",
            _yes(same(p_profile)),
        ],
    ]
    judged = [ok for ok in (time_ok, mem_ok, same(p_flags), same(p_profile)) if ok is not None]
    return Table(body=body, met=sum(judged), checked=len(judged))


def notes(evidently: Result | None, plinth: Result | None, load: list[float | None]) -> list[str]:
    """The measured numbers behind the table."""
    out = []
    if plinth:
        out.append(_plinth_note(plinth))
    if evidently:
        out.append(_evidently_note(evidently))
    if plinth and evidently:
        out.append(f"Scores per column, plinth PSI / JS vs Evidently's: {_score_pairs(plinth, evidently)}")
    if None not in load:
        out.append(f"1-minute load average at start / end: {load[0]:.2f} / {load[1]:.2f}.")
    return out


def _plinth_note(p: Result) -> str:
    runs = ", ".join(f"{r['total_s']:.3f}" for r in p["runs"])
    first, profile = p["runs"][0], p["profile_s"]
    return (
        f"plinth runs (s): {runs}; the first: reference_from_frame {first['reference_s']:.3f} + "
        f"drift {first['drift_s']:.3f}. From the stored profile: profile_frame "
        f"{profile['profile_s']:.3f} s, then drift {profile['drift_s']:.3f} s. "
        f"tracemalloc peak: drift {p['traced_drift_mb']:.0f} MB, "
        f"reference_from_frame {p['traced_reference_mb']:.0f} MB (current frame {p['current_mb']:.0f} MB). "
        f"Imports {p['import_s']:.2f} s; RSS {_mb(p['rss_start_mb'])} at start, "
        f"{_mb(p['rss_libs_mb'])} with libraries, {_mb(p['rss_data_mb'])} with data. plinth "
        f"{p['version']}, numpy {p['numpy']}, pandas {p['pandas']}, scipy {p['scipy']}."
    )


def _evidently_note(e: Result) -> str:
    runs = "; ".join(f"{r['dataset_s']:.2f} + {r['report_s']:.2f}" for r in e["runs"])
    return (
        f"Evidently run(s), Dataset.from_pandas + Report.run (s): {runs}. Imports {e['import_s']:.2f} s; "
        f"RSS {_mb(e['rss_start_mb'])} at start, {_mb(e['rss_libs_mb'])} with libraries, "
        f"{_mb(e['rss_data_mb'])} with data. Evidently {e['version']}, numpy {e['numpy']}, pandas "
        f"{e['pandas']}, scipy {e['scipy']}."
    )


def _score_pairs(plinth: Result, evidently: Result) -> str:
    """Per column: plinth's PSI and JS next to Evidently's score."""
    parts = []
    for name, (_, psi, js, _, _) in plinth["scores"].items():
        method, score, _ = evidently["scores"].get(name, ["-", None, None])
        short = "WD" if "Wasserstein" in method else "JS" if "Jensen" in method else method
        e = "-" if score is None else f"{short} {score:.3f}"
        parts.append(f"{name} {psi:.3f} / {js:.3f} vs {e}")
    return "; ".join(parts) + "."


SERVED_HEADER = ["row", "before", "plinth", "ratio", "target", "met?"]


def served_table(before: Result | None, after: Result | None, meta: Result) -> Table:
    """Rows of the served model's drift, report and fill, before (--baseline) and after."""
    shifted = sorted(meta["shifted"])
    b_first, b_median = _first_median(before)
    a_first, a_median = _first_median(after)
    drift_ok = None if a_first is None else a_first <= 1.0 and a_median is not None and a_median <= 1.0
    flags_ok = None if after is None else sorted(after["flagged"]) == shifted
    reps = len(after["runs"]) if after else 0

    def pair(first: float | None, median: float | None) -> str:
        return "-" if first is None else f"{_s(first)} / {_s(median)}"

    def ratio(old: float | None, new: float | None) -> str:
        return "-" if not old or not new else f"{old / new:.1f}x faster"

    def one(side: Result | None, key: str) -> float | None:
        return side.get(key) if side else None

    body = [
        [
            f"6. served drift, {meta['rows']:,} logged requests x 20 features, read + compute "
            f"(first / median of {reps})",
            pair(b_first, b_median),
            pair(a_first, a_median),
            ratio(b_median, a_median),
            "<= 1 s",
            _yes(drift_ok),
        ],
        [
            "7. monitoring report over the same logs (one read of the window)",
            _s(one(before, "report_s")),
            _s(one(after, "report_s")),
            ratio(one(before, "report_s"), one(after, "report_s")),
            "-",
            "-",
        ],
        [
            "8. logging the requests (before: JSON logs via the store; plinth: log_predictions)",
            _s(one(before, "fill_s")),
            _s(one(after, "fill_s")),
            "-",
            "-",
            "-",
        ],
        [
            "9. columns flagged",
            ", ".join(before["flagged"]) if before else "-",
            ", ".join(after["flagged"]) if after else "-",
            "same" if before and after and sorted(before["flagged"]) == sorted(after["flagged"]) else "-",
            f"the {len(shifted)} shifted only",
            _yes(flags_ok),
        ],
    ]
    judged = [ok for ok in (drift_ok, flags_ok) if ok is not None]
    return Table(body=body, met=sum(judged), checked=len(judged))


def _first_median(side: Result | None) -> tuple[float | None, float | None]:
    if not side or not side.get("runs"):
        return None, None
    return side["runs"][0], statistics.median(side["runs"])


def served_notes(before: Result | None, after: Result | None) -> list[str]:
    """The measured numbers behind the served table."""
    out = []
    for name, side in (("before", before), ("plinth", after)):
        if side:
            runs = ", ".join(f"{r:.3f}" for r in side["runs"])
            out.append(
                f"{name}: drift runs (s) {runs}; report {side['report_s']:.2f} s "
                f"({side['report_windows']} drift windows); {side['requests']:,} requests; "
                f"code from {side['plinth']}."
            )
    return out


# --------------------------------------------------------------------------- main


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_options(
        ap, "rows / 10 (smoke run)", "a full run of both sides", "keep the generated data"
    )
    ap.add_argument("--only", choices=["plinth", "evidently", "served"], help="run one side only")
    ap.add_argument(
        "--baseline", help="an older plinth source tree (its src/) for the served 'before' column"
    )
    ap.add_argument("--reps", type=int, default=5, help="plinth runs (default 5)")
    ap.add_argument("--evidently-reps", type=int, default=1, help="Evidently runs (default 1)")
    ap.add_argument("--side", choices=["plinth"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    return ap.parse_args()


def main() -> int:
    args = _parse()
    if args.side == "plinth":
        print(json.dumps(plinth_side(args.data, args.reps)))
        return 0

    info = harness.machine()
    load = [harness.loadavg()]
    results: dict[str, Result | None] = {"evidently": None, "plinth": None, "served": None, "before": None}
    sides = [args.only] if args.only else ["plinth", "evidently", "served"]
    with harness.work_folder("monitoring", args.keep) as base:
        progress("bench", f"generating data in {base}")
        meta = generate(base, args.quick)
        for name in sides:
            results |= run_sides(name, base, args)
    failed = [name for name, found in results.items() if found is None and _ran(name, sides, args)]
    load.append(harness.loadavg())
    write = args.write if args.write is not None else not args.quick and not args.only and not failed
    command = "bench_monitoring.py" + (f" --only {args.only}" if args.only else "")
    command += " --baseline OLD/src" if args.baseline else ""
    served = served_section(results, meta, info, args.quick, command) if "served" in sides else None
    if served is not None and write:
        harness.write_results(served, SERVED_SECTION)
    if args.only == "served":
        print(f"wrote the '{SERVED_SECTION}' section" if write else "RESULTS.md not updated")
        return 1 if failed else 0

    evidently, plinth = results["evidently"], results["plinth"]
    v_evidently = evidently["version"] if evidently else "-"
    v_plinth = plinth["version"] if plinth else "-"
    tab = table(evidently, plinth, meta)
    note_lines = notes(evidently, plinth, load)
    title = f"monitoring: plinth {v_plinth} vs Evidently {v_evidently}{' [quick]' if args.quick else ''}"
    harness.print_table(tab.body, title, HEADER, 160)
    harness.report(info, note_lines, tab.met, tab.checked)
    versions = (
        f"Python {info['python']} (plinth side), {evidently['python'] if evidently else '-'} "
        f"(Evidently side); Evidently {v_evidently}; plinth {v_plinth}"
    )
    return harness.finish(
        write,
        lambda: harness.section(
            SECTION, "bench_monitoring.py", args.quick, info, versions, HEADER, tab.body, note_lines
        ),
        SECTION,
        failed,
    )


def run_sides(name: str, base: Path, args: argparse.Namespace) -> dict[str, Result | None]:
    """Run one side (the served one with its baseline, when given); results by name."""
    if name == "plinth":
        cmd = [sys.executable, __file__, "--side", "plinth", "--data", str(base), "--reps", str(args.reps)]
        return {name: run_side(name, cmd)}
    if name == "evidently":
        python = harness.ensure_venv(VENV, EVIDENTLY_PINS, "import evidently")
        cmd = [python, str(EVIDENTLY_SIDE), "--data", str(base), "--reps", str(args.evidently_reps)]
        return {name: run_side(name, cmd)}
    cmd = [sys.executable, str(SERVED_SIDE), "--data", str(base)]
    out = {"served": run_side("served", [*cmd, "--reps", str(args.reps)])}
    if args.baseline:  # the older code is slow: two runs give its first and a warm one
        out["before"] = run_side("before", [*cmd, "--reps", "2"], pythonpath=args.baseline)
    return out


def _ran(name: str, sides: list[str], args: argparse.Namespace) -> bool:
    return name in sides or (name == "before" and "served" in sides and bool(args.baseline))


def served_section(
    results: dict[str, Result | None], meta: Result, info: dict[str, str], quick: bool, command: str
) -> str:
    """Print the served table; return its RESULTS.md section."""
    tab = served_table(results["before"], results["served"], meta)
    lines = served_notes(results["before"], results["served"])
    harness.print_table(tab.body, f"served monitoring{' [quick]' if quick else ''}", SERVED_HEADER, 160)
    harness.report(info, lines, tab.met, tab.checked)
    return harness.section(
        SERVED_SECTION,
        command,
        quick,
        info,
        f"Python {info['python']}",
        SERVED_HEADER,
        tab.body,
        lines,
    )


if __name__ == "__main__":
    sys.exit(main())
