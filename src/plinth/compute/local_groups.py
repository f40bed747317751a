"""Groups on the LocalExecutor: one dedicated worker process per rank, started and stopped together.

A group's ranks never run in the executor's CPU pool or its kept GPU workers: each rank gets a
fresh worker (a fork of the forkserver, a few ms), and every one of them is killed when the group
ends, so `torch.distributed` process groups, NCCL communicators and CUDA contexts never outlive it.
`GroupRun` owns those workers, reads their replies and deaths, samples their memory, and stops the
whole group at once when one rank fails (see `plinth.compute.groups` for the semantics); the
executor owns the slots, takes and releases them for all ranks together, and drives it from its
poll loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_ready
from typing import Any

from plinth.compute.base import Outcome, RankResult, Resources, Task, TaskResult
from plinth.compute.groups import free_port, group_result, rank_env
from plinth.compute.worker import WorkerHandle
from plinth.core.units import format_size

MASTER_ADDR = "127.0.0.1"  # every rank runs on this machine
UNLIMITED_SAMPLE_S = 1.0
"""How often the memory of ranks without a memory limit is read (with one: every executor tick)."""
DEATH_GRACE_S = 0.5
"""After a rank raises, how long to watch for another rank's death that caused it (and so is the cause)."""


def group_total(task: Task) -> Resources:
    """What a task holds in all: its resources times its workers (one rank each)."""
    res, n = task.resources, task.workers
    memory = None if res.memory is None else res.memory * n
    return Resources(cpu=res.cpu * n, memory=memory, gpu=res.gpu * n)


def split_gpus(gpus: Sequence[int], workers: int, per_rank: int) -> list[tuple[int, ...]]:
    """Each rank's own GPU set: consecutive runs of `per_rank` ids from `gpus` (empty when 0)."""
    return [tuple(gpus[i * per_rank : (i + 1) * per_rank]) for i in range(workers)]


def too_big_message(task: Task, asked: str, capacity: str) -> str:
    """Why a group can never start here: `asked` (e.g. 'cpu=8') is more than `capacity` has."""
    return (
        f"Group {_name(task)!r} of {task.workers} workers ({task.resources.describe()} each) asks for "
        f"{asked} in all but this executor has {capacity}; lower what each worker asks for or the "
        "number of workers, or run it on a cluster (Ray or SLURM)."
    )


@dataclass
class _Rank:
    """One rank in flight: its worker, its GPUs, and how it ended once it did."""

    rank: int
    worker: WorkerHandle
    gpus: tuple[int, ...]
    max_rss: int = 0
    ended: RankResult | None = None
    traceback: str | None = None


