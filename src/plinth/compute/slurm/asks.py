"""A task's ask in SLURM's terms: the sbatch flags that request it, and whether the nodes have it.

A task is one job holding its resources on one node. A group (`Task.workers` > 1) is one job of
`--ntasks=N` tasks, one per rank, each holding the task's resources (`--cpus-per-task`,
`--mem-per-cpu`, `--gpus-per-task`), which SLURM may spread over several nodes.
"""

from __future__ import annotations

import math

from plinth.compute.base import Resources
from plinth.compute.slurm.cluster import NodeInfo
from plinth.compute.slurm.options import SlurmOptions
from plinth.compute.slurm.outcomes import size


def sbatch_flags(
    res: Resources, timeout_s: float | None, options: SlurmOptions, memory_per_cpu_mb: int | None = None
) -> list[str]:
    """The sbatch flags asking for `res` for `timeout_s` under `options`.

    `memory_per_cpu_mb` is the memory to ask per CPU when `res` names none (on clusters that
    would otherwise give such a job its whole node's memory).
    """
    cpus = cpus_of(res)
    flags = [f"--cpus-per-task={cpus}"]
    if res.gpu:
        flags.append(f"--gres=gpu:{res.gpu}")
    if res.memory is not None:
        flags.append(f"--mem={max(1, math.ceil(res.memory / 2**20))}")
    elif memory_per_cpu_mb:
        flags.append(f"--mem={cpus * memory_per_cpu_mb}")
    return flags + placement_flags(timeout_s, options)


def group_flags(
    res: Resources,
    workers: int,
    timeout_s: float | None,
    options: SlurmOptions,
    memory_per_cpu_mb: int | None = None,
) -> list[str]:
    """The sbatch flags of a group: `workers` tasks of `res` each, in one job.

    Memory is asked per CPU (`--mem` would be per node, shared by the ranks placed there), so
    each rank holds at least `res.memory`.
    """
    cpus = cpus_of(res)
    flags = [f"--ntasks={workers}", f"--cpus-per-task={cpus}"]
    if res.gpu:
        flags.append(f"--gpus-per-task={res.gpu}")
    per_cpu = rank_memory_per_cpu_mb(res) or memory_per_cpu_mb
    if per_cpu:
        flags.append(f"--mem-per-cpu={per_cpu}")
    return flags + placement_flags(timeout_s, options)


def placement_flags(timeout_s: float | None, options: SlurmOptions) -> list[str]:
    """The flags every job gets from its timeout and `options`: time, partition, account, ..."""
    flags = []
    if timeout_s is not None:
        flags.append(f"--time={time_limit_minutes(timeout_s)}")
    for flag, value in (
        ("--partition", options.partition),
        ("--account", options.account),
        ("--qos", options.qos),
        ("--constraint", options.constraint),
    ):
        if value:
            flags.append(f"{flag}={value}")
    return [*flags, *options.sbatch_args]


def cpus_of(res: Resources) -> int:
    """Whole CPUs SLURM gives a task asking for `res.cpu` (at least one)."""
    return max(1, math.ceil(res.cpu - 1e-9))


def rank_memory_per_cpu_mb(res: Resources) -> int | None:
    """`--mem-per-cpu` of a rank asking for `res.memory` (None when it asks for none)."""
    if res.memory is None:
        return None
    return max(1, math.ceil(res.memory / 2**20 / cpus_of(res)))


def time_limit_minutes(timeout_s: float) -> int:
    """SLURM's --time for a task's timeout: whole minutes with a margin above it (SLURM enforces
    its limit only about every 30 s; plinth's watchdog stops the task at the second)."""
    return math.ceil(timeout_s * 1.1 / 60) + 1


def fits(res: Resources, node: NodeInfo) -> bool:
    """True when `node` has all of `res` (whether free now or not)."""
    if res.cpu > node.cpus + 1e-9 or res.gpu > node.gpus:
        return False
    return res.memory is None or res.memory <= node.memory


def ranks_on(res: Resources, node: NodeInfo) -> int:
    """How many ranks asking for `res` each `node` holds at once (whether free now or not)."""
    cpus = cpus_of(res)
    counts = [node.cpus // cpus]
    if res.gpu:
        counts.append(node.gpus // res.gpu)
    per_cpu = rank_memory_per_cpu_mb(res)
    if per_cpu:
        counts.append(node.memory // 2**20 // (per_cpu * cpus))
    return max(0, min(counts))


def too_big(res: Resources, nodes: list[NodeInfo], partition: str) -> str:
    """What in `res` no node of the partition has, in numbers."""
    cpus, gpus, memory = max(n.cpus for n in nodes), max(n.gpus for n in nodes), max(n.memory for n in nodes)
    if res.cpu > cpus + 1e-9:
        return f"asks cpu={res.cpu:g} but the largest node of partition {partition} has {cpus} CPUs"
    if res.memory is not None and res.memory > memory:
        return (
            f"asks memory={size(res.memory)} but the largest node of partition {partition} has {size(memory)}"
        )
    if res.gpu > gpus:
        return f"asks gpu={res.gpu} but the node with the most GPUs in partition {partition} has {gpus}"
    shapes = "; ".join(f"{n.name} {n.cpus} CPUs, {size(n.memory)}, {n.gpus} GPUs" for n in nodes)
    return f"asks {res.describe()} but no node of partition {partition} has all of it at once ({shapes})"


def too_many(res: Resources, workers: int, nodes: list[NodeInfo], partition: str) -> str:
    """Why `workers` ranks of `res` never fit the partition at once: how many each node holds."""
    held = ", ".join(f"{n.name} {ranks_on(res, n)}" for n in nodes)
    total = sum(ranks_on(res, n) for n in nodes)
    return (
        f"asks {workers} workers of {res.describe()} each but the nodes of partition {partition} hold "
        f"at most {total} such workers at once ({held})"
    )
