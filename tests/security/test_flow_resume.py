"""Resuming a flow run whose driver was killed, is alive, or ran on another host (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import plinth
from plinth.cli.main import main
from plinth.core.entities import FlowRun, Run, RunStatus
from plinth.core.errors import ConflictError, InvalidInput
from plinth.core.ids import now_ms
from plinth.flows.liveness import check_driver, this_driver
from plinth.flows.source import load_object
from plinth.tracking.context import Backend

RESOURCES = Path(__file__).parent.parent / "resources"


class Driver:
    """`stages` run by a separate driver process, held in stage 2 until `release()`."""

    def __init__(self, be: Backend, tmp_path: Path) -> None:
        self.marker = tmp_path / "m"
        self.hold = Path(f"{self.marker}.sleep")
        self.hold.write_text("sleep in stage 2")
        env = {
            **os.environ,
            "PLINTH_HOME": be.settings.home,
            "PLINTH_STORE": be.settings.resolved_store_url,
            "PLINTH_HEARTBEAT_S": "60",  # missed beats cannot decide anything during a test
        }
        script = [sys.executable, str(RESOURCES / "run_flow.py"), str(RESOURCES), str(self.marker)]
        self.process = subprocess.Popen(script, env=env)
        self.run_id = wait_for(lambda: _two_stages_done(be))

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def release(self) -> None:
        self.hold.unlink()


def _two_stages_done(be: Backend) -> str | None:
    runs = be.store.list_flow_runs("stages")
    if not runs:
        return None
    done = [s for s in be.store.step_runs(runs[0].id) if s.status.has_result]
    return runs[0].id if len(done) == 2 else None


def wait_for(found: Callable[[], str | None], timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = found()
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError("the driver did not reach stage 2")


@pytest.fixture
def driver(tracking: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Driver]:
    monkeypatch.syspath_prepend(str(RESOURCES))  # the run's source is the module flows_example
    started = Driver(tracking, tmp_path)
    yield started
    if started.process.poll() is None:
        started.kill()


def statuses(be: Backend, run_id: str) -> dict[str, str]:
    return {s.call: s.status.value for s in be.store.step_runs(run_id)}


def test_a_killed_driver_is_crashed_and_resumed_at_once(tracking: Backend, driver: Driver) -> None:
    running = tracking.store.get_flow_run(driver.run_id)
    assert (running.driver_host, running.driver_pid) == (socket.gethostname(), driver.process.pid)
    driver.kill()
    driver.release()
    assert tracking.store.get_flow_run(driver.run_id).status is plinth.RunStatus.RUNNING

    resumed = plinth.resume_flow(driver.run_id)

    assert resumed.status is plinth.RunStatus.FINISHED and resumed.result == 0 + 1 + 2 + 3 + 4
    assert statuses(tracking, resumed.id)["stage#0"] == statuses(tracking, resumed.id)["stage#1"] == "CACHED"
    crashed = tracking.store.get_flow_run(driver.run_id)
    assert crashed.status is plinth.RunStatus.CRASHED
    assert f"pid {driver.process.pid}" in (crashed.error or "") and "is gone" in (crashed.error or "")
    assert statuses(tracking, driver.run_id)["stage#2"] == "CRASHED"
    assert plinth.get_run(driver.run_id).status is plinth.RunStatus.CRASHED
    actions = [(e.action, e.entity_id) for e in tracking.store.audit_events()]
    assert ("flow.crash", driver.run_id) in actions


def test_a_live_driver_is_named_and_only_force_resumes(tracking: Backend, driver: Driver) -> None:
    where = f"pid {driver.process.pid} on {socket.gethostname()}"
    with pytest.raises(ConflictError, match=f"its driver, {where}, is alive.*--force"):
        plinth.resume_flow(driver.run_id)
    assert tracking.store.get_flow_run(driver.run_id).status is plinth.RunStatus.RUNNING

    driver.release()
    resumed = plinth.resume_flow(driver.run_id, force=True)

    assert resumed.status is plinth.RunStatus.FINISHED
    forced = tracking.store.get_flow_run(driver.run_id)
    assert forced.status is plinth.RunStatus.CRASHED and "forced resume" in (forced.error or "")


def test_a_driver_on_another_host_waits_for_its_heartbeat_or_force(
    tracking: Backend, driver: Driver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = socket.gethostname()
    driver.kill()
    driver.release()
    monkeypatch.setattr(socket, "gethostname", lambda: "another-host")

    with pytest.raises(ConflictError, match="another host") as refused:
        plinth.resume_flow(driver.run_id)
    assert f"pid {driver.process.pid} on {host}" in str(refused.value)
    assert "heartbeat decides in" in str(refused.value) and "--force" in str(refused.value)

    capsys.readouterr()
    assert main(["flows", "show", driver.run_id]) == 0
    shown = capsys.readouterr().out
    assert f"driver pid {driver.process.pid} on {host} (another host: its heartbeat decides in" in shown
    assert main(["flows", "resume", driver.run_id]) != 0
    assert "--force" in capsys.readouterr().err
    assert main(["flows", "resume", "--force", driver.run_id]) == 0
    assert tracking.store.get_flow_run(driver.run_id).status is plinth.RunStatus.CRASHED


def test_a_source_module_that_cannot_be_imported_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"'no_such_flows_module'.*PYTHONPATH"):
        load_object("no_such_flows_module:pipeline")


@pytest.mark.parametrize(("started_s_ago", "verdict"), [(0, "alive"), (10 * 365 * 86_400, "gone")])
def test_a_pid_held_by_a_process_younger_than_the_run_counts_as_gone(
    started_s_ago: int, verdict: str
) -> None:
    host, pid = this_driver()  # this test's own process stands for the driver, or for a pid reused
    start = now_ms() - started_s_ago * 1000
    run = FlowRun("r", "f", RunStatus.RUNNING, {}, "m:f", start, None, driver_host=host, driver_pid=pid)
    tracked = Run("r", "e", "f", "flow f", RunStatus.RUNNING, "tester", start, None, start, 10.0)
    assert check_driver(run, tracked, now_ms()).verdict == verdict
