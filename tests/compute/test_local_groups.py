"""Groups on the LocalExecutor: torch.distributed ranks, gang slots, one rank failing stops all."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cloudpickle
import psutil
import pytest
from executor_results import drain as finish

from plinth.compute.base import Outcome, Resources, Task, TaskResult
from plinth.compute.local import LocalExecutor
from plinth.core.errors import ResourceError

# Ship this module's functions by value: workers need not import the test module (or pytest).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

MiB = 2**20
RANK_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def pid_of(worker: str) -> int:
    return int(worker.rpartition(":")[2])


def assert_all_gone(result: TaskResult) -> None:
    for rank in result.ranks:
        assert not psutil.pid_exists(pid_of(rank.worker)), f"rank {rank.rank} still runs"


# ---------------------------------------------------------------------------------- rank functions


def allreduce_ranks() -> tuple[int, int, int, float, int]:
    """What the brief's DDP step does first: join the group, sum the ranks, leave."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method="env://")
    value = torch.tensor([float(dist.get_rank())])
    dist.all_reduce(value)
    dist.destroy_process_group()
    env = os.environ
    return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"]), float(value.item()), os.getpid()


def barrier_then_die(victim: int) -> int:
    """Every rank joins; the victim SIGKILLs itself while the others wait in a barrier."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method="env://")
    if dist.get_rank() == victim:
        os.kill(os.getpid(), signal.SIGKILL)
    dist.barrier()
    time.sleep(600)
    return dist.get_rank()


def record_env(folder: str) -> int:
    """Write this rank's environment (rank variables, GPUs, the task's own) to rank<N>.json."""
    names = (*RANK_VARS, "CUDA_VISIBLE_DEVICES", "PLINTH_TEST_GROUP_VAR")
    seen = {name: os.environ.get(name) for name in names}
    seen["pid"] = str(os.getpid())
    Path(folder, f"rank{os.environ['RANK']}.json").write_text(json.dumps(seen))
    return int(os.environ["RANK"])


def read_ranks(folder: Path, n: int) -> list[dict[str, str | None]]:
    return [json.loads(Path(folder, f"rank{i}.json").read_text()) for i in range(n)]


def one_rank_fails(victim: int, how: str) -> int:
    """The victim raises, kills itself or takes memory; the other ranks sleep far past the test."""
    if int(os.environ["RANK"]) == victim:
        if how == "raise":
            raise ValueError(f"rank {victim} gives up")
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        block = b"x" * (400 * MiB)  # written, so resident
        time.sleep(600)
        return len(block)
    time.sleep(600)
    return 0


def mark_and_sleep(folder: str) -> None:
    Path(folder, f"started{os.environ['RANK']}").touch()
    time.sleep(600)


def wait_for_file(path: str) -> str:
    deadline = time.monotonic() + 60
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.environ.get("RANK", "none")


def finish_after_file(release: str, done: str) -> None:
    wait_for_file(release)
    Path(done).touch()


def saw_file(path: str) -> bool:
    return Path(path).exists()


def square(x: int) -> int:
    return x * x


def pid() -> int:
    return os.getpid()


# ---------------------------------------------------------------------------------- torch.distributed


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4])
def test_gloo_all_reduce_over_n_ranks(make: Callable[..., LocalExecutor], n: int) -> None:
    executor = make(cpus=n, workers=1)
    executor.submit(Task(id="ddp", fn=allreduce_ranks, workers=n, label="train"))
    result = finish(executor)["ddp"]
    assert result.ok, result.error
    rank, world, local_rank, total, rank0_pid = result.value
    assert (rank, world, local_rank) == (0, n, 0)
    assert total == sum(range(n))
    assert [r.rank for r in result.ranks] == list(range(n))
    assert all(r.ok for r in result.ranks)
    assert len({r.worker for r in result.ranks}) == n
    assert result.worker == result.ranks[0].worker and pid_of(result.worker) == rank0_pid
    assert result.cpu_s == pytest.approx(sum(r.cpu_s for r in result.ranks))
    assert_all_gone(result)


@pytest.mark.slow
def test_a_rank_killed_in_a_barrier_crashes_the_group(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=3, workers=1)
    executor.submit(Task(id="ddp", fn=barrier_then_die, args=(2,), workers=3, label="train"))
    result = finish(executor)["ddp"]
    assert result.outcome is Outcome.CRASHED
    assert result.error is not None and result.error.startswith("rank 2 of 3 (")
    assert "SIGKILL" in result.error and "the other ranks were stopped" in result.error
    assert result.ranks[2].outcome is Outcome.CRASHED
    # the others were stopped, unless the dead peer made their barrier raise before that
    assert all(r.outcome in (Outcome.CANCELLED, Outcome.ERROR) for r in result.ranks[:2])
    assert_all_gone(result)
    executor.submit(Task(id="next", fn=square, args=(7,), workers=3))
    assert finish(executor)["next"].value == 49


# ---------------------------------------------------------------------------------- environment


def test_each_rank_gets_its_rank_environment_and_the_tasks(
    make: Callable[..., LocalExecutor], tmp_path: Path
) -> None:
    executor = make(cpus=3, workers=1)
    env = {"PLINTH_TEST_GROUP_VAR": "mine", "RANK": "ignored"}
    executor.submit(Task(id="g", fn=record_env, args=(str(tmp_path),), workers=3, env=env))
    result = finish(executor)["g"]
    assert result.ok and result.value == 0
    seen = read_ranks(tmp_path, 3)
    assert [s["RANK"] for s in seen] == ["0", "1", "2"]
    assert [s["LOCAL_RANK"] for s in seen] == ["0", "1", "2"]
    assert {(s["WORLD_SIZE"], s["LOCAL_WORLD_SIZE"], s["GROUP_RANK"], s["MASTER_ADDR"]) for s in seen} == {
        ("3", "3", "0", "127.0.0.1")
    }
    assert len({s["MASTER_PORT"] for s in seen}) == 1
    assert all(s["PLINTH_TEST_GROUP_VAR"] == "mine" for s in seen)
    assert all(s["CUDA_VISIBLE_DEVICES"] == "" for s in seen)  # CPU ranks see no GPU
    assert [pid_of(r.worker) for r in result.ranks] == [int(str(s["pid"])) for s in seen]
    assert_all_gone(result)


def test_ranks_run_in_their_own_processes_not_the_pool(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=2, workers=1)
    executor.submit(Task(id="before", fn=pid))
    pool_pid = finish(executor)["before"].value
    executor.submit(Task(id="g", fn=pid, workers=2))
    result = finish(executor)["g"]
    assert pool_pid not in {pid_of(r.worker) for r in result.ranks}
    assert_all_gone(result)
    executor.submit(Task(id="after", fn=pid))
    assert finish(executor)["after"].value == pool_pid  # the pool worker is kept, untouched by the group


def test_each_rank_holds_its_own_gpus(make: Callable[..., LocalExecutor], tmp_path: Path) -> None:
    executor = make(cpus=4, gpus=[0, 1, 2, 3], workers=1)
    executor.submit(Task(id="kept", fn=pid, resources=Resources(gpu=1)))
    kept_pid = finish(executor)["kept"].value  # a worker kept for GPU 0, holding its context
    task = Task(id="g", fn=record_env, args=(str(tmp_path),), workers=2, resources=Resources(gpu=2))
    executor.submit(task)
    result = finish(executor)["g"]
    assert result.ok
    assert [s["CUDA_VISIBLE_DEVICES"] for s in read_ranks(tmp_path, 2)] == ["0,1", "2,3"]
    assert [r.gpus for r in result.ranks] == [(0, 1), (2, 3)]
    assert result.gpus == (0, 1, 2, 3)
    assert not psutil.pid_exists(kept_pid)  # retired: the group needed its GPU
    executor.submit(Task(id="after", fn=pid, resources=Resources(gpu=4)))
    assert finish(executor)["after"].gpus == (0, 1, 2, 3)  # every GPU was released


# ---------------------------------------------------------------------------------- one rank fails


def test_a_rank_that_raises_stops_the_group(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=3, workers=1)
    executor.submit(Task(id="g", fn=one_rank_fails, args=(1, "raise"), workers=3, label="train"))
    result = finish(executor)["g"]
    assert result.outcome is Outcome.ERROR
    assert result.error is not None
    assert result.error.startswith(f"rank 1 of 3 ({result.ranks[1].worker}): ValueError: rank 1 gives up")
    assert result.traceback is not None and "ValueError: rank 1 gives up" in result.traceback
    assert [r.outcome for r in result.ranks] == [Outcome.CANCELLED, Outcome.ERROR, Outcome.CANCELLED]
    assert_all_gone(result)
    executor.submit(Task(id="next", fn=square, args=(5,)))
    assert finish(executor)["next"].value == 25


def test_a_rank_killed_with_sigkill_crashes_the_group(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=2, workers=1)
    executor.submit(Task(id="g", fn=one_rank_fails, args=(0, "kill"), workers=2))
    result = finish(executor)["g"]  # the other rank's 600 s sleep was cut short
    assert result.outcome is Outcome.CRASHED
    assert result.error is not None and result.error.startswith("rank 0 of 2")
    assert "signal 9 (SIGKILL)" in result.error
    assert [r.outcome for r in result.ranks] == [Outcome.CRASHED, Outcome.CANCELLED]
    assert result.ranks[1].error == "stopped because rank 0 failed"
    assert_all_gone(result)
    executor.submit(Task(id="next", fn=square, args=(6,), workers=2))
    assert finish(executor)["next"].value == 36  # every slot came back


def test_a_rank_over_its_memory_limit_stops_the_group(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=2, workers=1)
    limit = 150 * MiB
    task = Task(id="g", fn=one_rank_fails, args=(1, "memory"), workers=2, resources=Resources(memory=limit))
    executor.submit(task)
    result = finish(executor)["g"]
    assert result.outcome is Outcome.MEMORY
    assert result.error is not None and result.error.startswith("rank 1 of 2")
    assert "over its limit of 157 MB per worker" in result.error
    assert result.ranks[1].max_rss > limit
    assert [r.outcome for r in result.ranks] == [Outcome.CANCELLED, Outcome.MEMORY]
    assert_all_gone(result)


# ---------------------------------------------------------------------------------- whole group


def test_timeout_stops_every_rank(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=2, workers=1)
    executor.submit(Task(id="g", fn=one_rank_fails, args=(9, "none"), workers=2, timeout_s=0.5, label="slow"))
    result = finish(executor)["g"]
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "Group 'slow' ran longer than its timeout of 0.5 s and was stopped (all 2 ranks)."
    assert [r.outcome for r in result.ranks] == [Outcome.TIMEOUT, Outcome.TIMEOUT]
    assert_all_gone(result)


def test_cancel_stops_a_running_group_and_drops_a_queued_one(
    make: Callable[..., LocalExecutor], tmp_path: Path
) -> None:
    executor = make(cpus=2, workers=1)
    executor.submit(Task(id="running", fn=mark_and_sleep, args=(str(tmp_path),), workers=2))
    executor.submit(Task(id="queued", fn=square, args=(3,), workers=2))
    assert executor.running() == 2
    while not all(Path(tmp_path, f"started{i}").exists() for i in range(2)):
        assert executor.wait(timeout=0.1) == []
    executor.cancel("queued")
    executor.cancel("running")
    results = finish(executor)
    assert results["queued"].outcome is Outcome.CANCELLED
    assert results["queued"].error == "Group 'queued' was cancelled before it started."
    assert results["running"].outcome is Outcome.CANCELLED
    assert [r.outcome for r in results["running"].ranks] == [Outcome.CANCELLED, Outcome.CANCELLED]
    assert_all_gone(results["running"])
    executor.submit(Task(id="next", fn=square, args=(4,), workers=2))
    assert finish(executor)["next"].value == 16


# ---------------------------------------------------------------------------------- slots


def test_a_group_starts_only_when_every_rank_fits(make: Callable[..., LocalExecutor], tmp_path: Path) -> None:
    executor = make(cpus=2, workers=2)
    release, done = str(tmp_path / "release"), str(tmp_path / "done")
    executor.submit(Task(id="first", fn=finish_after_file, args=(release, done)))
    executor.submit(Task(id="g", fn=saw_file, args=(done,), workers=2))
    assert executor.wait(timeout=1.0) == []  # one CPU is free, the group needs two
    Path(release).touch()
    results = finish(executor)
    assert results["first"].ok
    assert results["g"].value is True  # it started after `first` had ended


def test_a_group_needs_no_pool_worker(make: Callable[..., LocalExecutor], tmp_path: Path) -> None:
    executor = make(cpus=4, workers=1)  # one pool worker: busy with `blocker` below
    release = str(tmp_path / "release")
    executor.submit(Task(id="blocker", fn=wait_for_file, args=(release,)))
    executor.submit(Task(id="waits", fn=square, args=(2,)))  # no pool worker free
    executor.submit(Task(id="g", fn=square, args=(3,), workers=2))
    assert [r.task_id for r in executor.wait(timeout=60)] == ["g"]
    Path(release).touch()
    results = finish(executor)
    assert results["blocker"].value == "none" and results["waits"].value == 4


def test_a_group_that_can_never_fit_raises(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=2, memory=1024 * MiB, gpus=[0, 1], workers=1)
    with pytest.raises(
        ResourceError, match=r"Group 'train' of 3 workers \(cpu=1 each\) asks for cpu=3 in all"
    ):
        executor.submit(Task(id="c", fn=square, args=(1,), workers=3, label="train"))
    with pytest.raises(ResourceError, match=r"asks for memory=1.2 GiB in all .* 1.0 GiB of memory"):
        executor.submit(Task(id="m", fn=square, args=(1,), workers=2, resources=Resources(memory=600 * MiB)))
    with pytest.raises(ResourceError, match=r"asks for gpu=4 in all .* 2 GPUs"):
        executor.submit(Task(id="g", fn=square, args=(1,), workers=2, resources=Resources(gpu=2)))
    assert executor.running() == 0
