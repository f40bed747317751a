"""Groups on the SLURM executor: one job of N tasks, torch.distributed across them, a failing
rank stopping the others, timeouts, cancels, scancel, adoption; and the folding of rank reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import psutil
import pytest
from executor_results import drain

from plinth.compute.base import Outcome, RankResult, Resources, Task, TaskResult
from plinth.compute.slurm import SlurmExecutor, SlurmOptions, groups
from plinth.compute.slurm import cluster as slurm_cluster
from plinth.compute.slurm.rank import Layout, own_gpus, tasks_per_node
from plinth.core.errors import ResourceError
from waiting import wait_until

cloudpickle.register_pickle_by_value(sys.modules[__name__])
pytestmark = pytest.mark.xdist_group("slurm")
on_slurm = pytest.mark.slow
MiB = 2**20


@pytest.fixture
def ex(options: SlurmOptions, job_name: str) -> Iterator[SlurmExecutor]:
    executor = SlurmExecutor(options, job_name=job_name)
    yield executor
    executor.shutdown()


def our_jobs(name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True)
    return out.stdout.split()


def job_record(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout


def started(folder: Path, count: int) -> list[int]:
    """The pids the ranks wrote on starting, once all `count` did."""
    pids = [int(p.read_text()) for p in folder.glob("pid-*") if p.read_text()]
    return pids if len(pids) >= count else []


def none_alive(pids: list[int]) -> bool:
    return not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    """Whether `pid` runs: a process that ends while it is looked at is not running."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ------------------------------------------------------------------ what the ranks run


def all_reduce_ranks() -> tuple[int, int, int, float, int]:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method="env://")
    try:
        value = torch.tensor([float(dist.get_rank())])
        dist.all_reduce(value)
    finally:
        dist.destroy_process_group()
    env = os.environ
    return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"]), float(value.item()), os.getpid()


def rank_env() -> dict[str, str | None]:
    names = (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "GROUP_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
    )
    return {name: os.environ.get(name) for name in (*names, "STEP_VAR")}


def note_pid(folder: str) -> None:
    Path(folder, f"pid-{os.environ['RANK']}").write_text(str(os.getpid()))


def one_rank_raises(folder: str) -> None:
    note_pid(folder)
    if os.environ["RANK"] == "1":
        while len(list(Path(folder).glob("pid-*"))) < int(os.environ["WORLD_SIZE"]):
            time.sleep(0.05)
        raise ValueError("rank one gives up")
    time.sleep(600)


def one_rank_kills_itself(folder: str) -> None:
    note_pid(folder)
    if os.environ["RANK"] == "1":
        while len(list(Path(folder).glob("pid-*"))) < int(os.environ["WORLD_SIZE"]):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)


def one_rank_loses_its_worker(folder: str) -> None:
    note_pid(folder)
    if os.environ["RANK"] == "1":
        while len(list(Path(folder).glob("pid-*"))) < int(os.environ["WORLD_SIZE"]):
            time.sleep(0.05)
        os.kill(os.getppid(), signal.SIGKILL)  # the process watching this rank, as when a node is lost
    time.sleep(600)


def sleeps(folder: str) -> None:
    note_pid(folder)
    time.sleep(600)


def one_rank_hogs(folder: str) -> None:
    note_pid(folder)
    if os.environ["RANK"] == "1":
        block = bytearray(400 * MiB)
        for i in range(0, len(block), 4096):
            block[i] = 1
    time.sleep(600)


def square(x: int) -> int:
    return x * x


# ------------------------------------------------------------------ on the cluster


@on_slurm
@pytest.mark.parametrize("workers", [2, 4])
def test_ranks_all_reduce_over_gloo_in_one_job(ex: SlurmExecutor, workers: int) -> None:
    ex.submit(Task("ddp", all_reduce_ranks, (), Resources(cpu=1), timeout_s=240, workers=workers))
    [result] = drain(ex).values()
    assert result.ok, result.error
    rank, world, local_rank, reduced, pid = result.value
    assert (rank, world, local_rank) == (0, workers, 0)
    assert reduced == sum(range(workers))
    assert [r.rank for r in result.ranks] == list(range(workers))
    assert all(r.ok for r in result.ranks)
    assert len({r.worker for r in result.ranks}) == workers
    assert result.worker == result.ranks[0].worker and f":{pid} job " in result.worker
    assert "_" not in str(ex.job_of("ddp"))  # one job, not an array


