"""Web UI benchmark: plinth's UI vs MLflow 3.17.2's, in headless Chromium, at 100,000 runs.

    python benchmarks/bench_ui.py [--quick] [--only plinth|mlflow] [--reps 5] [--fill-only]
                            [--mlflow-fill bulk|api] [--write|--no-write] [--keep]

Both stores hold the same seeded data (`_ui_data.py`): experiment `bench` with 100,000 runs of 20
params (six categorical) and 20 metrics, 20 of them (the compare set) with 500-step curves, and
one run whose metric `big` has 1,000,000 points. Each store is filled once and cached under
benchmarks/.work/ui-cache, keyed by the sizes (`_ui_stores.py`):

- plinth (this interpreter, `_ui_fill_plinth.py`): the store's bulk calls (`create_runs`,
  `write_metrics`, `end_runs`), the big run through `plinth.start_run` + `log_metric_points`.
- MLflow (benchmarks/.venv-mlflow, made on first use, `_ui_fill_mlflow.py`): in-process through
  its `SqlAlchemyStore`: the compare set and the big run with `create_run` + `log_batch`, the other
  runs as the same rows written in bulk through the store's ORM tables (`--mlflow-fill api` sends
  every run through `log_batch`, over an hour here).

Then each side's server runs on its cached store (`plinth ui`; `mlflow server` with its job runner
off) and Chromium (Playwright, /usr/bin/chromium) opens each page `--reps` times, a fresh page
each time, after one untimed warm-up pass; every figure is the median (`_ui_browser.py` says how
a figure is read). Printed: figure | plinth | MLflow | ratio | target | met.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _ui_browser as ui
import _ui_data as data
import _ui_mlflow_pages as mp
import _ui_plinth_pages as pp
import _ui_stores as stores
import harness
from bench_server import _server, plinth_command, serving
from bench_serving import _free_port, _on_signal, _stop_all
from harness import Result, log

SECTION = "ui"
HEADER = ["figure", "plinth", "MLflow", "ratio", "target", "met?"]
SIDES = ["plinth", "mlflow"]


# --------------------------------------------------------------------------- servers


@contextlib.contextmanager
def plinth_ui(home: Path, work: Path) -> Iterator[str]:
    """`plinth ui` over the cached store at PLINTH_HOME=`home`; its base URL."""
    port = _free_port()
    env = {**harness.clean_env(), "PLINTH_HOME": str(home), "PLINTH_SYSTEM_METRICS": "false"}
    cmd = [*plinth_command(), "ui", "--port", str(port)]
    with serving(_server("plinth ui", cmd, env, work, port, "/readyz")):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def mlflow_ui(folder: Path, work: Path) -> Iterator[str]:
    """`mlflow server` over the cached MLflow store in `folder`; its base URL."""
    python = harness.ensure_mlflow_venv()
    port = _free_port()
    cmd = [python, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    cmd += ["--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    env = {**harness.clean_env(), **stores.QUIET_MLFLOW}
    with serving(_server("mlflow server", cmd, env, work, port, "/health")):
        yield f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------- measuring


def repeat(
    context: Any,
    api: ui.ApiLog,
    errors: list[str],
    reps: int,
    fn: Callable[[Any], Any],
    server: pp.ServerLatency | None = None,
) -> list[Any]:
    """`fn(page)` once untimed (warm-up: browser cache, server and database caches), then `reps`
    times, each on a fresh page; the timed answers."""
    out = []
    for rep in range(reps + 1):
        api.recording = rep > 0
        page = ui.new_page(context, api, errors)
        if server and rep > 0:
            server.mark()
        try:
            got = fn(page)
        finally:
            page.close()
        if server and rep > 0:
            server.add()
        if rep > 0:
            out.append(got)
    return out


def _put(res: Result, key: str, samples: list[float]) -> None:
    """The median of `samples` under `key`, and the samples themselves (for the spread)."""
    res[key] = ui.median(samples)
    res.setdefault("samples", {})[key] = samples


def measure_plinth(base: str, record: dict[str, Any], reps: int) -> Result:
    """The five plinth figures, medians of `reps`."""
    api, server = ui.ApiLog(pp.PREFIXES), pp.ServerLatency(base)
    errors: list[str] = []
    res: Result = {"load_before": harness.loadavg()}
    with ui.browser() as browser:
        res["chromium"] = browser.version
        context = browser.new_context(viewport=ui.VIEWPORT)

        def timed(fn: Callable[[Any], Any]) -> list[Any]:
            return repeat(context, api, errors, reps, fn, server)

        log("plinth: runs page")
        _put(res, "runs_ms", timed(lambda p: pp.runs_page(p, base)))
        log("plinth: filter + sort")
        fs = timed(lambda p: pp.filter_and_sort(p, base))
        _put(res, "filter_ms", [f for f, _, _ in fs])
        _put(res, "sort_ms", [s for _, s, _ in fs])
        res["filter_checks"] = fs[-1][2]
        res["sorted_every_time"] = all(c["sorted"] for _, _, c in fs)
        log("plinth: run page (big metric)")
        said: list[str] = []

        def run_page(page: Any) -> float:
            ms = pp.run_page(page, base, record["big"])
            said.append(pp.point_count(page))
            return ms

        _put(res, "run_ms", timed(run_page))
        res["run_points"] = said[-1]
        log("plinth: compare")
        charts: list[int] = []

        def compare(page: Any) -> float:
            ms = pp.compare_page(page, base, record["compare"])
            charts.append(pp.chart_count(page))
            return ms

        _put(res, "compare_ms", timed(compare))
        res["compare_charts"] = charts[-1]
    res["server_p50_ms"] = server.quantile_ms(0.5)
    res["server_p95_ms"] = server.quantile_ms(0.95)
    return _api_figures(res, api, errors)


def measure_mlflow(base: str, record: dict[str, Any], reps: int) -> Result:
    """MLflow's runs page and compare view, medians of `reps`."""
    api = ui.ApiLog(mp.PREFIXES)
    errors: list[str] = []
    res: Result = {"load_before": harness.loadavg()}
    exp = record["experiment_id"]
    with ui.browser() as browser:
        res["chromium"] = browser.version
        context = browser.new_context(viewport=ui.VIEWPORT)
        log("mlflow: runs page")
        _put(res, "runs_ms", repeat(context, api, errors, reps, lambda p: mp.runs_page(p, base, exp)))
        log("mlflow: run page (big metric)")
        drawn: list[int] = []

        def run_page(page: Any) -> float:
            ms = mp.run_page(page, base, exp, record["big"])
            drawn.append(mp.drawn_points(page))
            return ms

        _put(res, "run_ms", repeat(context, api, errors, reps, run_page))
        res["run_points_drawn"] = drawn[-1]
        log("mlflow: compare")
        details: list[str] = []

        def compare(page: Any) -> float:
            ms = mp.compare_page(page, base, exp, record["compare"])
            details.append(mp.compare_detail(page))
            return ms

        _put(res, "compare_ms", repeat(context, api, errors, reps, compare))
        res["compare_detail"] = details[-1]
    return _api_figures(res, api, errors)


