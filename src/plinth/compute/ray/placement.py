"""Where a group's ranks go on a Ray cluster: the placement group's bundles, strategy and layout.

A group task (`Task.workers` > 1) reserves one Ray placement group with a bundle of the task's
resources per rank; Ray creates it all at once or not at all, which is the gang. The strategy
comes from the step's scheduler options, `{"ray": {"strategy": "SPREAD"}}`, PACK by default:

PACK            as few nodes as possible, others when one is not enough
SPREAD          as many nodes as possible, fewer when there are not enough
STRICT_PACK     all ranks on one node
STRICT_SPREAD   every rank on a node of its own

Once the group is placed, `layout` turns the node of each bundle into the ranks' local ranks and
node ranks, as torchrun numbers them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from plinth.compute.base import Resources, Task
from plinth.compute.ray.cluster import NodeInfo
from plinth.compute.ray.outcomes import name, size
from plinth.core.errors import InvalidInput, ResourceError

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
DEFAULT_STRATEGY = "PACK"
TOKEN_CPU = 0.001
"""CPU of the bundle of a rank that asks for nothing: Ray refuses an empty bundle."""


def strategy(task: Task) -> str:
    """The placement strategy a group task asks for (PACK when it names none).

    Raises:
        InvalidInput: the scheduler options name a strategy Ray does not have.
    """
    options = task.scheduler.get("ray") or {}
    chosen = options.get("strategy", DEFAULT_STRATEGY) if isinstance(options, Mapping) else options
    if not isinstance(chosen, str) or chosen.upper() not in STRATEGIES:
        raise InvalidInput(
            f"Task {name(task)!r} asks for the Ray placement strategy {chosen!r}; use one of "
            f"{', '.join(STRATEGIES)} (scheduler={{'ray': {{'strategy': 'SPREAD'}}}})."
        )
    return chosen.upper()


def bundle(res: Resources) -> dict[str, float]:
    """The placement group bundle of one rank: its CPU, GPU and memory ask, in Ray's names."""
    found: dict[str, float] = {}
    if res.cpu:
        found["CPU"] = res.cpu
    if res.gpu:
        found["GPU"] = float(res.gpu)
    if res.memory:
        found["memory"] = float(res.memory)
    return found or {"CPU": TOKEN_CPU}


def room(res: Resources, node: NodeInfo) -> int:
    """How many ranks asking for `res` a node could hold when nothing else runs on it."""
    counts = [
        math.floor(have / want + 1e-9)
        for want, have in (
            (res.cpu, node.cpus),
            (float(res.gpu), node.gpus),
            (float(res.memory or 0), node.memory),
        )
        if want > 0
    ]
    if not counts:
        return math.floor(node.cpus / TOKEN_CPU + 1e-9)
    return min(counts)


def most_placed(res: Resources, chosen: str, nodes: Sequence[NodeInfo]) -> int:
    """The most ranks of `res` that `nodes` could ever hold together under strategy `chosen`."""
    rooms = [room(res, node) for node in nodes]
    if chosen == "STRICT_PACK":
        return max(rooms, default=0)
    if chosen == "STRICT_SPREAD":
        return sum(1 for r in rooms if r > 0)
    return sum(rooms)


def check_fits(task: Task, chosen: str, nodes: Sequence[NodeInfo]) -> None:
    """Raise ResourceError when the cluster could never place all of the group's ranks at once."""
    most = most_placed(task.resources, chosen, nodes)
    if most >= task.workers:
        return
    listed = ", ".join(f"{n.address} {n.cpus:g} CPUs, {n.gpus:g} GPUs, {size(n.memory)}" for n in nodes)
    raise ResourceError(
        f"Group {name(task)!r} asks for {task.workers} workers of {task.resources.describe()} each, placed "
        f"{chosen}, but the Ray cluster can hold at most {most} of them at once (nodes: {listed or 'none'}); "
        "lower the workers or what each asks for, choose another strategy, add nodes, or use "
        "RayExecutor(wait_for_resources=True) where an autoscaler adds nodes."
    )


@dataclass(frozen=True)
class Slot:
    """Where one rank runs: its node and its numbers on that node."""

    node_id: str
    address: str
    local_rank: int
    local_world_size: int
    node_rank: int

    def describe(self) -> str:
        """'node NODE_ID8 (ADDRESS)', for messages about a rank that did not report back."""
        return f"node {self.node_id[:8]} ({self.address})"


def layout(node_of_bundle: Mapping[int, str], addresses: Mapping[str, str], workers: int) -> list[Slot]:
    """The slot of each rank (rank i runs in bundle i): nodes numbered in order of their first rank."""
    nodes = [node_of_bundle[rank] for rank in range(workers)]
    order = list(dict.fromkeys(nodes))
    slots = []
    for rank, node in enumerate(nodes):
        slots.append(
            Slot(
                node_id=node,
                address=addresses.get(node, "unknown address"),
                local_rank=nodes[:rank].count(node),
                local_world_size=nodes.count(node),
                node_rank=order.index(node),
            )
        )
    return slots
