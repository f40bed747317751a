"""How much CPU, memory and GPU this process and its children use, sampled in one background thread.

One `ResourceSampler` per process serves every consumer (each open run): a consumer subscribes,
gets its first `Sample` about `first_s` after subscribing and one every `interval_s` after that,
and unsubscribes. Nothing runs while nobody is subscribed, and subscribing costs a list append, so
short-lived consumers pay nothing.

A sample covers the process *tree* (this process and all its descendants): CPU is the cores used
on average since the previous sample (CPU seconds of the tree, including children it has reaped,
over wall seconds), memory is the summed resident set size (shared pages count once per process).
GPU figures come from NVML (`nvidia-ml-py`) for the devices a consumer was given; without NVML
there are none, silently.

Accounting bills what was *allocated*, as cloud and cluster billing does: `Meter` integrates
allocated CPUs and GPUs over wall time (cpu-hours, gpu-hours) and, next to them, what was *used*
(core-hours and busy GPU-hours from the samples) so utilization is used / allocated.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from plinth.compute.gpus import discover_gpus, gpu_utilization, visible_gpus

GIB = 2**30
IDLE_S = 10.0
"""Seconds without subscribers after which the sampler thread sleeps until the next one."""


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one moment: percent busy and device memory in use (bytes)."""

    gpu: int
    utilization: float
    memory_used: int


@dataclass(frozen=True)
class Sample:
    """The process tree at one moment.

    Args:
        time_s: epoch seconds when it was taken.
        cpu_cores: cores used on average since the previous sample (1.5 = one and a half cores).
        rss: resident memory of the tree, bytes.
        gpus: one entry per sampled GPU; empty without NVML.
    """

    time_s: float
    cpu_cores: float
    rss: int
    gpus: tuple[GpuSample, ...] = ()


@dataclass(frozen=True)
class Allocation:
    """What a consumer is billed for: CPU slots, whole GPUs (and which ones), a memory limit.

    Args:
        cpu: CPUs allocated (a flow step's `cpu=`; the usable cores for a plain process).
        gpu: GPUs allocated (billed even when NVML cannot sample them).
        gpu_ids: the NVML indexes to sample, usually the process's CUDA_VISIBLE_DEVICES.
        memory: the memory limit in bytes when there is one; memory is billed by use otherwise.
    """

    cpu: float
    gpu: int = 0
    gpu_ids: tuple[int, ...] = ()
    memory: int | None = None

    @classmethod
    def for_task(cls, cpu: float, gpu: int, memory: int | None = None) -> Allocation:
        """The allocation of an executor task running in this process (GPUs from CUDA_VISIBLE_DEVICES)."""
        ids = tuple(visible_gpus()[:gpu]) if gpu else ()
        return cls(cpu=cpu, gpu=gpu, gpu_ids=ids, memory=memory)


_process_allocation: dict[str | None, Allocation] = {}


def process_allocation() -> Allocation:
    """What a plain process holds: the cores it may run on and the GPUs it can see (cached)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    found = _process_allocation.get(visible)
    if found is None:
        try:
            cpu = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not on Linux
            cpu = os.cpu_count() or 1
        ids = tuple(discover_gpus(None))
        found = _process_allocation[visible] = Allocation(cpu=float(cpu), gpu=len(ids), gpu_ids=ids)
    return found


@dataclass(frozen=True)
class Totals:
    """Resource-hours accumulated by one consumer.

    `cpu_hours`, `gpu_hours` and `memory_gib_hours` are what is billed (allocated x wall hours;
    memory by use unless a limit was allocated); the `*_used` figures come from the samples.
    """

    wall_hours: float = 0.0
    cpu_hours: float = 0.0
    gpu_hours: float = 0.0
    memory_gib_hours: float = 0.0
    cpu_hours_used: float = 0.0
    gpu_hours_used: float = 0.0
    samples: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            *(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True))  # type: ignore[arg-type]
        )

    def as_tuple(self) -> tuple[float, ...]:
        """The fields in order."""
        return (
            self.wall_hours,
            self.cpu_hours,
            self.gpu_hours,
            self.memory_gib_hours,
            self.cpu_hours_used,
            self.gpu_hours_used,
            self.samples,
        )


class Meter:
    """Integrates one consumer's allocation over wall time and its samples over the time they cover."""

    def __init__(
        self, allocation: Allocation, base: Totals | None = None, start_s: float | None = None
    ) -> None:
        self.allocation = allocation
        self.base = base or Totals()
        self._start = time.monotonic() if start_s is None else start_s
        self._last = self._start
        self._cpu_used = 0.0
        self._gpu_used = 0.0
        self._rss_gib_h = 0.0
        self.samples = 0

    def add(self, sample: Sample, at_s: float | None = None) -> None:
        """Count `sample` for the time since the previous one (or since the start)."""
        at = time.monotonic() if at_s is None else at_s
        hours = max(0.0, at - self._last) / 3600.0
        self._last = at
        self._cpu_used += sample.cpu_cores * hours
        self._gpu_used += sum(g.utilization for g in sample.gpus) / 100.0 * hours
        self._rss_gib_h += sample.rss / GIB * hours
        self.samples += 1

    def totals(self, at_s: float | None = None) -> Totals:
        """Totals up to `at_s` (default now), added to the base carried over from earlier attempts."""
        at = time.monotonic() if at_s is None else at_s
        wall = max(0.0, at - self._start) / 3600.0
        alloc = self.allocation
        memory = alloc.memory / GIB * wall if alloc.memory is not None else self._rss_gib_h
        mine = Totals(
            wall_hours=wall,
            cpu_hours=alloc.cpu * wall,
            gpu_hours=alloc.gpu * wall,
            memory_gib_hours=memory,
            cpu_hours_used=self._cpu_used,
            gpu_hours_used=self._gpu_used,
            samples=self.samples,
        )
        return self.base + mine