def _api_figures(res: Result, api: ui.ApiLog, errors: list[str]) -> Result:
    res["api_p95_ms"] = api.p95()
    res["api_calls"] = len(api.calls)
    res["api_slowest"] = api.slowest()
    res["api_failed"] = len(api.failed)
    res["console_errors"] = sorted(set(errors))[:5]
    res["load_after"] = harness.loadavg()
    return res


def run_side(side: str, sizes: data.Sizes, args: argparse.Namespace) -> Result | None:
    """Fill (or reuse) the side's store, serve it, time its pages."""
    try:
        if side == "plinth":
            folder, record = stores.plinth_store(sizes)
        else:
            folder, record = stores.mlflow_store(sizes, args.mlflow_procs, args.mlflow_fill)
        if args.fill_only:
            return {"record": record}
        with harness.work_folder(f"ui-{side}", args.keep) as work:
            t0 = time.perf_counter()
            if side == "plinth":
                with plinth_ui(folder, work) as base:
                    res = measure_plinth(base, record, args.reps)
            else:
                with mlflow_ui(folder, work) as base:
                    res = measure_mlflow(base, record, args.reps)
            res["measure_s"] = time.perf_counter() - t0
        res["record"] = record
        return res
    except Exception as exc:  # a side that fails leaves the other's figures standing
        log(f"{side}: FAILED: {type(exc).__name__}: {exc}")
        return None


