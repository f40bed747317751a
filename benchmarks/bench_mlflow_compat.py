"""MLflow's own client against `plinth server` and against MLflow's `mlflow server`: one script, two servers.

    python benchmarks/bench_mlflow_compat.py [--quick] [--only plinth,mlflow,stub] [--write|--no-write]
        [--keep]

The same client script (`_mlflow_compat_client.py`, MLflow 3.17.2 in the repository's
`.venv-mlflow`, which `scripts/test-services.sh` makes) runs against each server on this machine,
each server in its own process group over a fresh SQLite file with local artifacts:

- plinth: `plinth server --host 127.0.0.1 --port P` (PLINTH_STORE / PLINTH_ARTIFACTS /
  PLINTH_ADMIN_TOKEN); the client sends the admin token as MLFLOW_TRACKING_TOKEN.
- MLflow: `mlflow server --backend-store-uri sqlite:///… --artifacts-destination … --host
  127.0.0.1 --port P` (its default 4 uvicorn workers, job runner off), no auth.
- stub (`_mlflow_compat_stub.py`): answers every call at once and keeps nothing, with plinth's
  own bytes for the search and the model's files from a local folder; the client's time against
  it is the client's own floor, the part of each row no server can remove.

Rows: runs/s (fluent start_run + log_params of 3 + end), log_batch points/s (1,000 a call),
search latency (median of filtered, ordered searches returning up to 100 of 1,000 runs) and
load_model time (`models:/name@alias`, median); each timed in three rounds, the best reported.
Target: every row at least 3x faster against plinth. The table is printed and, for a full run
of the three sides, written into benchmarks/RESULTS.md under "## mlflow_compat".
"""

from __future__ import annotations

import argparse
import atexit
import secrets
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import harness
from bench_server import QUIET_MLFLOW, _server, plinth_command, run_client, serving
from bench_serving import _free_port, _on_signal, _stop_all
from harness import HERE, Result, log

SECTION = "mlflow_compat"
SIDES = ["plinth", "mlflow", "stub"]
CLIENT = HERE / "_mlflow_compat_client.py"
STUB = HERE / "_mlflow_compat_stub.py"
MLFLOW_VENV = HERE.parent / ".venv-mlflow"
HEADER = ["row", "plinth", "MLflow", "ratio", "client floor (stub)", "target", "met?"]
TARGET = 3.0


def mlflow_python() -> str:
    """`.venv-mlflow`'s python with MLflow and scikit-learn (made here when missing)."""
    return harness.ensure_venv(MLFLOW_VENV, [harness.MLFLOW_PIN, "scikit-learn"], "import mlflow, sklearn")


def client_cmd(python: str, work: Path, quick: bool, *extra: str) -> list[str]:
    cmd = [python, str(CLIENT), "--workdir", str(work / "client"), *extra]
    return [*cmd, "--quick"] if quick else cmd


def client_env(url: str, token: str | None = None) -> dict[str, str]:
    env = {**harness.clean_env(), **QUIET_MLFLOW, "MLFLOW_TRACKING_URI": url, "OMP_NUM_THREADS": "1"}
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    return env


def run_plinth(python: str, args: argparse.Namespace, search_body: Path) -> Result | None:
    with harness.work_folder("mlflow-compat-plinth", args.keep) as work:
        port, admin = _free_port(), "plt_" + secrets.token_urlsafe(32)
        env = {
            **harness.clean_env(),
            "PLINTH_HOME": str(work / "server-home"),
            "PLINTH_STORE": f"sqlite:///{work / 'plinth.db'}",
            "PLINTH_ARTIFACTS": str(work / "artifacts"),
            "PLINTH_ADMIN_TOKEN": admin,
        }
        cmd = [*plinth_command(), "server", "--host", "127.0.0.1", "--port", str(port)]
        url = f"http://127.0.0.1:{port}"
        try:
            with serving(_server("plinth server", cmd, env, work, port, "/readyz")):
                extra = ("--search-body", str(search_body))
                return run_client(
                    "plinth", client_cmd(python, work, args.quick, *extra), client_env(url, admin)
                )
        except RuntimeError as exc:
            log(f"plinth: {exc}")
            return None


