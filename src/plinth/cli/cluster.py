"""`plinth cluster status`: the machines an executor runs steps on, and the plinth steps running there."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

import click

from plinth.cli.options import executor_option, ray_address_option
from plinth.cli.render import console, duration, say, size, table, when
from plinth.core.entities import RunStatus

if TYPE_CHECKING:
    from plinth.compute.slurm.cluster import JobInfo, NodeInfo
    from plinth.core.entities import Run

JOB_TAG = "plinth.slurm_job"
"""The tag that names the SLURM job (`123`, or `123_4` for an array element) a step call ran in."""
_IN_CHUNK = 1000  # job ids per `in (...)` filter, well under the filter language's value limit


@click.group("cluster", short_help="Show the machines flows and batch predictions run on.")
def cluster() -> None:
    """The machines an executor runs on: this one (local), a Ray cluster (ray) or a SLURM cluster (slurm)."""


@cluster.command("status", short_help="Show the nodes and which plinth steps run where.")
@executor_option(default="ray")
@ray_address_option
@click.option(
    "--partition",
    default=None,
    metavar="NAME",
    help="SLURM: only the nodes of this partition (default: all).",
)
def cluster_status(executor: str, ray_address: str | None, partition: str | None) -> None:
    """Show the nodes (CPUs, GPUs, memory, free and used) and which plinth steps run where.

    Steps come from the metadata store (PLINTH_STORE). With `--executor ray`, where each runs comes
    from Ray's state API, which needs the head node's dashboard (on by default with `ray start
    --head`); with `--executor slurm`, from the queue (`squeue`) and the job each step run records.
    """
    if executor == "slurm":
        _slurm_status(partition)
    elif executor == "local":
        _local_status()
    else:
        _ray_status(ray_address)


# --------------------------------------------------------------------------- local


def _local_status() -> None:
    import psutil

    from plinth.compute.gpus import discover_gpus
    from plinth.flows.status import running_steps
    from plinth.tracking.context import backend

    be = backend()
    gpus = discover_gpus(be.settings.gpus)
    memory = psutil.virtual_memory()
    say(
        f"This machine ({socket.gethostname()}): {os.cpu_count() or 1} CPUs, {len(gpus)} GPUs"
        f"{' (' + ', '.join(map(str, gpus)) + ')' if gpus else ''}, "
        f"{size(int(memory.available))} of {size(int(memory.total))} memory free."
    )
    steps = running_steps(be)
    where = {step.id: f"driver on {run.driver_host or '?'}" for run, step in steps}
    _steps_table(steps, where, None)


# --------------------------------------------------------------------------- ray


def _ray_status(ray_address: str | None) -> None:
    import ray

    from plinth.compute.ray import cluster as ray_cluster
    from plinth.flows.status import running_steps
    from plinth.tracking.context import backend

    address = ray_cluster.connect(ray_address, {"log_to_driver": False})
    nodes = ray_cluster.nodes(alive_only=False)
    free = ray.available_resources()
    _ray_nodes_table(nodes, address)
    alive = [n for n in nodes if n.alive]
    say(
        f"Free now: {free.get('CPU', 0):g} of {sum(n.cpus for n in alive):g} CPUs, "
        f"{free.get('GPU', 0):g} of {sum(n.gpus for n in alive):g} GPUs, "
        f"{size(int(free.get('memory', 0)))} of {size(sum(n.memory for n in alive))} memory."
    )
    tasks = ray_cluster.running_tasks()
    caption = None
    if tasks is None:
        caption = "Ray's state API is not reachable (no dashboard on the head), so 'where' is unknown."
    _steps_table(running_steps(backend()), _ray_where(tasks or [], nodes), caption)


def _ray_nodes_table(nodes: list[Any], address: str) -> None:
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


def _ray_where(tasks: list[Any], nodes: list[Any]) -> dict[str, str]:
    """Step run id -> the node and process of the Ray task running it (named 'plinth ... <run>:<n>')."""
    addresses = {n.id: n.address for n in nodes}
    where: dict[str, str] = {}
    for task in tasks:
        run_id = task.name.rsplit(" ", 1)[-1].split(":", 1)[0] if task.name.startswith("plinth ") else ""
        if run_id:
            where[run_id] = f"node {task.node_id[:8]} ({addresses.get(task.node_id, '?')}) pid {task.pid}"
    return where


def _steps_table(steps: list[Any], where: dict[str, str], caption: str | None) -> None:
    if not steps:
        say("No plinth steps are running.")
        return
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
    columns = ["flow", "flow run", "call", "attempt", "started", "running for", "where"]
    console.print(table(f"Running steps ({len(rows)})", columns, rows, caption=caption))


def _age_s(start_ms: int) -> float:
    from plinth.core.ids import now_ms

    return (now_ms() - start_ms) / 1000


# --------------------------------------------------------------------------- slurm


def _slurm_status(partition: str | None) -> None:
    from plinth.compute.slurm import cluster as slurm_cluster
    from plinth.core.errors import ConfigError, NotFound

    if not slurm_cluster.available():
        raise ConfigError(
            "No SLURM controller answers here: `sbatch` is not on the PATH or `scontrol ping` does not "
            "say UP. Run this on a machine of the cluster (a login node), or start slurmctld."
        )
    parts = slurm_cluster.partitions()
    if partition is not None and partition not in {name for name, _, _ in parts}:
        known = ", ".join(name for name, _, _ in parts) or "none"
        raise NotFound(f"No SLURM partition {partition!r}; the partitions are: {known}.")
    nodes = slurm_cluster.nodes(partition)
    _partitions_table(parts)
    _slurm_nodes_table(nodes, partition)
    up = [n for n in nodes if n.usable]
    say(
        f"Free now: {sum(n.cpus - n.cpus_alloc for n in up)} of {sum(n.cpus for n in up)} CPUs, "
        f"{sum(n.gpus - n.gpus_alloc for n in up)} of {sum(n.gpus for n in up)} GPUs, "
        f"{size(sum(n.memory - n.memory_alloc for n in up))} of {size(sum(n.memory for n in up))} memory "
        f"(on {len(up)} usable of {len(nodes)} nodes)."
    )
    jobs = slurm_cluster.jobs("plinth")
    _jobs_table(jobs, _steps_by_job(jobs))


def _partitions_table(parts: list[tuple[str, bool, list[str]]]) -> None:
    rows = [
        (name, "yes" if default else "", len(members), ", ".join(members)) for name, default, members in parts
    ]
    console.print(table(f"SLURM partitions ({len(rows)})", ["partition", "default", "nodes", "names"], rows))


def _slurm_nodes_table(nodes: list[NodeInfo], partition: str | None) -> None:
    rows = [
        (
            n.name,
            n.state.lower(),
            ", ".join(n.partitions),
            _free_used(n.cpus, n.cpus_alloc, str),
            _free_used(n.gpus, n.gpus_alloc, str),
            _free_used(n.memory, n.memory_alloc, size),
        )
        for n in nodes
    ]
    columns = ["node", "state", "partitions", "CPUs free / used", "GPUs free / used", "memory free / used"]
    where = f"partition {partition}" if partition else "all partitions"
    console.print(table(f"SLURM nodes ({where}): {len(rows)}", columns, rows, no_wrap=("node",)))


def _free_used(total: int, used: int, show: Any) -> str:
    return f"{show(total - used)} / {show(used)}"


def _jobs_table(jobs: list[JobInfo], steps: dict[str, list[Run]]) -> None:
    if not jobs:
        say("No plinth jobs are queued or running.")
        return
    rows = []
    for job in jobs:
        runs = steps.get(job.job_id, [])
        flows = sorted({f"{r.experiment_name} {r.tags.get('plinth.flow_run', '?')}" for r in runs})
        rows.append(
            (
                job.job_id,
                job.name,
                job.state.lower(),
                job.nodes or (job.reason if job.reason != "None" else "-"),
                job.elapsed,
                job.cpus,
                job.memory,
                job.gres or "-",
                "; ".join(flows) or "-",
                _calls(runs),
            )
        )
    columns = [
        "job",
        "name",
        "state",
        "node / reason",
        "elapsed",
        "CPUs",
        "memory",
        "gres",
        "flow run",
        "steps",
    ]
    console.print(table(f"plinth jobs ({len(rows)})", columns, rows, no_wrap=("job",)))


def _calls(runs: list[Run], shown: int = 6) -> str:
    """The step calls a job runs, with the state of those no longer running."""
    names = [
        r.name if r.status is RunStatus.RUNNING else f"{r.name} ({r.status.value.lower()})" for r in runs
    ]
    more = f" (+{len(names) - shown})" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more or "-"


def _steps_by_job(jobs: list[JobInfo]) -> dict[str, list[Run]]:
    """The tracked step runs of each job (by `job_id`), found by the tag `plinth.slurm_job`.

    An array's elements are jobs of their own here (`123_4`), as `squeue -r` lists them.
    """
    from plinth.tracking.queries import search_runs

    keys = sorted({job.job_id for job in jobs})
    found: dict[str, list[Run]] = {}
    for start in range(0, len(keys), _IN_CHUNK):
        values = ", ".join(_quoted(k) for k in keys[start : start + _IN_CHUNK])
        for run in search_runs(where=f"tags.`{JOB_TAG}` in ({values})", order_by="start_time", limit=None):
            found.setdefault(run.tags[JOB_TAG], []).append(run)
    for runs in found.values():
        runs.sort(key=lambda r: (r.start_ms, r.name))
    return found


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