@on_slurm
def test_each_rank_gets_its_environment_and_the_asks_reach_sbatch(ex: SlurmExecutor, tmp_path: Path) -> None:
    res = Resources(cpu=1, gpu=1, memory=256 * MiB)
    ex.submit(Task("env", rank_env, (), res, timeout_s=90, env={"STEP_VAR": "yes"}, workers=2))
    ex.wait(timeout=0)
    job = str(ex.job_of("env"))
    record = wait_until(lambda: "NumTasks=2 " in job_record(job) and job_record(job), "the job's record")
    assert "CPUs/Task=1 " in record and "MinMemoryCPU=256M " in record
    assert "TresPerTask=gres:gpu:1" in record
    [result] = drain(ex).values()
    assert result.ok, result.error
    assert result.value["RANK"] == "0" and result.value["WORLD_SIZE"] == "2"
    assert result.value["LOCAL_WORLD_SIZE"] == "2" and result.value["GROUP_RANK"] == "0"
    assert result.value["STEP_VAR"] == "yes" and result.value["MASTER_PORT"]
    assert result.value["MASTER_ADDR"] == slurm_cluster.nodes()[0].name


@on_slurm
def test_a_rank_that_raises_stops_the_others_and_the_next_task_runs(
    ex: SlurmExecutor, job_name: str, tmp_path: Path
) -> None:
    ex.submit(Task("g", one_rank_raises, (str(tmp_path),), workers=3, label="train"))
    [result] = drain(ex).values()
    assert result.outcome is Outcome.ERROR
    assert (result.error or "").startswith("rank 1 of 3 (")
    assert "ValueError: rank one gives up; the other ranks were stopped" in (result.error or "")
    assert "in one_rank_raises" in (result.traceback or "")
    assert [r.outcome for r in result.ranks] == [Outcome.CANCELLED, Outcome.ERROR, Outcome.CANCELLED]
    wait_until(lambda: none_alive(started(tmp_path, 3)), "no rank process left")
    wait_until(lambda: our_jobs(job_name) == [], "the group's job gone")
    ex.submit(Task("next", square, (6,)))
    assert drain(ex)["next"].value == 36


@on_slurm
def test_a_rank_killed_crashes_the_group_without_waiting_for_the_others(
    ex: SlurmExecutor, tmp_path: Path
) -> None:
    ex.submit(Task("g", one_rank_kills_itself, (str(tmp_path),), workers=2))
    [result] = drain(ex).values()  # the other rank sleeps 600 s: it was stopped
    assert result.outcome is Outcome.CRASHED
    assert "rank 1 of 2" in (result.error or "") and "signal 9 (SIGKILL)" in (result.error or "")
    assert [r.outcome for r in result.ranks] == [Outcome.CANCELLED, Outcome.CRASHED]
    wait_until(lambda: none_alive(started(tmp_path, 2)), "no rank process left")


@on_slurm
def test_a_rank_whose_worker_dies_without_a_word_crashes_the_group(ex: SlurmExecutor, tmp_path: Path) -> None:
    ex.submit(Task("g", one_rank_loses_its_worker, (str(tmp_path),), workers=2))
    [result] = drain(ex).values()
    assert result.outcome is Outcome.CRASHED
    assert "rank 1 of 2 (unknown worker): its process ended without reporting (srun exit code" in str(
        result.error
    )
    assert [r.outcome for r in result.ranks] == [Outcome.CANCELLED, Outcome.CRASHED]
    wait_until(lambda: none_alive(started(tmp_path, 2)), "no rank process left")


@on_slurm
def test_a_rank_over_its_memory_ends_the_group(ex: SlurmExecutor, tmp_path: Path) -> None:
    ex.submit(Task("g", one_rank_hogs, (str(tmp_path),), Resources(memory=200 * MiB), workers=2))
    [result] = drain(ex).values()
    assert result.outcome is Outcome.MEMORY
    assert "rank 1 of 2" in (result.error or "") and "over its limit of 200 MiB" in (result.error or "")
    assert result.ranks[0].outcome is Outcome.CANCELLED


@on_slurm
def test_the_timeout_stops_the_whole_group(ex: SlurmExecutor, job_name: str, tmp_path: Path) -> None:
    ex.submit(Task("g", sleeps, (str(tmp_path),), timeout_s=3, workers=2, label="slow"))
    [result] = drain(ex).values()
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "Group 'slow' ran longer than its timeout of 3.0 s and was stopped."
    assert {r.outcome for r in result.ranks} <= {Outcome.TIMEOUT, Outcome.CANCELLED}
    wait_until(lambda: none_alive(started(tmp_path, 2)), "no rank process left")
    wait_until(lambda: our_jobs(job_name) == [], "the group's job gone")