def run_mlflow(python: str, args: argparse.Namespace) -> Result | None:
    with harness.work_folder("mlflow-compat-mlflow", args.keep) as work:
        port = _free_port()
        cmd = [python, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}"]
        cmd += [
            "--artifacts-destination",
            str(work / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        env = {**harness.clean_env(), **QUIET_MLFLOW}
        url = f"http://127.0.0.1:{port}"
        try:
            with serving(_server("mlflow server", cmd, env, work, port, "/health")):
                return run_client("mlflow", client_cmd(python, work, args.quick), client_env(url))
        except RuntimeError as exc:
            log(f"mlflow: {exc}")
            return None


def run_stub(python: str, args: argparse.Namespace, search_body: Path) -> Result | None:
    with harness.work_folder("mlflow-compat-stub", args.keep) as work:
        port = _free_port()
        model_dir = work / "stub-model"
        cmd = [sys.executable, str(STUB), "--port", str(port), "--model-dir", str(model_dir)]
        if search_body.exists():
            cmd += ["--search-body", str(search_body)]
        else:
            log("stub: no plinth search answer to replay (plinth side not run); the stub answers no runs")
        url = f"http://127.0.0.1:{port}"
        try:
            with serving(_server("stub", cmd, harness.clean_env(), work, port, "/health")):
                cmd = client_cmd(python, work, args.quick, "--stub", "--model-dir", str(model_dir))
                return run_client("stub", cmd, client_env(url))
        except RuntimeError as exc:
            log(f"stub: {exc}")
            return None


# --------------------------------------------------------------------------- table


@dataclass(frozen=True)
class Row:
    label: str
    key: str
    kind: str  # "rate": higher is better; "ms": lower is better
    unit: str  # what one call of the row is, for the notes


def rows(quick: bool) -> list[Row]:
    n = "200" if quick else "1,000"
    return [
        Row("1. runs: start_run + log_params(3) + end (runs/s)", "runs_per_s", "rate", "a run"),
        Row("2. log_batch, 1,000 points a call (points/s)", "points_per_s", "rate", "a log_batch"),
        Row(f"3. search_runs of {n}: filter + order, 100 results (median)", "search_ms", "ms", "a search"),
        Row("4. load_model('models:/name@alias'), scikit-learn (median)", "load_ms", "ms", "a load_model"),
    ]


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "rate":
        return f"{value:,.0f}/s"
    if value >= 1_000:
        return f"{value / 1e3:,.2f} s"
    return f"{value:,.1f} ms" if value >= 10 else f"{value:.2f} ms"


def speedup(kind: str, fast: float | None, slow: float | None) -> float | None:
    """How many times faster `fast` is than `slow` (rates: a ratio; times: the inverse)."""
    if not fast or not slow:
        return None
    return fast / slow if kind == "rate" else slow / fast


def table(results: dict[str, Result | None], quick: bool) -> tuple[list[list[str]], int, int]:
    body, met_n, checked = [], 0, 0
    plinth, mlflow, stub = (results.get(s) or {} for s in SIDES)
    for row in rows(quick):
        p, m, s = plinth.get(row.key), mlflow.get(row.key), stub.get(row.key)
        ratio = speedup(row.kind, p, m)
        met = "-" if ratio is None else "yes" if ratio >= TARGET else "NO"
        if ratio is not None:
            checked += 1
            met_n += ratio >= TARGET
        ratio_text = "-" if ratio is None else f"{ratio:,.1f}x faster"
        body.append(
            [row.label, fmt(p, row.kind), fmt(m, row.kind), ratio_text, fmt(s, row.kind), ">= 3x", met]
        )
    return body, met_n, checked


def per_call_ms(res: Result, key: str) -> float | None:
    """Milliseconds one unit of a row costs (a run, a 1,000-point batch, a search, a load)."""
    value = res.get(key)
    if value is None:
        return None
    return {"runs_per_s": 1e3 / value, "points_per_s": 1e6 / value}.get(key, value)


def notes(results: dict[str, Result | None], quick: bool) -> list[str]:
    """Sample sizes, and where the time goes: the client's own floor against each server's figure."""
    plinth, mlflow, stub = (results.get(s) for s in SIDES)
    out = []
    any_side = plinth or mlflow or stub
    if any_side:
        out.append(
            f"Sizes: {any_side['runs_n']:,} runs (row 1), {any_side['points_n']:,} points (row 2), "
            f"{any_side['search_reps']} searches (row 3, {any_side['search_n']:,} runs), "
            f"{any_side['load_reps']} loads (row 4); the MLflow client imports in "
            f"{any_side['import_s']:.1f} s (not counted)."
        )
    if plinth and mlflow:
        out.append(
            f"Search answers: plinth returned {plinth['search_returned']} runs, MLflow "
            f"{mlflow['search_returned']}; corpus filled in {plinth['search_setup_s']:.1f} s (plinth) and "
            f"{mlflow['search_setup_s']:.1f} s (MLflow) by 4 client threads, not timed."
        )
    if stub:
        for row in rows(quick):
            floor = per_call_ms(stub, row.key)
            parts = []
            for name, res in (("plinth", plinth), ("MLflow", mlflow)):
                total = per_call_ms(res, row.key) if res else None
                if total and floor is not None:
                    parts.append(f"{name} {total:.2f} ms, {min(1.0, floor / total):.0%} of it in the client")
            if parts and floor is not None:
                out.append(
                    f"Where the time goes, row {row.label[0]} ({row.unit}): the client alone {floor:.2f} ms; "
                    + "; ".join(parts)
                    + "."
                )
        out.append(
            "The client floor bounds each ratio: against a server that took no time at all, a row could "
            "be at most (MLflow's time) / (client floor) faster."
        )
        if stub.get("load_local_ms") is not None:
            out.append(
                f"Row 4 without any server: mlflow.pyfunc.load_model of the same model's folder takes "
                f"{stub['load_local_ms']:.2f} ms; the rest of the floor is the client resolving the alias "
                "and downloading the files (about 11 requests a load)."
            )
    out.append(
        "plinth: one `plinth server` process, the client sends its admin token; MLflow: "
        "`mlflow server` with its default 4 uvicorn workers and no auth; both on SQLite on this machine."
    )
    return out


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_common_options(
        ap,
        "small sizes (40 runs, 20,000 points, 200-run search): a smoke run",
        "a full run of the three sides",
        "keep the work folders (server logs included)",
    )
    ap.add_argument("--only", help="comma-separated sides: plinth, mlflow, stub (default: all)")
    args = ap.parse_args()
    sides = harness.parse_list(args.only, SIDES, "side")

    atexit.register(_stop_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    python = mlflow_python()
    info, load_at_start = harness.machine(), harness.load_text()
    if (harness.loadavg() or 0) > 1.5:
        log(f"load average {load_at_start} > 1.5: the machine is busy, numbers will be noisy")
    results: dict[str, Result | None] = {}
    failed: list[str] = []
    with harness.work_folder("mlflow-compat", args.keep) as shared:
        search_body = shared / "plinth-search.json"
        runners: dict[str, Callable[[], Result | None]] = {
            "plinth": lambda: run_plinth(python, args, search_body),
            "mlflow": lambda: run_mlflow(python, args),
            "stub": lambda: run_stub(python, args, search_body),
        }
        for side in sides:
            results[side] = runners[side]()
            if results[side] is None:
                failed.append(side)

    body, met_n, checked = table(results, args.quick)
    note_lines = notes(results, args.quick)
    version = next((r["version"] for r in results.values() if r), "-")
    python_version = next((r["python"] for r in results.values() if r), "-")
    title = f"MLflow {version} client: plinth server vs mlflow server{' [quick]' if args.quick else ''}"
    harness.print_table(body, title, HEADER)
    harness.report(info, note_lines, met_n, checked)
    versions = (
        f"MLflow {version} client and server (Python {python_version}); plinth (Python {info['python']}); "
        f"SQLite; load average at the start {load_at_start}"
    )
    partial = args.quick or len(sides) < len(SIDES)
    write = args.write if args.write is not None else not partial and not failed
    return harness.finish(
        write,
        lambda: harness.section(
            SECTION, "bench_mlflow_compat.py", args.quick, info, versions, HEADER, body, note_lines
        ),
        SECTION,
        failed,
    )


if __name__ == "__main__":
    sys.exit(main())
