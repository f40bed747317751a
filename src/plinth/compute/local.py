"""`LocalExecutor`: runs tasks in reusable worker processes on this machine, within CPU/memory/GPU slots.

Scheduling is FIFO with backfill: each pass starts every queued task, oldest first, whose slots are
free, so a task that fits may pass one that does not. CPU tasks share a pool of `workers` processes;
a GPU task runs in a process dedicated to its exact GPU set (CUDA pins devices at initialisation),
started on first use, kept for the next task on that set, and retired when an overlapping set is
needed. A group (`Task.workers` > 1) waits in the same queue until the slots of all its ranks are
free, then runs in dedicated processes, one per rank, that end with it (`local_groups`). The driver
multiplexes the workers' pipes and process sentinels with `multiprocessing.connection.wait`,
ticking every 0.1 s to sample memory and enforce timeouts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import util as mp_util
from multiprocessing.connection import wait as wait_ready
from typing import Any

import psutil

from plinth.compute.base import Executor, Outcome, Resources, Task, TaskResult, check_new_task, task_payload
from plinth.compute.gpus import discover_gpus
from plinth.compute.local_groups import GroupRun, group_total, split_gpus, too_big_message
from plinth.compute.worker import WorkerHandle, stop_all
from plinth.core.errors import ConfigError, ResourceError
from plinth.core.settings import Settings

SAMPLE_S = 0.1  # memory sampling and timeout resolution
_MILLI = 1000  # CPU slots are counted in thousandths so fractions add up exactly


@dataclass
class _Running:
    """A task in flight and what it holds."""

    task: Task
    worker: WorkerHandle
    gpus: tuple[int, ...]
    started: float
    deadline: float | None
    max_rss: int = 0


class LocalExecutor(Executor):
    """Runs tasks in worker processes on this machine.

    Args:
        cpus: CPU slots; default os.cpu_count().
        memory: bytes of memory that tasks asking for memory may reserve; default all of it.
        gpus: GPU ids to hand out; default those the PLINTH_GPUS setting names, else all found.
        workers: reusable processes for CPU tasks; default the CPU count.
    """

    def __init__(
        self,
        cpus: float | None = None,
        memory: int | None = None,
        gpus: Sequence[int] | None = None,
        workers: int | None = None,
    ) -> None:
        self._cpus = float(cpus) if cpus is not None else float(os.cpu_count() or 1)
        self._memory = int(memory) if memory is not None else int(psutil.virtual_memory().total)
        found = discover_gpus(Settings.from_env().gpus) if gpus is None else list(gpus)
        self._gpus = tuple(found)
        self._max_workers = workers if workers is not None else max(1, int(self._cpus))
        _check_config(self._cpus, self._memory, self._gpus, self._max_workers)
        self._free_cpu = round(self._cpus * _MILLI)
        self._free_memory = self._memory
        self._free_gpus = set(self._gpus)
        self._queue: dict[str, tuple[Task, bytes]] = {}
        self._running: dict[str, _Running] = {}
        self._groups: dict[str, GroupRun] = {}
        self._queued_groups = 0  # groups in the queue: they need no pool worker to start
        self._done: list[TaskResult] = []
        self._idle_cpu: list[WorkerHandle] = []
        self._idle_gpu: dict[tuple[int, ...], WorkerHandle] = {}
        self._workers: dict[int, WorkerHandle] = {}  # every live worker, by pid
        self._cpu_workers = 0
        self._next_sample = 0.0
        self._closed = False
        # multiprocessing's exit hook joins every child process it started, which would wait forever
        # on idle workers; its finalizers with an exit priority run before that join (and on GC).
        self._finalizer = mp_util.Finalize(self, _stop_workers, args=(self._workers,), exitpriority=10)

    # ------------------------------------------------------------------------------ interface

    def capacity(self) -> Resources:
        """All slots this executor schedules into."""
        return Resources(cpu=self._cpus, memory=self._memory, gpu=len(self._gpus))

    def submit(self, task: Task) -> None:
        """Queue `task` and start it if its slots are free; ResourceError if it can never fit."""
        known = task.id in self._queue or task.id in self._running or task.id in self._groups
        check_new_task(task, closed=self._closed, known=known)
        self._check_fits(task)
        payload = task_payload(task)
        if isinstance(payload, TaskResult):
            self._done.append(payload)
            return
        self._queue[task.id] = (task, payload)
        self._queued_groups += 1 if task.workers > 1 else 0
        self._schedule()

    def wait(self, timeout: float | None = None) -> list[TaskResult]:
        """Block until at least one task ends (or `timeout` seconds pass); return the ended ones."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self._done and (self._running or self._groups):
            self._poll(end)
            if end is not None and time.monotonic() >= end:
                break
        done, self._done = self._done, []
        return done

    def cancel(self, task_id: str) -> None:
        """Drop a queued task or kill a running one; either way its result is CANCELLED."""
        queued = self._queue.pop(task_id, None)
        if queued is not None:
            self._queued_groups -= 1 if queued[0].workers > 1 else 0
            message = f"{_kind(queued[0])} {_name(queued[0])!r} was cancelled before it started."
            self._done.append(TaskResult(task_id, Outcome.CANCELLED, error=message))
        elif task_id in self._running:
            run = self._running[task_id]
            self._kill(run, Outcome.CANCELLED, f"Task {_name(run.task)!r} was cancelled while running.")
            self._schedule()
        elif task_id in self._groups:
            group = self._groups[task_id]
            group.cancel()
            self._end_group(group)
            self._schedule()

    def running(self) -> int:
        """Tasks queued or running."""
        return len(self._queue) + len(self._running) + len(self._groups)

    def shutdown(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL); queued and running tasks are dropped."""
        self._closed = True
        self._queue.clear()
        self._running.clear()
        self._groups.clear()
        self._queued_groups = 0
        self._idle_cpu.clear()
        self._idle_gpu.clear()
        self._finalizer()

    # ------------------------------------------------------------------------------ scheduling

    def _check_fits(self, task: Task) -> None:
        res = group_total(task)
        asked = None
        if round(res.cpu * _MILLI) > round(self._cpus * _MILLI):
            asked = f"cpu={res.cpu:g}"
        elif res.memory is not None and res.memory > self._memory:
            asked = f"memory={_size(res.memory)}"
        elif res.gpu > len(self._gpus):
            asked = f"gpu={res.gpu}"
        if asked is not None and task.workers > 1:
            raise ResourceError(too_big_message(task, asked, self._describe_capacity()))
        if asked is not None:
            raise ResourceError(
                f"Task {_name(task)!r} asks for {asked} but this executor has {self._describe_capacity()}; "
                "lower what it asks for, or run it on an executor with more (another machine or a cluster)."
            )

    def _describe_capacity(self) -> str:
        gpus = f"{len(self._gpus)} GPUs {list(self._gpus)}" if self._gpus else "no GPUs"
        return f"{self._cpus:g} CPUs, {_size(self._memory)} of memory and {gpus}"

    def _schedule(self) -> None:
        """Start every queued task whose slots are free, oldest first."""
        started = []
        try:
            for task_id, (task, payload) in self._queue.items():
                if task.workers > 1:
                    if self._slots_free(group_total(task)):
                        self._start_group(task, payload)
                        started.append(task_id)
                    continue
                if not self._free_gpus and not self._cpu_worker_available():
                    if self._queued_groups:
                        continue  # a group needs no pool worker: it may still start
                    break  # nothing more can start until something ends
                if self._fits_now(task.resources):
                    self._start(task, payload)
                    started.append(task_id)
        finally:  # also when a worker could not be started: what did start leaves the queue
            for task_id in started:
                task, _ = self._queue.pop(task_id)
                self._queued_groups -= 1 if task.workers > 1 else 0

    def _cpu_worker_available(self) -> bool:
        return bool(self._idle_cpu) or self._cpu_workers < self._max_workers

    def _fits_now(self, res: Resources) -> bool:
        return self._slots_free(res) and (res.gpu > 0 or self._cpu_worker_available())

    def _slots_free(self, res: Resources) -> bool:
        if round(res.cpu * _MILLI) > self._free_cpu or res.gpu > len(self._free_gpus):
            return False
        return res.memory is None or res.memory <= self._free_memory

    def _take_slots(self, res: Resources, gpus: tuple[int, ...]) -> None:
        self._free_cpu -= round(res.cpu * _MILLI)
        self._free_memory -= res.memory or 0
        self._free_gpus.difference_update(gpus)

    def _give_slots(self, res: Resources, gpus: tuple[int, ...]) -> None:
        self._free_cpu += round(res.cpu * _MILLI)
        self._free_memory += res.memory or 0
        self._free_gpus.update(gpus)

    def _start(self, task: Task, payload: bytes) -> None:
        res = task.resources
        gpus = self._pick_gpus(res.gpu) if res.gpu else ()
        worker, sent = self._send(task, payload, gpus)
        self._take_slots(res, gpus)
        now = time.monotonic()
        deadline = now + task.timeout_s if task.timeout_s is not None else None
        run = self._running[task.id] = _Running(task, worker, gpus, now, deadline)
        if not sent:
            self._crashed(run)

    def _send(self, task: Task, payload: bytes, gpus: tuple[int, ...]) -> tuple[WorkerHandle, bool]:
        """Hand the task to a worker; an idle one may have died unseen, then a fresh one gets it."""
        worker = self._take_worker(gpus)
        try:
            worker.send(task.env, payload)
            return worker, True
        except OSError:
            self._discard(worker)
        worker = self._take_worker(gpus)
        try:
            worker.send(task.env, payload)
            return worker, True
        except OSError:
            return worker, False

    def _pick_gpus(self, count: int) -> tuple[int, ...]:
        """GPU ids for a task: an idle worker's set when one is free, else the lowest free ids."""
        for gpus in self._idle_gpu:
            if len(gpus) == count and self._free_gpus.issuperset(gpus):
                return gpus
        return tuple(sorted(self._free_gpus)[:count])

    def _take_worker(self, gpus: tuple[int, ...]) -> WorkerHandle:
        if not gpus:
            if self._idle_cpu:
                return self._idle_cpu.pop()
            worker = self._launch(())
            self._cpu_workers += 1
            return worker
        if gpus in self._idle_gpu:
            return self._idle_gpu.pop(gpus)
        self._retire_idle_gpu_workers(gpus)
        return self._launch(gpus)

    def _retire_idle_gpu_workers(self, gpus: tuple[int, ...]) -> None:
        """Stop kept GPU workers on any of `gpus`: frees the CUDA contexts they hold there."""
        for other in [g for g in self._idle_gpu if set(g) & set(gpus)]:
            self._discard(self._idle_gpu.pop(other))

    def _launch(self, gpus: tuple[int, ...]) -> WorkerHandle:
        worker = WorkerHandle(gpus)
        self._workers[worker.pid] = worker
        return worker

    def _discard(self, worker: WorkerHandle) -> None:
        """Forget a dead or killed worker."""
        worker.kill()
        worker.close()
        self._workers.pop(worker.pid, None)
        if not worker.gpus:
            self._cpu_workers -= 1

    def _release(self, run: _Running, worker_ok: bool) -> None:
        del self._running[run.task.id]
        self._give_slots(run.task.resources, run.gpus)
        if not worker_ok:
            self._discard(run.worker)
        elif run.gpus:
            self._idle_gpu[run.gpus] = run.worker
        else:
            self._idle_cpu.append(run.worker)

    def _start_group(self, task: Task, payload: bytes) -> None:
        """Take the slots of every rank and start them all (gang); see `local_groups`."""
        total = group_total(task)
        gpus = tuple(sorted(self._free_gpus)[: total.gpu])
        self._retire_idle_gpu_workers(gpus)
        group = GroupRun(task, payload, split_gpus(gpus, task.workers, task.resources.gpu), self._workers)
        self._take_slots(total, gpus)
        self._groups[task.id] = group
        if group.done:  # no rank could take its call
            self._end_group(group)

    def _end_group(self, group: GroupRun) -> None:
        """Stop what is left of an ended group, release all its slots, and report its result."""
        group.close()
        del self._groups[group.task.id]
        self._give_slots(group_total(group.task), tuple(g for s in group.gpu_sets for g in s))
        self._done.append(group.result())

    # ------------------------------------------------------------------------------ watching

    def _poll(self, end: float | None) -> None:
        """Wait for replies, deaths, deadlines or the sampling tick; handle them; schedule."""
        now = time.monotonic()
        deadlines = [r.deadline for r in self._running.values()] + [g.deadline for g in self._groups.values()]
        wake = min([self._next_sample, *(d for d in deadlines if d is not None)])
        if end is not None:
            wake = min(wake, end)
        watch: dict[Any, _Running] = {}
        for run in self._running.values():
            watch[run.worker.conn] = run
            watch[run.worker.proc.sentinel] = run
        ranks = {ready: (group, rank) for group in self._groups.values() for ready, rank in group.waitables()}
        handled: set[str] = set()
        ready_ranks: dict[str, set[int]] = {}
        for ready in wait_ready([*watch, *ranks], timeout=max(0.0, wake - now)):
            if ready in ranks:
                group, rank = ranks[ready]
                ready_ranks.setdefault(group.task.id, set()).add(rank)
                continue
            run = watch[ready]
            if run.task.id not in handled:
                handled.add(run.task.id)
                self._collect(run)
        for task_id, indexes in ready_ranks.items():
            self._collect_group(self._groups[task_id], indexes)
        self._check_deadlines()
        if time.monotonic() >= self._next_sample:
            self._sample()
            self._next_sample = time.monotonic() + SAMPLE_S
        self._schedule()

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for run in list(self._running.values()):
            if run.deadline is not None and now >= run.deadline:
                self._timeout(run)
        for group in list(self._groups.values()):
            if group.deadline is not None and now >= group.deadline:
                group.time_out()
                self._end_group(group)

    def _collect_group(self, group: GroupRun, ranks: set[int]) -> None:
        """Read the ranks of a group that became ready; report the group once it has ended."""
        group.collect(ranks)
        if group.done:
            self._end_group(group)

    def _collect(self, run: _Running) -> None:
        """Read the reply of a worker that became readable, or record that it died."""
        try:
            status, value, error, trace, cpu_s, wall_s, rss, peak = run.worker.receive()
        except (EOFError, OSError):
            self._crashed(run)
            return
        outcome = Outcome.OK if status == "ok" else Outcome.ERROR
        max_rss = max(run.max_rss, rss, peak)
        self._finish(run, True, outcome, value, error, trace, cpu_s=cpu_s, wall_s=wall_s, max_rss=max_rss)

    def _crashed(self, run: _Running) -> None:
        worker = run.worker
        how = worker.death()
        if worker.replied:
            error = f"Task {_name(run.task)!r}: its worker process {worker.name} died ({how}) running it."
        else:
            error = (
                f"Task {_name(run.task)!r}: its worker process {worker.name} died ({how}) while starting or "
                "running it; if it never ran, see the worker's stderr (a driver script must guard its "
                "entry point with `if __name__ == '__main__':`)."
            )
        self._finish(run, False, Outcome.CRASHED, error=error)

    def _timeout(self, run: _Running) -> None:
        limit = run.task.timeout_s
        message = f"Task {_name(run.task)!r} ran longer than its timeout of {limit:.1f} s and was stopped."
        self._kill(run, Outcome.TIMEOUT, message)

    def _sample(self) -> None:
        """Record each running worker's memory; stop tasks (and groups) over their memory limit."""
        for group in list(self._groups.values()):
            group.sample()
            if group.done:
                self._end_group(group)
        for run in list(self._running.values()):
            rss = run.worker.rss()
            run.max_rss = max(run.max_rss, rss)
            limit = run.task.resources.memory
            if limit is not None and rss > limit:
                message = (
                    f"Task {_name(run.task)!r} used {_size(rss)} of memory, over its limit of "
                    f"{_size(limit)}, and was stopped; raise its memory or make it use less."
                )
                self._kill(run, Outcome.MEMORY, message)

    def _kill(self, run: _Running, outcome: Outcome, message: str) -> None:
        run.max_rss = max(run.max_rss, run.worker.rss())
        cpu_s = run.worker.cpu_since_mark()
        run.worker.kill()
        self._finish(run, False, outcome, error=message, cpu_s=cpu_s)

    def _finish(
        self,
        run: _Running,
        worker_ok: bool,
        outcome: Outcome,
        value: Any = None,
        error: str | None = None,
        trace: str | None = None,
        *,
        cpu_s: float = 0.0,
        wall_s: float | None = None,
        max_rss: int | None = None,
    ) -> None:
        self._release(run, worker_ok)
        self._done.append(
            TaskResult(
                task_id=run.task.id,
                outcome=outcome,
                value=value,
                error=error,
                traceback=trace,
                gpus=run.gpus,
                max_rss=run.max_rss if max_rss is None else max_rss,
                cpu_s=cpu_s,
                wall_s=time.monotonic() - run.started if wall_s is None else wall_s,
                worker=run.worker.name,
            )
        )


# ---------------------------------------------------------------------------------- helpers


def _check_config(cpus: float, memory: int, gpus: tuple[int, ...], workers: int) -> None:
    if not cpus > 0:
        raise ConfigError(f"LocalExecutor(cpus={cpus:g}) must be positive.")
    if memory <= 0:
        raise ConfigError(f"LocalExecutor(memory={memory}) must be a positive number of bytes.")
    if workers < 1:
        raise ConfigError(f"LocalExecutor(workers={workers}) must be at least 1.")
    if len(set(gpus)) != len(gpus) or any(not isinstance(g, int) or g < 0 for g in gpus):
        raise ConfigError(f"LocalExecutor(gpus={list(gpus)}) must be distinct non-negative GPU ids.")


def _name(task: Task) -> str:
    return task.label or task.id


def _kind(task: Task) -> str:
    return "Group" if task.workers > 1 else "Task"


def _size(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB"


def _stop_workers(workers: dict[int, WorkerHandle]) -> None:
    stop_all(list(workers.values()))
    workers.clear()
