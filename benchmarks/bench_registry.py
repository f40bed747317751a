"""Model registry benchmark: plinth vs MLflow (SQLite backend, local artifacts), same machine, same model.

    python benchmarks/bench_registry.py [--quick] [--only plinth|mlflow] [--write|--no-write] [--keep]

The model is one scikit-learn RandomForestClassifier(n_estimators=100), trained once under this
interpreter (`_registry_plinth.py --prepare`) and saved as model.pkl next to its data; both
sides register those same bytes, and a small LogisticRegression (small.pkl) for row 5. plinth
runs under this interpreter (`_registry_plinth.py`), MLflow under benchmarks/.venv-mlflow
(`_registry_mlflow.py`; the venv is created on first use). Each side registers, loads and
predicts in its own temp folder under benchmarks/.work and prints one JSON line; this script
then times fresh `python -c` processes (MLflow, plinth and the bare-unpickle floor, interleaved)
against those stores: whole processes (row 3), and the first load of the small model in a
process that has already imported scikit-learn and the library (row 5). The comparison table
is printed and, for a full run of both sides, written to benchmarks/RESULTS.md under
"## registry" (how each row is measured is described there).

The "workload" section below is shared: both side scripts import it (stdlib at import time;
numpy, pandas and pickle are imported inside the helpers), so both sides measure the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from harness import HERE, Result, log

SECTION = "registry"
SIDES = {"plinth": HERE / "_registry_plinth.py", "mlflow": HERE / "_registry_mlflow.py"}

# --------------------------------------------------------------------------- workload (shared)

MODEL_NAME = "m"
SMALL_NAME = "small"  # a LogisticRegression of about 1 KB: its first load is all overhead
N_FEATURES = 20
TRAIN_ROWS = 2_000  # 100 fully grown trees on 2,000 rows: a ~3.4 MB pickle
BIG_ROWS = 10_000
SEED = 0
MODEL_FILE = "model.pkl"
SMALL_FILE = "small.pkl"
DATA_FILE = "data.npz"
META_FILE = "model.json"

FULL = {
    "register_reps": 5,
    "load_reps": 5,
    "cold_reps": 3,
    "cold_warmup": 1,
    "first_reps": 9,
    "first_warmup": 1,
    "predict1_calls": 2_000,
    "predict1_warmup": 50,
    "predict_big_reps": 20,
}
QUICK = {
    "register_reps": 2,
    "load_reps": 2,
    "cold_reps": 1,
    "cold_warmup": 0,
    "first_reps": 3,
    "first_warmup": 1,
    "predict1_calls": 200,
    "predict1_warmup": 10,
    "predict_big_reps": 5,
}


def sizes(quick: bool) -> dict[str, int]:
    return dict(QUICK if quick else FULL)


def columns() -> list[str]:
    return [f"f{i:02d}" for i in range(N_FEATURES)]


def load_small(data_dir: str) -> Any:
    """The small LogisticRegression from `data_dir`."""
    import pickle

    with open(os.path.join(data_dir, SMALL_FILE), "rb") as fh:
        return pickle.load(fh)


def load_inputs(data_dir: str) -> tuple[Any, Any, Any, Any]:
    """(raw model, 5-row input example, 1-row DataFrame, 10,000-row DataFrame) from `data_dir`."""
    import pickle

    import numpy as np
    import pandas as pd

    with open(os.path.join(data_dir, MODEL_FILE), "rb") as fh:
        model = pickle.load(fh)
    data = np.load(os.path.join(data_dir, DATA_FILE))
    cols = [str(c) for c in data["columns"]]
    example = pd.DataFrame(data["example"], columns=cols)
    row = pd.DataFrame(data["row"], columns=cols)
    big = pd.DataFrame(data["big"], columns=cols)
    return model, example, row, big


def median_time(fn: Callable[[], Any], reps: int) -> tuple[float, list[float]]:
    """Median and all wall times (s) of `reps` calls of `fn`."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def paired_calls(raw: Callable[[], Any], loaded: Callable[[], Any], n: int, warmup: int) -> dict[str, float]:
    """Time `raw` and `loaded` n times each, interleaved in alternating order (after `warmup` each).

    Returns medians in seconds: raw, loaded, loaded - raw, and the median of per-pair differences;
    also the median of per-pair relative overheads, in %.
    """
    for _ in range(warmup):
        raw()
        loaded()
    t_raw, t_loaded = [], []
    clock = time.perf_counter
    for i in range(n):
        if i % 2:
            t0 = clock()
            raw()
            t1 = clock()
            loaded()
            t2 = clock()
            t_raw.append(t1 - t0)
            t_loaded.append(t2 - t1)
        else:
            t0 = clock()
            loaded()
            t1 = clock()
            raw()
            t2 = clock()
            t_loaded.append(t1 - t0)
            t_raw.append(t2 - t1)
    raw_med, loaded_med = statistics.median(t_raw), statistics.median(t_loaded)
    return {
        "raw_s": raw_med,
        "loaded_s": loaded_med,
        "overhead_s": loaded_med - raw_med,
        "paired_overhead_s": statistics.median(b - a for a, b in zip(t_raw, t_loaded, strict=True)),
        "paired_overhead_pct": statistics.median(
            100 * (b - a) / a for a, b in zip(t_raw, t_loaded, strict=True)
        ),
        "n": n,
    }


