"""LocalExecutor: slots, reuse, failure outcomes, GPUs (simulated), cancellation, env, throughput."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import psutil
import pytest
from executor_results import drain

from plinth.compute import gpus as gpus_module
from plinth.compute.base import Outcome, Resources, Task
from plinth.compute.gpus import discover_gpus
from plinth.compute.local import LocalExecutor
from plinth.core.errors import ConfigError, ResourceError

# Ship this module's functions by value: workers need not import the test module (or pytest).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

MiB = 2**20


def square(x: int) -> int:
    return x * x


def interval(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def meet(folder: str, me: str, other: str) -> tuple[float, float]:
    """Say that `me` started, then wait (a minute at most) until `other` did; the span this ran."""
    start = time.time()
    Path(folder, me).touch()
    deadline = time.monotonic() + 60
    while not Path(folder, other).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return start, time.time()


def gpu_meet(folder: str, me: str, other: str) -> tuple[str, float, float]:
    start, end = meet(folder, me, other)
    return os.environ["CUDA_VISIBLE_DEVICES"], start, end


def pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def allocate_and_wait(megabytes: int) -> int:
    block = b"x" * (megabytes * MiB)  # written, so resident (unlike a calloc'd bytearray)
    time.sleep(20)
    return len(block)


def read_env(name: str) -> str | None:
    return os.environ.get(name)


def write_pid_and_sleep(path: str) -> None:
    Path(path + ".tmp").write_text(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(30)


def unpicklable() -> Any:
    return threading.Lock()


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# ---------------------------------------------------------------------------------- basics


def test_runs_tasks_and_returns_values(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=2, workers=2)
    for i in range(5):
        executor.submit(Task(id=f"t{i}", fn=square, args=(i,), label=f"square[{i}]"))
    results = drain(executor)
    assert {tid: r.value for tid, r in results.items()} == {f"t{i}": i * i for i in range(5)}
    for result in results.values():
        assert result.ok and result.error is None and result.gpus == ()
        assert result.max_rss > 0 and result.cpu_s >= 0 and result.wall_s >= 0
        host, _, worker_pid = result.worker.rpartition(":")
        assert host and worker_pid.isdigit()
    assert executor.running() == 0
    assert executor.capacity() == Resources(cpu=2, memory=psutil.virtual_memory().total, gpu=0)


def test_two_tasks_run_at_once(make: Callable[..., LocalExecutor], tmp_path: Path) -> None:
    executor = make(cpus=2, workers=2)
    executor.submit(Task(id="a", fn=meet, args=(str(tmp_path), "a", "b")))
    executor.submit(Task(id="b", fn=meet, args=(str(tmp_path), "b", "a")))
    results = drain(executor)
    assert overlaps(results["a"].value, results["b"].value)


def test_workers_are_reused(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=1, workers=1)
    pids = []
    for i in range(3):
        executor.submit(Task(id=str(i), fn=pid))
        pids.append(drain(executor)[str(i)].value)
    assert len(set(pids)) == 1


def test_a_task_that_fits_passes_one_that_does_not(
    make: Callable[..., LocalExecutor], tmp_path: Path
) -> None:
    executor = make(cpus=2, workers=2)
    # small1 holds its CPU until small2 has started, so big (2 CPUs) cannot start before small2
    executor.submit(Task(id="small1", fn=meet, args=(str(tmp_path), "small1", "small2")))
    executor.submit(Task(id="big", fn=interval, args=(0.0,), resources=Resources(cpu=2)))
    executor.submit(Task(id="small2", fn=meet, args=(str(tmp_path), "small2", "small2")))
    results = drain(executor)
    assert results["small2"].value[0] < results["small1"].value[1]  # ran beside small1, before big
    assert results["big"].value[0] >= results["small1"].value[1]


def test_functions_from_path_imported_modules_are_shipped(
    make: Callable[..., LocalExecutor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plinth_exec_helper.py").write_text("def triple(x):\n    return 3 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import plinth_exec_helper  # type: ignore[import-not-found]

    executor = make(cpus=1, workers=1)
    executor.submit(Task(id="ref", fn=plinth_exec_helper.triple, args=(2,)))  # by reference: sys.path
    assert drain(executor)["ref"].value == 6
    cloudpickle.register_pickle_by_value(plinth_exec_helper)
    try:
        executor.submit(Task(id="val", fn=plinth_exec_helper.triple, args=(3,)))
        assert drain(executor)["val"].value == 9
    finally:
        cloudpickle.unregister_pickle_by_value(plinth_exec_helper)


def test_unguarded_script_with_main_functions_runs_and_exits(tmp_path: Path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(
        textwrap.dedent(
            """
            from plinth.compute.base import Task
            from plinth.compute.local import LocalExecutor

            class Box:
                def __init__(self, v):
                    self.v = v

            def double(x):
                return Box(2 * x)

            executor = LocalExecutor(cpus=2, workers=2)
            for i in range(4):
                executor.submit(Task(id=str(i), fn=double, args=(i,)))
            values = []
            while executor.running():
                values += [r.value.v for r in executor.wait()]
            print(sorted(values))
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 2, 4, 6]"  # printed once: workers did not re-run the script