@on_slurm
def test_cancel_stops_every_rank(ex: SlurmExecutor, job_name: str, tmp_path: Path) -> None:
    ex.submit(Task("g", sleeps, (str(tmp_path),), workers=2))
    ex.wait(timeout=0)
    pids = wait_until(lambda: started(tmp_path, 2), "both ranks running", timeout_s=180)
    ex.cancel("g")
    [result] = ex.wait(timeout=0)
    assert result.outcome is Outcome.CANCELLED and ex.running() == 0
    wait_until(lambda: none_alive(pids), "no rank process left")
    wait_until(lambda: our_jobs(job_name) == [], "the group's job gone")
    assert not list((tmp_path / "slurm" / "results").iterdir())


@on_slurm
def test_a_group_job_cancelled_from_outside_crashes(ex: SlurmExecutor, tmp_path: Path) -> None:
    ex.submit(Task("g", sleeps, (str(tmp_path),), workers=2))
    ex.wait(timeout=0)
    pids = wait_until(lambda: started(tmp_path, 2), "both ranks running", timeout_s=180)
    job = str(ex.job_of("g"))
    subprocess.run(["scancel", job], check=True)
    [result] = drain(ex).values()
    assert result.outcome is Outcome.CRASHED
    assert f"job {job} was cancelled outside plinth (state CANCELLED)" in (result.error or "")
    assert len(result.ranks) == 2
    wait_until(lambda: none_alive(pids), "no rank process left")


def test_a_group_that_can_never_fit_is_refused(ex: SlurmExecutor, job_name: str) -> None:
    with pytest.raises(ResourceError, match=r"Group 'wide' asks 5 workers of cpu=1 each but .* at most 4"):
        ex.submit(Task("wide", square, (1,), Resources(cpu=1), workers=5, label="wide"))
    with pytest.raises(ResourceError, match=r"Group 'g' asks 2 workers of cpu=1, gpu=2 each .* at most 1"):
        ex.submit(Task("g", square, (1,), Resources(gpu=2), workers=2))
    with pytest.raises(ResourceError, match="Group 'huge' asks cpu=8 but the largest node"):
        ex.submit(Task("huge", square, (1,), Resources(cpu=8), workers=2))
    assert ex.running() == 0 and our_jobs(job_name) == []


@on_slurm
def test_a_second_executor_adopts_a_running_group(
    options: SlurmOptions, job_name: str, tmp_path: Path
) -> None:
    task = Task("g", one_rank_raises, (str(tmp_path),), workers=2)
    first = SlurmExecutor(options, job_name=job_name)
    second = SlurmExecutor(options, job_name=job_name)
    try:
        first.submit(task)
        first.wait(timeout=0)
        job = first.job_of("g")
        # the first driver is gone (killed): a new one on the same work folder picks the group up
        assert second.adopt(task) and second.job_of("g") == job
        [result] = drain(second).values()
        assert result.outcome is Outcome.ERROR and "rank 1 of 2" in (result.error or "")
        wait_until(lambda: our_jobs(job_name) == [], "the group's job gone")
    finally:
        second.shutdown()
        first.shutdown()
    # the job is gone: a third driver adopts the group only where its result was written (every
    # rank reported, or srun returned before the job was cancelled: which comes first is SLURM's)
    third = SlurmExecutor(options, job_name=job_name)
    try:
        written = groups.complete(groups.read(groups.ranks_dir(third._results, "g")), 2)
        again = Task("g", one_rank_raises, (str(tmp_path),), workers=2)
        assert third.adopt(again) is written
        if written:
            [result] = drain(third).values()
            assert result.outcome is Outcome.ERROR and "rank 1 of 2" in (result.error or "")
    finally:
        third.shutdown()


# ------------------------------------------------------------------ a rank's place, and folding


def test_a_rank_reads_its_place_from_slurm() -> None:
    env = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "7",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "2",
        "SLURM_STEP_TASKS_PER_NODE": "2(x3),1",
    }
    assert Layout.from_env(env) == Layout(5, 7, 1, 2, 2)
    assert tasks_per_node("3,2(x2),1") == [3, 2, 2, 1]


