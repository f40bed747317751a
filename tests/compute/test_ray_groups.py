"""Groups on the RayExecutor: torch.distributed ranks in a placement group, one rank failing stops all."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import psutil
import pytest
from executor_results import drain

from plinth.compute.base import Outcome, Resources, Task
from plinth.compute.groups import RANK_VARS
from plinth.compute.ray import RayExecutor, placement
from plinth.compute.ray.cluster import NodeInfo
from plinth.core.errors import InvalidInput, ResourceError
from ray_cluster import RAY_MARK, add_node, remove_node, shared_cluster
from waiting import wait_until

cloudpickle.register_pickle_by_value(sys.modules[__name__])
pytestmark = RAY_MARK
MiB = 2**20
HALF = Resources(cpu=0.5)  # the test cluster has two nodes of one CPU: four ranks of half a CPU fit


@pytest.fixture(scope="module")
def ex() -> Iterator[RayExecutor]:
    shared_cluster()
    executor = RayExecutor()
    yield executor
    executor.shutdown()


def placement_states(task_id: str) -> list[str]:
    import ray

    table = ray.util.placement_group_table().values()
    return [pg["state"] for pg in table if pg["name"] == f"plinth {task_id}"]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def assert_nothing_left(task_id: str, folder: Path) -> None:
    """No rank process runs on and the group's placement group is removed."""
    for seen in read_ranks(folder):
        wait_until(
            lambda pid=int(seen["pid"] or 0): gone(pid), f"rank {seen['RANK']} (pid {seen['pid']}) to end"
        )
    wait_until(lambda: placement_states(task_id) == ["REMOVED"], f"the placement group of {task_id} to go")


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


def record_env(folder: str) -> int:
    """Write this rank's environment, pid and node to rank<N>.json; return the rank."""
    import ray

    names = (*RANK_VARS, "CUDA_VISIBLE_DEVICES", "PLINTH_TEST_GROUP_VAR")
    seen = {name: os.environ.get(name) for name in names}
    seen["pid"] = str(os.getpid())
    seen["node"] = ray.get_runtime_context().get_node_id()
    Path(folder, f"rank{os.environ['RANK']}.json").write_text(json.dumps(seen))
    return int(os.environ["RANK"])


def all_started(executor: RayExecutor, folder: Path, n: int) -> None:
    """Drive the executor (ranks start from its `wait`) until all `n` ranks have recorded themselves."""

    def started() -> bool:
        assert executor.wait(timeout=0.2) == [], "the group ended before all its ranks started"
        return len(read_ranks(folder)) == n

    wait_until(started, f"all {n} ranks to start", timeout_s=90)


def record_and_allreduce(folder: str) -> float:
    record_env(folder)
    return allreduce_ranks()[3]


def read_ranks(folder: Path) -> list[dict[str, str | None]]:
    files = sorted(folder.glob("rank*.json"), key=lambda p: int(p.stem.removeprefix("rank")))
    return [json.loads(p.read_text()) for p in files]


def wait_for_ranks(folder: str) -> None:
    """Block until every rank of the group has recorded itself (all are running)."""
    world = int(os.environ["WORLD_SIZE"])
    deadline = time.monotonic() + 60
    while len(list(Path(folder).glob("rank*.json"))) < world and time.monotonic() < deadline:
        time.sleep(0.02)


def one_rank_fails(folder: str, victim: int, how: str) -> int:
    """Once all ranks run, the victim raises, kills itself or takes memory; the others sleep 600 s."""
    rank = record_env(folder)
    if rank == victim:
        wait_for_ranks(folder)
        if how == "raise":
            raise ValueError(f"rank {victim} gives up")
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        block = b"x" * (400 * MiB)  # written, so resident
        time.sleep(600)
        return len(block)
    time.sleep(600)
    return rank


