"""Tracking benchmark: plinth vs MLflow (SQLite backend), same machine, same run.

    python benchmarks/bench_tracking.py [--quick] [--only plinth|mlflow] [--search-only]
                                        [--write|--no-write] [--keep]

plinth runs under this interpreter (`_plinth_side.py`); MLflow runs under its own virtualenv,
benchmarks/.venv-mlflow, created on first use (`_mlflow_side.py`). Each side gets a fresh
temporary folder under benchmarks/.work and prints one JSON line of results. The comparison
table is printed and, for a full run of both sides, written to benchmarks/RESULTS.md under
"## tracking" (how each row is measured is described there).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import harness
from harness import HERE, Result

SECTION = "tracking"
SIDES = {"plinth": HERE / "_plinth_side.py", "mlflow": HERE / "_mlflow_side.py"}
HEADER = ["row", "MLflow", "plinth", "ratio", "target", "met?"]


def run_side(name: str, python: str, quick: bool, keep: bool, search_only: bool) -> Result | None:
    """Run one side in a fresh work folder; return its JSON result, or None on failure."""
    with harness.work_folder(name, keep) as workdir:
        cmd = [python, str(SIDES[name]), "--workdir", str(workdir)]
        if quick:
            cmd.append("--quick")
        if search_only:
            cmd.append("--search-only")
        harness.log(f"{name}: {' '.join(cmd)}")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=harness.clean_env(), check=False)
    result = harness.last_json(proc.stdout) if proc.returncode == 0 else None
    if result is None:
        harness.log(f"{name}: FAILED (exit {proc.returncode})")
        if proc.stdout.strip():
            print(proc.stdout, file=sys.stderr)
    return result


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
            ">= 2,000/s, >= 30x",
            lambda p, r: p >= 2_000 and (r is None or r >= 30),
        ),
        Row(
            f"4. search {n(5_000)} runs: filter + order, limit 10 (median)",
            "search_median_ms",
            "ms",
            "<= 2 ms, >= 50x",
            lambda p, r: p <= 2 and (r is None or r >= 50),
        ),
        Row(
            f"4b. search {n(2_000)} runs: filter + order, limit 100 (median)",
            "search2k_median_ms",
            "ms",
            ">= 20x",
            lambda p, r: None if r is None else r >= 20,
        ),
        Row(
            f"4c. search {n(100_000)} runs: filter + order, limit 100 (median)",
            "search100k_filter_median_ms",
            "ms",
            "<= 20 ms",
            lambda p, r: p <= 20,
        ),
        Row(
            f"4d. search {n(100_000)} runs: order by a metric, limit 100 (median)",
            "search100k_order_median_ms",
            "ms",
            "<= 20 ms",
            lambda p, r: p <= 20,
        ),
        Row(
            f"4e. search {n(100_000)} runs: newest 100 (median)",
            "search100k_newest_median_ms",
            "ms",
            "-",
            None,
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


def notes(mlflow: Result | None, plinth: Result | None) -> list[str]:
    """The measured sample sizes, and checks of both sides' answers."""
    out = []
    if mlflow and "runs_n" in mlflow:
        out.append(
            f"MLflow measured {mlflow['log_metric_n']:,} log_metric calls, {mlflow['batch_points']:,} "
            f"batch points ({mlflow['batch_chunk']:,} per log_batch call) and {mlflow['runs_n']:,} runs; "
            f"its rates and the {mlflow['log_metric_nominal_n']:,}-call durable time are extrapolated."
        )
    if mlflow:
        out.append(
            f"{mlflow['search_matches']:,} of {mlflow['search_n_runs']:,} runs match the search filter "
            f"({mlflow['search2k_matches']:,} of {mlflow['search2k_n_runs']:,} in row 4b)."
        )
    if plinth and "batch_chunk" in plinth:
        out.append(f"plinth logs the batch path in {plinth['batch_chunk']:,}-point chunks.")
    if plinth:
        n = plinth["search100k_n_runs"]
        line = (
            f"Rows 4c-4e are plinth's only: its {n:,}-run store took "
            f"{plinth['search100k_setup_s']:,.0f} s to fill through start_run"
        )
        if mlflow:
            rate = mlflow["search_n_runs"] / mlflow["search_setup_s"]
            minutes = n / rate / 60
            line += (
                f"; at the {rate:,.0f} runs/s MLflow filled row 4's store, it would take {minutes:,.0f} min"
            )
        out.append(line + ".")
    any_side = plinth or mlflow or {}
    out.append(
        f"Search: median of {any_side.get('search_reps')} calls, "
        "each figure on a fresh store holding only its runs."
    )
    if "history_reps" in any_side:
        out.append(f"History: median of {any_side['history_reps']} calls.")
    out.extend(_answer_checks(mlflow, plinth))
    return out


