"""Resuming a flow run whose driver was killed, is alive, or ran on another host (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import plinth
from plinth.cli.main import main
from plinth.core.entities import FlowRun, Run, RunStatus
from plinth.core.errors import ConflictError, InvalidInput
from plinth.core.ids import now_ms
from plinth.flows.liveness import check_driver, this_driver, this_namespace
from plinth.flows.source import load_object
from plinth.tracking.context import Backend

RESOURCES = Path(__file__).parent.parent / "resources"


class Driver:
    """`stages` run by a separate driver process, held in stage 2 until `release()`."""

    def __init__(self, be: Backend, tmp_path: Path, wrap: list[str] | None = None) -> None:
        self.marker = tmp_path / "m"
        self.hold = Path(f"{self.marker}.sleep")
        self.hold.write_text("sleep in stage 2")
        env = {
            **os.environ,
            "PLINTH_HOME": be.settings.home,
            "PLINTH_STORE": be.settings.resolved_store_url,
            "PLINTH_TOKEN": be.settings.token or "",
            "PLINTH_HEARTBEAT_S": "60",  # missed beats cannot decide anything during a test
        }
        script = [sys.executable, str(RESOURCES / "run_flow.py"), str(RESOURCES), str(self.marker)]
        self.process = subprocess.Popen([*(wrap or []), *script], env=env)
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
    where = f"driver pid {driver.process.pid} on {host}"
    assert f"{where} (ran on another host: its heartbeat decides in" in shown
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
    here = this_driver()  # this test's own process stands for the driver, or for a pid reused
    start = now_ms() - started_s_ago * 1000
    recorded = _recorded(here.host, here.pid, here.ns)
    run = FlowRun("r", "f", RunStatus.RUNNING, {}, "m:f", start, None, **recorded)
    tracked = Run("r", "e", "f", "flow f", RunStatus.RUNNING, "tester", start, None, start, 10.0)
    assert check_driver(run, tracked, now_ms()).verdict == verdict


def _recorded(host: str, pid: int, ns: str | None) -> dict[str, Any]:
    return {"driver_host": host, "driver_pid": pid, "driver_ns": ns}


def _pid_namespace_wrapper() -> list[str] | None:
    """An `unshare` prefix that runs a command as pid 1 of a new PID namespace, or None where it cannot."""
    if shutil.which("unshare") is None:
        return None
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    wrap = ["unshare", *user, "--pid", "--fork", "--kill-child", "--mount-proc"]
    tried = subprocess.run([*wrap, "true"], capture_output=True, check=False)
    return wrap if tried.returncode == 0 else None


UNSHARE = _pid_namespace_wrapper()


@pytest.mark.skipif(UNSHARE is None, reason="unshare cannot make a PID namespace on this machine")
def test_a_live_driver_in_another_pid_namespace_is_not_judged_from_here(
    tracking: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrap = UNSHARE
    assert wrap is not None
    monkeypatch.syspath_prepend(str(RESOURCES))
    driver = Driver(tracking, tmp_path, wrap)
    try:
        running = tracking.store.get_flow_run(driver.run_id)
        assert running.driver_pid == 1 and running.driver_ns != this_namespace()

        with pytest.raises(ConflictError, match=r"another PID namespace .*heartbeat decides") as refused:
            plinth.resume_flow(driver.run_id)
        assert "kill 1" not in str(refused.value)
        capsys.readouterr()
        assert main(["flows", "show", driver.run_id]) == 0
        assert "(ran in another PID namespace (container) on this host" in capsys.readouterr().out

        driver.release()  # stage 2 still sleeps out the rest of its 60 s, then the flow finishes
        assert driver.process.wait(timeout=120) == 0
    finally:
        if driver.process.poll() is None:
            driver.kill()
    assert tracking.store.get_flow_run(driver.run_id).status is plinth.RunStatus.FINISHED


@pytest.mark.parametrize(
    ("recorded", "where"),
    [
        ("{boot} pid:[1]", "in another PID namespace"),
        ("00000000-0000-0000-0000-000000000000 {pids}", "in an earlier boot of this host or on another"),
    ],
)
def test_a_dead_pid_recorded_in_another_namespace_or_boot_waits_for_the_heartbeat(
    tracking: Backend, driver: Driver, recorded: str, where: str
) -> None:
    driver.kill()  # its pid is free here: judged from this namespace, it would be gone
    driver.release()
    boot, pids = (this_namespace() or "? ?").split(" ")
    other = recorded.format(boot=boot, pids=pids)
    with tracking.store.engine.begin() as conn:  # type: ignore[attr-defined]
        rewrite = text("UPDATE flow_runs SET driver_ns = :ns WHERE id = :id")
        conn.execute(rewrite, {"ns": other, "id": driver.run_id})

    with pytest.raises(ConflictError, match=f"ran {where}.*--force"):
        plinth.resume_flow(driver.run_id)
    assert tracking.store.get_flow_run(driver.run_id).status is plinth.RunStatus.RUNNING

    assert plinth.resume_flow(driver.run_id, force=True).status is plinth.RunStatus.FINISHED


def test_a_live_driver_that_is_pid_1_is_not_offered_to_kill(tracking: Backend) -> None:
    here = this_driver()
    with plinth.start_run(experiment="stages", name="flow stages") as tracked:
        recorded = _recorded(here.host, 1, here.ns)
        run = FlowRun(tracked.id, "stages", RunStatus.RUNNING, {}, "m:f", now_ms(), None, **recorded)
        tracking.store.create_flow_run(run)

        with pytest.raises(ConflictError, match=r"pid 1 on .* is alive") as refused:
            plinth.resume_flow(tracked.id)
    assert "kill 1" not in str(refused.value) and "stop its container" in str(refused.value)
