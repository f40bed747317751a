"""Flows on the real one-node SLURM cluster: fan-out and join, retries after a timeout, per-step
options reaching sbatch, a driver killed and its running job adopted on resume, SIGTERM, refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import plinth
from plinth import flow, step
from plinth.cli.main import main
from plinth.core.errors import InvalidInput, ResourceError
from plinth.core.settings import Settings
from plinth.tracking.context import Backend
from waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]  # one cluster: its tests take turns
on_sqlite = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
COMMENT = "plinth-flows-test"


def scontrol(job: str) -> str:
    return subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout


def queued(job: str) -> bool:
    """True while `job` (or an array element such as 12_3) is pending or running."""
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True).stdout
    return job in out.split()


@step
def square(x: int) -> int:
    run = plinth.active_run()
    assert run is not None  # the step's own run, inside its job
    run.log_metric("square", x * x)
    return x * x


@step(slurm={"sbatch_args": [f"--comment={COMMENT}"]})
def total(values: list[int]) -> int:
    print("adding up", len(values))
    return sum(values)


@flow(executor="slurm")
def fan_out(n: int = 6) -> int:
    return total(square.map(range(n)))


@step(retries=1, retry_delay="0.1s", timeout=2)
def stalls_once(marker: str) -> str:
    if not Path(marker).exists():
        Path(marker).touch()
        time.sleep(120)
    return "second time lucky"


@flow
def stalling(marker: str) -> str:
    return stalls_once(marker)


@step(cpu=64)
def greedy() -> int:
    return 1


@flow
def too_big() -> int:
    return greedy()


@on_sqlite
def test_fan_out_and_join_in_slurm_jobs(tracking: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    result = fan_out.run(n=6)
    assert result.status is plinth.RunStatus.FINISHED and result.result == sum(i * i for i in range(6))
    steps = {s.call: s for s in result.steps}
    assert set(steps) == {*(f"square#{i}" for i in range(6)), "total#0"}
    runs = {call: plinth.get_run(s.id) for call, s in steps.items()}
    assert all(r.tags.get("plinth.slurm_job") for r in runs.values())
    assert runs["square#4"].metrics["square"] == 16  # logged inside the job, landed in the step's run
    job = runs["total#0"].tags["plinth.slurm_job"]
    assert f"Comment={COMMENT}" in scontrol(job)  # the step's slurm= options reached sbatch
    capsys.readouterr()
    assert main(["flows", "logs", result.id, "total#0"]) == 0
    shown = capsys.readouterr().out
    assert "adding up 6" in shown and f"SLURM job {job}" in shown


@on_sqlite
def test_a_timed_out_attempt_is_retried(tracking: Backend, tmp_path: Path) -> None:
    result = stalling.run(executor="slurm", marker=str(tmp_path / "stalled"))
    assert result.result == "second time lucky"
    [call] = result.steps
    assert call.attempts == 2 and call.status is plinth.StepStatus.FINISHED


@on_sqlite
def test_an_unsatisfiable_step_is_refused_before_any_job(tracking: Backend) -> None:
    from plinth.compute.slurm import cluster

    most = max(n.cpus for n in cluster.nodes())
    with pytest.raises(ResourceError, match="64") as refused:
        too_big.run(executor="slurm")
    assert str(most) in str(refused.value)  # what the nodes have, beside what the step asked
    [flow_run] = tracking.store.list_flow_runs("too_big")
    [call] = tracking.store.step_runs(flow_run.id)
    assert "plinth.slurm_job" not in plinth.get_run(call.id).tags


def test_unknown_slurm_options_are_refused_at_decoration() -> None:
    with pytest.raises(InvalidInput, match=r"'bogus'.*partition"):
        step(slurm={"bogus": 1})(lambda: 1)
    with pytest.raises(InvalidInput, match="partition takes text"):
        step(slurm={"partition": 3})(lambda: 1)


FLOW_FILE = """
import time
from pathlib import Path

from plinth import flow, step


