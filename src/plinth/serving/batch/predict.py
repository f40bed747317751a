"""`batch_predict`: its arguments checked before any work, then one tracked, resumable run."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plinth.core.entities import ModelVersion
from plinth.core.errors import InvalidInput
from plinth.registry.loaded import Model
from plinth.registry.models import load_version, resolve
from plinth.serving.batch.hashing import Hasher
from plinth.serving.batch.inputs import Input, check_output, open_input
from plinth.serving.batch.lineage import record
from plinth.serving.batch.pipeline import score_all
from plinth.serving.batch.reading import inspect
from plinth.serving.batch.scorer import RESERVED, Job, worker_spec
from plinth.serving.batch.staging import Staging, staging_key
from plinth.tracking.context import backend
from plinth.tracking.run import start_run

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_BATCH_SIZE = 100_000
EXPERIMENT = "batch-predict"
EXECUTORS = ("local", "ray", "slurm")


@dataclass(frozen=True)
class BatchResult:
    """What one `batch_predict` call did."""

    output: str
    rows: int
    chunks: int
    chunks_skipped: int
    model_version: str
    run_id: str
    input_digest: str
    output_digest: str
    seconds: float

    @property
    def rows_per_s(self) -> float:
        """Rows written per second of this call (skipped chunks included)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def batch_predict(
    model_ref: str,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    id_columns: str | Sequence[str] | None = None,
    workers: int = 1,
    proba: bool = False,
    store_output: bool = True,
    progress: bool = True,
    executor: str = "local",
    ray_address: str | None = None,
) -> BatchResult:
    """Score a large Parquet or CSV file (or a folder of them) in chunks, resumably, as a tracked run.

    Args:
        model_ref: 'name', 'name/3' or 'name@alias'.
        input: a .parquet/.pq or .csv file, or a folder of such files (read in path order;
            hidden and `_`-prefixed files such as `_SUCCESS` are ignored).
        output: the .parquet file to write (replaced atomically when done).
        batch_size: rows per chunk; each chunk is validated, scored and written on its own.
        id_columns: input columns copied into the output (and not passed to the model).
        workers: processes scoring chunks in parallel (1: score in this process).
        proba: write class probabilities (`prediction_0..k`) instead of predictions.
        store_output: also store the output as the run's artifact `predictions.parquet`.
        progress: show a progress bar with rows/s: on stderr when it is a terminal; in a notebook
            its own bar (a widget, or a line of text where ipywidgets is not installed).
        executor: "local" (this process, or `workers` processes), "ray" (Ray tasks across the
            cluster at `ray_address`: "auto", "HOST:PORT", "ray://HOST:10001"; default RAY_ADDRESS)
            or "slurm" (SLURM jobs, as the PLINTH_SLURM_* settings say; the model and the chunks
            travel through PLINTH_SLURM_WORKDIR, which the nodes must share).

    Returns:
        A BatchResult. Calling again with the same arguments after a crash resumes.

    Raises:
        InvalidInput: a missing or unreadable input, an unsupported extension, an output that
            is not .parquet, or input that does not fit the model's signature.
        ModelFailed: the model failed on a chunk.
    """
    started = time.perf_counter()
    batch_size, workers = _positive("batch_size", batch_size), _positive("workers", workers)
    if executor not in EXECUTORS:
        raise InvalidInput(f"executor={executor!r}: use one of {', '.join(map(repr, EXECUTORS))}.")
    ids = _id_columns(id_columns)
    source = open_input(input)
    out = check_output(output, source)
    be = backend()
    mv = resolve(model_ref, be)
    model = load_version(be, mv)
    schema, total = inspect(source)
    _check_columns(source, schema, ids, model, total)
    job = Job(source, mv.ref, ids, bool(proba), batch_size)
    stage = Staging(out, staging_key(job, mv))
    hasher = Hasher(source)
    try:
        with stage:
            params = _params(model_ref, mv, job, out, workers, executor)
            with start_run(EXPERIMENT, params=params) as run:
                spec = worker_spec(be, mv, workers, executor, ray_address)
                counts = score_all(job, stage, model, spec, total, progress, out)
                digest = record(be, run, job, mv, out, counts, hasher.result(), store_output)
            stage.remove()  # still locked: no other process can be using it
    finally:
        hasher.stop()
    return BatchResult(
        out,
        counts.rows,
        counts.chunks,
        counts.skipped,
        mv.ref,
        run.id,
        hasher.result(),
        digest,
        time.perf_counter() - started,
    )


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a positive integer, got {value!r}.")
    return value


def _id_columns(value: str | Sequence[str] | None) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value or ())
    if not all(isinstance(n, str) and n for n in names):
        raise InvalidInput(f"id_columns must be column names, got {value!r}.")
    clash = [n for n in names if n in RESERVED or n.startswith("prediction_")]
    if clash:
        raise InvalidInput(f"Id column {clash[0]!r} clashes with an output column; rename it in the input.")
    return tuple(dict.fromkeys(names))


def _check_columns(
    source: Input, schema: pa.Schema, ids: tuple[str, ...], model: Model, total: int | None
) -> None:
    """Fail before any work when the columns cannot fit: missing id columns, signature mismatch."""
    missing = [n for n in ids if n not in schema.names]
    if missing:
        raise InvalidInput(
            f"Id column {missing[0]!r} is not in {source.path}; its columns are: {', '.join(schema.names)}."
        )
    if total == 0:
        raise InvalidInput(f"Input {source.path} holds no rows.")
    features = schema.empty_table().drop_columns(list(ids)).to_pandas()
    try:
        model.validate(features)
    except InvalidInput as exc:
        ref = model.model_version.ref
        raise InvalidInput(f"{source.path} does not fit model {ref}. {exc}", exc.problems) from exc


def _params(ref: str, mv: ModelVersion, job: Job, out: str, workers: int, executor: str) -> dict[str, Any]:
    return {
        "executor": executor,
        "model": ref,
        "model_version": mv.ref,
        "input": job.source.path,
        "output": out,
        "batch_size": job.batch_size,
        "workers": workers,
        "id_columns": ",".join(job.id_columns),
        "output_kind": "proba" if job.proba else "prediction",
    }
