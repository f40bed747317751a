"""Tracking benchmark: plinth vs MLflow (SQLite backend), same machine, same run.

    python benchmarks/tracking.py [--quick] [--only plinth|mlflow] [--write|--no-write] [--keep]

plinth runs under this interpreter (`_plinth_side.py`); MLflow runs under its own virtualenv,
benchmarks/.venv-mlflow, created on first use (`_mlflow_side.py`). Each side gets a fresh
temporary folder under benchmarks/.work and prints one JSON line of results. The comparison
table is printed and, for a full run of both sides, written to benchmarks/RESULTS.md under
"## tracking".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-mlflow"
WORK = HERE / ".work"
RESULTS = HERE / "RESULTS.md"
MLFLOW_PIN = "mlflow==3.17.2"  # 3.18 does not install here
SIDES = {"plinth": HERE / "_plinth_side.py", "mlflow": HERE / "_mlflow_side.py"}

Result = dict[str, Any]


# --------------------------------------------------------------------------- environment


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_mlflow_venv() -> Path:
    """Return the MLflow venv's python, creating the venv and installing MLflow if needed."""
    python = _venv_python()
    if not python.exists():
        _log(f"creating {VENV} (first use)")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import mlflow"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        _log(f"installing {MLFLOW_PIN} into {VENV} (takes a few minutes)")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", MLFLOW_PIN], check=True)
    return python


def run_side(name: str, python: str, quick: bool, keep: bool) -> Result | None:
    """Run one side in a fresh temp folder; return its JSON result, or None on failure."""
    WORK.mkdir(exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f"{name}-", dir=WORK)
    cmd = [python, str(SIDES[name]), "--workdir", workdir]
    if quick:
        cmd.append("--quick")
    env = dict(os.environ)
    env.pop("PLINTH_HOME", None)  # the side script sets it to its workdir
    env.pop("MLFLOW_TRACKING_URI", None)
    _log(f"{name}: {' '.join(cmd)}")
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=False)
    finally:
        if keep:
            _log(f"{name}: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        _log(f"{name}: FAILED (exit {proc.returncode})")
        if proc.stdout.strip():
            print(proc.stdout, file=sys.stderr)
        return None
    return json.loads(lines[-1])


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, OS and Python of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    ram = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------- table


@dataclass
class Row:
    label: str
    key: str
    kind: str  # "rate": higher is better; "ms" / "s": lower is better
    target: str
    # (plinth value, ratio or None) -> met?, or None where it cannot be judged
    met: Callable[[float, float | None], bool | None] | None


def _rows(quick: bool) -> list[Row]:
    k = 10 if quick else 1

    def n(x: int) -> str:
        return f"{x // k:,}"

    return [
        Row(
            f"1. log_metric, {n(100_000)} calls in one run (calls/s)",
            "log_metric_calls_per_s",
            "rate",
            ">= 1000x",
            lambda p, r: None if r is None else r >= 1000,
        ),
        Row(
            f"1. log_metric, {n(100_000)} calls: time until durable",
            "log_metric_durable_nominal_s",
            "s",
            "-",
            None,
        ),
        Row(
            f"2. batch path, {n(1_000_000)} points, durable (points/s)",
            "batch_points_per_s",
            "rate",
            ">= 300,000/s",
            lambda p, r: p >= 300_000,
        ),
        Row(
            f"3. {n(1_000)} runs x (5 params + 5 metrics) (runs/s)",
            "runs_per_s",
            "rate",
            ">= 10x",
            lambda p, r: None if r is None else r >= 10,
        ),
        Row(
            f"4. search {n(5_000)} runs: filter + order, limit 10 (median)",
            "search_median_ms",
            "ms",
            ">= 20x",
            lambda p, r: None if r is None else r >= 20,
        ),
        Row(
            f"5. metric_history, {n(100_000)} points (median)",
            "history_median_ms",
            "ms",
            ">= 20x",
            lambda p, r: None if r is None else r >= 20,
        ),
    ]


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "rate":
        return f"{value:,.0f}/s"
    ms = value * 1e3 if kind == "s" else value
    if ms >= 10_000:
        return f"{ms / 1e3:,.1f} s"
    if ms >= 1_000:
        return f"{ms / 1e3:,.2f} s"
    return f"{ms:,.1f} ms" if ms >= 10 else f"{ms:.2f} ms" if ms >= 1 else f"{ms:.3f} ms"


def _fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:,.0f}x faster" if ratio >= 100 else f"{ratio:,.1f}x faster"