def barrier_then_die(folder: str, victim: int) -> int:
    """Every rank joins torch.distributed; the victim SIGKILLs itself while the others wait in a barrier."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method="env://")
    rank = record_env(folder)
    if rank == victim:
        wait_for_ranks(folder)
        os.kill(os.getpid(), signal.SIGKILL)
    dist.barrier()
    time.sleep(600)
    return rank


def record_and_sleep(folder: str) -> None:
    record_env(folder)
    time.sleep(600)


def nap() -> None:
    time.sleep(600)


def square(x: int) -> int:
    return x * x


# ---------------------------------------------------------------------------------- torch.distributed


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4])
def test_gloo_all_reduce_over_n_ranks(ex: RayExecutor, n: int) -> None:
    ex.submit(
        Task(id=f"ddp{n}", fn=allreduce_ranks, workers=n, resources=Resources(cpu=2 / n), label="train")
    )
    result = drain(ex)[f"ddp{n}"]
    assert result.ok, result.error
    rank, world, local_rank, total, rank0_pid = result.value
    assert (rank, world, local_rank) == (0, n, 0)
    assert total == sum(range(n))
    assert [r.rank for r in result.ranks] == list(range(n)) and all(r.ok for r in result.ranks)
    assert len({r.worker for r in result.ranks}) == n
    assert result.worker == result.ranks[0].worker and result.worker.split()[0].endswith(f":{rank0_pid}")
    assert result.cpu_s == pytest.approx(sum(r.cpu_s for r in result.ranks))
    wait_until(lambda: placement_states(f"ddp{n}") == ["REMOVED"], "the placement group to go")


@pytest.mark.slow
def test_a_rank_killed_in_a_barrier_crashes_the_group(ex: RayExecutor, tmp_path: Path) -> None:
    ex.submit(Task(id="ddp-kill", fn=barrier_then_die, args=(str(tmp_path), 2), workers=3, resources=HALF))
    result = drain(ex)["ddp-kill"]
    assert result.outcome is Outcome.CRASHED, result.error
    assert result.error is not None and result.error.startswith("rank 2 of 3 (node ")
    assert "died" in result.error and "the other ranks were stopped" in result.error
    assert result.ranks[2].outcome is Outcome.CRASHED
    # the others were stopped, unless the dead peer made their barrier raise before that
    assert all(r.outcome in (Outcome.CANCELLED, Outcome.ERROR) for r in result.ranks[:2])
    assert_nothing_left("ddp-kill", tmp_path)
    ex.submit(Task(id="after", fn=record_env, args=(str(tmp_path / "after"),), workers=2, resources=HALF))
    (tmp_path / "after").mkdir()
    assert drain(ex)["after"].ok


@pytest.mark.slow
def test_a_group_on_another_host_meets_there(ex: RayExecutor, tmp_path: Path) -> None:
    other = add_node(node_ip_address="127.0.0.2", num_cpus=2)  # another IP: Ray counts it as another host
    scheduler = {"ray": {"strategy": "STRICT_PACK"}}  # only the new node holds both ranks
    try:
        ex.submit(Task("there", record_and_allreduce, (str(tmp_path),), workers=2, scheduler=scheduler))
        result = drain(ex)["there"]
    finally:
        remove_node(other)
    assert result.ok and result.value == 1.0, result.error
    seen = read_ranks(tmp_path)
    assert {(s["node"], s["MASTER_ADDR"], s["LOCAL_WORLD_SIZE"]) for s in seen} == {
        (other.node_id, "127.0.0.2", "2")
    }
    assert [s["LOCAL_RANK"] for s in seen] == ["0", "1"]


# ---------------------------------------------------------------------------------- environment and placement


def test_each_rank_gets_its_rank_environment_and_the_tasks(ex: RayExecutor, tmp_path: Path) -> None:
    env = {"PLINTH_TEST_GROUP_VAR": "mine", "RANK": "ignored"}
    ex.submit(Task(id="env", fn=record_env, args=(str(tmp_path),), workers=4, resources=HALF, env=env))
    result = drain(ex)["env"]
    assert result.ok and result.value == 0
    seen = read_ranks(tmp_path)
    assert [s["RANK"] for s in seen] == ["0", "1", "2", "3"]
    assert {
        (s["WORLD_SIZE"], s["MASTER_ADDR"], s["MASTER_PORT"], s["PLINTH_TEST_GROUP_VAR"]) for s in seen
    } == {("4", "127.0.0.1", seen[0]["MASTER_PORT"], "mine")}
    nodes = list(dict.fromkeys(s["node"] for s in seen))  # in order of their first rank
    for s in seen:
        on_node = [t["RANK"] for t in seen if t["node"] == s["node"]]
        assert s["LOCAL_RANK"] == str(on_node.index(s["RANK"]))
        assert s["LOCAL_WORLD_SIZE"] == str(len(on_node)) and s["GROUP_RANK"] == str(nodes.index(s["node"]))
    assert [r.worker.split()[0].rpartition(":")[2] for r in result.ranks] == [s["pid"] for s in seen]


@pytest.mark.slow
def test_strategies_place_ranks_and_impossible_groups_are_refused(ex: RayExecutor, tmp_path: Path) -> None:
    spread, packed = tmp_path / "spread", tmp_path / "packed"
    spread.mkdir()
    packed.mkdir()
    for task_id, folder, strategy in (("spread", spread, "STRICT_SPREAD"), ("packed", packed, "STRICT_PACK")):
        scheduler = {"ray": {"strategy": strategy}}
        ex.submit(Task(task_id, record_env, (str(folder),), resources=HALF, workers=2, scheduler=scheduler))
    results = drain(ex)
    assert results["spread"].ok and results["packed"].ok
    assert (
        len({s["node"] for s in read_ranks(spread)}) == 2
        and len({s["node"] for s in read_ranks(packed)}) == 1
    )
    with pytest.raises(ResourceError, match=r"Group 'wide' asks for 3 workers of cpu=1 each, placed PACK"):
        ex.submit(Task("wide", square, (1,), workers=3, label="wide"))
    with pytest.raises(ResourceError, match=r"placed STRICT_PACK, but the Ray cluster can hold at most 1"):
        ex.submit(Task("pack", square, (1,), workers=2, scheduler={"ray": {"strategy": "STRICT_PACK"}}))
    with pytest.raises(ResourceError, match="placed STRICT_SPREAD"):
        ex.submit(
            Task(
                "far",
                square,
                (1,),
                workers=3,
                resources=HALF,
                scheduler={"ray": {"strategy": "STRICT_SPREAD"}},
            )
        )
    with pytest.raises(InvalidInput, match="Ray placement strategy 'CLOSE'; use one of PACK, SPREAD"):
        ex.submit(
            Task("odd", square, (1,), workers=2, resources=HALF, scheduler={"ray": {"strategy": "CLOSE"}})
        )
    assert ex.running() == 0


@pytest.mark.slow
def test_gpu_ranks_see_only_their_own_gpu(ex: RayExecutor, tmp_path: Path) -> None:
    node = add_node(num_gpus=1)
    try:
        ex.submit(Task("gpus", record_env, (str(tmp_path),), workers=2, resources=Resources(cpu=0.5, gpu=1)))
        result = drain(ex)["gpus"]
    finally:
        remove_node(node)
    assert result.ok, result.error
    seen = read_ranks(tmp_path)
    assert [s["CUDA_VISIBLE_DEVICES"] for s in seen] == ["0", "0"] and seen[0]["node"] != seen[1]["node"]
    assert result.gpus == (0, 0) and [r.gpus for r in result.ranks] == [(0,), (0,)]


# ---------------------------------------------------------------------------------- failures


def test_a_rank_that_raises_stops_the_others_and_the_executor_goes_on(
    ex: RayExecutor, tmp_path: Path
) -> None:
    ex.submit(
        Task("raises", one_rank_fails, (str(tmp_path), 1, "raise"), workers=3, resources=HALF, label="fit")
    )
    result = drain(ex)["raises"]
    assert result.outcome is Outcome.ERROR
    assert result.error is not None and result.error.startswith("rank 1 of 3 (")
    assert "ValueError: rank 1 gives up; the other ranks were stopped" in result.error
    assert "one_rank_fails" in (result.traceback or "")
    assert [r.outcome for r in result.ranks] == [Outcome.CANCELLED, Outcome.ERROR, Outcome.CANCELLED]
    assert_nothing_left("raises", tmp_path)
    ex.submit(Task("next", square, (6,)))
    (tmp_path / "next").mkdir()
    ex.submit(Task("next-group", record_env, (str(tmp_path / "next"),), workers=2, resources=HALF))
    results = drain(ex)
    assert results["next"].value == 36 and results["next-group"].ok and results["next-group"].value == 0


def test_a_rank_that_kills_itself_crashes_the_group(ex: RayExecutor, tmp_path: Path) -> None:
    ex.submit(Task("killed", one_rank_fails, (str(tmp_path), 0, "kill"), workers=2, resources=HALF))
    result = drain(ex)["killed"]
    assert result.outcome is Outcome.CRASHED
    assert result.error is not None and result.error.startswith("rank 0 of 2 (node ")
    assert [r.outcome for r in result.ranks] == [Outcome.CRASHED, Outcome.CANCELLED]
    assert_nothing_left("killed", tmp_path)


def test_a_rank_killed_from_outside_crashes_the_group(ex: RayExecutor, tmp_path: Path) -> None:
    ex.submit(Task("shot", record_and_sleep, (str(tmp_path),), workers=3, resources=HALF))
    all_started(ex, tmp_path, 3)
    os.kill(int(read_ranks(tmp_path)[1]["pid"] or 0), signal.SIGKILL)
    result = drain(ex)["shot"]
    assert result.outcome is Outcome.CRASHED and (result.error or "").startswith("rank 1 of 3 (node ")
    assert [r.outcome for r in result.ranks] == [Outcome.CANCELLED, Outcome.CRASHED, Outcome.CANCELLED]
    assert_nothing_left("shot", tmp_path)


@pytest.mark.slow
def test_losing_a_rank_s_node_crashes_the_group(ex: RayExecutor, tmp_path: Path) -> None:
    node = add_node()
    scheduler = {"ray": {"strategy": "STRICT_SPREAD"}}  # one rank on each of the three nodes
    try:
        ex.submit(Task("lost", record_and_sleep, (str(tmp_path),), workers=3, scheduler=scheduler))
        all_started(ex, tmp_path, 3)
    finally:
        remove_node(node)
    [victim] = [int(s["RANK"] or 0) for s in read_ranks(tmp_path) if s["node"] == node.node_id]
    result = drain(ex)["lost"]
    assert result.outcome is Outcome.CRASHED
    assert (result.error or "").startswith(f"rank {victim} of 3 (node {node.node_id[:8]}")
    assert [r.outcome is Outcome.CRASHED for r in result.ranks] == [r == victim for r in range(3)]
    assert_nothing_left("lost", tmp_path)


def test_a_rank_over_its_memory_limit_ends_the_group(ex: RayExecutor, tmp_path: Path) -> None:
    memory = Resources(cpu=0.5, memory=250 * MiB)
    ex.submit(Task("hog", one_rank_fails, (str(tmp_path), 1, "memory"), workers=2, resources=memory))
    result = drain(ex)["hog"]
    assert result.outcome is Outcome.MEMORY
    assert "rank 1 of 2" in (result.error or "") and "over its limit of 250 MiB" in (result.error or "")
    assert [r.outcome for r in result.ranks] == [Outcome.CANCELLED, Outcome.MEMORY]
    assert_nothing_left("hog", tmp_path)


@pytest.mark.slow
def test_a_timeout_stops_every_rank(ex: RayExecutor, tmp_path: Path) -> None:
    ex.submit(Task("slow", record_and_sleep, (str(tmp_path),), workers=2, resources=HALF, timeout_s=3.0))
    result = drain(ex)["slow"]
    assert result.outcome is Outcome.TIMEOUT
    assert "Group 'slow' ran longer than its timeout of 3.0 s" in (result.error or "")
    assert {r.outcome for r in result.ranks} <= {Outcome.TIMEOUT, Outcome.CANCELLED}
    assert Outcome.TIMEOUT in {r.outcome for r in result.ranks}
    assert_nothing_left("slow", tmp_path)


def test_cancel_stops_every_rank(ex: RayExecutor, tmp_path: Path) -> None:
    ex.submit(Task("cancelled", record_and_sleep, (str(tmp_path),), workers=2, resources=HALF))
    all_started(ex, tmp_path, 2)
    ex.cancel("cancelled")
    result = drain(ex)["cancelled"]
    assert result.outcome is Outcome.CANCELLED and result.error == "Group 'cancelled' was cancelled."
    assert [r.outcome for r in result.ranks] == [Outcome.CANCELLED, Outcome.CANCELLED]
    assert_nothing_left("cancelled", tmp_path)


def test_cancel_a_group_waiting_for_room(ex: RayExecutor) -> None:
    ex.submit(Task("hold", nap, workers=2, resources=Resources(cpu=1)))
    ex.submit(Task("queued", square, (2,), workers=2, resources=Resources(cpu=1)))
    assert ex.wait(timeout=0.5) == [] and ex.running() == 2
    ex.cancel("queued")
    ex.cancel("hold")
    results: dict[str, Any] = drain(ex)
    assert results["queued"].outcome is Outcome.CANCELLED and results["hold"].outcome is Outcome.CANCELLED
    wait_until(lambda: placement_states("queued") == ["REMOVED"], "the waiting placement group to go")
    wait_until(lambda: placement_states("hold") == ["REMOVED"], "the placement group to go")
    ex.submit(Task("room", square, (3,), workers=2, resources=Resources(cpu=1)))
    assert drain(ex)["room"].value == 9


# ---------------------------------------------------------------------------------- placement arithmetic


def node(cpus: float, gpus: float = 0, memory: int = 64 * 2**30) -> NodeInfo:
    return NodeInfo("n", "10.0.0.1", "h", True, False, cpus, gpus, memory, 0, {})


@pytest.mark.parametrize(
    ("res", "strategy", "nodes", "most"),
    [
        (Resources(cpu=1), "PACK", [node(4), node(2)], 6),
        (Resources(cpu=1), "SPREAD", [node(4), node(0.5)], 4),
        (Resources(cpu=2), "STRICT_PACK", [node(4), node(7)], 3),
        (Resources(cpu=1), "STRICT_SPREAD", [node(4), node(2), node(0.5)], 2),
        (Resources(cpu=1, gpu=1), "PACK", [node(8, 2), node(8, 0)], 2),
        (Resources(cpu=0.5, memory=3 * 2**30), "PACK", [node(8, memory=10 * 2**30)], 3),
    ],
)
def test_how_many_ranks_a_cluster_can_hold(
    res: Resources, strategy: str, nodes: list[NodeInfo], most: int
) -> None:
    assert placement.most_placed(res, strategy, nodes) == most


def test_bundles_never_ask_for_nothing() -> None:
    assert placement.bundle(Resources(cpu=2, gpu=1, memory=MiB)) == {
        "CPU": 2,
        "GPU": 1.0,
        "memory": float(MiB),
    }
    assert placement.bundle(Resources(cpu=0)) == {"CPU": placement.TOKEN_CPU}


def test_ranks_are_numbered_by_node_as_torchrun_does() -> None:
    slots = placement.layout({0: "b", 1: "a", 2: "b", 3: "a"}, {"a": "10.0.0.1", "b": "10.0.0.2"}, 4)
    assert [(s.address, s.local_rank, s.local_world_size, s.node_rank) for s in slots] == [
        ("10.0.0.2", 0, 2, 0),
        ("10.0.0.1", 0, 2, 1),
        ("10.0.0.2", 1, 2, 0),
        ("10.0.0.1", 1, 2, 1),
    ]
