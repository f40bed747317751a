"""`plinth cluster status`: the Ray cluster's nodes and the plinth steps running on it."""

from __future__ import annotations

from typing import Any

import click

from plinth.cli.options import ray_address_option
from plinth.cli.render import console, duration, say, size, table, when


@click.group("cluster", short_help="Show the Ray cluster flows and batch predictions run on.")
def cluster() -> None:
    """The Ray cluster used by `--executor ray` (flows run, predict)."""


@cluster.command("status", short_help="Show the nodes and which plinth steps run where.")
@ray_address_option
def cluster_status(ray_address: str | None) -> None:
    """Show the cluster's nodes (CPUs, GPUs, memory) and which plinth steps run where.

    Steps come from the metadata store (PLINTH_STORE); where each runs comes from Ray's state
    API, which needs the head node's dashboard (on by default with `ray start --head`).
    """
    import ray

    from plinth.compute.ray import cluster as ray_cluster
    from plinth.flows.status import running_steps
    from plinth.tracking.context import backend

    address = ray_cluster.connect(ray_address, {"log_to_driver": False})
    nodes = ray_cluster.nodes(alive_only=False)
    free = ray.available_resources()
    _nodes_table(nodes, address)
    alive = [n for n in nodes if n.alive]
    say(
        f"Free now: {free.get('CPU', 0):g} of {sum(n.cpus for n in alive):g} CPUs, "
        f"{free.get('GPU', 0):g} of {sum(n.gpus for n in alive):g} GPUs, "
        f"{size(int(free.get('memory', 0)))} of {size(sum(n.memory for n in alive))} memory."
    )
    _steps_table(running_steps(backend()), ray_cluster.running_tasks(), nodes)


def _nodes_table(nodes: list[Any], address: str) -> None:
    rows = [
        (
            n.id[:8],
            n.address,
            n.hostname,
            "head" if n.head else "worker",
            "alive" if n.alive else "dead",
            f"{n.cpus:g}",
            f"{n.gpus:g}",
            size(n.memory),
            size(n.object_store_memory),
        )
        for n in nodes
    ]
    columns = ["node", "address", "host", "role", "state", "CPUs", "GPUs", "memory", "object store"]
    console.print(table(f"Ray cluster {address}: {sum(n.alive for n in nodes)} nodes", columns, rows))


def _steps_table(steps: list[Any], tasks: list[Any] | None, nodes: list[Any]) -> None:
    if not steps:
        say("No plinth steps are running.")
        return
    addresses = {n.id: n.address for n in nodes}
    where: dict[str, str] = {}
    for task in tasks or []:
        run_id = task.name.rsplit(" ", 1)[-1].split(":", 1)[0] if task.name.startswith("plinth ") else ""
        if run_id:
            where[run_id] = f"node {task.node_id[:8]} ({addresses.get(task.node_id, '?')}) pid {task.pid}"
    rows = [
        (
            flow_run.flow,
            flow_run.id,
            step.call,
            step.attempts,
            when(step.start_ms),
            duration(None if step.start_ms is None else _age_s(step.start_ms)),
            where.get(step.id, "-"),
        )
        for flow_run, step in steps
    ]
    caption = None
    if tasks is None:
        caption = "Ray's state API is not reachable (no dashboard on the head), so 'where' is unknown."
    columns = ["flow", "flow run", "call", "attempt", "started", "running for", "where"]
    console.print(table(f"Running steps ({len(rows)})", columns, rows, caption=caption))


def _age_s(start_ms: int) -> float:
    from plinth.core.ids import now_ms

    return (now_ms() - start_ms) / 1000
