"""The process pool: chunks scored in spawned worker processes that write their own part files.

Each worker loads the model once, from its verified local package, without the store. At most two
chunks per worker are in flight, so memory stays bounded. A script calling `batch_predict` with
`workers` > 1 needs the usual `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from plinth.core.entities import ModelVersion
from plinth.core.errors import ModelFailed
from plinth.registry.models import open_model
from plinth.registry.package import Package
from plinth.serving.batch.combine import Combiner
from plinth.serving.batch.scorer import Chunk, Job, Scorer, Workers
from plinth.serving.batch.staging import Staging, write_part

if TYPE_CHECKING:
    import pyarrow as pa

_worker_scorer: Scorer | None = None


def score_in_pool(
    job: Job,
    spec: Workers,
    stage: Staging,
    todo: Iterable[Chunk],
    scored: Callable[[int], None],
    combiner: Combiner,
) -> None:
    """Score chunks in `spec.count` spawned processes, at most two chunks each in flight.

    Workers write the part files; `combiner` appends them to the output in chunk order and
    `scored(rows)` is called as each chunk is done.
    """
    context = multiprocessing.get_context("spawn")  # no fork of a process running threads
    initargs = (job, spec.version, spec.package)
    pool = ProcessPoolExecutor(spec.count, mp_context=context, initializer=_init_worker, initargs=initargs)
    running: dict[Future[int], int] = {}
    try:
        for index, table, _frame in todo:
            running[pool.submit(_work, index, table, stage.part(index))] = index
            if len(running) >= 2 * spec.count:
                _collect(running, scored, combiner, FIRST_COMPLETED)
        _collect(running, scored, combiner, ALL_COMPLETED)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _init_worker(job: Job, mv: ModelVersion, package: Package) -> None:
    global _worker_scorer
    _worker_scorer = Scorer(job, open_model(mv, package))


def _work(index: int, table: pa.Table, path: str) -> int:
    """In a worker: score chunk `index` and write its part file; returns its row count."""
    assert _worker_scorer is not None
    write_part(_worker_scorer.score(index, table), path)
    return table.num_rows


def _collect(
    running: dict[Future[int], int],
    scored: Callable[[int], None],
    combiner: Combiner,
    when: str,
) -> None:
    done, _rest = wait(running, return_when=when)
    for future in sorted(done, key=running.__getitem__):
        try:
            rows = future.result()
        except BrokenProcessPool as exc:
            raise ModelFailed(
                "A worker process failed to start or died while scoring (out of memory, or killed); "
                "run the same call again to resume, with fewer workers or a smaller batch size."
            ) from exc
        combiner.add(running.pop(future))
        scored(rows)