class ProcessTree:
    """CPU seconds and resident memory of a process and all its descendants.

    On Linux the descendants are found through `/proc/PID/task/TID/children`, a few small reads,
    rather than by scanning every process of the machine (psutil's way, used elsewhere): each
    file read hands the GIL back and forth, which costs milliseconds apiece while the sampled
    program keeps a core busy in Python.
    """

    def __init__(self, pid: int | None = None) -> None:
        self._root = psutil.Process(pid)
        self._known: dict[int, psutil.Process] = {}
        self._by_proc = os.path.exists(f"/proc/{self._root.pid}/task/{self._root.pid}/children")
        self._last_cpu: float | None = None
        self._last_at = 0.0

    def descendants(self) -> list[psutil.Process]:
        """The live descendants of the root process."""
        if not self._by_proc:
            try:
                return self._root.children(recursive=True)
            except psutil.Error:
                return []
        pids: list[int] = []
        frontier = [self._root.pid]
        while frontier:
            kids = _proc_children(frontier.pop())
            pids += kids
            frontier += kids
        known = self._known
        self._known = {}
        for pid in pids:
            proc = known.get(pid)
            if proc is None:
                try:
                    proc = psutil.Process(pid)
                except psutil.Error:
                    continue
            self._known[pid] = proc
        return list(self._known.values())

    def measure(self) -> tuple[float, int]:
        """(CPU seconds used so far by the tree, including reaped children; resident bytes now)."""
        cpu, rss = 0.0, 0
        for proc in [self._root, *self.descendants()]:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    memory = proc.memory_info()
            except psutil.Error:
                continue  # ended between listing and reading
            cpu += times.user + times.system + times.children_user + times.children_system
            rss += memory.rss
        return cpu, rss

    def prime(self) -> None:
        """Start the next CPU average from now."""
        self._last_cpu, _ = self.measure()
        self._last_at = time.monotonic()

    def cores_and_rss(self) -> tuple[float, int]:
        """Cores used on average since the previous call (or `prime`), and resident bytes now."""
        cpu, rss = self.measure()
        at = time.monotonic()
        if self._last_cpu is None or at <= self._last_at:
            cores = 0.0
        else:  # a descendant ending before its parent reaped it takes its CPU seconds along: clamp
            cores = max(0.0, cpu - self._last_cpu) / (at - self._last_at)
        self._last_cpu, self._last_at = cpu, at
        return cores, rss


def _proc_children(pid: int) -> list[int]:
    """Direct children of `pid`, from the `children` file of each of its threads."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(part) for part in f.read().split()]
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return out


def gpu_samples(
    ids: Sequence[int], read: Callable[[list[int]], list[dict[str, Any]]] = gpu_utilization
) -> tuple[GpuSample, ...]:
    """NVML readings for `ids` as `GpuSample`s; () when there are no ids or no NVML."""
    if not ids:
        return ()
    try:
        rows = read(list(ids))
    except Exception:  # sampling must never break the work it measures
        return ()
    return tuple(GpuSample(int(r["gpu"]), float(r["utilization"]), int(r["memory_used"])) for r in rows)


@dataclass(eq=False)
class Subscription:
    """One consumer of samples: called with each sample of its GPUs, from the sampler's thread."""

    callback: Callable[[Sample], None]
    gpu_ids: tuple[int, ...] = ()
    next_s: float = 0.0
    _sampler: ResourceSampler | None = field(default=None, repr=False)

    def cancel(self) -> None:
        """Stop receiving samples (idempotent)."""
        if self._sampler is not None:
            self._sampler.unsubscribe(self)


