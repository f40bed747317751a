"""A task's ask in SLURM's terms: the sbatch flags that request it, and whether a node has it."""

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
    cpus = max(1, math.ceil(res.cpu - 1e-9))
    flags = [f"--cpus-per-task={cpus}"]
    if res.gpu:
        flags.append(f"--gres=gpu:{res.gpu}")
    if res.memory is not None:
        flags.append(f"--mem={max(1, math.ceil(res.memory / 2**20))}")
    elif memory_per_cpu_mb:
        flags.append(f"--mem={cpus * memory_per_cpu_mb}")
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


def time_limit_minutes(timeout_s: float) -> int:
    """SLURM's --time for a task's timeout: whole minutes with a margin above it (SLURM enforces
    its limit only about every 30 s; plinth's watchdog stops the task at the second)."""
    return math.ceil(timeout_s * 1.1 / 60) + 1


def fits(res: Resources, node: NodeInfo) -> bool:
    """True when `node` has all of `res` (whether free now or not)."""
    if res.cpu > node.cpus + 1e-9 or res.gpu > node.gpus:
        return False
    return res.memory is None or res.memory <= node.memory


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
