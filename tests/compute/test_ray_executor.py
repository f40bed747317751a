"""RayExecutor on a real local Ray cluster: outcomes, limits, placement, resources, lazy import."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest
from executor_results import drain

from plinth.compute.base import Outcome, Resources, Task
from plinth.compute.ray import RayExecutor
from plinth.core.errors import ConfigError, ResourceError
from ray_cluster import RAY_MARK, shared_cluster
from waiting import wait_until

cloudpickle.register_pickle_by_value(sys.modules[__name__])
pytestmark = RAY_MARK
MiB = 2**20


@pytest.fixture(scope="module")
def ex() -> Iterator[RayExecutor]:
    shared_cluster()
    executor = RayExecutor()
    yield executor
    executor.shutdown()


def square(x: int) -> int:
    return x * x


def boom() -> None:
    raise ValueError("no good")


def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


def mark_and_nap(marker: str, seconds: float) -> str:
    Path(marker).touch()
    return nap(seconds)


def hog(mib: int) -> int:
    block = bytearray(mib * MiB)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(30)
    return len(block)


def env_value(name: str) -> str | None:
    return os.environ.get(name)


def die() -> None:
    os._exit(9)


def test_results_errors_and_usage(ex: RayExecutor) -> None:
    for i in range(20):
        ex.submit(Task(f"sq{i}", square, (i,), label=f"square[{i}]"))
    ex.submit(Task("bad", boom))
    results = drain(ex)
    assert [results[f"sq{i}"].value for i in range(20)] == [i * i for i in range(20)]
    ok = results["sq3"]
    assert ok.outcome is Outcome.OK and "node" in ok.worker and ok.max_rss > 0 and ok.wall_s >= 0
    bad = results["bad"]
    assert bad.outcome is Outcome.ERROR and bad.error == "ValueError: no good"
    assert "boom" in (bad.traceback or "")


def test_timeout_counts_from_start_and_stops_the_task(ex: RayExecutor) -> None:
    ex.submit(Task("slow", nap, (30.0,), timeout_s=1.0, label="slow"))
    [result] = drain(ex).values()
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "Task 'slow' ran longer than its timeout of 1.0 s and was stopped."


def test_memory_limit_is_enforced(ex: RayExecutor) -> None:
    ex.submit(Task("hog", hog, (300,), resources=Resources(memory=150 * MiB)))
    [result] = drain(ex).values()
    assert result.outcome is Outcome.MEMORY and "over its limit of 150 MiB" in (result.error or "")


def test_cancel_a_running_task(ex: RayExecutor, tmp_path: Path) -> None:
    started = tmp_path / "started"
    ex.submit(Task("long", mark_and_nap, (str(started), 30.0)))
    assert ex.wait(timeout=0) == []  # hands the task to Ray
    wait_until(started.exists, "the task to start")
    ex.cancel("long")
    [result] = drain(ex).values()
    assert result.outcome is Outcome.CANCELLED and ex.running() == 0


def test_dead_worker_is_crashed_and_the_next_task_runs(ex: RayExecutor) -> None:
    ex.submit(Task("dies", die))
    [result] = drain(ex).values()
    assert result.outcome is Outcome.CRASHED and "died" in (result.error or "")
    ex.submit(Task("after", square, (7,)))
    assert drain(ex)["after"].value == 49


def test_a_fan_out_is_packed_and_a_crash_in_a_pack_hurts_no_other_task(ex: RayExecutor) -> None:
    for i in range(40):
        ex.submit(Task(f"t{i}", die if i == 13 else square, () if i == 13 else (i,)))
    results = drain(ex)
    assert results["t13"].outcome is Outcome.CRASHED
    assert all(results[f"t{i}"].value == i * i for i in range(40) if i != 13)
    workers = {results[f"t{i}"].worker for i in range(40) if i != 13}
    assert len(workers) < 39  # several tasks ran in each Ray worker process


def test_task_env_and_forwarded_settings(ex: RayExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_STORE", "postgresql://example/db")
    ex.submit(Task("own", env_value, ("SOME_VAR",), env={"SOME_VAR": "42"}))
    ex.submit(Task("fwd", env_value, ("PLINTH_STORE",)))
    results = drain(ex)
    assert results["own"].value == "42" and results["fwd"].value == "postgresql://example/db"


def test_gpu_task_is_placed_on_the_gpu_node(ex: RayExecutor) -> None:
    ex.submit(Task("gpu", env_value, ("CUDA_VISIBLE_DEVICES",), resources=Resources(gpu=1)))
    result = drain(ex)["gpu"]
    assert result.ok and result.value == "0" and result.gpus == (0,)
    import ray

    [gpu_node] = [n["NodeID"][:8] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")]
    assert f"node {gpu_node}" in result.worker


def test_asking_more_than_any_node_has_is_refused(ex: RayExecutor) -> None:
    with pytest.raises(ResourceError, match="gpu=2 but no node of the Ray cluster has that much"):
        ex.submit(Task("greedy", square, (1,), resources=Resources(gpu=2)))
    with pytest.raises(ResourceError, match="cpu=64"):
        ex.submit(Task("wide", square, (1,), resources=Resources(cpu=64)))
    assert ex.capacity().cpu >= 2 and ex.capacity().gpu == 1


def test_missing_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'plinth\[ray\]'"):
        RayExecutor()


def test_import_plinth_does_not_import_ray() -> None:
    code = (
        "import sys, plinth, plinth.compute, plinth.compute.ray, plinth.flows.flow, plinth.cli.main; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