# --------------------------------------------------------------------------- table


def _fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1e3:,.2f} s" if ms >= 1_000 else f"{ms:,.0f} ms"


def table(p: Result | None, m: Result | None, sizes: data.Sizes) -> tuple[list[list[str]], int, int]:
    """The table body and (targets met, targets checked)."""
    big = f"{sizes.big_points:,}"
    rows = [
        (f"runs page ready ({sizes.runs:,} runs, rows shown)", "runs_ms", 1_000.0),
        ("filter round trip (Enter -> filtered rows)", "filter_ms", 300.0),
        ("sort round trip (header click -> re-sorted rows)", "sort_ms", 300.0),
        (f"run page, {big}-point metric charted", "run_ms", 1_000.0),
        (f"compare {data.COMPARE_N} runs, charts drawn", "compare_ms", 1_500.0),
        ("p95 of the UI's API calls", "api_p95_ms", 200.0),
    ]
    body, met_n, checked = [], 0, 0
    for label, key, target in rows:
        pv = p.get(key) if p else None
        mv = m.get(key) if m else None
        ratio = "-"
        if pv and mv:
            ratio = f"{mv / pv:,.1f}x faster" if mv >= pv else f"{pv / mv:,.1f}x slower"
        met = "-"
        if pv is not None:
            checked += 1
            met_n += pv <= target
            met = "yes" if pv <= target else "NO"
        body.append([label, _fmt_ms(pv), _fmt_ms(mv), ratio, f"<= {_fmt_ms(target)}", met])
    return body, met_n, checked


def notes(p: Result | None, m: Result | None, sizes: data.Sizes, args: argparse.Namespace) -> list[str]:
    """How each side was filled and measured, and the checks of what the pages showed."""
    out = [
        f"Store: experiment `{data.EXPERIMENT}`, {sizes.runs:,} runs x {sizes.params} params x "
        f"{sizes.metrics} metrics (+ the big run: {sizes.big_points:,} points); "
        f"the first {data.COMPARE_N} runs have "
        f"{data.CURVE_STEPS}-step curves and are the compare set. Median of {args.reps} fresh pages per "
        "figure after one untimed warm-up; timed in the page from navigation start (or the key/click "
        "event) to the first frame at which the figure's condition holds.",
    ]
    for name, res in (("plinth", p), ("MLflow", m)):
        if res:
            out.append(_side_note(name, res))
    for name, res in (("plinth", p), ("MLflow", m)):
        if res and res.get("samples"):
            spread = ", ".join(
                f"{k[:-3]} {_fmt_ms(min(v))}-{_fmt_ms(max(v))}" for k, v in res["samples"].items()
            )
            out.append(f"{name}, spread (fastest-slowest of the {args.reps} timed pages): {spread}.")
    if p and p.get("server_p95_ms") is not None:
        out.append(
            f"plinth: the same API calls as its server timed them (/metrics histogram, interpolated "
            f"within buckets): p50 {_fmt_ms(p['server_p50_ms'])}, p95 {_fmt_ms(p['server_p95_ms'])}; "
            f"the table's p95 is the browser's (request sent to last byte, queueing included)."
        )
    if p:
        c = p["filter_checks"]
        out.append(
            f'plinth checks: the filter `{data.FILTER}` showed "{c["count"]}"; after the click on '
            f"`{data.SORT_COLUMN}` the rows were in ascending order every time: "
            f"{'yes' if p['sorted_every_time'] else 'NO'}; "
            f'the run page said "{p["run_points"]}"; the compare page drew {p["compare_charts"]} charts.'
        )
    if m:
        out.append(
            f"MLflow: {mp.METHOD}; its run page's line had {m['run_points_drawn']:,} points when drawn; "
            f"compare view when ready: {m['compare_detail']}."
        )
    return out


