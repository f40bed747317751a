"""The UI benchmark's two stores, filled once and cached under benchmarks/.work/ui-cache.

A store is filled into `<folder>.partial` by its side's fill script (a subprocess that prints
progress lines, shown here as rich progress bars) and renamed to `<folder>` with a `done.json`
once complete, so an interrupted fill is never mistaken for a finished one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _ui_data as data
import harness
from harness import HERE, log

CACHE = harness.WORK / "ui-cache"
QUIET_MLFLOW = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


def plinth_store(sizes: data.Sizes) -> tuple[Path, dict[str, Any]]:
    """PLINTH_HOME of the filled plinth store, and its fill record (filling it first if needed)."""
    folder = data.cache_dir(CACHE, "plinth", sizes)

    def cmd(tmp: Path) -> list[str]:
        side = [sys.executable, str(HERE / "_ui_fill_plinth.py"), "--home", str(tmp)]
        return [*side, "--runs", str(sizes.runs), "--big-points", str(sizes.big_points)]

    return folder, _ensure("plinth", folder, sizes, cmd, harness.clean_env())


def mlflow_store(sizes: data.Sizes, procs: int = 2, mode: str = "bulk") -> tuple[Path, dict[str, Any]]:
    """Folder of the filled MLflow store (mlflow.db, artifacts/), and its fill record."""
    folder = data.cache_dir(CACHE, "mlflow", sizes)
    python = harness.ensure_mlflow_venv()

    def cmd(tmp: Path) -> list[str]:
        side = [python, str(HERE / "_ui_fill_mlflow.py"), "--db", str(tmp / "mlflow.db")]
        # The experiment records its artifact root: the final folder's, not the one being filled.
        side += ["--artifacts", str(folder / "artifacts"), "--runs", str(sizes.runs)]
        return [*side, "--big-points", str(sizes.big_points), "--procs", str(procs), "--mode", mode]

    return folder, _ensure("mlflow", folder, sizes, cmd, {**harness.clean_env(), **QUIET_MLFLOW})


def _ensure(side: str, folder: Path, sizes: data.Sizes, cmd: Any, env: dict[str, str]) -> dict[str, Any]:
    done = data.read_done(folder)
    if done is not None:
        log(f"{side}: using the cached store {folder.relative_to(HERE)} (filled in {done['fill_s']:,.0f} s)")
        return done
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.mkdir(parents=True)
    what = f"{sizes.runs:,} runs, {sizes.big_points:,}-point metric"
    log(f"{side}: filling {folder.relative_to(HERE)} ({what})")
    t0 = time.perf_counter()
    record = _run_with_progress(side, cmd(tmp), env, tmp / "fill.log")
    record["fill_s"] = time.perf_counter() - t0
    data.write_done(tmp, sizes, record)
    tmp.rename(folder)
    log(f"{side}: filled in {record['fill_s']:,.0f} s")
    return record


def _run_with_progress(side: str, cmd: list[str], env: dict[str, str], log_path: Path) -> dict[str, Any]:
    """Run a fill script, drawing its progress lines as bars; its final JSON line."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    last: dict[str, Any] | None = None
    with (
        open(log_path, "w") as err,
        Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        ) as bars,
    ):
        tasks: dict[str, Any] = {}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=HERE)
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith("{"):
                continue
            doc = json.loads(line)
            if "phase" not in doc:
                last = doc
                continue
            name = f"{side}: {'runs' if doc['phase'] == 'runs' else 'big metric points'}"
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=doc["total"])
            bars.update(tasks[name], completed=doc["done"], total=doc["total"])
        proc.wait()
    if proc.returncode != 0 or last is None:
        print(log_path.read_text()[-4000:], file=sys.stderr)
        raise RuntimeError(f"{side}: filling the store failed (exit {proc.returncode}); see {log_path}")
    return last
