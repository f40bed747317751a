"""What runs cost: their resource-hours, grouped by experiment, flow or user, times the prices set.

A run's resource-hours come from the totals its system metrics logged (`system/cpu_hours`, ...,
see `plinth.tracking.system`): allocated CPUs and GPUs x wall hours, memory by its limit or its
use. A run that ended before its first sample has no totals; it counts with its wall time
(a flow step's own `plinth.wall_s`, else end - start) times the CPUs and GPUs its `plinth.cpu`
and `plinth.gpu` tags record, which flow steps always carry. Runs are counted in the window
they started in. A flow's own run (tag `plinth.kind=flow`, the driver) is not counted: its
steps are, and its process tree holds theirs when they run locally.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from plinth.compute.sampling import GIB, Totals
from plinth.core.entities import Run, RunStatus
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.filters import parse_filter
from plinth.core.settings import Settings
from plinth.core.units import parse_duration
from plinth.store.base import Store
from plinth.tracking.context import backend
from plinth.tracking.system import TOTALS, WALL

GroupBy = Literal["experiment", "flow", "user"]
GROUPS: tuple[str, ...] = ("experiment", "flow", "user")


@dataclass(frozen=True)
class Prices:
    """Price of one allocated CPU, one GPU and one GiB of memory for an hour (any currency)."""

    cpu_hour: float = 0.0
    gpu_hour: float = 0.0
    memory_gb_hour: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Prices:
        """The prices set by PLINTH_PRICE_CPU_HOUR, PLINTH_PRICE_GPU_HOUR, PLINTH_PRICE_MEMORY_GB_HOUR."""
        return cls(settings.price_cpu_hour, settings.price_gpu_hour, settings.price_memory_gb_hour)

    def of(self, totals: Totals) -> float:
        """The cost of `totals`."""
        return (
            totals.cpu_hours * self.cpu_hour
            + totals.gpu_hours * self.gpu_hour
            + totals.memory_gib_hours * self.memory_gb_hour
        )


@dataclass(frozen=True)
class CostRow:
    """The runs of one group: how many, their resource-hours, cost and utilization.

    `cpu_utilization` and `gpu_utilization` are percent of the allocated CPUs / GPUs in use,
    over the runs that were sampled (None when none were, or no GPU was sampled).
    """

    group: str
    runs: int
    wall_hours: float
    cpu_hours: float
    gpu_hours: float
    memory_gib_hours: float
    cost: float
    cpu_utilization: float | None
    gpu_utilization: float | None


def costs(
    by: GroupBy = "experiment",
    since: str | float | None = "30d",
    *,
    prices: Prices | None = None,
) -> list[CostRow]:
    """Resource-hours and cost of the runs started in the last `since`, per group, costliest first.

    Args:
        by: "experiment" (its name), "flow" (the flow's name; only flow steps count) or "user".
        since: a duration such as "30d", "12h" or seconds; None for every run.
        prices: default: the PLINTH_PRICE_* settings (0 when unset, so cost is 0).

    Raises:
        InvalidInput: an unknown `by` or a `since` that is not a duration.
        ConfigError: a PLINTH_PRICE_* setting is not a non-negative number.

    Example:
        for row in plinth.costs(by="user", since="7d"):
            print(row.group, row.gpu_hours, row.cost)
    """
    be = backend()
    be.writer.flush()
    return store_costs(
        be.store, by, since, prices if prices is not None else Prices.from_settings(be.settings)
    )


def store_costs(store: Store, by: GroupBy, since: str | float | None, prices: Prices) -> list[CostRow]:
    """`costs` of the runs in one store (what a team server answers for one of its workspaces).

    Raises:
        InvalidInput: an unknown `by` or a `since` that is not a duration.
    """
    if by not in GROUPS:
        raise InvalidInput(f"Cannot group costs by {by!r}; use one of {', '.join(GROUPS)}.")
    seconds = parse_duration(since)
    now = time.time_ns() // 1_000_000
    where = parse_filter(f"start_time >= {now - int(seconds * 1000)}") if seconds is not None else None
    runs = store.search_runs(experiments=None, where=where, order_by=(), limit=None, now_ms=now)
    flows = _FlowNames(store)
    groups: dict[str, _Group] = {}
    for run in runs:
        if run.tags.get("plinth.kind") == "flow":
            continue
        key = run.experiment_name if by == "experiment" else run.user if by == "user" else flows.of(run)
        if key is not None:
            groups.setdefault(key, _Group()).add(run, now)
    rows = [group.row(name, prices) for name, group in groups.items()]
    return sorted(rows, key=lambda r: (-r.cost, -r.cpu_hours - r.gpu_hours, r.group))


def run_totals(run: Run, now_ms: int | None = None) -> Totals:
    """A run's resource-hours: its logged totals, or its wall time x its allocation tags."""
    metrics = run.metrics
    if WALL in metrics:
        totals = Totals(**{name: metrics.get(key, 0.0) for name, key in TOTALS.items()}, samples=1)
        wall_hours = totals.wall_hours
        for prefix in _rank_prefixes(metrics):  # the other ranks of a distributed step count too
            ranked = {
                name: metrics.get(prefix + key.removeprefix("system/"), 0.0) for name, key in TOTALS.items()
            }
            totals = totals + Totals(**ranked, samples=0)
        return replace(totals, wall_hours=wall_hours)  # the group ran side by side: wall time once
    wall = max(0, _end_ms(run, now_ms) - run.start_ms) / 3_600_000
    if "plinth.wall_s" in metrics:  # a flow step: time in its worker, not in the queue
        wall = metrics["plinth.wall_s"] / 3600
    cpu, gpu, memory = (_number(run.tags.get(f"plinth.{name}")) for name in ("cpu", "gpu", "memory"))
    workers = _number(run.tags.get("plinth.workers")) or 1.0  # resources are per worker
    return Totals(
        wall_hours=wall,
        cpu_hours=workers * cpu * wall,
        gpu_hours=workers * gpu * wall,
        memory_gib_hours=workers * memory / GIB * wall,
    )


def _rank_prefixes(metrics: Iterable[str]) -> list[str]:
    """`system/rank{N}/` for each rank other than 0 whose totals the run holds."""
    return sorted(
        k.removesuffix("wall_hours")
        for k in metrics
        if k.startswith("system/rank") and k.endswith("/wall_hours")
    )


@dataclass
class _Group:
    runs: int = 0
    totals: Totals = field(default_factory=Totals)
    cpu_sampled: tuple[float, float] = (0.0, 0.0)  # (used, allocated) over sampled runs
    gpu_sampled: tuple[float, float] = (0.0, 0.0)

    def add(self, run: Run, now_ms: int) -> None:
        totals = run_totals(run, now_ms)
        self.runs += 1
        self.totals += totals
        if totals.samples and totals.cpu_hours > 0:
            used, alloc = self.cpu_sampled
            self.cpu_sampled = (used + totals.cpu_hours_used, alloc + totals.cpu_hours)
        if totals.samples and totals.gpu_hours > 0 and _gpu_sampled(run.metrics):
            used, alloc = self.gpu_sampled
            self.gpu_sampled = (used + totals.gpu_hours_used, alloc + totals.gpu_hours)

    def row(self, name: str, prices: Prices) -> CostRow:
        t = self.totals
        return CostRow(
            group=name,
            runs=self.runs,
            wall_hours=t.wall_hours,
            cpu_hours=t.cpu_hours,
            gpu_hours=t.gpu_hours,
            memory_gib_hours=t.memory_gib_hours,
            cost=prices.of(t),
            cpu_utilization=_percent(*self.cpu_sampled),
            gpu_utilization=_percent(*self.gpu_sampled),
        )


class _FlowNames:
    """Flow name of a step's run, looking each flow run up once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._names: dict[str, str] = {}

    def of(self, run: Run) -> str | None:
        flow_run = run.tags.get("plinth.flow_run")
        if flow_run is None:
            return None
        if flow_run not in self._names:
            try:
                self._names[flow_run] = self._store.get_flow_run(flow_run).flow
            except NotFound:
                self._names[flow_run] = run.experiment_name  # steps run in the flow's experiment
        return self._names[flow_run]


def _end_ms(run: Run, now_ms: int | None) -> int:
    if run.end_ms is not None:
        return run.end_ms
    if run.status is RunStatus.RUNNING:
        return now_ms if now_ms is not None else time.time_ns() // 1_000_000
    return run.heartbeat_ms or run.start_ms  # crashed: it was alive until its last beat


def _number(text: str | None) -> float:
    try:
        return max(0.0, float(text)) if text else 0.0
    except ValueError:
        return 0.0


def _gpu_sampled(keys: Iterable[str]) -> bool:
    return any(k.startswith("system/gpu") and k.endswith("_utilization") for k in keys)


def _percent(used: float, allocated: float) -> float | None:
    return 100.0 * used / allocated if allocated > 0 else None
