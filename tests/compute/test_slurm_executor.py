"""SlurmExecutor on the real one-node SLURM cluster: results, packing, asks, limits, kills, resume."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest
from executor_results import drain

from plinth.compute.base import Outcome, Resources, Task
from plinth.compute.slurm import SlurmExecutor, SlurmOptions
from plinth.core.errors import ResourceError
from waiting import wait_until

cloudpickle.register_pickle_by_value(sys.modules[__name__])
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]
MiB = 2**20


@pytest.fixture
def ex(options: SlurmOptions, job_name: str) -> Iterator[SlurmExecutor]:
    executor = SlurmExecutor(options, job_name=job_name)
    yield executor
    executor.shutdown()


def our_jobs(name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i|%T"], capture_output=True, text=True)
    return out.stdout.split()


def job_record(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout


def square(x: int) -> int:
    return x * x


def boom() -> None:
    raise ValueError("no good")


def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


def wait_for(marker: str) -> str:
    while not os.path.exists(marker):
        time.sleep(0.05)
    return "released"


def hog(mib: int) -> int:
    block = bytearray(mib * MiB)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(30)
    return len(block)


def die() -> None:
    os._exit(9)


def test_a_task_runs_in_a_job_and_errors_come_back(ex: SlurmExecutor) -> None:
    ex.submit(Task("sq", square, (7,), label="square"))
    ex.submit(Task("bad", boom, timeout_s=60))
    results = drain(ex)
    assert results["sq"].ok and results["sq"].value == 49
    assert " job " in results["sq"].worker
    assert results["bad"].outcome is Outcome.ERROR
    assert results["bad"].error == "ValueError: no good"
    assert "in boom" in (results["bad"].traceback or "")
    assert (
        ex.job_of("sq") is not None
        and ex.log_path(
            "sq",
        )
        is not None
    )


def test_a_fan_out_is_packed_into_one_job_array(ex: SlurmExecutor) -> None:
    for i in range(20):
        ex.submit(Task(f"t{i}", square, (i,)))
    results = drain(ex)
    assert {k: r.value for k, r in results.items()} == {f"t{i}": i * i for i in range(20)}
    elements = {ex.job_of(f"t{i}") for i in range(20)}
    assert len(elements) < 20
    assert len({str(e).split("_")[0] for e in elements}) == 1  # one sbatch call


def test_resources_reach_sbatch(ex: SlurmExecutor, tmp_path: Path) -> None:
    marker = str(tmp_path / "go")
    ex.submit(Task("big", wait_for, (marker,), Resources(cpu=2, gpu=1, memory=2**30), timeout_s=90))
    assert ex.wait(timeout=0) == []
    job = ex.job_of("big")
    assert job is not None
    wait_until(lambda: "JobState=RUNNING" in job_record(job), "the job running", timeout_s=180)
    record = job_record(job)
    assert "NumCPUs=2 " in record and "CPUs/Task=2 " in record
    assert "TresPerNode=gres:gpu:1" in record
    assert "MinMemoryNode=1G " in record
    assert "TimeLimit=00:03:00 " in record  # 90 s and a margin, in whole minutes
    Path(marker).touch()
    [result] = drain(ex).values()
    assert result.ok and result.value == "released"


def test_the_watchdog_stops_a_task_at_its_timeout(ex: SlurmExecutor) -> None:
    ex.submit(Task("slow", nap, (60,), timeout_s=2, label="slow"))
    ex.submit(Task("hog", hog, (300,), Resources(memory=100 * MiB)))
    results = drain(ex)
    assert results["slow"].outcome is Outcome.TIMEOUT
    assert results["slow"].error == "Task 'slow' ran longer than its timeout of 2.0 s and was stopped."
    assert results["hog"].outcome is Outcome.MEMORY
    assert "over its limit of 100 MiB" in (results["hog"].error or "")


def test_a_job_cancelled_from_outside_crashes_its_task_naming_the_job(
    ex: SlurmExecutor, tmp_path: Path
) -> None:
    ex.submit(Task("stuck", wait_for, (str(tmp_path / "never"),), label="stuck"))
    ex.wait(timeout=0)
    job = ex.job_of("stuck")
    assert job is not None
    wait_until(lambda: "JobState=RUNNING" in job_record(job), "the job running", timeout_s=180)
    subprocess.run(["scancel", job], check=True)
    [result] = drain(ex).values()
    assert result.outcome is Outcome.CRASHED
    assert f"job {job} was cancelled outside plinth (state CANCELLED)" in (result.error or "")


def test_a_packed_task_that_kills_its_worker_takes_no_other_task_with_it(ex: SlurmExecutor) -> None:
    whole_node = Resources(cpu=4)  # one slot on the node: four tasks make two packs of two
    ex.submit(Task("dies", die, (), whole_node))
    ex.submit(Task("after", square, (3,), whole_node))
    ex.submit(Task("b", square, (4,), whole_node))
    ex.submit(Task("c", square, (5,), whole_node))
    ex.wait(timeout=0)
    packed = ex.job_of("dies")
    assert packed is not None and ex.job_of("after") == packed
    results = drain(ex)
    assert {k: r.value for k, r in results.items() if k != "dies"} == {"after": 9, "b": 16, "c": 25}
    assert results["dies"].outcome is Outcome.CRASHED
    assert ex.job_of("after") != packed  # it ran again, alone


def test_a_task_no_node_can_run_is_refused_before_sbatch(ex: SlurmExecutor, job_name: str) -> None:
    with pytest.raises(ResourceError, match="asks cpu=64 but the largest node of partition debug has 4 CPUs"):
        ex.submit(Task("huge", square, (1,), Resources(cpu=64)))
    with pytest.raises(
        ResourceError, match="asks gpu=3 but the node with the most GPUs in partition debug has 2"
    ):
        ex.submit(Task("gpus", square, (1,), Resources(gpu=3)))
    assert ex.running() == 0 and ex.wait(timeout=0) == []
    assert our_jobs(job_name) == [] and ex.job_of("huge") is None
    assert ex.capacity() == Resources(cpu=4, memory=ex.capacity().memory, gpu=2)


def test_cancel_and_shutdown_leave_no_job_behind(ex: SlurmExecutor, job_name: str, tmp_path: Path) -> None:
    never = str(tmp_path / "never")
    for i in range(3):
        ex.submit(Task(f"w{i}", wait_for, (never,), timeout_s=120))
    ex.wait(timeout=0)
    assert len(our_jobs(job_name)) == 3
    ex.cancel("w0")
    [cancelled] = ex.wait(timeout=0)
    assert cancelled.outcome is Outcome.CANCELLED and ex.running() == 2
    ex.shutdown()
    ex.shutdown()
    wait_until(lambda: our_jobs(job_name) == [], "no job of ours in squeue")


def test_a_second_executor_adopts_the_jobs_of_the_first(
    options: SlurmOptions, job_name: str, tmp_path: Path
) -> None:
    marker = str(tmp_path / "go")
    first = SlurmExecutor(options, job_name=job_name)
    running = Task("running", wait_for, (marker,))
    done = Task("done", square, (5,))
    first.submit(running)
    first.submit(Task("other", square, (1,), Resources(cpu=2)))
    first.submit(done)
    first.wait(timeout=0)
    job = first.job_of("running")
    wait_until(
        lambda: "JobState=RUNNING" in job_record(str(job)) and os.listdir(tmp_path / "slurm" / "results"),
        "the first job running and the other's result written",
        timeout_s=180,
    )
    # the first driver is gone (killed): a new one on the same work folder picks its tasks up
    second = SlurmExecutor(options, job_name=job_name)
    try:
        assert second.adopt(running) and second.job_of("running") == job
        assert second.adopt(done)
        assert not second.adopt(Task("never-submitted", square, (1,)))
        Path(marker).touch()
        results = drain(second)
        assert results["running"].value == "released" and results["done"].value == 25
    finally:
        second.shutdown()
        first.shutdown()


def read_env(name: str) -> str | None:
    return os.environ.get(name)


def test_a_step_token_reaches_the_job_but_no_file_of_the_shared_folder(
    ex: SlurmExecutor, options: SlurmOptions
) -> None:
    secret = f"plt_secret_{uuid.uuid4().hex}"
    for i in range(3):
        ex.submit(Task(f"tok{i}", read_env, ("PLINTH_TOKEN",), env={"PLINTH_TOKEN": secret, "X": "1"}))
    results = drain(ex)
    assert {r.value for r in results.values()} == {secret}
    assert options.work_dir is not None
    for top, _dirs, names in os.walk(options.work_dir):
        for name in names:
            assert secret.encode() not in Path(top, name).read_bytes(), name