@step
def waits(folder: str) -> int:
    with open(Path(folder) / "attempts", "a") as fh:
        fh.write("attempt\\n")
    deadline = time.monotonic() + 300
    while not (Path(folder) / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return 41


@step
def plus_one(x: int) -> int:
    return x + 1


@flow
def adoptable(folder: str) -> int:
    return plus_one(waits(folder))
"""


def start_driver(settings: Settings, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`plinth flows run` of a flow whose one step waits for FOLDER/release, in a process of its own."""
    folder = tmp_path / "work"
    folder.mkdir()
    source = tmp_path / "adoptable.py"
    source.write_text(textwrap.dedent(FLOW_FILE))
    env = {
        **os.environ,
        "PLINTH_HOME": settings.home,
        "PLINTH_STORE": settings.resolved_store_url,
        "PLINTH_HEARTBEAT_S": "0.2",
    }
    command = [sys.executable, "-m", "plinth", "flows", "run", str(source), "--executor", "slurm"]
    driver = subprocess.Popen([*command, "-p", f"folder={folder}"], env=env, stdout=subprocess.DEVNULL)
    return driver, folder


def running_job(be: Backend, driver: subprocess.Popen[bytes]) -> tuple[plinth.FlowRun, plinth.StepRun, str]:
    """The flow run, its first step call and the job that runs it, once recorded."""

    def found() -> tuple[plinth.FlowRun, plinth.StepRun, str] | None:
        assert driver.poll() is None, "the flow's driver ended early"
        flow_runs = be.store.list_flow_runs("adoptable")
        steps = be.store.step_runs(flow_runs[0].id) if flow_runs else []
        job = plinth.get_run(steps[0].id).tags.get("plinth.slurm_job") if steps else None
        return (flow_runs[0], steps[0], job) if job else None

    return wait_until(found, "the step's job to be recorded", timeout_s=120)


def release_once_adopted(be: Backend, run_id: str, folder: Path) -> None:
    """Let the step finish once the resumed run records that it waits for the earlier job."""

    def adopted() -> bool:
        resumed = [r for r in be.store.list_flow_runs("adoptable") if r.resumed_from == run_id]
        steps = be.store.step_runs(resumed[0].id) if resumed else []
        return bool(steps) and "plinth.adopted_from" in be.store.get_run(steps[0].id).tags

    try:
        wait_until(adopted, "the resumed run to adopt the running job")
    finally:
        (folder / "release").touch()


@on_sqlite
def test_a_killed_driver_s_running_job_is_adopted_on_resume(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    driver, folder = start_driver(settings, tmp_path)
    be = plinth.configure(settings)
    try:
        flow_run, call, job = running_job(be, driver)
        wait_until(lambda: (folder / "attempts").exists(), "the step to start in its job", timeout_s=120)
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    assert queued(job)  # the job outlives its driver
    releaser = threading.Thread(target=release_once_adopted, args=(be, flow_run.id, folder), daemon=True)
    releaser.start()
    assert main(["flows", "resume", "--force", flow_run.id]) == 0
    releaser.join()
    [resumed] = [r for r in be.store.list_flow_runs("adoptable") if r.resumed_from == flow_run.id]
    assert resumed.status is plinth.RunStatus.FINISHED
    again = {s.call: s for s in be.store.step_runs(resumed.id)}["waits#0"]
    tags = plinth.get_run(again.id).tags
    assert tags["plinth.adopted_from"] == call.id and tags["plinth.slurm_job"] == job
    assert (folder / "attempts").read_text() == "attempt\n"  # the step ran once: no second job
    assert plinth.FlowResult(resumed, be).result == 42


@on_sqlite
def test_sigterm_cancels_the_flow_s_jobs(settings: Settings, tmp_path: Path) -> None:
    driver, folder = start_driver(settings, tmp_path)
    be = plinth.configure(settings)
    try:
        flow_run, _, job = running_job(be, driver)
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=60) != 0
    finally:
        if driver.poll() is None:
            driver.kill()
    wait_until(lambda: not queued(job), "the step's job to be cancelled", timeout_s=60)
    assert be.store.get_flow_run(flow_run.id).status is plinth.RunStatus.KILLED
    assert not (folder / "release").exists()


@on_sqlite
def test_a_ddp_step_runs_as_one_job_of_two_tasks(tracking: Backend, tmp_path: Path) -> None:
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent.parent / "resources"))
    import ddp_flows

    marker = tmp_path / "killed"
    result = ddp_flows.ddp.run(
        executor="slurm", workers=2, steps=12, ckpt_every=4, kill_at=6, marker=str(marker), cpu=1
    )
    out = result.result
    row = next(s for s in result.steps if s.step == "train")
    assert marker.exists() and row.attempts == 2 and out["start"] == 4  # rank 1 died; the group went on
    weights = np.array(out["weights"])
    assert np.array_equal(weights[0], weights[1])
    np.testing.assert_allclose(weights[0], ddp_flows.train_alone(12), rtol=1e-5, atol=1e-6)
    assert plinth.get_run(row.id).tags["plinth.slurm_job"]


@on_sqlite
def test_a_ddp_step_of_four_ranks_matches_one_process(tracking: Backend) -> None:
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent.parent / "resources"))
    import ddp_flows

    out = ddp_flows.ddp.run(executor="slurm", workers=4, steps=8, cpu=1).result
    weights = np.array(out["weights"])
    assert out["world"] == 4
    assert np.array_equal(weights, np.repeat(weights[:1], 4, axis=0))
    np.testing.assert_allclose(weights[0], ddp_flows.train_alone(8), rtol=1e-5, atol=1e-6)