# ---------------------------------------------------------------------------------- failures


def test_exception_is_error_with_traceback(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=1, workers=1)
    executor.submit(Task(id="x", fn=fail, args=("boom",)))
    result = drain(executor)["x"]
    assert result.outcome is Outcome.ERROR and not result.ok
    assert result.error == "ValueError: boom"
    assert result.traceback is not None
    assert "in fail" in result.traceback and "ValueError: boom" in result.traceback


def test_unpicklable_return_value_is_error(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=1, workers=1)
    executor.submit(Task(id="x", fn=unpicklable))
    executor.submit(Task(id="y", fn=square, args=(3,)))
    results = drain(executor)
    assert results["x"].outcome is Outcome.ERROR
    assert results["x"].error is not None and "could not be pickled" in results["x"].error
    assert results["y"].value == 9


def test_timeout_stops_the_task_and_replaces_the_worker(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=1, workers=1)
    executor.submit(Task(id="slow", fn=interval, args=(30,), timeout_s=0.5, label="slow[0]"))
    result = drain(executor)["slow"]
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "Task 'slow[0]' ran longer than its timeout of 0.5 s and was stopped."
    assert not psutil.pid_exists(int(result.worker.rpartition(":")[2]))
    executor.submit(Task(id="next", fn=square, args=(4,)))
    assert drain(executor)["next"].value == 16


def test_memory_limit_stops_the_task(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=1, workers=1)
    limit = 100 * MiB
    executor.submit(
        Task(id="hog", fn=allocate_and_wait, args=(300,), resources=Resources(memory=limit), label="hog")
    )
    result = drain(executor)["hog"]
    assert result.outcome is Outcome.MEMORY
    assert result.error is not None and "over its limit of 100 MiB" in result.error
    assert result.max_rss > limit
    executor.submit(Task(id="next", fn=square, args=(5,)))
    assert drain(executor)["next"].value == 25


def test_kill_9_inside_a_task_is_crashed_and_the_next_task_runs(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=1, workers=1)
    executor.submit(Task(id="die", fn=kill_myself))
    executor.submit(Task(id="after", fn=square, args=(6,)))
    results = drain(executor)
    assert results["die"].outcome is Outcome.CRASHED
    assert results["die"].error is not None and "SIGKILL" in results["die"].error
    assert results["after"].value == 36


# ---------------------------------------------------------------------------------- slots


def test_gpu_slots_are_exclusive_and_set_cuda_visible_devices(
    make: Callable[..., LocalExecutor], tmp_path: Path
) -> None:
    executor = make(cpus=4, gpus=[0, 1], workers=1)
    assert executor.capacity().gpu == 2
    for name, other in (("a", "b"), ("b", "a"), ("c", "c")):  # a and b hold their GPUs until both run
        executor.submit(
            Task(id=name, fn=gpu_meet, args=(str(tmp_path), name, other), resources=Resources(gpu=1))
        )
    assert executor.running() == 3
    results = drain(executor)
    (dev_a, *span_a), (dev_b, *span_b), (dev_c, *span_c) = (results[n].value for n in "abc")
    assert {dev_a, dev_b} == {"0", "1"}
    assert overlaps((span_a[0], span_a[1]), (span_b[0], span_b[1]))
    assert span_c[0] >= min(span_a[1], span_b[1])  # the third waited for a free GPU
    assert [results[n].gpus for n in "ab"] == [(int(dev_a),), (int(dev_b),)]
    assert results["c"].gpus == (int(dev_c),)
    with pytest.raises(ResourceError, match=r"'train\[0\]' asks for gpu=3 .* 2 GPUs"):
        executor.submit(Task(id="d", fn=pid, resources=Resources(gpu=3), label="train[0]"))


