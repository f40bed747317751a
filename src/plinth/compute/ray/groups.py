"""Groups on Ray: one task run by `task.workers` Ray tasks at once, in one placement group.

A group goes through these steps, each a Ray object the executor's `wait` waits on:

1. a placement group with a bundle per rank is created (`placement.py`); Ray reserves every
   bundle at once or none (the gang), and says so through `pg.ready()`, which needs no worker;
2. the bundles' nodes give each rank its local rank and node rank, and bundle 0's node is
   MASTER_ADDR. A free port on it, MASTER_PORT, is found by the driver when that node is its own
   host, else by a small probe task in bundle 0 (which costs a worker start there);
3. a Ray task per rank is started in its bundle with the task's environment plus its rank's
   (`plinth.compute.groups.rank_env`). Rank tasks run with `max_calls=1`, so every rank is a
   fresh worker process that exits afterwards: no torch.distributed state, CUDA context or open
   socket of one attempt is left for the next task;
4. when every rank has returned, the group's result is rank 0's value. When a rank fails (raises,
   its worker or node dies, it goes over its memory or its timeout, which each rank's watchdog
   enforces as for a single task), the other ranks are force-cancelled at once, so ranks blocked
   in a collective do not wait for it to time out, and the group ends with that rank's outcome.

The placement group is removed whenever the group ends, which also ends any task left in it.
"""

from __future__ import annotations

import contextlib
import pickle
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from plinth.compute.base import Outcome, RankResult, Task, TaskResult
from plinth.compute.groups import free_port, group_result, rank_env
from plinth.compute.ray import placement
from plinth.compute.ray.outcomes import Reply, from_error, from_reply, name
from plinth.compute.ray.worker import execute, read_note

DEATH_GRACE_S = 2.0
"""How long a rank that raised waits for a peer's death to be reported before it is blamed:
Ray learns of a killed worker from its raylet, later than the peers see their sockets close."""

RankReply = tuple[Reply, float]
"""What `run_rank` returns: the reply of `worker.execute` and when the rank ended (epoch seconds)."""


def probe() -> tuple[str, int]:
    """Runs in bundle 0: this node's address in the cluster and a port free on it (the rendezvous)."""
    import ray

    host = str(ray.util.get_node_ip_address())
    return host, free_port(host)


def run_rank(
    request: bytes, task_id: str, cwd: str, timeout_s: float | None, memory: int | None
) -> RankReply:
    """Runs one rank in its bundle, as `worker.execute` runs a task; adds when it ended."""
    return execute(request, task_id, cwd, timeout_s, memory), time.time()


@dataclass(eq=False)
class _Group:
    """One group task in flight: its placement group, the step it waits on, its ranks."""

    task: Task
    request: Callable[[dict[str, str]], bytes]  # rank env -> encoded request
    pg: Any
    step: Any = None  # the placement group's ready object, then the probe's, until ranks run
    started: float = field(default_factory=time.monotonic)
    slots: list[placement.Slot] = field(default_factory=list)
    running: dict[Any, int] = field(default_factory=dict)  # rank tasks not yet ended -> rank
    ranks: dict[int, RankResult] = field(default_factory=dict)
    value: Any = None

    def rank_task(self, rank: int) -> Task:
        """The task as one rank: its own id (the key of its watchdog's note) and label."""
        return replace(self.task, id=f"{self.task.id}#rank{rank}", label=f"{name(self.task)} rank {rank}")

    def place(self, rank: int) -> str:
        return self.slots[rank].describe() if rank < len(self.slots) else ""


