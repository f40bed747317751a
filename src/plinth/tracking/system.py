"""System metrics of runs: the process sampler's readings, logged as `system/*` metrics.

Every open run of a process subscribes to the one `ResourceSampler` of that process. At each
sample (the first about a second after the run starts, then every `PLINTH_SAMPLE_S`) the run logs

    system/cpu_utilization      percent of the allocated CPUs in use (may exceed 100)
    system/cpu_cores_used       cores in use by the process and its children
    system/memory_rss_bytes     their resident memory
    system/gpu{i}_utilization   percent busy, per allocated GPU (i = NVML index), NVML only
    system/gpu{i}_memory_bytes  device memory in use

and the running totals, which end at the run's end:

    system/wall_hours, system/cpu_hours, system/gpu_hours, system/memory_gib_hours  (billed)
    system/cpu_hours_used, system/gpu_hours_used                                    (used)

CPU- and GPU-hours are *allocated* count x wall hours, as cloud billing counts them; the used
figures give utilization. A run that ends before its first sample was due logs none of these (it costs
nothing to measure); `plinth costs` counts such runs from their times and allocation tags.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping

from plinth.compute.sampling import Allocation, Meter, ResourceSampler, Sample, Totals
from plinth.core.errors import PlinthError
from plinth.store.base import Store

WALL = "system/wall_hours"
TOTALS = {
    "wall_hours": WALL,
    "cpu_hours": "system/cpu_hours",
    "gpu_hours": "system/gpu_hours",
    "memory_gib_hours": "system/memory_gib_hours",
    "cpu_hours_used": "system/cpu_hours_used",
    "gpu_hours_used": "system/gpu_hours_used",
}
"""`Totals` field → metric name."""

Log = Callable[[Mapping[str, float], int], None]

_lock = threading.Lock()
_sampler: ResourceSampler | None = None


def sampler(interval_s: float) -> ResourceSampler:
    """This process's sampler (made on first use, and again if the interval setting changed)."""
    global _sampler
    with _lock:
        if _sampler is None or _sampler.interval_s != interval_s:
            if _sampler is not None:
                _sampler.close()
            _sampler = ResourceSampler(interval_s)
        return _sampler


def allocation_tags(allocation: Allocation) -> dict[str, str]:
    """The tags that record what a run was allocated (the names flow steps use too)."""
    tags = {"plinth.cpu": f"{allocation.cpu:g}", "plinth.gpu": str(allocation.gpu)}
    if allocation.memory is not None:
        tags["plinth.memory"] = str(allocation.memory)
    return tags


def sample_metrics(sample: Sample, allocation: Allocation) -> dict[str, float]:
    """The `system/*` values of one sample."""
    values = {
        "system/cpu_cores_used": sample.cpu_cores,
        "system/memory_rss_bytes": float(sample.rss),
    }
    if allocation.cpu > 0:
        values["system/cpu_utilization"] = 100.0 * sample.cpu_cores / allocation.cpu
    for gpu in sample.gpus:
        values[f"system/gpu{gpu.gpu}_utilization"] = gpu.utilization
        values[f"system/gpu{gpu.gpu}_memory_bytes"] = float(gpu.memory_used)
    return values


def totals_metrics(totals: Totals) -> dict[str, float]:
    """The `system/*_hours` values of `totals`."""
    return {name: float(getattr(totals, field)) for field, name in TOTALS.items()}


def carried_totals(store: Store, run_id: str, *, prefix: str = "system/") -> tuple[Totals | None, int]:
    """Totals an earlier attempt of `run_id` logged, and the step to continue from (retries).

    `prefix` names where the totals were logged: `system/rank{N}/` for a rank of a group.
    """
    metrics = store.get_run(run_id).metrics
    wall = prefix + WALL.removeprefix("system/")
    if wall not in metrics:
        return None, 0
    steps = store.metric_history(run_id, wall)["step"]
    names = {field: prefix + name.removeprefix("system/") for field, name in TOTALS.items()}
    carried = Totals(**{field: metrics.get(name, 0.0) for field, name in names.items()}, samples=0)
    return carried, int(steps.max()) + 1 if len(steps) else 0


class SystemMetrics:
    """Logs one run's `system/*` metrics from the process's sampler until `close`.

    Args:
        log: writes `{key: value}` at a step to the run (called from the sampler's thread).
        allocation: what the run holds and is billed for.
        interval_s: seconds between samples.
        tag: called once, with the allocation tags, at the first sample (None: already tagged).
        carried: totals of earlier attempts to add to (a retried flow step).
        first_step: step of the first sample (after earlier attempts' samples).
    """

    def __init__(
        self,
        log: Log,
        allocation: Allocation,
        interval_s: float,
        *,
        tag: Callable[[dict[str, str]], None] | None = None,
        carried: Totals | None = None,
        first_step: int = 0,
    ) -> None:
        self._log = log
        self._tag = tag
        self._meter = Meter(allocation, carried)
        self._carried = carried is not None
        self._step = first_step
        self._lock = threading.Lock()
        self._closed = False
        self._sampler = sampler(interval_s)
        self._sub = self._sampler.subscribe(self._on_sample, allocation.gpu_ids)

    def close(self) -> Totals | None:
        """Stop sampling; log a last sample and the final totals unless the run was never sampled."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            due = time.monotonic() >= self._sub.next_s  # its first sample was due (maybe late)
            self._sub.cancel()
            self._sub.callback = _ignore  # no cycle back to this object: freed without the GC
            if self._meter.samples == 0 and not self._carried and not due:
                return None
            self._tag_once()
            self._record(self._sampler.sample(self._meter.allocation.gpu_ids))
            return self._meter.totals()

    def _on_sample(self, sample: Sample) -> None:
        with self._lock:
            if self._closed:
                return
            self._tag_once()
            self._record(sample)

    def _tag_once(self) -> None:
        """Record the allocation tags with the run's first sample (whichever thread takes it)."""
        if self._tag is not None:
            tag, self._tag = self._tag, None
            try:
                tag(allocation_tags(self._meter.allocation))
            except PlinthError:
                pass  # the metrics still carry the allocation in their totals

    def _record(self, sample: Sample) -> None:
        self._meter.add(sample)
        values = sample_metrics(sample, self._meter.allocation)
        values.update(totals_metrics(self._meter.totals()))
        self._log(values, self._step)
        self._step += 1


def _ignore(sample: Sample) -> None:
    pass


def _forget_after_fork() -> None:
    global _sampler, _lock
    _sampler = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