def test_asking_for_more_than_the_machine_has_raises(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=2, memory=1024 * MiB, workers=1)
    with pytest.raises(ResourceError, match=r"'big' asks for cpu=3 but this executor has 2 CPUs"):
        executor.submit(Task(id="c", fn=pid, resources=Resources(cpu=3), label="big"))
    with pytest.raises(ResourceError, match=r"asks for memory=2.0 GiB .* 1.0 GiB of memory"):
        executor.submit(Task(id="m", fn=pid, resources=Resources(memory=2048 * MiB)))
    with pytest.raises(ResourceError, match="no GPUs"):
        executor.submit(Task(id="g", fn=pid, resources=Resources(gpu=1)))
    assert executor.running() == 0


def test_cancel_queued_and_running(make: Callable[..., LocalExecutor]) -> None:
    executor = make(cpus=1, workers=1)
    executor.submit(Task(id="running", fn=interval, args=(30,)))
    executor.submit(Task(id="queued", fn=square, args=(2,)))
    executor.cancel("queued")
    assert [(r.task_id, r.outcome) for r in executor.wait(timeout=5)] == [("queued", Outcome.CANCELLED)]
    executor.cancel("running")
    results = drain(executor)
    assert results["running"].outcome is Outcome.CANCELLED
    executor.submit(Task(id="after", fn=square, args=(7,)))
    assert drain(executor)["after"].value == 49


def test_env_is_applied_for_the_call_and_restored(
    make: Callable[..., LocalExecutor], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLINTH_TEST_DRIVER_VAR", "from-driver")
    executor = make(cpus=1, workers=1)
    executor.submit(Task(id="set", fn=read_env, args=("PLINTH_TEST_X",), env={"PLINTH_TEST_X": "1"}))
    executor.submit(Task(id="unset", fn=read_env, args=("PLINTH_TEST_X",)))
    executor.submit(Task(id="driver", fn=read_env, args=("PLINTH_TEST_DRIVER_VAR",)))
    results = drain(executor)
    assert results["set"].value == "1"
    assert results["unset"].value is None
    assert results["driver"].value == "from-driver"  # the driver's environment at worker start


def test_a_thousand_trivial_tasks_complete(make: Callable[..., LocalExecutor]) -> None:
    executor = make()
    for i in range(1000):
        executor.submit(Task(id=str(i), fn=square, args=(i,)))
    results = drain(executor)
    assert len(results) == 1000
    assert all(results[str(i)].value == i * i for i in range(1000))


def test_shutdown_stops_workers_and_is_idempotent(make: Callable[..., LocalExecutor], tmp_path: Path) -> None:
    executor = make(cpus=2, workers=2)
    marker = tmp_path / "busy.pid"
    executor.submit(Task(id="busy", fn=write_pid_and_sleep, args=(str(marker),)))
    executor.submit(Task(id="quick", fn=pid))
    quick = executor.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    busy_pid = int(marker.read_text())
    executor.shutdown()
    executor.shutdown()
    assert not psutil.pid_exists(busy_pid)
    assert all(not psutil.pid_exists(r.value) for r in quick)


# ---------------------------------------------------------------------------------- GPUs


def test_discover_gpus_from_setting_and_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert discover_gpus("0,1") == [0, 1]
    assert discover_gpus("3") == [0, 1, 2]
    assert discover_gpus("") == [] and discover_gpus("none") == []
    with pytest.raises(ConfigError, match="PLINTH_GPUS"):
        discover_gpus("a,b")
    monkeypatch.setattr(gpus_module, "_nvml", lambda: None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert discover_gpus() == [2, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert discover_gpus() == []
    assert gpus_module.gpu_utilization([0]) == []


def test_plinth_gpus_setting_sizes_the_default_executor(
    make: Callable[..., LocalExecutor], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLINTH_GPUS", "2")
    assert make().capacity().gpu == 2