@pytest.mark.parametrize(
    ("env", "local_rank", "per_rank", "mine"),
    [
        ({"CUDA_VISIBLE_DEVICES": "3"}, 1, 1, ["3"]),  # SLURM bound this task's own
        ({"SLURM_JOB_GPUS": "4,5,6,7"}, 1, 2, ["6", "7"]),  # this rank's share of the node's
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, 0, 1, ["0"]),
        ({}, 0, 1, []),  # SLURM named none
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, 0, 0, []),
    ],
)
def test_a_rank_takes_its_own_gpus(
    env: dict[str, str], local_rank: int, per_rank: int, mine: list[str]
) -> None:
    assert own_gpus(env, local_rank, per_rank) == mine


def report(rank: int, outcome: Outcome, ended: float = 0.0, value: Any = None) -> groups.RankReport:
    return groups.RankReport(
        RankResult(rank, outcome, f"vm:{100 + rank}", f"{outcome.value} here"), ended, value
    )


def fold(*reports: groups.RankReport, state: str | None = None, srun_exit: int | None = None) -> TaskResult:
    found = groups.Reports({r.result.rank: r for r in reports}, srun_exit)
    return groups.fold(Task("t", square, workers=3, label="train"), "42", found, state)


def test_ranks_that_all_returned_give_rank_0_s_value() -> None:
    result = fold(report(0, Outcome.OK, value="zero"), report(1, Outcome.OK), report(2, Outcome.OK))
    assert result.ok and result.value == "zero" and result.worker == "vm:100"


def test_a_death_just_before_a_raise_is_the_failure() -> None:
    died, raised = report(2, Outcome.CRASHED, ended=10.5), report(1, Outcome.ERROR, ended=10.0)
    result = fold(report(0, Outcome.CANCELLED, 11.0), raised, died)
    assert result.outcome is Outcome.CRASHED and result.error is not None
    assert result.error.startswith("rank 2 of 3 (vm:102): crashed here")
    later = report(2, Outcome.CRASHED, ended=12.0)
    assert fold(report(0, Outcome.CANCELLED), raised, later).outcome is Outcome.ERROR


def test_a_rank_that_never_reported_is_the_failure() -> None:
    result = fold(report(0, Outcome.ERROR, 5.0), report(2, Outcome.CANCELLED, 5.0), srun_exit=137)
    assert result.outcome is Outcome.CRASHED
    assert "rank 1 of 3 (unknown worker): its process ended without reporting (srun exit code 137" in str(
        result.error
    )


def test_ranks_stopped_by_slurm_take_the_job_s_state() -> None:
    stopped = [report(r, Outcome.CANCELLED) for r in range(3)]
    result = fold(*stopped, state="CANCELLED")
    assert result.outcome is Outcome.CRASHED and "cancelled outside plinth" in str(result.error)
    assert fold(*stopped[:2], state="TIMEOUT").outcome is Outcome.TIMEOUT
    assert fold(*stopped[:2], state="NODE_FAIL").outcome is Outcome.CRASHED


def test_reports_decide_the_group_only_once_they_say_how_it_ended() -> None:
    def decided(*reports: groups.RankReport, srun_exit: int | None = None) -> bool:
        return groups.decided(groups.Reports({r.result.rank: r for r in reports}, srun_exit), 3)

    assert not decided(report(0, Outcome.OK), report(1, Outcome.OK))
    assert decided(report(0, Outcome.OK), report(1, Outcome.OK), report(2, Outcome.OK))
    assert not decided(report(0, Outcome.ERROR), report(1, Outcome.CANCELLED))  # rank 2 may still report
    assert decided(report(0, Outcome.ERROR), report(1, Outcome.CANCELLED), srun_exit=1)
    assert not decided(*[report(r, Outcome.CANCELLED) for r in range(3)])  # the job's state says why
    assert decided(report(0, Outcome.CANCELLED), srun_exit=137)  # rank 1 and 2 died without a word
    assert not decided(srun_exit=1)  # none started: the job's state and log say why


def test_a_group_none_of_whose_ranks_reported_takes_the_job_s_state() -> None:
    result = fold(state="FAILED", srun_exit=1)
    assert result.outcome is Outcome.CRASHED
    assert "its SLURM job 42 ended in state FAILED without a result for it" in str(result.error)
    assert [r.outcome for r in result.ranks] == [Outcome.CRASHED] * 3