def table(mlflow: Result | None, plinth: Result | None, quick: bool) -> tuple[list[list[str]], int, int]:
    """Return the table body and (targets met, targets checked)."""
    body = []
    met_n = checked = 0
    for row in _rows(quick):
        m = mlflow.get(row.key) if mlflow else None
        p = plinth.get(row.key) if plinth else None
        ratio = None
        if m and p:
            ratio = p / m if row.kind == "rate" else m / p
        ok = row.met(p, ratio) if row.met is not None and p is not None else None
        met = "-" if ok is None else "yes" if ok else "NO"
        if ok is not None:
            checked += 1
            met_n += ok
        body.append([row.label, _fmt(m, row.kind), _fmt(p, row.kind), _fmt_ratio(ratio), row.target, met])
    return body, met_n, checked


HEADER = ["row", "MLflow", "plinth", "ratio", "target", "met?"]


def notes(mlflow: Result | None, plinth: Result | None) -> list[str]:
    """Footnotes: what was actually measured, and sanity checks of both sides' answers."""
    out = [
        "Each side uses a fresh SQLite-backed store in its own temp folder under "
        "benchmarks/.work (same disk); store creation and untimed setup are excluded. "
        "Ratio is always oriented as 'x faster' for plinth (rates: plinth/MLflow, "
        "times: MLflow/plinth).",
    ]
    if mlflow:
        out.append(
            f"MLflow log_metric: measured {mlflow['log_metric_n']:,} calls "
            f"(mlflow.log_metric, synchronous, so durable = loop); the rate and the "
            f"{mlflow['log_metric_nominal_n']:,}-call durable time are extrapolated."
        )
        out.append(
            f"MLflow batch path: MlflowClient.log_batch with {mlflow['batch_chunk']:,} "
            f"Metric objects per call (MLflow's limit), measured on "
            f"{mlflow['batch_points']:,} points; rate extrapolated."
        )
        out.append(
            f"MLflow runs: measured {mlflow['runs_n']:,} runs of `with mlflow.start_run(): "
            "mlflow.log_params(...); mlflow.log_metrics(...)`; rate extrapolated."
        )
        out.append(
            "MLflow search: mlflow.search_runs(experiment_ids=[...], filter_string=..., "
            "order_by=['metrics.m2 DESC'], max_results=10, output_format='list') "
            f"(no pandas); {mlflow['search_matches']:,} of {mlflow['search_n_runs']:,} runs "
            "match the filter. MLflow metric history: MlflowClient.get_metric_history."
        )
    if plinth:
        out.append(
            f"plinth: run.log_metric then run.flush (durable = loop + flush); "
            f"run.log_metric_points in {plinth['batch_chunk']:,}-point chunks then "
            "run.flush; plinth.start_run(params=...) + run.log_metrics; plinth.search_runs "
            "(where=..., order_by=['-metrics.m2'], limit=10); plinth.metric_history."
        )
    any_side = plinth or mlflow or {}
    out.append(
        f"Search: median of {any_side.get('search_reps')} calls, history: median of "
        f"{any_side.get('history_reps')} calls, each "
        "after one untimed warm-up call."
    )
    for side in (mlflow, plinth):
        if not side:
            continue
        if side.get("search_returned") != 10:
            out.append(
                f"WARNING: {side['side']} search returned {side.get('search_returned')} runs, expected 10."
            )
        if side.get("history_returned") != side.get("history_points"):
            out.append(
                f"WARNING: {side['side']} metric_history returned "
                f"{side.get('history_returned')} points, expected {side.get('history_points')}."
            )
    if mlflow and plinth:
        top_m, top_p = mlflow.get("search_top_m2"), plinth.get("search_top_m2")
        if top_p and None not in top_p:
            same = top_m == top_p
            out.append(
                "Search top-10 (by m2) identical on both sides: "
                + ("yes." if same else f"NO (MLflow {top_m}, plinth {top_p}).")
            )
    return out