def predict_workload(model: Any, loaded: Any, row: Any, big: Any, quick: bool) -> Result:
    """Rows 4 (predict overhead) and the answer checks, the same on both sides."""
    import numpy as np

    s = sizes(quick)
    out: Result = {}
    raw_big, loaded_big = np.asarray(model.predict(big)), np.asarray(loaded.predict(big))
    out["predict_matches_raw"] = bool(raw_big.shape == loaded_big.shape and (raw_big == loaded_big).all())
    one = paired_calls(
        lambda: model.predict(row), lambda: loaded.predict(row), s["predict1_calls"], s["predict1_warmup"]
    )
    out["predict1"] = one
    many = paired_calls(lambda: model.predict(big), lambda: loaded.predict(big), s["predict_big_reps"], 1)
    out["predict_big"] = many
    out["predict_big_rows"] = len(big)
    return out


# --------------------------------------------------------------------------- running the sides


def prepare(data_dir: Path) -> Result | None:
    """Train the model and write model.pkl, data.npz and model.json (this interpreter)."""
    cmd = [sys.executable, str(SIDES["plinth"]), "--prepare", "--data", str(data_dir)]
    log(f"prepare: {' '.join(cmd)}")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=harness.clean_env(), check=False)
    meta = harness.last_json(proc.stdout) if proc.returncode == 0 else None
    if meta is None:
        log(f"prepare: FAILED (exit {proc.returncode})")
        print(proc.stdout, file=sys.stderr)
    return meta


def run_side(name: str, python: str, workdir: Path, data_dir: Path, quick: bool) -> Result | None:
    """Run one side against its own workdir; return its JSON result, or None on failure."""
    cmd = [python, str(SIDES[name]), "--workdir", str(workdir), "--data", str(data_dir)]
    if quick:
        cmd.append("--quick")
    log(f"{name}: {' '.join(cmd)}")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=harness.clean_env(), check=False)
    result = harness.last_json(proc.stdout) if proc.returncode == 0 else None
    if result is None:
        log(f"{name}: FAILED (exit {proc.returncode})")
        if proc.stdout.strip():
            print(proc.stdout, file=sys.stderr)
    return result


COLD = """\
import time
t0 = time.perf_counter()
{imp}
t1 = time.perf_counter()
import json
import numpy as np
import pandas as pd
d = np.load({data!r})
row = pd.DataFrame(d["row"], columns=[str(c) for c in d["columns"]])
t2 = time.perf_counter()
m = {load}
t3 = time.perf_counter()
p = m.predict(row)
t4 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "load_s": t3 - t2, "predict_s": t4 - t3,
                  "pred": np.asarray(p).tolist()}}))
"""


# The model's own module is imported first, as in a process that has scikit-learn in use, so
# the floor is the bare unpickle and the difference is what the library adds to it.
FIRST = """\
import time
import sklearn.linear_model
{imp}
import json
import pickle
t0 = time.perf_counter()
m = {load}
t1 = time.perf_counter()
print(json.dumps({{"load_s": t1 - t0, "pred": type(m).__name__}}))
"""


@dataclass
class Cold:
    """One kind of fresh process: which python, what it imports and how it loads the model."""

    name: str
    python: str
    code: str
    cwd: str
    env: dict[str, str]


