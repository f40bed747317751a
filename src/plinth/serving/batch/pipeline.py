"""The scoring pipeline: read, score and write overlap in three stages.

A thread reads the next chunks (and converts them to pandas), this thread, worker processes,
Ray tasks or SLURM jobs score them, and the combiner's thread writes parts and the output. On a machine with
spare cores the wall time is about that of the model's own predict calls. Chunks whose part is
already staged are counted and combined, never scored again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from plinth.core.errors import InvalidInput
from plinth.registry.loaded import Model
from plinth.serving.batch.combine import Combiner
from plinth.serving.batch.pool import score_in_pool
from plinth.serving.batch.prefetch import Prefetch
from plinth.serving.batch.ray import score_on_ray
from plinth.serving.batch.reading import chunks
from plinth.serving.batch.scorer import Chunk, Job, Scorer, Workers, features
from plinth.serving.batch.slurm import score_on_slurm
from plinth.serving.batch.staging import Staging
from plinth.tracking.progress import progress


@dataclass
class Counts:
    """Rows and chunks done so far."""

    rows: int = 0
    rows_scored: int = 0
    chunks: int = 0
    skipped: int = 0
    seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter, repr=False)


def score_all(
    job: Job,
    stage: Staging,
    model: Model,
    spec: Workers | None,
    total: int | None,
    show: bool,
    output: str,
) -> Counts:
    """Score every chunk not yet in `stage` and build `output` from all the parts.

    `spec` None scores in this process; else in `spec.count` worker processes, on Ray or on SLURM.
    `total` (rows, None when unknown) sizes the progress bar, drawn when `show` is true.
    """
    counts = Counts()
    combiner = Combiner(stage, output)
    prefetched = Prefetch(_prepared(job, stage.done, convert=spec is None))
    try:
        with progress(f"Scoring with {job.ref}", total, unit="rows", show=show) as advance:

            def scored(rows: int) -> None:
                counts.rows_scored += rows
                advance(rows)

            todo = _skip_done(prefetched, counts, advance, combiner)
            if spec is None:
                scorer = Scorer(job, model)
                for index, table, frame in todo:
                    combiner.add(index, scorer.score(index, table, frame))
                    scored(table.num_rows)
            elif spec.executor == "ray":
                score_on_ray(job, spec, todo, scored, combiner)
            elif spec.executor == "slurm":
                score_on_slurm(job, spec, todo, scored, combiner)
            else:
                score_in_pool(job, spec, stage, todo, scored, combiner)
        if counts.chunks == 0:
            raise InvalidInput(f"Input {job.source.path} holds no rows.")
        combiner.finish(counts.chunks)
    except BaseException:
        combiner.abort()
        raise
    finally:
        prefetched.close()
    counts.seconds = time.perf_counter() - counts.started
    return counts


def _prepared(job: Job, done: set[int], convert: bool) -> Iterator[Chunk]:
    """Every chunk of the input; the ones still to score come with their features as pandas."""
    for index, table in enumerate(chunks(job.source, job.batch_size)):
        yield index, table, (features(table, job) if convert and index not in done else None)


def _skip_done(
    todo: Iterable[Chunk],
    counts: Counts,
    advance: Callable[[int], None],
    combiner: Combiner,
) -> Iterator[Chunk]:
    """The chunks whose part is not written yet; counts every chunk, hands done ones to `combiner`."""
    for index, table, frame in todo:
        counts.chunks += 1
        counts.rows += table.num_rows
        if index in combiner.done:
            counts.skipped += 1
            combiner.add(index)
            advance(table.num_rows)
            continue
        yield index, table, frame
