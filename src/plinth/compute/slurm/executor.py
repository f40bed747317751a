"""`SlurmExecutor`: runs tasks as sbatch jobs on a SLURM cluster, fan-outs packed into job arrays.

Submitted tasks reach SLURM when `wait` is next called (or when `FLUSH_AT` are waiting). Tasks
with the same ask (resources, timeout, options) go in one sbatch call: a job, or a job array
with an element per pack. Tasks with no timeout or memory limit are packed, up to `pack` per
element while that still leaves two elements per slot of the partition, so a 1,000-way fan-out
of small steps is one sbatch call of a few hundred elements at most, not 1,000 jobs.

Everything travels through the work folder, which the nodes must see: a batch folder per sbatch
call (the batch script and a pack file per element, holding the tasks' encoded requests),
`results/` (one file per task, written by `worker.py` when the task ends), `logs/` (each job's
output) and `journal.jsonl` (task -> job). `wait` lists `results/` every `RESULT_POLL_S` and
asks squeue (then scontrol for ended jobs) every `STATE_POLL_S` about jobs with tasks still
missing results; a job that ended without them was stopped by SLURM or from outside, and
`outcomes.py` maps its state. A packed element whose worker died runs its remaining tasks
again, one per job, so a task that crashes its worker takes no other task's attempt with it.
A group (`Task.workers` > 1) is a job of its own, one SLURM task per rank; its ranks report
into `results/<task>.ranks/` and `groups.py` folds the reports into the task's result.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import shutil
import time
import weakref
from dataclasses import dataclass, field, replace

from plinth.compute.base import Executor, Outcome, Resources, Task, TaskResult, check_new_task
from plinth.compute.slurm import batches, cluster, groups, outcomes
from plinth.compute.slurm import jobs as slurm
from plinth.compute.slurm.asks import group_flags, sbatch_flags
from plinth.compute.slurm.environment import encode_request, sbatch_env, secrets_of
from plinth.compute.slurm.journal import Entry, Journal
from plinth.compute.slurm.options import SlurmOptions
from plinth.compute.slurm.partitions import Partitions
from plinth.core.errors import ConfigError

__all__ = ["PACK", "SlurmExecutor", "SlurmOptions"]

log = logging.getLogger("plinth.compute")

PACK = 8
"""Default most tasks per job or array element (1 turns packing off)."""
FLUSH_AT = 1024
"""Submitted tasks handed to SLURM at once without waiting for the next `wait`."""
MAX_ARRAY = 1000
"""Most elements per job array (SLURM's default MaxArraySize is 1001)."""
RESULT_POLL_S = 0.2
STATE_POLL_S = 2.0
_ENDED_UNSURE = ("COMPLETED", "FAILED")  # results may trail the state on a shared filesystem

_Item = tuple[Task, bytes]  # a task and its encoded request


@dataclass(eq=False)
class _Element:
    """One job or array element and the tasks it runs (several when packed)."""

    job_id: str
    items: list[_Item]
    log: str
    batch: str | None  # its batch folder; None when adopted from an earlier executor
    live: set[str] = field(default_factory=set)  # ids of its tasks still waiting for a result
    ended_polls: int = 0
    ranks: str | None = None  # a group's folder of rank reports; None for other jobs
    reports: groups.Reports | None = None  # a group's reports read so far

    @property
    def base(self) -> str:
        return self.job_id.split("_", 1)[0]


class SlurmExecutor(Executor):
    """Runs tasks as SLURM jobs; small fan-outs are packed into one job array.

    Args:
        options: partition, account, QOS, constraint, more sbatch flags and the work folder
            (default `SlurmOptions.from_env()`); a task's `scheduler["slurm"]` goes over them.
        pack: most tasks one job or array element runs (see the module docstring); 1 for one each.
        job_name: the jobs' name in squeue (`plinth cluster status` lists jobs named plinth*).

    Raises:
        ConfigError: SLURM's commands are missing or its controller does not answer.

    Example:
        with SlurmExecutor(SlurmOptions(partition="gpu")) as ex:
            ex.submit(Task("t1", sum, ([1, 2],), Resources(cpu=2, gpu=1)))
            [result] = ex.wait()
    """

    def __init__(
        self, options: SlurmOptions | None = None, *, pack: int = PACK, job_name: str = "plinth"
    ) -> None:
        cluster.require()
        options = options or SlurmOptions.from_env()
        self.options = replace(options, work_dir=options.resolved_work_dir())
        self.work_dir = self.options.resolved_work_dir()
        self.job_name = job_name
        self._pack = max(1, int(pack))
        self._cwd = os.getcwd()
        self._results = os.path.join(self.work_dir, "results")
        self._logs = os.path.join(self.work_dir, "logs")
        self._batch_root = os.path.join(self.work_dir, "batches")
        for folder in (self.work_dir, self._results, self._logs, self._batch_root):
            os.makedirs(folder, mode=0o700, exist_ok=True)
        self._journal = Journal(self.work_dir)
        self._pending: dict[str, _Item] = {}
        self._elements: dict[str, _Element] = {}
        self._by_id: dict[str, _Element] = {}
        self._batches: dict[str, set[str]] = {}  # batch folder -> its elements still running tasks
        self._discard: set[str] = set()  # cancelled tasks whose result files are dropped
        self._solo: set[str] = set()  # tasks that run alone from now on
        self._done: list[TaskResult] = []
        self._partitions = Partitions()
        self._queue_cache: dict[str, tuple[float, dict[str, slurm.JobState]]] = {}
        self._checked_at = time.monotonic()
        self._closed = False
        atexit.register(_shutdown_ref, weakref.ref(self))

    # ------------------------------------------------------------------------------ interface

    def capacity(self) -> Resources:
        """Everything the partition's nodes have, together."""
        nodes = self._partitions.nodes(self.options.partition, refresh=True)
        return Resources(
            cpu=float(sum(n.cpus for n in nodes)),
            memory=sum(n.memory for n in nodes),
            gpu=sum(n.gpus for n in nodes),
        )

    def submit(self, task: Task) -> None:
        """Queue `task` for SLURM.

        Raises:
            ResourceError: no node of its partition could ever run it (with the numbers).
            InvalidInput: its `scheduler["slurm"]` has unknown keys, or check_new_task refuses it.
            ConfigError: its partition does not exist, or SLURM cannot be reached.
        """
        check_new_task(task, closed=self._closed, known=task.id in self._by_id or task.id in self._pending)
        options = self._options_of(task)
        self._partitions.check_fits(task, options.partition)
        request = encode_request(task)
        if isinstance(request, TaskResult):
            self._done.append(request)
            return
        self._pending[task.id] = (task, request)
        if len(self._pending) >= FLUSH_AT:
            self._flush()

    def wait(self, timeout: float | None = None) -> list[TaskResult]:
        """Block until at least one task ends (or `timeout` seconds pass); return the ended ones.

        Raises:
            ConfigError: sbatch refused the jobs (the tasks stay queued) or SLURM cannot be reached.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._flush()  # also tasks of a packed job whose worker died, to run again alone
            self._collect()
            if self._by_id and not self._done and time.monotonic() - self._checked_at >= STATE_POLL_S:
                self._check_jobs()
            if self._done or not self._by_id:
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            time.sleep(RESULT_POLL_S if deadline is None else min(RESULT_POLL_S, deadline - now))
        done, self._done = self._done, []
        return done

    def cancel(self, task_id: str) -> None:
        """Drop a queued task or stop a running one (scancel its job once no task of it is wanted);
        it ends CANCELLED."""
        item = self._pending.pop(task_id, None)
        element = self._by_id.pop(task_id, None)
        if element is not None:
            item = next(i for i in element.items if i[0].id == task_id)
            element.live.discard(task_id)
            self._discard.add(task_id)
            if not element.live:
                self._scancel([element.job_id])
                self._finish(element)
        if item is not None:
            message = f"Task {outcomes.name(item[0])!r} was cancelled."
            self._done.append(TaskResult(task_id, Outcome.CANCELLED, error=message))

    @property
    def closed(self) -> bool:
        """True once `shutdown` ran: the executor takes no more tasks."""
        return self._closed

    def running(self) -> int:
        """Tasks queued or running."""
        return len(self._pending) + len(self._by_id)

    def shutdown(self) -> None:
        """Cancel every task and scancel every job of this executor still pending or running."""
        if self._closed:
            return
        self._closed = True
        jobs = {e.base if e.batch is not None else e.job_id for e in self._elements.values()}
        ranks = [e.ranks for e in self._elements.values() if e.ranks is not None]
        self._pending.clear()
        self._by_id.clear()
        self._elements.clear()
        self._done.clear()
        self._scancel(jobs)
        for folder in ranks:
            shutil.rmtree(folder, ignore_errors=True)
        for batch in self._batches:
            shutil.rmtree(batch, ignore_errors=True)
        self._batches.clear()

    def job_of(self, task_id: str) -> str | None:
        """The job ("123", or "123_4" for an array element) running `task_id`, once submitted."""
        element = self._by_id.get(task_id)
        if element is not None:
            return element.job_id
        entry = self._journal.find(task_id)
        return entry.job_id if entry is not None else None

    def log_path(self, task_id: str) -> str | None:
        """The stdout/stderr file of the job that runs (or ran) `task_id`, once submitted."""
        element = self._by_id.get(task_id)
        if element is not None:
            return element.log
        entry = self._journal.find(task_id)
        return entry.log if entry is not None else None

    def adopt(self, task: Task) -> bool:
        """Track `task` when this work folder's journal shows it in a job still pending or running,
        or with its result written; its result then arrives from `wait`. False: submit it."""
        check_new_task(task, closed=self._closed, known=task.id in self._by_id or task.id in self._pending)
        entry = self._journal.find(task.id)
        if entry is None:
            return False
        ranks = groups.ranks_dir(self._results, task.id) if task.workers > 1 else None
        if ranks is not None:
            has_result = groups.complete(groups.read(ranks), task.workers)
        else:
            has_result = os.path.exists(os.path.join(self._results, outcomes.result_name(task.id)))
        if not has_result:
            state = self._queued(entry.job_id.split("_", 1)[0]).get(entry.job_id)
            if state is None or not state.live:
                return False
        request = encode_request(task)
        element = self._elements.get(entry.job_id)
        if element is None:
            element = self._elements[entry.job_id] = _Element(entry.job_id, [], entry.log, None, ranks=ranks)
        element.items.append((task, request if isinstance(request, bytes) else b""))
        element.live.add(task.id)
        self._by_id[task.id] = element
        return True

    # ------------------------------------------------------------------------------ sending

    def _options_of(self, task: Task) -> SlurmOptions:
        step = task.scheduler.get("slurm") if task.scheduler else None
        return self.options.merged(step) if step else self.options

    def _flush(self) -> None:
        """Hand every queued task to SLURM: one sbatch call per distinct ask."""
        if not self._pending:
            return
        asks: dict[
            tuple[Resources, float | None, SlurmOptions, tuple[tuple[str, str], ...]], list[_Item]
        ] = {}
        env = sbatch_env()
        for item in list(self._pending.values()):
            task = item[0]
            secrets = secrets_of(task)
            if task.workers > 1:  # a group is a job of its own
                self._send_group(item, self._options_of(task), {**env, **dict(secrets)})
                del self._pending[task.id]
                continue
            key = (task.resources, task.timeout_s, self._options_of(task), secrets)
            asks.setdefault(key, []).append(item)
        for (res, timeout_s, options, secrets), items in asks.items():
            packs = self._packs(res, options, items)
            for start in range(0, len(packs), MAX_ARRAY):
                chunk = packs[start : start + MAX_ARRAY]
                self._send(res, timeout_s, options, chunk, {**env, **dict(secrets)})
                for pack in chunk:
                    for task, _ in pack:
                        del self._pending[task.id]

    def _packs(self, res: Resources, options: SlurmOptions, items: list[_Item]) -> list[list[_Item]]:
        """Items in packs: those without limits up to the pack size, the others one each."""
        packable: list[_Item] = []
        alone: list[list[_Item]] = []
        for item in items:
            task = item[0]
            if task.timeout_s is None and res.memory is None and task.id not in self._solo:
                packable.append(item)
            else:
                alone.append([item])
        if not packable:
            return alone
        nodes = self._partitions.nodes(options.partition)
        size = batches.pack_size(res, nodes, self._pack, len(packable))
        return [packable[k : k + size] for k in range(0, len(packable), size)] + alone

    def _send(
        self,
        res: Resources,
        timeout_s: float | None,
        options: SlurmOptions,
        packs: list[list[_Item]],
        env: dict[str, str],
    ) -> None:
        """One sbatch call: a job for one pack, a job array for several."""
        files = [batches.pack(pack, self._cwd, self._results, timeout_s, res.memory) for pack in packs]
        batch, script = batches.create(self._batch_root, files, self._cwd)
        array = len(packs) > 1
        flags = sbatch_flags(res, timeout_s, options, self._partitions.memory_per_cpu(res, options.partition))
        if array:
            flags.append(f"--array=0-{len(packs) - 1}")
        job = self._sbatch(batch, script, flags, env, array)
        self._track(job, batch, packs, array)

    def _send_group(self, item: _Item, options: SlurmOptions, env: dict[str, str]) -> None:
        """One sbatch call for a group: a job of one task per rank (see `groups.py`)."""
        task, res = item[0], item[0].resources
        ranks = groups.ranks_dir(self._results, task.id)
        os.makedirs(ranks, mode=0o700, exist_ok=True)
        pack = batches.pack([item], self._cwd, self._results, task.timeout_s, res.memory)
        pack["tasks"][0].update(gpu=res.gpu, ranks=ranks)
        script = functools.partial(groups.script_text, cwd=self._cwd, task=task, ranks=ranks)
        batch, path = batches.create(self._batch_root, [pack], self._cwd, script)
        per_cpu = self._partitions.memory_per_cpu(res, options.partition)
        try:
            job = self._sbatch(
                batch, path, group_flags(res, task.workers, task.timeout_s, options, per_cpu), env
            )
        except BaseException:
            shutil.rmtree(ranks, ignore_errors=True)
            raise
        self._track(job, batch, [[item]], False)
        self._elements[job].ranks = ranks

    def _sbatch(
        self, batch: str, script: str, flags: list[str], env: dict[str, str], array: bool = False
    ) -> str:
        """Submit a batch folder's script with `flags` and the job name and log; the job id."""
        pattern = f"{self.job_name}-%A_%a.out" if array else f"{self.job_name}-%j.out"
        flags = [
            *flags,
            f"--job-name={self.job_name}",
            "--export=ALL",
            f"--output={os.path.join(self._logs, pattern)}",
        ]
        try:
            return slurm.submit(script, flags, env)
        except BaseException:
            shutil.rmtree(batch, ignore_errors=True)
            raise

    def _track(self, job: str, batch: str, packs: list[list[_Item]], array: bool) -> None:
        entries = []
        self._batches[batch] = set()
        for index, pack in enumerate(packs):
            job_id = f"{job}_{index}" if array else job
            element = _Element(job_id, pack, os.path.join(self._logs, f"{self.job_name}-{job_id}.out"), batch)
            element.live.update(t.id for t, _ in pack)
            self._elements[job_id] = element
            self._batches[batch].add(job_id)
            for task, _ in pack:
                self._by_id[task.id] = element
                entries.append(Entry(task.id, job_id, element.log))
        self._journal.append(entries)

    # ------------------------------------------------------------------------------ results

    def _collect(self) -> None:
        """Take the result files of tracked tasks (one listdir, then only the files that are ours)."""
        try:
            names = os.listdir(self._results)
        except FileNotFoundError:
            return
        for name in names:
            task_id = outcomes.task_of(name)
            if task_id is None:
                continue
            path = os.path.join(self._results, name)
            if task_id in self._discard:
                self._discard.discard(task_id)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            element = self._by_id.get(task_id)
            if element is None:
                continue
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
                os.unlink(path)
            except OSError:
                continue
            self._settle(element, outcomes.from_file(task_id, data))
        self._collect_groups()

    def _collect_groups(self) -> None:
        """Read the reports of running groups; settle those whose reports say how they ended."""
        for element in [e for e in self._elements.values() if e.ranks is not None and e.live]:
            task = element.items[0][0]
            element.reports = groups.read(str(element.ranks), element.reports)
            if groups.decided(element.reports, task.workers):
                self._settle_group(element)

    def _settle_group(self, element: _Element, state: str | None = None) -> None:
        """Fold a group's reports (and its job's final `state`, once it ended) into its result."""
        task = element.items[0][0]
        reports = groups.read(str(element.ranks), element.reports)
        self._settle(element, groups.fold(task, element.job_id, reports, state, element.log))

    def _settle(self, element: _Element, result: TaskResult) -> None:
        self._by_id.pop(result.task_id, None)
        element.live.discard(result.task_id)
        self._done.append(result)
        if not element.live:
            self._finish(element)

    def _finish(self, element: _Element) -> None:
        """An element has no task left to report: forget it, and its batch folder once all are done."""
        self._elements.pop(element.job_id, None)
        if element.ranks is not None:
            shutil.rmtree(element.ranks, ignore_errors=True)
        if element.batch is None or element.batch not in self._batches:
            return
        left = self._batches[element.batch]
        left.discard(element.job_id)
        if not left:
            del self._batches[element.batch]
            shutil.rmtree(element.batch, ignore_errors=True)

    def _check_jobs(self) -> None:
        """Ask SLURM about jobs with tasks still missing results; settle the tasks of ended ones."""
        self._checked_at = time.monotonic()
        ids = {e.job_id for e in self._elements.values() if e.live}
        try:
            queued = slurm.queue({i.split("_", 1)[0] for i in ids})
            gone = [i for i in ids if i not in queued or not queued[i].live]
            final: dict[str, slurm.JobState] = {}
            for base in {i.split("_", 1)[0] for i in gone}:
                final.update(slurm.show_job(base))
        except ConfigError as exc:  # the controller may be back by the next poll
            log.warning("Could not ask SLURM about plinth's jobs (trying again): %s", exc)
            return
        if not gone:
            return
        self._collect()  # results written just before their job ended
        for job_id in gone:
            element = self._elements.get(job_id)
            state = final.get(job_id)
            if element is None or not element.live or (state is not None and state.live):
                continue
            name = state.state if state is not None else ""
            if name in _ENDED_UNSURE and element.ended_polls == 0:
                element.ended_polls += 1
                continue
            self._ended(element, name)

    def _ended(self, element: _Element, state: str) -> None:
        """Settle the tasks an ended job left without results."""
        if element.ranks is not None:
            self._settle_group(element, state)
            return
        left = [item for item in element.items if item[0].id in element.live]
        rerun = len(element.items) > 1 and state in (*_ENDED_UNSURE, "") and all(r for _, r in left)
        for task, request in left:
            if rerun:  # a packed worker died: its tasks left run again, each alone
                self._by_id.pop(task.id, None)
                element.live.discard(task.id)
                self._solo.add(task.id)
                self._pending[task.id] = (task, request)
            else:
                self._settle(element, outcomes.from_state(task, element.job_id, state, element.log))
        if rerun:
            self._finish(element)

    # ------------------------------------------------------------------------------ cluster

    def _queued(self, base: str) -> dict[str, slurm.JobState]:
        """squeue's view of one job, reused for a second (adopting many tasks of one array)."""
        now = time.monotonic()
        found = self._queue_cache.get(base)
        if found is None or now - found[0] > 1.0:
            found = self._queue_cache[base] = (now, slurm.queue([base]))
        return found[1]

    def _scancel(self, job_ids: set[str] | list[str]) -> None:
        try:
            slurm.cancel(job_ids)
        except ConfigError as exc:
            log.warning("Could not cancel SLURM jobs %s: %s", ", ".join(sorted(job_ids)), exc)


def _shutdown_ref(ref: weakref.ref[SlurmExecutor]) -> None:
    executor = ref()
    if executor is not None:
        try:
            executor.shutdown()
        except Exception:  # at exit the cluster may be gone already
            pass
