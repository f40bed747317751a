"""Scoring one chunk: the job every scorer shares, the scorer itself, and where scorers run.

A `Scorer` turns a chunk (an Arrow table) into its output rows: the id columns, the predictions
(`prediction`, or `prediction_0..k` for 2-D outputs) and `model_version`. The same scorer runs in
this process, in worker processes, in Ray tasks and in SLURM jobs, so every executor fails the same way: a
model error names the rows it failed on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plinth.core.entities import ModelVersion
from plinth.core.errors import InvalidInput, ModelFailed, PlinthError
from plinth.registry.loaded import Model
from plinth.registry.package import Package, materialize
from plinth.serving.batch.inputs import Input
from plinth.tracking.context import Backend

if TYPE_CHECKING:
    import pyarrow as pa

RESERVED = ("prediction", "model_version")
"""Output columns an id column may not be named after (nor `prediction_<n>`)."""


@dataclass(frozen=True)
class Job:
    """What a scorer needs besides the model; picklable, so worker processes get it too."""

    source: Input
    ref: str
    id_columns: tuple[str, ...]
    proba: bool
    batch_size: int


Chunk = tuple[int, "pa.Table", Any]
"""(index, Arrow table, pandas features or None): one chunk of input."""


class Scorer:
    """Scores one chunk: its output rows, or an error that names the rows and the problem."""

    def __init__(self, job: Job, model: Model) -> None:
        self.job = job
        self.model = model
        self.predict = model.predict_proba if job.proba else model.predict

    def score(self, index: int, table: pa.Table, frame: Any = None) -> pa.Table:
        """The output rows of chunk `index`: id columns, predictions, model version.

        `frame` is the chunk's features as pandas, where already converted.
        """
        if frame is None:
            frame = features(table, self.job)
        where = self.job.source.where(index * self.job.batch_size, table.num_rows)
        try:
            predictions = self.predict(frame)
        except InvalidInput as exc:
            raise InvalidInput(f"{where[0].upper()}{where[1:]}: {exc}", exc.problems) from exc
        except PlinthError:
            raise
        except Exception as exc:
            raise ModelFailed(f"Model {self.job.ref} failed on {where}: {type(exc).__name__}: {exc}") from exc
        return _output_table(table, predictions, self.job, where)


def features(table: pa.Table, job: Job) -> Any:
    """The model's input: the chunk without its id columns, as a pandas DataFrame."""
    return (table.drop_columns(list(job.id_columns)) if job.id_columns else table).to_pandas()


def _output_table(table: pa.Table, predictions: Any, job: Job, where: str) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    array = np.asarray(predictions)
    rows = table.num_rows
    if array.ndim == 0 or len(array) != rows:
        got = "a scalar" if array.ndim == 0 else f"{len(array)} predictions"
        raise ModelFailed(f"Model {job.ref} returned {got} for the {rows} {where}.")
    columns: dict[str, Any] = {name: table.column(name) for name in job.id_columns}
    try:
        if array.ndim == 1:
            columns["prediction"] = pa.array(array)
        else:
            flat = np.ascontiguousarray(array.reshape(rows, -1).T)
            for j, values in enumerate(flat):
                columns[f"prediction_{j}"] = pa.array(values)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ModelFailed(f"Predictions of {job.ref} for {where} cannot be stored: {exc}") from exc
    columns["model_version"] = pa.repeat(pa.scalar(job.ref, pa.string()), rows)
    return pa.table(columns)


@dataclass(frozen=True)
class Workers:
    """Where chunks are scored away from this process, and what the scorers need to load the model
    without the store."""

    count: int
    version: ModelVersion
    package: Package  # checked by the workers as they read it
    executor: str = "local"  # "local" (worker processes), "ray" or "slurm"
    ray_address: str | None = None


def worker_spec(
    be: Backend, mv: ModelVersion, workers: int, executor: str = "local", ray_address: str | None = None
) -> Workers | None:
    """None for scoring in this process; else the model's local package for the workers.

    For "slurm" the package goes to the SLURM work folder (PLINTH_SLURM_WORKDIR), which the
    nodes share; otherwise to this machine's model cache.
    """
    if workers == 1 and executor == "local":
        return None
    folder = os.path.join(be.settings.home, "cache", "models")
    if executor == "slurm":
        from plinth.compute.slurm import SlurmOptions

        folder = os.path.join(SlurmOptions.from_env().resolved_work_dir(), "models")
    package = materialize(be.blobs, mv, folder)
    return Workers(workers, mv, package, executor, ray_address)
