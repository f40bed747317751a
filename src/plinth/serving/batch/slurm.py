"""Batch scoring in SLURM jobs: chunks are read here, scored in jobs, and written here.

Each chunk becomes a task of a `SlurmExecutor` of its own (jobs named `plinth-batch`), which
packs the chunks in flight into job arrays. The model package is materialized once in the
executor's work folder, which the nodes share; a job loads it on its first chunk and keeps it for
the next ones it runs. A chunk's output comes back through that folder and this process hands it
to the combiner, so part files, resume and lineage are exactly those of the local path, and the
jobs need no access to the stores or to the input's file system.

At most two chunks per CPU of the partition are in flight, so memory stays bounded. A chunk whose
job the scheduler ended (node failure, preemption, out of memory) is scored again, up to
`SYSTEM_RETRIES` times; a chunk the model fails on raises the same error as in the local path.
When scoring stops early (an error, Ctrl-C), the executor's shutdown cancels the jobs still queued
or running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plinth.compute.base import Outcome, Resources, Task, TaskResult
from plinth.compute.slurm import SlurmExecutor, SlurmOptions
from plinth.core.entities import ModelVersion
from plinth.core.errors import InvalidInput, ModelFailed
from plinth.core.ids import new_id
from plinth.registry.models import open_model
from plinth.registry.package import Package
from plinth.serving.batch.combine import Combiner
from plinth.serving.batch.scorer import Chunk, Job, Scorer, Workers

if TYPE_CHECKING:
    import pyarrow as pa

SYSTEM_RETRIES = 3
"""Times a chunk is scored again after the scheduler ended its job (node lost, preempted, memory)."""
JOB_NAME = "plinth-batch"
_RETRIED = (Outcome.CRASHED, Outcome.MEMORY)
_scorers: dict[tuple[str, Job], Scorer] = {}


@dataclass(frozen=True)
class ChunkFailed:
    """A chunk's scoring raised a plinth error in its job: which one, and its message."""

    kind: str
    message: str

    def error(self) -> InvalidInput | ModelFailed:
        """The error as this process raises it: the same class as in the local path."""
        return InvalidInput(self.message) if self.kind == "InvalidInput" else ModelFailed(self.message)


def score_on_slurm(
    job: Job,
    spec: Workers,
    todo: Iterable[Chunk],
    scored: Callable[[int], None],
    combiner: Combiner,
) -> None:
    """Score every chunk of `todo` in SLURM jobs; hand each output to `combiner` as it arrives."""
    executor = SlurmExecutor(SlurmOptions.from_env(), job_name=JOB_NAME)
    flight = _Flight(executor, job, spec)
    try:
        limit = max(2, 2 * int(executor.capacity().cpu))
        for index, table, _frame in todo:
            flight.send(index, table, 1)
            while len(flight.tasks) >= limit:
                flight.collect(combiner, scored)
        while flight.tasks:
            flight.collect(combiner, scored)
    finally:  # after a failure: cancel the jobs still queued or running
        executor.shutdown()


class _Flight:
    """The chunks in flight on one executor, by task id, and how their results are taken."""

    def __init__(self, executor: SlurmExecutor, job: Job, spec: Workers) -> None:
        self.executor = executor
        self.job = job
        self.spec = spec
        self.prefix = new_id()
        self.tasks: dict[str, tuple[int, pa.Table, int]] = {}  # task id -> (index, table, attempt)

    def send(self, index: int, table: pa.Table, attempt: int) -> None:
        task = Task(
            id=f"{self.prefix}:{index}:{attempt}",
            fn=score_chunk,
            args=(self.job, self.spec.version, self.spec.package, index, table),
            resources=Resources(cpu=1),
            label=f"{self.spec.version.ref} chunk {index}",
        )
        self.tasks[task.id] = (index, table, attempt)
        self.executor.submit(task)

    def collect(self, combiner: Combiner, scored: Callable[[int], None]) -> None:
        """Wait for some chunks to end; hand their outputs on, score lost ones again."""
        for result in self.executor.wait(timeout=1.0):
            found = self.tasks.pop(result.task_id, None)
            if found is None:
                continue
            index, table, attempt = found
            if result.outcome in _RETRIED and attempt <= SYSTEM_RETRIES:
                self.send(index, table, attempt + 1)
                continue
            combiner.add(index, self._output(result, index, attempt))
            scored(table.num_rows)

    def _output(self, result: TaskResult, index: int, attempt: int) -> pa.Table:
        """The chunk's output table, or the error that ended it."""
        if result.ok:
            if isinstance(result.value, ChunkFailed):
                raise result.value.error()
            return result.value
        job = self.executor.job_of(result.task_id) or "?"
        log = self.executor.log_path(result.task_id)
        where = f"SLURM job {job}" + (f" (its log: {log})" if log else "")
        if result.outcome in _RETRIED:
            raise ModelFailed(
                f"The scheduler ended chunk {index}'s job {attempt} times ({result.error}); last {where}. "
                "Run the same call again to resume from the chunks already written."
            )
        raise ModelFailed(
            f"Scoring chunk {index} in {where} ended as {result.outcome.value}: {result.error}. "
            "Run the same call again to resume from the chunks already written."
        )


def score_chunk(
    job: Job, mv: ModelVersion, package: Package, index: int, table: pa.Table
) -> pa.Table | ChunkFailed:
    """In a job: score chunk `index` with the model (loaded on this process's first chunk)."""
    try:
        scorer = _scorers.get((mv.id, job))
        if scorer is None:
            scorer = _scorers[(mv.id, job)] = Scorer(job, open_model(mv, package))
        return scorer.score(index, table)
    except (InvalidInput, ModelFailed) as exc:
        return ChunkFailed(type(exc).__name__, str(exc))