class RayGroups:
    """The group tasks of one `RayExecutor`: started, advanced as their Ray objects become ready, stopped.

    Args:
        ray: the `ray` module, connected.
        cwd: the driver's working folder (ranks run in it where their node has it).
        addresses: node id -> node address, asked when a group has been placed.
    """

    def __init__(self, ray: Any, cwd: str, addresses: Callable[[], Mapping[str, str]]) -> None:
        self._ray = ray
        self._cwd = cwd
        self._addresses = addresses
        self._here = str(ray.util.get_node_ip_address())
        self._probe = ray.remote(probe)
        self._rank = ray.remote(max_calls=1)(run_rank)
        self._groups: dict[str, _Group] = {}
        self._by_ref: dict[Any, _Group] = {}

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._groups

    def __len__(self) -> int:
        return len(self._groups)

    def ids(self) -> list[str]:
        """Ids of the groups in flight."""
        return list(self._groups)

    def refs(self) -> list[Any]:
        """The Ray objects the groups wait on now (placement, probes and rank tasks)."""
        return list(self._by_ref)

    def owns(self, ref: Any) -> bool:
        """True when `ref` is an object a group here waits on."""
        return ref in self._by_ref

    # ------------------------------------------------------------------------------ start

    def start(self, task: Task, env: dict[str, str], payload: bytes) -> None:
        """Ask Ray for the group's placement group; the ranks start once it is ready."""
        from ray.util.placement_group import placement_group

        def request(ranked: dict[str, str]) -> bytes:
            return pickle.dumps((None, {**env, **ranked}, payload), protocol=pickle.HIGHEST_PROTOCOL)

        bundles = [placement.bundle(task.resources)] * task.workers
        pg = placement_group(bundles, strategy=placement.strategy(task), name=f"plinth {task.id}")
        group = _Group(task, request, pg)
        self._groups[task.id] = group
        self._wait_for(group, pg.ready())

    def _wait_for(self, group: _Group, step: Any) -> None:
        group.step = step
        self._by_ref[step] = group

    def _placed(self, group: _Group) -> None:
        """Every bundle is reserved: number the ranks by node, then find the rendezvous port."""
        from ray.util.placement_group import placement_group_table
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        node_of_bundle = placement_group_table(group.pg)["bundles_to_node_id"]
        group.slots = placement.layout(node_of_bundle, self._addresses(), group.task.workers)
        master = group.slots[0].address
        if master == self._here:
            self._launch(group, (master, free_port(master)))
            return
        in_bundle_0 = PlacementGroupSchedulingStrategy(group.pg, placement_group_bundle_index=0)
        options = {"num_cpus": 0, "max_retries": 0, "scheduling_strategy": in_bundle_0}
        label = f"plinth {name(group.task)} {group.task.id} probe"
        self._wait_for(group, self._probe.options(**options, name=label).remote())

    def _launch(self, group: _Group, master: tuple[str, int]) -> None:
        """Start every rank in its bundle, each with its rank's environment."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        task, res = group.task, group.task.resources
        for rank, slot in enumerate(group.slots):
            ranked = rank_env(
                rank,
                task.workers,
                local_rank=slot.local_rank,
                local_world_size=slot.local_world_size,
                node_rank=slot.node_rank,
                master_addr=master[0],
                master_port=master[1],
            )
            in_bundle = PlacementGroupSchedulingStrategy(group.pg, placement_group_bundle_index=rank)
            options: dict[str, Any] = {
                "num_cpus": res.cpu,
                "max_retries": 0,
                "name": f"plinth {name(task)} {task.id} rank {rank}",
                "scheduling_strategy": in_bundle,
            }
            if res.gpu:
                options["num_gpus"] = res.gpu
            if res.memory is not None:
                options["memory"] = res.memory
            request = group.request(ranked)
            ref = self._rank.options(**options).remote(
                request, group.rank_task(rank).id, self._cwd, task.timeout_s, res.memory
            )
            group.running[ref] = rank
            self._by_ref[ref] = group
        group.started = time.monotonic()

    # ------------------------------------------------------------------------------ progress

    def collect(self, ready: Iterable[Any]) -> list[TaskResult]:
        """Advance the groups whose objects in `ready` have ended; the results of groups that ended."""
        batches: dict[str, list[Any]] = {}
        for ref in ready:
            group = self._by_ref.pop(ref, None)
            if group is not None:
                batches.setdefault(group.task.id, []).append(ref)
        results = []
        for task_id, refs in batches.items():
            result = self._advance(self._groups[task_id], refs)
            if result is not None:
                results.append(result)
        return results

    def _advance(self, group: _Group, refs: list[Any]) -> TaskResult | None:
        if group.step is not None and group.step in refs:
            return self._stepped(group)
        ended = [self._ended(group, ref) for ref in refs]
        if group.running and any(not e[0].ok for e in ended) and all(e[1] is not None for e in ended):
            ended += self._deaths_within(group, DEATH_GRACE_S)
        # Of failures seen together, a rank whose process died goes first, then the one that
        # ended first: the others usually failed because it went (a collective lost its peer).
        failures = sorted((e for e in ended if not e[0].ok), key=lambda e: (e[1] is not None, e[1] or 0.0))
        for rank, _, _ in ended:
            group.ranks[rank.rank] = rank
        if failures:
            failed, _, trace = failures[0]
            return self._stop(group, failed=failed, traceback=trace)
        if group.running:
            return None
        return self._finish(group, group_result(group.task, list(group.ranks.values()), group.value))

    def _deaths_within(
        self, group: _Group, seconds: float
    ) -> list[tuple[RankResult, float | None, str | None]]:
        """The ranks that end within `seconds` after a rank raised: a killed process closes its
        sockets (so its peers' collective calls raise, and they reply) before Ray reports it dead."""
        done, _ = self._ray.wait(list(group.running), num_returns=len(group.running), timeout=seconds)
        for ref in done:
            self._by_ref.pop(ref, None)
        return [self._ended(group, ref) for ref in done]

    def _stepped(self, group: _Group) -> TaskResult | None:
        """The placement group is ready, or the probe answered: go on (or end, when it failed)."""
        step, group.step = group.step, None
        try:
            answer = self._ray.get(step)
        except Exception as exc:  # the probe's worker or node died, or the group was removed
            lost = from_error(group.rank_task(0), exc, group.started)
            failed = RankResult(
                0, lost.outcome, worker=group.place(0), error=_clause(lost), wall_s=lost.wall_s
            )
            return self._stop(group, failed=failed)
        if group.slots:
            self._launch(group, answer)
        else:
            self._placed(group)
        return None

    def _ended(self, group: _Group, ref: Any) -> tuple[RankResult, float | None, str | None]:
        """How one rank ended, when (None when its process died without a reply), its traceback."""
        rank = group.running.pop(ref)
        rank_task = group.rank_task(rank)
        ended_at: float | None = None
        try:
            answer, ended_at = self._ray.get(ref)
        except Exception as exc:
            result = from_error(rank_task, exc, group.started)
        else:
            result = from_reply(rank_task, answer)
            if rank == 0 and result.ok:
                group.value = result.value
        outcome = RankResult(
            rank=rank,
            outcome=result.outcome,
            worker=result.worker or group.place(rank),
            error=_clause(result),
            max_rss=result.max_rss,
            cpu_s=result.cpu_s,
            wall_s=result.wall_s,
            gpus=result.gpus,
        )
        return outcome, ended_at, result.traceback

    # ------------------------------------------------------------------------------ ending

    def cancel(self, task_id: str) -> TaskResult | None:
        """Stop a group in flight; its result (CANCELLED), or None when no such group is here."""
        group = self._groups.get(task_id)
        if group is None:
            return None
        return self._stop(
            group, outcome=Outcome.CANCELLED, error=f"Group {name(group.task)!r} was cancelled."
        )

    def _stop(
        self,
        group: _Group,
        *,
        failed: RankResult | None = None,
        traceback: str | None = None,
        outcome: Outcome | None = None,
        error: str | None = None,
    ) -> TaskResult:
        """Force-cancel every rank still running (they end CANCELLED) and end the group."""
        stopped = list(group.running.values())
        for ref, rank in group.running.items():
            self._by_ref.pop(ref, None)
            with contextlib.suppress(Exception):  # ended meanwhile, or the cluster is gone
                self._ray.cancel(ref, force=True)
            group.ranks[rank] = RankResult(rank, Outcome.CANCELLED, worker=group.place(rank))
        if group.step is not None:
            self._by_ref.pop(group.step, None)
            if group.slots:  # the probe (a placement group's ready object is no task)
                with contextlib.suppress(Exception):
                    self._ray.cancel(group.step, force=True)
        if failed is not None:
            group.ranks[failed.rank] = failed
        for rank in range(group.task.workers):
            group.ranks.setdefault(rank, RankResult(rank, Outcome.CANCELLED, worker=group.place(rank)))
        if failed is not None and failed.outcome is Outcome.TIMEOUT:
            outcome = Outcome.TIMEOUT
            limit_s = group.task.timeout_s or 0.0
            error = (
                f"Group {name(group.task)!r} ran longer than its timeout of {limit_s:.1f} s "
                f"(rank {failed.rank} reached it first) and all {group.task.workers} ranks were stopped."
            )
        group.running.clear()
        result = group_result(
            group.task,
            list(group.ranks.values()),
            outcome=outcome,
            error=error,
            traceback=traceback,
            failed=failed,
        )
        self._finish(group, result)
        self._forget_notes(group, stopped)
        return result

    def _finish(self, group: _Group, result: TaskResult) -> TaskResult:
        """Release the group's placement group (ending whatever still runs in it); forget the group."""
        from ray.util.placement_group import remove_placement_group

        with contextlib.suppress(Exception):  # already removed, or the cluster is gone
            remove_placement_group(group.pg)
        self._groups.pop(group.task.id, None)
        return result

    def _forget_notes(self, group: _Group, stopped: list[int]) -> None:
        """Drop notes that watchdogs of stopped ranks may have left as they reached the same limit."""
        if group.task.timeout_s is None and group.task.resources.memory is None:
            return
        for rank in stopped:
            read_note(group.rank_task(rank).id)


def _clause(result: TaskResult) -> str | None:
    """A rank's error as a clause of the group's message: plinth's own sentences lose their period."""
    if result.error is None or result.outcome is Outcome.ERROR:
        return result.error
    return result.error.rstrip(".")