def cold_specs(results: dict[str, Result | None], pythons: dict[str, str], data_dir: Path) -> list[Cold]:
    data = str(data_dir / DATA_FILE)
    floor = COLD.format(
        imp="import pickle", data=data, load=f"pickle.load(open({str(data_dir / MODEL_FILE)!r}, 'rb'))"
    )
    specs = [Cold("floor", pythons["plinth"], floor, str(data_dir), harness.clean_env())]
    for name in ("mlflow", "plinth"):
        res = results.get(name)
        if not res or "cold" not in res:
            continue
        spec = res["cold"]
        env = harness.clean_env()
        env.update(spec["env"])
        code = COLD.format(imp=spec["import"], data=data, load=spec["load"])
        specs.append(Cold(name, pythons[name], code, spec["cwd"], env))
    return specs


def first_specs(results: dict[str, Result | None], pythons: dict[str, str], data_dir: Path) -> list[Cold]:
    """Fresh processes that have imported scikit-learn and the library, then load the small model."""
    floor = FIRST.format(imp="", load=f"pickle.load(open({str(data_dir / SMALL_FILE)!r}, 'rb'))")
    specs = [Cold("floor", pythons["plinth"], floor, str(data_dir), harness.clean_env())]
    for name in ("mlflow", "plinth"):
        spec = _g(results.get(name), "first")
        if spec is None:
            continue
        env = harness.clean_env()
        env.update(spec["env"])
        code = FIRST.format(imp=spec["import"], load=spec["load"])
        specs.append(Cold(name, pythons[name], code, spec["cwd"], env))
    return specs


