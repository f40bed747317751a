"""Batch inference: score a large Parquet or CSV file, or a folder of them, with a registered model.

`batch_predict` streams the input in chunks of `batch_size` rows (the input is never loaded
whole), scores each chunk with `Model.predict` (so every chunk is checked against the
signature) and writes one Parquet file: the id columns asked for, the predictions
(`prediction`, or `prediction_0..k` for 2-D outputs) and `model_version` (e.g. "iris-clf/3").

Resumable: each chunk's output is staged as a part file next to the output; running the same
call again after a crash or `kill -9` skips the parts already written, and a resumed run gives
the same bytes as an uninterrupted one. Each call is a tracked run in experiment
"batch-predict" with lineage from the input's sha256 through the model version to the output.

With `workers` > 1, chunks are scored in spawned processes; with `executor="ray"`, by Ray tasks
across a cluster (Ray is imported only then); with `executor="slurm"`, in SLURM jobs. Reading,
the part files and the output stay in this process, so resuming and lineage are the same
whichever executor scored a chunk.

The package, one module per concept, each importing only those listed before it:

- `inputs`: finding the input files and checking where the output goes
- `reading`: streaming the input as chunks of exactly `batch_size` rows
- `scorer`: the job, the scorer of one chunk and where scorers run
- `staging`: part files in a locked folder, named for the job, that make a call resumable
- `combine`: part files appended in chunk order to the output, in a thread
- `prefetch`: reading a few chunks ahead in a thread
- `pool`, `ray`, `slurm`: scoring in worker processes, in Ray tasks, or in SLURM jobs
- `pipeline`: read, score and combine overlapping; the progress bar
- `hashing`, `lineage`: the input's sha256, the run's metrics, artifact and lineage edges
- `predict`: `batch_predict` itself
"""

from __future__ import annotations

import warnings
from typing import Any

from plinth.core.errors import ModelFailed
from plinth.serving.batch.lineage import OUTPUT_ARTIFACT as OUTPUT_ARTIFACT
from plinth.serving.batch.predict import DEFAULT_BATCH_SIZE as DEFAULT_BATCH_SIZE
from plinth.serving.batch.predict import EXPERIMENT as EXPERIMENT
from plinth.serving.batch.predict import BatchResult as BatchResult
from plinth.serving.batch.predict import batch_predict as batch_predict

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EXPERIMENT",
    "OUTPUT_ARTIFACT",
    "BatchResult",
    "batch_predict",
]


def __getattr__(name: str) -> Any:
    """`PredictionError`, the old name of `plinth.errors.ModelFailed`, still imports for one release."""
    if name == "PredictionError":
        warnings.warn(
            "plinth.serving.batch.PredictionError is now plinth.errors.ModelFailed; catch that instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return ModelFailed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