def _side_note(name: str, res: Result) -> str:
    """How a side's store was filled, the load around its pages, its API calls and console."""
    rec = res["record"]
    how = f", {rec.get('mode', 'bulk')} mode, {rec.get('procs', 1)} processes" if name == "MLflow" else ""
    routes = ", ".join(f"{r} {_fmt_ms(ms)}" for r, ms in res["api_slowest"])
    console = f"console errors: {res['console_errors']}" if res["console_errors"] else "no console errors"
    return (
        f"{name}: store filled in {rec['fill_s']:,.0f} s ({rec['runs_s']:,.0f} s the runs, "
        f"{rec['big_s']:,.0f} s the big metric{how}); load average {res['load_before']:.2f} before its "
        f"pages, {res['load_after']:.2f} after; {res['api_calls']} API calls timed ({res['api_failed']} "
        f"failed), slowest routes (p95): {routes}; {console}."
    )


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_options(
        ap,
        "2,000 runs and a 100,000-point metric (its own cached stores): a smoke run",
        "a full run of both sides",
        "keep the work folders (server logs)",
    )
    ap.add_argument("--only", choices=SIDES, help="run one side only")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per figure (default 5)")
    ap.add_argument("--fill-only", action="store_true", help="fill the cached stores and stop")
    ap.add_argument("--mlflow-fill", choices=["bulk", "api"], default="bulk", help="how MLflow's runs go in")
    ap.add_argument("--mlflow-procs", type=int, default=2, help="MLflow fill processes (default 2)")
    args = ap.parse_args()

    atexit.register(_stop_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    sizes = data.QUICK if args.quick else data.FULL
    sides = [s for s in SIDES if not args.only or args.only == s]
    info = harness.machine()
    load_at_start = harness.load_text()
    results = {side: run_side(side, sizes, args) for side in sides}
    failed = [s for s in sides if results[s] is None]
    if args.fill_only:
        return 1 if failed else 0
    p, m = results.get("plinth"), results.get("mlflow")
    body, met_n, checked = table(p, m, sizes)
    note_lines = notes(p, m, sizes, args)
    v_plinth = harness.dist_version(sys.executable, "plinth")[0]
    v_mlflow = harness.dist_version(harness.ensure_mlflow_venv(), "mlflow")[0] if "mlflow" in sides else "-"
    title = f"ui: plinth {v_plinth} vs MLflow {v_mlflow}{' [quick]' if args.quick else ''}"
    harness.print_table(body, title, HEADER)
    harness.report(info, note_lines, met_n, checked)
    chromium = (p or m or {}).get("chromium", "?")
    versions = (
        f"Chromium {chromium} (headless, Playwright); MLflow {v_mlflow}; plinth {v_plinth}; "
        f"load average at the start {load_at_start}"
    )
    print(f"load average at the start {load_at_start}, at the end {harness.load_text()}")
    partial = args.quick or bool(args.only)
    write = args.write if args.write is not None else not partial and not failed
    return harness.finish(
        write,
        lambda: harness.section(SECTION, "bench_ui.py", args.quick, info, versions, HEADER, body, note_lines),
        SECTION,
        failed,
    )


if __name__ == "__main__":
    sys.exit(main())