def print_table(body: list[list[str]], title: str, header: list[str] | None = None, width: int = 132) -> None:
    """Print a results table (rich when available); rows whose verdict starts with NO are red."""
    header = header or HEADER
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        print(title)
        for r in [header, ["-" * w for w in widths], *body]:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        return
    t = Table(title=title)
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in body:
        t.add_row(*r, style="red" if r[-1].startswith("NO") else None)
    # Piped output would otherwise wrap at 80 columns.
    Console(width=None if sys.stdout.isatty() else width).print(t)


def markdown_section(body: list[list[str]], note_lines: list[str], info: dict[str, str], quick: bool) -> str:
    lines = [
        "## tracking",
        "",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. "
        f"Command: `python benchmarks/tracking.py{' --quick' if quick else ''}`.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM, {info['os']}; "
        f"Python {info['python']} (plinth side), {info['mlflow_python']} (MLflow side); "
        f"MLflow {info['mlflow']} (SQLite backend); plinth {info['plinth']}.",
        "",
    ]
    lines += table_and_notes(HEADER, body, note_lines)
    return "\n".join(lines) + "\n"


def table_and_notes(header: list[str], body: list[list[str]], note_lines: list[str]) -> list[str]:
    """The markdown table and the notes of a RESULTS.md section (first column left, the rest right)."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines += ["", "Notes:", ""]
    lines += [f"- {n}" for n in note_lines]
    return lines


def finish(write: bool, section: Callable[[], str], name: str, failed: list[str]) -> int:
    """Write the section into RESULTS.md when asked, say so, and give the exit status."""
    if write:
        write_results(section(), name)
        print(f"wrote {RESULTS.relative_to(HERE.parent)}")
    else:
        print("RESULTS.md not updated (quick, partial or failed run; --write forces it)")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def write_results(section: str, name: str = "tracking") -> None:
    """Replace (or append) the "## NAME" section of RESULTS.md, keeping the others."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^## {re.escape(name)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
        text = text.rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="all sizes / 10 (smoke run)")
    ap.add_argument("--only", choices=sorted(SIDES), help="run one side only")
    ap.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="update RESULTS.md (default: only for a full run of both sides)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp folders")
    args = ap.parse_args()

    info = machine()
    results: dict[str, Result | None] = {"mlflow": None, "plinth": None}
    failed = []
    for name in ("mlflow", "plinth"):
        if args.only and args.only != name:
            continue
        python = str(ensure_mlflow_venv()) if name == "mlflow" else sys.executable
        results[name] = run_side(name, python, args.quick, args.keep)
        if results[name] is None:
            failed.append(name)
    mlflow, plinth = results["mlflow"], results["plinth"]
    info["mlflow"] = mlflow["version"] if mlflow else "-"
    info["mlflow_python"] = mlflow["python"] if mlflow else "-"
    info["plinth"] = plinth["version"] if plinth else "-"

    body, met_n, checked = table(mlflow, plinth, args.quick)
    note_lines = notes(mlflow, plinth)
    title = (
        f"tracking: plinth {info['plinth']} vs MLflow {info['mlflow']} (SQLite)"
        f"{' [quick]' if args.quick else ''}"
    )
    print_table(body, title)
    print(f"{info['cpu']}, {info['cores']} cores, {info['ram']} RAM, {info['os']}, Python {info['python']}")
    for n in note_lines:
        print(f"- {n}")
    print(f"targets met: {met_n}/{checked}")

    write = args.write if args.write is not None else not args.quick and not args.only and not failed
    return finish(write, lambda: markdown_section(body, note_lines, info, args.quick), "tracking", failed)


if __name__ == "__main__":
    sys.exit(main())
