"""The resource sampler: CPU and memory of the process tree, GPUs through (a fake) NVML, totals."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import types

import psutil
import pytest

from plinth.compute import gpus
from plinth.compute.sampling import (
    Allocation,
    GpuSample,
    Meter,
    ProcessTree,
    ResourceSampler,
    Sample,
    gpu_samples,
    process_allocation,
)
from waiting import wait_until

BURN = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass"


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def test_a_busy_child_process_counts_as_cores_used() -> None:
    tree = ProcessTree()
    child = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        burner = psutil.Process(child.pid)
        tree.prime()
        start, before = time.monotonic(), cpu_seconds(burner)
        time.sleep(1.0)
        cores, rss = tree.cores_and_rss()
        child_cores = (cpu_seconds(burner) - before) / (time.monotonic() - start)
    finally:
        child.kill()
        child.wait()
    # The child burns a whole core when the machine has one free; on a loaded machine it gets
    # less, so compare with what it really got rather than with a fixed figure alone.
    assert child_cores > 0
    assert cores >= 0.9 * child_cores
    assert cores > 0.5 or child_cores < 0.55
    assert rss > 0


def test_resident_memory_grows_when_allocating() -> None:
    tree = ProcessTree()
    _, before = tree.measure()
    block = bytearray(200 * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
    _, after = tree.measure()
    assert after - before > 150 * 2**20
    del block


def test_subscribers_get_samples_until_they_unsubscribe() -> None:
    sampler = ResourceSampler(interval_s=0.05)
    got: list[Sample] = []
    arrived = threading.Event()

    def receive(sample: Sample) -> None:
        got.append(sample)
        if len(got) >= 3:
            arrived.set()

    sub = sampler.subscribe(receive)
    assert arrived.wait(60)
    sub.cancel()
    # a sample the thread had already begun to hand out may still land; one for a subscriber
    # that came after the cancel shows that the thread has moved past it
    later: list[Sample] = []
    witness = sampler.subscribe(later.append)
    wait_until(lambda: later, "a sample taken after the cancel")
    count = len(got)
    wait_until(lambda: len(later) >= 3, "two more samples")
    witness.cancel()
    assert len(got) == count
    assert all(s.rss > 0 and s.cpu_cores >= 0 and s.gpus == () for s in got)
    sampler.close()


def test_close_stops_the_thread() -> None:
    sampler = ResourceSampler(interval_s=0.05)
    sampler.subscribe(lambda sample: None)
    thread = sampler._thread
    assert thread is not None and thread.is_alive()
    sampler.close()
    assert not thread.is_alive()


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    sampler = ResourceSampler(interval_s=0.05)
    arrived = threading.Event()

    def broken(sample: Sample) -> None:
        raise RuntimeError("boom")

    sampler.subscribe(broken)
    sampler.subscribe(lambda sample: arrived.set())
    try:
        assert arrived.wait(10)
    finally:
        sampler.close()


def test_meter_bills_allocation_and_integrates_use() -> None:
    meter = Meter(Allocation(cpu=4, gpu=2, gpu_ids=(0, 1)), start_s=0.0)
    busy = (GpuSample(0, 50.0, 2**30), GpuSample(1, 100.0, 2**30))
    meter.add(Sample(0.0, cpu_cores=2.0, rss=2**30, gpus=busy), at_s=1800.0)
    meter.add(Sample(0.0, cpu_cores=1.0, rss=2**30, gpus=busy), at_s=3600.0)
    totals = meter.totals(at_s=3600.0)
    assert totals.wall_hours == 1.0
    assert totals.cpu_hours == 4.0 and totals.gpu_hours == 2.0  # allocated x wall
    assert totals.cpu_hours_used == pytest.approx(1.5)  # 2 cores for half an hour, then 1
    assert totals.gpu_hours_used == pytest.approx(1.5)  # 0.5 + 1.0 busy GPUs for an hour
    assert totals.memory_gib_hours == pytest.approx(1.0)  # no limit: by use


def test_meter_bills_a_memory_limit_when_there_is_one() -> None:
    meter = Meter(Allocation(cpu=1, memory=4 * 2**30), start_s=0.0)
    assert meter.totals(at_s=1800.0).memory_gib_hours == pytest.approx(2.0)


def test_nvml_absent_means_no_gpu_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    assert gpu_samples([0, 1]) == ()
    assert ResourceSampler().sample([0]).gpus == ()


def _fake_pynvml(fail: bool = False) -> types.ModuleType:
    """A stand-in for `pynvml` (nvidia-ml-py): no GPU exists here, so only parsing is tested."""
    nvml = types.ModuleType("pynvml")

    def init() -> None:
        if fail:
            raise RuntimeError("NVML Shared Library Not Found")

    nvml.nvmlInit = init  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetCount = lambda: 4  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=10 * (h + 1), memory=5)  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=h * 2**30, total=16 * 2**30)  # type: ignore[attr-defined]
    return nvml


def test_fake_nvml_readings_become_gpu_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml())
    assert gpu_samples([1, 3]) == (GpuSample(1, 20.0, 2**30), GpuSample(3, 40.0, 3 * 2**30))
    sampler = ResourceSampler(interval_s=0.05)
    got: list[Sample] = []
    arrived = threading.Event()
    sampler.subscribe(lambda s: (got.append(s), arrived.set()), gpu_ids=[2])
    try:
        assert arrived.wait(10)
    finally:
        sampler.close()
    assert got[0].gpus == (GpuSample(2, 30.0, 2 * 2**30),)


def test_failing_nvml_means_no_gpu_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(fail=True))
    assert gpu_samples([0]) == ()


def test_task_allocation_takes_its_gpus_from_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpus.visible_gpus() == [2, 3]
    assert Allocation.for_task(cpu=2, gpu=1) == Allocation(cpu=2, gpu=1, gpu_ids=(2,))
    assert Allocation.for_task(cpu=1, gpu=0).gpu_ids == ()


def test_a_plain_process_holds_its_usable_cores() -> None:
    allocation = process_allocation()
    assert allocation.cpu >= 1
    assert allocation.gpu == len(allocation.gpu_ids)


class _FlakyTree:
    """A process tree whose first measurements fail, as psutil does when a child vanishes mid-read."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    def prime(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("process vanished")

    def cores_and_rss(self) -> tuple[float, int]:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("process vanished")
        return 0.5, 1024


def test_failed_measurements_are_counted_and_sampling_goes_on() -> None:
    sampler = ResourceSampler(interval_s=0.05, tree=_FlakyTree(3))  # type: ignore[arg-type]
    arrived = threading.Event()
    sampler.subscribe(lambda sample: arrived.set())
    try:
        assert arrived.wait(10)
        assert sampler.failures >= 1
        assert sampler._thread is not None and sampler._thread.is_alive()
    finally:
        sampler.close()