def run_cold(specs: list[Cold], reps: int, warmup: int, paired: str = "wall") -> dict[str, Result]:
    """Times of fresh processes, rounds interleaved; medians over `reps` after `warmup`.

    `over_floor_s` is the median of per-round differences from the floor's process, of the
    whole process's wall time (`paired="wall"`) or of the time it reports as `load_s`.
    """
    walls: dict[str, list[float]] = {s.name: [] for s in specs}
    inner: dict[str, list[Result]] = {s.name: [] for s in specs}
    failed: set[str] = set()
    for r in range(warmup + reps):
        shift = r % len(specs)
        for spec in specs[shift:] + specs[:shift]:
            if spec.name in failed:
                continue
            t0 = time.perf_counter()
            proc = subprocess.run(
                [spec.python, "-c", spec.code],
                cwd=spec.cwd,
                env=spec.env,
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.perf_counter() - t0
            res = harness.last_json(proc.stdout) if proc.returncode == 0 else None
            if res is None:
                log(f"cold {spec.name}: FAILED (exit {proc.returncode})\n{proc.stderr[-3000:]}")
                failed.add(spec.name)
                continue
            if r >= warmup:
                walls[spec.name].append(wall)
                inner[spec.name].append(res)
        log(f"cold round {r + 1}/{warmup + reps}{' (warm-up)' if r < warmup else ''}")
    out: dict[str, Result] = {}
    for name, w in walls.items():
        if name in failed or not w:
            continue
        timed = [k for k in inner[name][0] if k.endswith("_s")]
        out[name] = {
            "wall_s": statistics.median(w),
            "walls": w,
            **{k: statistics.median(x[k] for x in inner[name]) for k in timed},
            "loads": [x["load_s"] for x in inner[name]],
            "pred": inner[name][-1]["pred"],
        }
    floor = out.get("floor")
    series = "walls" if paired == "wall" else "loads"
    for name, res in out.items():
        if floor is not None and name != "floor" and len(res[series]) == len(floor[series]):
            # Same round = adjacent processes: the per-round difference cancels slow drift in load.
            diffs = [x - f for x, f in zip(res[series], floor[series], strict=True)]
            res["over_floor_s"] = statistics.median(diffs)
    return out


# --------------------------------------------------------------------------- table


@dataclass
class Row:
    label: str
    mlflow: float | None
    plinth: float | None
    kind: str  # "s": time, lower is better (ratio = MLflow / plinth); "over_s" / "over_pct": overheads
    target: str
    met: Callable[[float, float | None], bool | None] | None  # (plinth value, ratio) -> met?


def _g(res: Result | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(res, dict):
            return None
        res = res.get(k)
    return res


def _rows(
    mlflow: Result | None,
    plinth: Result | None,
    cold: dict[str, Result],
    first: dict[str, Result],
    quick: bool,
) -> list[Row]:
    s = sizes(quick)
    floor = _g(cold, "floor", "wall_s")
    first_floor = _g(first, "floor", "load_s")
    raw1 = _g(plinth, "predict1", "raw_s") or _g(mlflow, "predict1", "raw_s")
    raw_big = _g(plinth, "predict_big", "raw_s") or _g(mlflow, "predict_big", "raw_s")

    def over_floor(name: str) -> float | None:
        return _g(cold, name, "over_floor_s")

    return [
        Row(
            f"1. register (median of {s['register_reps']})",
            _g(mlflow, "register_median_s"),
            _g(plinth, "register_median_s"),
            "s",
            "-",
            None,
        ),
        Row(
            f"2. load_model in-process, warm (median of {s['load_reps']})",
            _g(mlflow, "load_median_s"),
            _g(plinth, "load_median_s"),
            "s",
            ">= 5x",
            lambda p, r: None if r is None else r >= 5,
        ),
        Row(
            f"3. fresh process: import, load, predict 1 row (median of {s['cold_reps']})",
            _g(cold, "mlflow", "wall_s"),
            _g(cold, "plinth", "wall_s"),
            "s",
            ">= 5x",
            lambda p, r: None if r is None else r >= 5,
        ),
        Row(
            "3. fresh process over unpickle floor" + (f" ({_fmt(floor, 's')})" if floor is not None else ""),
            over_floor("mlflow"),
            over_floor("plinth"),
            "over_s",
            "<= +0.3 s",
            lambda p, r: p <= 0.3,
        ),
        Row(
            f"4. predict 1 row, overhead per call (raw {_fmt(raw1, 's')})",
            _g(mlflow, "predict1", "overhead_s"),
            _g(plinth, "predict1", "overhead_s"),
            "over_s",
            "<= 50 us",
            lambda p, r: p <= 50e-6,
        ),
        Row(
            f"4. predict {BIG_ROWS:,} rows, overhead (raw {_fmt(raw_big, 's')})",
            _g(mlflow, "predict_big", "paired_overhead_pct"),
            _g(plinth, "predict_big", "paired_overhead_pct"),
            "over_pct",
            "<= 5%",
            lambda p, r: p <= 5,
        ),
        Row(
            f"5. fresh process: first load of a small model, over its unpickle (median of {s['first_reps']})"
            + (f" ({_fmt(first_floor, 's')})" if first_floor is not None else ""),
            _g(first, "mlflow", "over_floor_s"),
            _g(first, "plinth", "over_floor_s"),
            "over_s",
            "<= +50 ms",
            lambda p, r: p <= 0.05,
        ),
    ]


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "over_pct":
        return f"{value:+.1f}%"
    sign = "+" if kind == "over_s" and value >= 0 else "-" if value < 0 else ""
    v = abs(value)
    if v >= 10:
        body = f"{v:,.1f} s"
    elif v >= 1:
        body = f"{v:.2f} s"
    elif v >= 0.1:
        body = f"{v * 1e3:.0f} ms"
    elif v >= 1e-3:
        body = f"{v * 1e3:.2f} ms"
    else:
        body = f"{v * 1e6:.0f} us"
    return sign + body


def _fmt_ratio(ratio: float | None, kind: str) -> str:
    if ratio is None:
        return "-"
    word = "faster" if kind == "s" else "less"
    return f"{ratio:,.0f}x {word}" if ratio >= 100 else f"{ratio:,.1f}x {word}"


HEADER = ["row", "MLflow", "plinth", "ratio/overhead", "target", "met?"]


def table(
    mlflow: Result | None,
    plinth: Result | None,
    cold: dict[str, Result],
    first: dict[str, Result],
    quick: bool,
) -> tuple[list[list[str]], int, int]:
    """Return the table body and (targets met, targets checked)."""
    body = []
    met_n = checked = 0
    for row in _rows(mlflow, plinth, cold, first, quick):
        m, p = row.mlflow, row.plinth
        ratio = None
        if m is not None and p is not None and m > 0 and p > 0:
            ratio = m / p  # times: MLflow / plinth; overheads: how many times less
        ok = row.met(p, ratio) if row.met is not None and p is not None else None
        met = "-" if ok is None else "yes" if ok else "NO"
        if ok is not None:
            checked += 1
            met_n += ok
        body.append(
            [row.label, _fmt(m, row.kind), _fmt(p, row.kind), _fmt_ratio(ratio, row.kind), row.target, met]
        )
    return body, met_n, checked


def _predict_note(side: Result) -> str:
    one, big = side["predict1"], side["predict_big"]
    return (
        f"{side['side']} 1 row {one['raw_s'] * 1e3:.2f} / {one['loaded_s'] * 1e3:.2f} ms "
        f"({one['paired_overhead_s'] * 1e6:+.0f} us), {BIG_ROWS:,} rows {big['raw_s'] * 1e3:.1f} / "
        f"{big['loaded_s'] * 1e3:.1f} ms ({big['paired_overhead_s'] * 1e3:+.2f} ms)"
    )


def _cold_note(cold: dict[str, Result], quick: bool) -> list[str]:
    n_warm = sizes(quick)["cold_warmup"]
    parts = [
        f"{name} {c['wall_s']:.2f} s (import {c['import_s']:.2f}, load {c['load_s']:.2f}, "
        f"predict {c['predict_s'] * 1e3:.0f} ms; runs " + ", ".join(f"{w:.2f}" for w in c["walls"]) + ")"
        for name, c in ((n, cold.get(n)) for n in ("mlflow", "plinth", "floor"))
        if c
    ]
    out = [f"Fresh process, medians after {n_warm} warm-up round(s): " + "; ".join(parts) + "."]
    m_wall, f_wall = _g(cold, "mlflow", "wall_s"), _g(cold, "floor", "wall_s")
    if m_wall is not None and f_wall is not None and m_wall / 5 < f_wall:
        out.append(
            f"The fresh-process '>= 5x' target cannot be met here: MLflow / 5 = {m_wall / 5:.2f} s is "
            f"below the unpickle floor ({f_wall:.2f} s); at best {m_wall / f_wall:.1f}x "
            f"({m_wall / (f_wall + 0.3):.1f}x at the floor + 0.3 s target)."
        )
    preds = {name: c["pred"] for name, c in cold.items()}
    if len(preds) > 1:
        same = len({json.dumps(v) for v in preds.values()}) == 1
        out.append("Fresh processes predicted the same label: " + ("yes." if same else f"NO ({preds})."))
    return out


def _first_note(first: dict[str, Result], meta: Result, quick: bool) -> str:
    n_warm = sizes(quick)["first_warmup"]
    parts = [
        f"{name} {c['load_s'] * 1e3:.1f} ms (runs " + ", ".join(f"{x * 1e3:.1f}" for x in c["loads"]) + ")"
        for name, c in ((n, first.get(n)) for n in ("mlflow", "plinth", "floor"))
        if c
    ]
    return (
        f"First load of the {meta.get('small_class', 'small')} ({meta.get('small_pickle_bytes', 0):,} byte "
        f"pickle) in a fresh process, medians after {n_warm} warm-up round(s): " + "; ".join(parts) + "."
    )


def _warnings(side: Result) -> list[str]:
    name = side["side"]
    out = []
    if not side.get("predict_matches_raw"):
        out.append(f"WARNING: {name} loaded model's predictions differ from the raw model's.")
    if side.get("versions") != list(range(1, len(side.get("versions") or []) + 1)):
        out.append(f"WARNING: {name} registered versions {side.get('versions')}, expected 1..n.")
    if not side.get("alias_ok"):
        out.append(f"WARNING: {name} loading by alias did not give version 1.")
    return out


def notes(
    mlflow: Result | None,
    plinth: Result | None,
    cold: dict[str, Result],
    first: dict[str, Result],
    meta: Result,
    quick: bool,
) -> list[str]:
    """The measured numbers behind the table, and checks of both sides' answers."""
    sides = [side for side in (mlflow, plinth) if side]
    out = [
        f"Model: {meta['class']}(n_estimators={meta['n_estimators']}), {meta['train_rows']:,} rows x "
        f"{N_FEATURES} columns, pickle {meta['pickle_bytes'] / 1e6:.1f} MB; scikit-learn {meta['sklearn']} "
        f"under plinth, {_g(mlflow, 'sklearn') or '-'} under MLflow."
    ]
    if mlflow and mlflow.get("skops_load_median_s") is not None:
        out.append(
            "MLflow with its default skops format (trusted tree type): register "
            f"{mlflow['skops_register_s']:.2f} s, in-process load "
            f"{mlflow['skops_load_median_s'] * 1e3:.0f} ms."
        )
    if sides:
        out.append(
            "Register times, each call (s): "
            + "; ".join(f"{s['side']} " + ", ".join(f"{t:.3f}" for t in s["register_times"]) for s in sides)
            + "."
        )
    if cold:
        out += _cold_note(cold, quick)
    if first:
        out.append(_first_note(first, meta, quick))
    if sides:
        p1 = sides[-1]["predict1"]
        out.append(
            f"Predict per call, raw / loaded (median of paired differences), {p1['n']:,} 1-row calls and "
            f"{sides[-1]['predict_big']['n']} {BIG_ROWS:,}-row pairs: "
            + "; ".join(_predict_note(s) for s in sides)
            + "."
        )
    if mlflow and plinth:
        raw_m, raw_p = mlflow["predict1"]["raw_s"], plinth["predict1"]["raw_s"]
        if abs(raw_m - raw_p) > 0.1 * raw_p:
            out.append(
                f"Raw 1-row predict: {raw_m * 1e3:.2f} ms with MLflow imported, {raw_p * 1e3:.2f} ms with "
                "plinth; each side's overhead is against raw in its own process."
            )
    for side in sides:
        out += _warnings(side)
    load = meta.get("loadavg")
    if load and None not in load:
        out.append(f"1-minute load average at start / end: {load[0]:.2f} / {load[1]:.2f}.")
    return out


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_options(
        ap, "fewer repetitions (smoke run)", "a full run of both sides", "keep the temp folder"
    )
    ap.add_argument("--only", choices=sorted(SIDES), help="run one side only (the floor always runs)")
    args = ap.parse_args()

    info = harness.machine()
    load_start = harness.loadavg()
    with harness.work_folder("registry", args.keep) as base:
        data_dir = base / "data"
        meta = prepare(data_dir)
        if meta is None:
            return 1
        log(f"model: {meta['class']}, pickle {meta['pickle_bytes'] / 1e6:.1f} MB")
        results: dict[str, Result | None] = {"mlflow": None, "plinth": None}
        pythons = {"plinth": sys.executable, "mlflow": ""}
        failed = []
        for name in ("mlflow", "plinth"):
            if args.only and args.only != name:
                continue
            if name == "mlflow":
                pythons["mlflow"] = harness.ensure_mlflow_venv()
                harness.ensure_sklearn(pythons["mlflow"])
            results[name] = run_side(name, pythons[name], base / name, data_dir, args.quick)
            if results[name] is None:
                failed.append(name)
        s = sizes(args.quick)
        cold = run_cold(cold_specs(results, pythons, data_dir), s["cold_reps"], s["cold_warmup"])
        first_runs = first_specs(results, pythons, data_dir)
        first = run_cold(first_runs, s["first_reps"], s["first_warmup"], paired="load_s")
        for name, res in results.items():
            if res is not None and name not in cold:
                failed.append(f"{name} (fresh process)")
            if res is not None and name not in first:
                failed.append(f"{name} (first load)")
        if "floor" not in cold or "floor" not in first:
            failed.append("floor (fresh process)")

    meta["loadavg"] = [load_start, harness.loadavg()]
    mlflow, plinth = results["mlflow"], results["plinth"]
    v_mlflow = mlflow["version"] if mlflow else "-"
    v_plinth = plinth["version"] if plinth else "-"

    body, met_n, checked = table(mlflow, plinth, cold, first, args.quick)
    note_lines = notes(mlflow, plinth, cold, first, meta, args.quick)
    title = f"registry: plinth {v_plinth} vs MLflow {v_mlflow} (SQLite){' [quick]' if args.quick else ''}"
    harness.print_table(body, title, HEADER, 140)
    harness.report(info, note_lines, met_n, checked)
    versions = (
        f"Python {info['python']} (plinth side), {mlflow['python'] if mlflow else '-'} (MLflow side); "
        f"MLflow {v_mlflow} (SQLite backend, local artifacts); plinth {v_plinth}"
    )

    write = args.write if args.write is not None else not args.quick and not args.only and not failed
    return harness.finish(
        write,
        lambda: harness.section(
            SECTION, "bench_registry.py", args.quick, info, versions, HEADER, body, note_lines
        ),
        SECTION,
        failed,
    )


if __name__ == "__main__":
    sys.exit(main())