def _answer_checks(mlflow: Result | None, plinth: Result | None) -> list[str]:
    """Warnings where a side answered with the wrong number of runs or points; the sides' top runs."""
    out = []
    limits = {"search": 10, "search2k": 100, "search100k_filter": 100, "search100k_order": 100}
    for side in (s for s in (mlflow, plinth) if s):
        for prefix, limit in limits.items():
            if f"{prefix}_returned" not in side:
                continue
            got, expected = side[f"{prefix}_returned"], min(limit, side[f"{prefix}_matches"])
            if got != expected:
                out.append(f"WARNING: {side['side']} {prefix} returned {got} runs, expected {expected}.")
        if side.get("history_returned") != side.get("history_points"):
            out.append(
                f"WARNING: {side['side']} metric_history returned "
                f"{side.get('history_returned')} points, expected {side.get('history_points')}."
            )
    for prefix, label in (("search", "top-10"), ("search2k", "top-100 of row 4b")):
        top_m, top_p = (mlflow or {}).get(f"{prefix}_top_m2"), (plinth or {}).get(f"{prefix}_top_m2")
        if top_m and top_p and None not in top_p:
            same = top_m == top_p
            out.append(
                f"Search {label} (by m2) identical on both sides: "
                + ("yes." if same else f"NO (MLflow {top_m[:10]}, plinth {top_p[:10]}).")
            )
    return out


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_options(
        ap, "all sizes / 10 (smoke run)", "a full run of both sides", "keep the temp folders"
    )
    ap.add_argument("--only", choices=sorted(SIDES), help="run one side only")
    ap.add_argument("--search-only", action="store_true", help="measure the search rows only")
    args = ap.parse_args()

    info = harness.machine()
    results: dict[str, Result | None] = {"mlflow": None, "plinth": None}
    failed = []
    for name in ("mlflow", "plinth"):
        if args.only and args.only != name:
            continue
        python = harness.ensure_mlflow_venv() if name == "mlflow" else sys.executable
        results[name] = run_side(name, python, args.quick, args.keep, args.search_only)
        if results[name] is None:
            failed.append(name)
    mlflow, plinth = results["mlflow"], results["plinth"]
    v_mlflow = mlflow["version"] if mlflow else "-"
    v_plinth = plinth["version"] if plinth else "-"

    body, met_n, checked = table(mlflow, plinth, args.quick)
    note_lines = notes(mlflow, plinth)
    title = f"tracking: plinth {v_plinth} vs MLflow {v_mlflow} (SQLite){' [quick]' if args.quick else ''}"
    harness.print_table(body, title, HEADER)
    harness.report(info, note_lines, met_n, checked)
    versions = (
        f"Python {info['python']} (plinth side), {mlflow['python'] if mlflow else '-'} (MLflow side); "
        f"MLflow {v_mlflow} (SQLite backend); plinth {v_plinth}"
    )

    partial = args.quick or args.only or args.search_only
    write = args.write if args.write is not None else not partial and not failed
    return harness.finish(
        write,
        lambda: harness.section(
            SECTION, "bench_tracking.py", args.quick, info, versions, HEADER, body, note_lines
        ),
        SECTION,
        failed,
    )


if __name__ == "__main__":
    sys.exit(main())