class ResourceSampler:
    """One daemon thread that samples this process tree for every subscriber.

    Args:
        interval_s: seconds between a subscriber's samples.
        first_s: seconds from subscribing to the first sample (at most `interval_s`).
        tree: what to measure (default: this process and its descendants).
        read_gpus: NVML reader, `gpu_utilization` by default; replaceable for tests.
    """

    def __init__(
        self,
        interval_s: float = 5.0,
        first_s: float = 1.0,
        tree: ProcessTree | None = None,
        read_gpus: Callable[[list[int]], list[dict[str, Any]]] = gpu_utilization,
    ) -> None:
        self.interval_s = interval_s
        self.first_s = min(first_s, interval_s)
        self._tree = tree or ProcessTree()
        self._read_gpus = read_gpus
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._measure_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._sleeping = False
        self.failures = 0  # samples that could not be taken or delivered

    def subscribe(self, callback: Callable[[Sample], None], gpu_ids: Sequence[int] = ()) -> Subscription:
        """Call `callback(sample)` about `first_s` from now and every `interval_s` after."""
        sub = Subscription(callback, tuple(gpu_ids), time.monotonic() + self.first_s, self)
        with self._lock:
            self._subs.append(sub)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._loop, name="plinth-sampler", daemon=True)
                self._thread.start()
            wake, self._sleeping = self._sleeping, False
        if wake:
            self._wake.set()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop calling `sub` (idempotent)."""
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def sample(self, gpu_ids: Sequence[int] = ()) -> Sample:
        """Measure now, from the caller's thread (the CPU figure averages since the last sample)."""
        with self._measure_lock:
            cores, rss = self._tree.cores_and_rss()
        return Sample(time.time(), cores, rss, gpu_samples(gpu_ids, self._read_gpus))

    def close(self) -> None:
        """Stop the thread and wait for it; later subscriptions get no samples."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
            self._subs.clear()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _loop(self) -> None:
        primed = False
        idle_since: float | None = None
        while True:
            now = time.monotonic()
            with self._lock:
                if self._closed:
                    return
                subs = list(self._subs)
                if subs:
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                # Sleep until woken only after a quiet spell: waking the thread for each new
                # subscriber would cost a thread switch per run when short runs follow each other.
                self._sleeping = idle_since is not None and now - idle_since > IDLE_S
            if not subs:
                primed = False
                if self._sleeping:
                    self._wake.wait()
                    self._wake.clear()
                else:
                    self._pause(self.first_s / 2)
                continue
            now = time.monotonic()
            soonest = min(s.next_s for s in subs)
            if not primed:
                # Start the CPU average shortly before the first sample is due, not when a
                # subscriber arrives: consumers that end sooner then cost no measurement at all.
                if soonest - now > self.first_s / 2:
                    self._pause(soonest - now - self.first_s / 2)
                    continue
                primed = self._guarded(self._prime)
            else:
                self._guarded(functools.partial(self._deliver, subs, now))
                soonest = min(s.next_s for s in subs)
            self._pause(min(self.first_s, max(0.01, soonest - time.monotonic())))

    def _prime(self) -> None:
        with self._measure_lock:
            self._tree.prime()

    def _guarded(self, action: Callable[[], None]) -> bool:
        """Run one step of the loop; a failure is counted and skipped, never the thread's end."""
        try:
            action()
        except Exception:
            self.failures += 1
            return False
        return True

    def _pause(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _deliver(self, subs: list[Subscription], now: float) -> None:
        due = [s for s in subs if s.next_s <= now]
        if not due:
            return
        for sub in due:  # advanced first: a failed measurement is skipped, not retried at once
            sub.next_s = now + self.interval_s
        ids = sorted({g for s in due for g in s.gpu_ids})
        sample = self.sample(ids)
        for sub in due:
            mine = tuple(g for g in sample.gpus if g.gpu in sub.gpu_ids)
            try:
                sub.callback(Sample(sample.time_s, sample.cpu_cores, sample.rss, mine))
            except Exception:  # a consumer's failure must not stop sampling for the others
                self.failures += 1
