"""Groups: one task run by several processes at once (a distributed training step).

Every executor runs a group the same way, so the step code and the flow driver see one shape:

- all `task.workers` ranks start together (gang scheduling), each holding `task.resources`;
- each rank's process gets `task.env` plus `rank_env(...)`: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
  `LOCAL_WORLD_SIZE`, `GROUP_RANK` (the node's index), `MASTER_ADDR`, `MASTER_PORT` — what
  `torch.distributed.init_process_group(init_method="env://")` and torchrun's scripts read;
- when every rank has returned, the task's result is rank 0's value (`group_result`);
- when one rank fails (raises, dies, goes over its memory), the executor stops the others and
  the task ends with that rank's outcome; the stopped ranks end CANCELLED. A timeout or a
  cancel stops the whole group.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from plinth.compute.base import Outcome, RankResult, Task, TaskResult

RANK_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def rank_env(
    rank: int,
    world_size: int,
    *,
    local_rank: int,
    local_world_size: int,
    node_rank: int,
    master_addr: str,
    master_port: int,
) -> dict[str, str]:
    """The environment variables of one rank, as torchrun sets them."""
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(local_world_size),
        "GROUP_RANK": str(node_rank),
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
    }


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at `host` now (the rendezvous port of a group)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def first_failure(ranks: Sequence[RankResult]) -> RankResult | None:
    """The rank whose failure stopped the group: the first not OK and not CANCELLED, in order given."""
    for rank in ranks:
        if not rank.ok and rank.outcome is not Outcome.CANCELLED:
            return rank
    return None


def group_result(
    task: Task,
    ranks: Sequence[RankResult],
    value: Any = None,
    *,
    outcome: Outcome | None = None,
    error: str | None = None,
    traceback: str | None = None,
    failed: RankResult | None = None,
) -> TaskResult:
    """Fold the ranks of a group into the task's one result.

    Args:
        task: the group's task.
        ranks: one entry per rank (any order; sorted by rank here).
        value: rank 0's return value, when every rank returned.
        outcome: set for an ending of the whole group (TIMEOUT, CANCELLED); otherwise OK when
            every rank is OK, else the outcome of `failed` (default: `first_failure(ranks)`).
        error: the message for such a whole-group ending.
        traceback: the failing rank's traceback, when there is one.
        failed: the rank that failed first, when the executor knows the order of failures.

    Usage adds up every rank (CPU seconds, peak memory: what the group held) and the wall
    time is the longest rank's; `worker` is rank 0's.
    """
    ordered = tuple(sorted(ranks, key=lambda r: r.rank))
    if outcome is None:
        failed = failed or first_failure(ordered)
        if failed is None and all(r.ok for r in ordered):
            outcome = Outcome.OK
        elif failed is None:
            outcome, error = Outcome.CANCELLED, error or f"Group {_name(task)!r} was cancelled."
        else:
            outcome = failed.outcome
            error = (
                f"rank {failed.rank} of {task.workers} ({failed.worker or 'unknown worker'}): "
                f"{(failed.error or failed.outcome.value).rstrip('. ')}; the other ranks were stopped"
            )
    gpus = tuple(g for r in ordered for g in r.gpus)
    return TaskResult(
        task_id=task.id,
        outcome=outcome,
        value=value if outcome is Outcome.OK else None,
        error=None if outcome is Outcome.OK else error,
        traceback=traceback if outcome is not Outcome.OK else None,
        gpus=gpus,
        max_rss=sum(r.max_rss for r in ordered),
        cpu_s=sum(r.cpu_s for r in ordered),
        wall_s=max((r.wall_s for r in ordered), default=0.0),
        worker=ordered[0].worker if ordered else "",
        ranks=ordered,
    )


def _name(task: Task) -> str:
    return task.label or task.id
