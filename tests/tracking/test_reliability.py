"""Crashes and contention: kill -9 mid-logging, many processes on one SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import plinth
from plinth.core.settings import Settings

RESOURCES = Path(__file__).parent.parent / "resources"


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PLINTH_HOME": settings.home,
        "PLINTH_STORE": settings.resolved_store_url,
        "PLINTH_TOKEN": settings.token or "",
        "PLINTH_HEARTBEAT_S": "0.2",
        "PLINTH_FLUSH_S": "0.2",
    }


@pytest.mark.slow
def test_kill_9_keeps_flushed_points_and_run_reads_crashed(settings: Settings) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(RESOURCES / "log_forever.py"), "5000"],
        env=_env(settings),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    run_id, flushed = proc.stdout.readline().split()
    time.sleep(0.5)  # let it log (and maybe flush) more after the explicit flush
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    plinth.configure(settings)
    history = plinth.metric_history(run_id, "loss")
    assert len(history) >= int(flushed)
    assert list(history.steps[: int(flushed)]) == list(range(int(flushed)))
    deadline = time.monotonic() + 10
    while plinth.get_run(run_id).status is plinth.RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
    assert plinth.get_run(run_id).status is plinth.RunStatus.CRASHED
    assert plinth.reap_runs() == [run_id]
    assert plinth.search_runs(experiment="crash", where="status = 'CRASHED'")[0].id == run_id


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_eight_processes_log_to_one_sqlite_store(settings: Settings) -> None:
    points = 20_000
    procs = [
        subprocess.Popen(
            [sys.executable, str(RESOURCES / "log_many.py"), str(i), str(points)],
            env=_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert "locked" not in err
        assert proc.returncode == 0, err
    plinth.configure(settings)
    runs = plinth.search_runs(experiment="parallel", limit=None)
    assert len(runs) == 8
    assert sorted(r.params["worker"] for r in runs) == [str(i) for i in range(8)]
    for run in runs:
        assert run.status is plinth.RunStatus.FINISHED
        assert len(plinth.metric_history(run.id, "loss")) == points
        assert len(plinth.metric_history(run.id, "bulk")) == points
        assert run.metrics["loss"] == (points - 1) * 0.5