class GroupRun:
    """A group in flight on the LocalExecutor.

    Args:
        task: the group's task (`task.workers` > 1).
        payload: its pickled `(fn, args)`, sent to every rank.
        gpu_sets: each rank's GPU ids, in rank order (empty tuples for CPU ranks).
        registry: the executor's live workers by pid; each rank's worker is in it while it
            lives, so the executor's shutdown (and its exit hook) stops ranks too.
    """

    def __init__(
        self,
        task: Task,
        payload: bytes,
        gpu_sets: Sequence[tuple[int, ...]],
        registry: dict[int, WorkerHandle],
    ) -> None:
        self.task = task
        self.gpu_sets = tuple(gpu_sets)
        self.started = time.monotonic()
        self.deadline = None if task.timeout_s is None else self.started + task.timeout_s
        self._registry = registry
        self._ranks: list[_Rank] = []
        self._value: Any = None
        self._failed: RankResult | None = None
        self._stopped: tuple[Outcome, str] | None = None
        self._next_sample = 0.0
        self._launch(payload)

    # ------------------------------------------------------------------------------ state

    @property
    def done(self) -> bool:
        """True once every rank has ended (returned, failed, or been stopped)."""
        return all(rank.ended is not None for rank in self._ranks)

    def waitables(self) -> Iterator[tuple[Any, int]]:
        """(pipe or process sentinel, rank) of every rank still running, for `connection.wait`."""
        for rank in self._running():
            yield rank.worker.conn, rank.rank
            yield rank.worker.proc.sentinel, rank.rank

    def result(self) -> TaskResult:
        """The group's one result (rank 0's value when every rank returned); call when `done`."""
        ranks = [rank.ended for rank in self._ranks if rank.ended is not None]
        if self._stopped is not None:
            outcome, message = self._stopped
            return group_result(self.task, ranks, outcome=outcome, error=message)
        failed = self._failed
        trace = None if failed is None else self._ranks[failed.rank].traceback
        return group_result(self.task, ranks, self._value, traceback=trace, failed=failed)

    # ------------------------------------------------------------------------------ events

    def collect(self, ready: set[int]) -> None:
        """Read the replies or deaths of the ranks that became ready; a failure stops the others.

        When several ranks failed in the same poll, a dead rank is taken as the cause over a rank
        that raised: a peer's death makes the others' collective calls raise.
        """
        failures: list[RankResult] = []
        for index in sorted(ready):
            rank = self._ranks[index]
            if rank.ended is not None:
                continue
            ended = rank.ended = self._read(rank)
            if not ended.ok:
                failures.append(ended)
        if failures and self._failed is None:
            if all(f.outcome is Outcome.ERROR for f in failures):
                failures += self._deaths_within(DEATH_GRACE_S)
            failures.sort(key=lambda r: (r.outcome is not Outcome.CRASHED, r.rank))
            self._fail(failures[0])

    def _deaths_within(self, seconds: float) -> list[RankResult]:
        """Ranks whose process ends within `seconds`: a killed process closes its sockets (so its
        peers' collective calls raise, and they may reply) before the system reports it dead."""
        running = {rank.worker.proc.sentinel: rank for rank in self._running()}
        dead = []
        for sentinel in wait_ready(list(running), timeout=seconds) if running else []:
            rank = running[sentinel]
            ended = rank.ended = self._read(rank)
            dead.append(ended)
        return [d for d in dead if d.outcome is Outcome.CRASHED] + [
            d for d in dead if d.outcome is not Outcome.CRASHED
        ]

    def sample(self) -> None:
        """Record each running rank's memory (its process tree); stop the group if one is over.

        Without a memory limit this is bookkeeping only (each rank's reply brings its peak too),
        so it runs once a second: reading every rank's process tree costs the ranks CPU time.
        """
        limit = self.task.resources.memory
        now = time.monotonic()
        if limit is None and now < self._next_sample:
            return
        self._next_sample = now + UNLIMITED_SAMPLE_S
        for rank in self._running():
            rss = rank.worker.rss()
            rank.max_rss = max(rank.max_rss, rss)
            if limit is not None and rss > limit and self._failed is None:
                message = (
                    f"used {format_size(rss)} of memory, over its limit of {format_size(limit)} per worker; "
                    "raise its memory or make it use less"
                )
                self._fail(self._stop_rank(rank, Outcome.MEMORY, message))

    def time_out(self) -> None:
        """Stop the whole group: it ran past its timeout."""
        message = (
            f"Group {_name(self.task)!r} ran longer than its timeout of {self.task.timeout_s or 0:.1f} s "
            f"and was stopped (all {self.task.workers} ranks)."
        )
        self._stop(Outcome.TIMEOUT, message)

    def cancel(self) -> None:
        """Stop the whole group: the caller cancelled it."""
        self._stop(
            Outcome.CANCELLED,
            f"Group {_name(self.task)!r} was cancelled while running; all its ranks were stopped.",
        )

    def close(self) -> None:
        """Kill every rank's worker, including those that returned and sit idle, and forget them."""
        for rank in self._ranks:
            rank.worker.kill()
            rank.worker.close()
            self._registry.pop(rank.worker.pid, None)

    # ------------------------------------------------------------------------------ internals

    def _launch(self, payload: bytes) -> None:
        """Start one worker per rank and send each its call; a rank that cannot take it has crashed."""
        port = free_port(MASTER_ADDR)
        n = self.task.workers
        try:
            for index, gpus in enumerate(self.gpu_sets):
                worker = WorkerHandle(gpus)
                self._registry[worker.pid] = worker
                self._ranks.append(_Rank(index, worker, gpus))
        except BaseException:
            self.close()
            raise
        for rank in self._ranks:
            if rank.ended is not None:
                continue  # stopped because an earlier rank could not take its call
            env = {
                **self.task.env,
                **rank_env(
                    rank.rank,
                    n,
                    local_rank=rank.rank,
                    local_world_size=n,
                    node_rank=0,
                    master_addr=MASTER_ADDR,
                    master_port=port,
                ),
                "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in rank.gpus),  # none for a CPU rank
            }
            try:
                rank.worker.send(env, payload)
            except OSError:
                self.collect({rank.rank})

    def _stop(self, outcome: Outcome, message: str) -> None:
        """End the whole group with `outcome`: every running rank is killed."""
        self._stopped = (outcome, message)
        for rank in self._running():
            self._stop_rank(rank, outcome, message)

    def _running(self) -> list[_Rank]:
        return [rank for rank in self._ranks if rank.ended is None]

    def _read(self, rank: _Rank) -> RankResult:
        """How a ready rank ended: its reply, or its death when there is none."""
        try:
            status, value, error, trace, cpu_s, wall_s, rss, peak = rank.worker.receive()
        except (EOFError, OSError):
            error = f"its worker process died ({rank.worker.death()})"
            return self._rank_result(rank, Outcome.CRASHED, error)
        rank.max_rss = max(rank.max_rss, rss, peak)
        if status != "ok":
            rank.traceback = trace
            return self._rank_result(rank, Outcome.ERROR, error, cpu_s=cpu_s, wall_s=wall_s)
        if rank.rank == 0:
            self._value = value
        return self._rank_result(rank, Outcome.OK, cpu_s=cpu_s, wall_s=wall_s)

    def _fail(self, failed: RankResult) -> None:
        """Record the rank that failed first and stop every other running rank at once."""
        self._failed = failed
        for rank in self._running():
            self._stop_rank(rank, Outcome.CANCELLED, f"stopped because rank {failed.rank} failed")

    def _stop_rank(self, rank: _Rank, outcome: Outcome, error: str) -> RankResult:
        """Kill a running rank's worker (and what it started); record how the rank ended."""
        worker = rank.worker
        rank.max_rss = max(rank.max_rss, worker.rss())
        cpu_s = worker.cpu_since_mark()
        worker.kill()
        rank.ended = self._rank_result(rank, outcome, error, cpu_s=cpu_s)
        return rank.ended

    def _rank_result(
        self,
        rank: _Rank,
        outcome: Outcome,
        error: str | None = None,
        *,
        cpu_s: float = 0.0,
        wall_s: float | None = None,
    ) -> RankResult:
        return RankResult(
            rank=rank.rank,
            outcome=outcome,
            worker=rank.worker.name,
            error=error,
            max_rss=rank.max_rss,
            cpu_s=cpu_s,
            wall_s=time.monotonic() - self.started if wall_s is None else wall_s,
            gpus=rank.gpus,
        )


def _name(task: Task) -> str:
    return task.label or task.id
