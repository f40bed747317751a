"""What an executor knows of SLURM's partitions: their nodes (read again every `NODES_TTL_S`),
the default partition, the memory share to ask for, and whether a task could ever run there."""

from __future__ import annotations

import time

from plinth.compute.base import Resources, Task
from plinth.compute.slurm import cluster, outcomes
from plinth.compute.slurm.asks import fits, ranks_on, too_big, too_many
from plinth.core.errors import ConfigError, ResourceError

NODES_TTL_S = 5.0
"""How long the nodes of a partition that `check_fits` checks asks against are reused."""


class Partitions:
    """Cached views of the partitions one executor submits to (None stands for the default)."""

    def __init__(self) -> None:
        self._nodes: dict[str | None, tuple[float, list[cluster.NodeInfo]]] = {}
        self._memory_per_cpu: dict[str | None, int | None] = {}
        self._default_partition: str | None = None

    def nodes(self, partition: str | None, refresh: bool = False) -> list[cluster.NodeInfo]:
        """The nodes of `partition` (None: the default one), read again after NODES_TTL_S."""
        now = time.monotonic()
        found = self._nodes.get(partition)
        if refresh or found is None or now - found[0] > NODES_TTL_S:
            if partition is None and self._default_partition is None:
                self._default_partition = cluster.default_partition()
            found = self._nodes[partition] = (now, cluster.nodes(partition or self._default_partition))
        return found[1]

    def memory_per_cpu(self, res: Resources, partition: str | None) -> int | None:
        """MB per CPU to ask for a task with no memory ask, where SLURM would give it a whole node."""
        if res.memory is not None:
            return None
        if partition not in self._memory_per_cpu:
            nodes, per_cpu = self.nodes(partition), None
            if not cluster.gives_default_memory(partition or self._default_partition):
                shares = [n.memory // 2**20 // n.cpus for n in nodes if n.cpus]
                per_cpu = min(shares) if shares else None
            self._memory_per_cpu[partition] = per_cpu
        return self._memory_per_cpu[partition]

    def check_fits(self, task: Task, partition: str | None) -> None:
        """Refuse a task that no node of `partition` could ever run, or a group whose ranks the
        nodes of `partition` could never hold all at once.

        Raises:
            ResourceError: naming what it asks and what the largest node has (or how many ranks
                each node holds).
            ConfigError: the partition does not exist (or has no nodes).
        """
        res = task.resources
        if _holds(task, self.nodes(partition)):
            return
        nodes = self.nodes(partition, refresh=True)
        where = partition or self._default_partition or "default"
        if not nodes:
            names = ", ".join(name for name, _, _ in cluster.partitions()) or "none"
            raise ConfigError(
                f"SLURM has no partition {where!r} with nodes (partitions: {names}); set "
                "PLINTH_SLURM_PARTITION or the step's slurm={'partition': ...} to one of them."
            )
        if _holds(task, nodes):
            return
        if any(fits(res, n) for n in nodes):
            raise ResourceError(
                f"Group {outcomes.name(task)!r} {too_many(res, task.workers, nodes, where)}; lower the "
                "number of workers or what each asks for, or choose a partition with more nodes "
                "(PLINTH_SLURM_PARTITION or the step's slurm={'partition': ...})."
            )
        kind = "Group" if task.workers > 1 else "Task"
        raise ResourceError(
            f"{kind} {outcomes.name(task)!r} {too_big(res, nodes, where)}; lower what it asks for or choose "
            "a partition with larger nodes (PLINTH_SLURM_PARTITION or the step's slurm={'partition': ...})."
        )


def _holds(task: Task, nodes: list[cluster.NodeInfo]) -> bool:
    """True when `nodes` could run `task`: one node has its ask, or for a group, the nodes hold
    all of its ranks at once."""
    if task.workers <= 1:
        return any(fits(task.resources, n) for n in nodes)
    return sum(ranks_on(task.resources, n) for n in nodes if fits(task.resources, n)) >= task.workers
