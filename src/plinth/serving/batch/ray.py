"""Batch scoring on a Ray cluster: chunks are read here, scored by Ray tasks, and written here.

The model package (its verified local copy) is put into Ray's object store once; each worker
process writes it to a temporary folder and loads it on its first chunk, then keeps it for the
next ones. A chunk travels to its task as an Arrow table and its output comes back the same way;
this process hands the output to the combiner, which writes the part file and appends it to the
output in chunk order. Part files, resume and lineage are therefore exactly those of the local
path, and the workers need no access to the stores or to the input's file system.

At most two chunks per CPU of the cluster are in flight, so memory stays bounded. A chunk whose
worker or node died is retried by Ray (scoring a chunk has no side effects); a chunk the model
fails on raises the same error as in the local path.

`ray` itself is imported only when chunks are scored here (`ray_cluster.import_ray`), so
importing this module costs no more than the rest of the package.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from plinth.compute.ray import cluster as ray_cluster
from plinth.core.entities import ModelVersion
from plinth.core.errors import ModelFailed, PlinthError
from plinth.registry.loaded import Model
from plinth.registry.models import open_model
from plinth.registry.package import Package
from plinth.serving.batch.combine import Combiner
from plinth.serving.batch.scorer import Chunk, Job, Scorer, Workers

if TYPE_CHECKING:
    import pyarrow as pa

SYSTEM_RETRIES = 3
"""Times Ray runs a chunk again after its worker or node died."""
_scorers: dict[tuple[str, Job], Scorer] = {}


def score_on_ray(
    job: Job,
    spec: Workers,
    todo: Iterable[Chunk],
    scored: Callable[[int], None],
    combiner: Combiner,
) -> None:
    """Score every chunk of `todo` with Ray tasks; hand each output to `combiner` as it arrives."""
    ray = ray_cluster.import_ray()
    ray_cluster.connect(spec.ray_address)
    files = ray.put(spec.package.contents())
    remote = ray.remote(score_chunk).options(
        num_cpus=1, max_retries=SYSTEM_RETRIES, name=f"plinth batch {spec.version.ref}"
    )
    limit = max(2, 2 * int(sum(n.cpus for n in ray_cluster.nodes())))
    running: dict[Any, tuple[int, int]] = {}
    try:
        for index, table, _frame in todo:
            running[remote.remote(job, spec.version, spec.package.manifest, files, index, table)] = (
                index,
                table.num_rows,
            )
            if len(running) >= limit:
                _collect(ray, running, combiner, scored, everything=False)
        _collect(ray, running, combiner, scored, everything=True)
    finally:  # after a failure: stop the chunks still queued or running
        for ref in running:
            ray.cancel(ref, force=True)


def _collect(
    ray: Any,
    running: dict[Any, tuple[int, int]],
    combiner: Combiner,
    scored: Callable[[int], None],
    everything: bool,
) -> None:
    while running:
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            index, rows = running.pop(ref)
            combiner.add(index, _result(ray, ref))
            scored(rows)
        if not everything:
            return


def _result(ray: Any, ref: Any) -> pa.Table:
    """A chunk's output table; the model's own error as in the local path."""
    rex = ray.exceptions
    try:
        return ray.get(ref)
    except rex.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, PlinthError):
            raise cause from None
        raise ModelFailed(f"A Ray task failed while scoring: {cause!r}") from exc
    except rex.RayError as exc:
        raise ModelFailed(
            f"Ray lost a chunk after {SYSTEM_RETRIES} retries ({type(exc).__name__}: {exc}); run the same "
            "call again to resume from the chunks already written."
        ) from exc


def score_chunk(
    job: Job,
    mv: ModelVersion,
    manifest: dict[str, Any],
    files: dict[str, bytes],
    index: int,
    table: pa.Table,
) -> pa.Table:
    """In a Ray worker: score chunk `index` with the model (loaded on this process's first chunk)."""
    scorer = _scorers.get((mv.id, job))
    if scorer is None:
        scorer = _scorers[(mv.id, job)] = Scorer(job, _load(mv, manifest, files))
    return scorer.score(index, table)


def _load(mv: ModelVersion, manifest: dict[str, Any], files: dict[str, bytes]) -> Model:
    package = Package(tempfile.mkdtemp(prefix="plinth-model-"), manifest, mv.ref)
    try:
        for relative, data in files.items():
            path = package.local_path(relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(data)
        return open_model(mv, package)  # checks each file against the manifest as it is read
    finally:
        shutil.rmtree(package.folder, ignore_errors=True)
