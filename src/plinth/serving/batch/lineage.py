"""Lineage of a batch run: its metrics, the output artifact, and edges from the input to the output.

("dataset_input", sha256 of the input) consumed_by the run, the run used_model the model version,
and the run produced ("blob", sha256 of the output), which is also stored as the run's artifact
`predictions.parquet` unless `store_output=False`.
"""

from __future__ import annotations

from plinth.core.entities import LineageEdge, ModelVersion
from plinth.core.ids import now_ms
from plinth.serving.batch.pipeline import Counts
from plinth.serving.batch.scorer import Job
from plinth.store.blobs import file_digest
from plinth.tracking.context import Backend
from plinth.tracking.run import ActiveRun

OUTPUT_ARTIFACT = "predictions.parquet"


def record(
    be: Backend,
    run: ActiveRun,
    job: Job,
    mv: ModelVersion,
    out: str,
    counts: Counts,
    input_digest: str,
    store_output: bool,
) -> str:
    """Record metrics, the output artifact and the lineage edges; returns the output's digest."""
    if store_output:
        [artifact] = run.log_artifact(out, OUTPUT_ARTIFACT)
        digest = artifact.digest
    else:
        digest = file_digest(out)[0]
    _log_metrics(run, counts)
    run.set_tags({"input_digest": input_digest, "output_digest": digest})
    at = now_ms()
    source = job.source
    be.store.add_edges(
        [
            LineageEdge(
                "dataset_input",
                input_digest,
                "consumed_by",
                "run",
                run.id,
                at,
                {"role": "inference", "path": source.path, "format": source.fmt, "files": len(source.files)},
            ),
            LineageEdge("run", run.id, "used_model", "model_version", mv.id, at, {"ref": mv.ref}),
            LineageEdge(
                "run",
                run.id,
                "produced",
                "blob",
                digest,
                at,
                {"path": out, "rows": counts.rows, "artifact": OUTPUT_ARTIFACT if store_output else None},
            ),
        ]
    )
    return digest


def _log_metrics(run: ActiveRun, counts: Counts) -> None:
    rate = counts.rows_scored / counts.seconds if counts.seconds > 0 else 0.0
    run.log_metrics(
        {
            "rows": counts.rows,
            "rows_scored": counts.rows_scored,
            "rows_per_s": rate,
            "chunks": counts.chunks,
            "chunks_skipped": counts.skipped,
            "seconds": counts.seconds,
        }
    )
