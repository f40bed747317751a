"""Importing runs: params, tags, every metric point, artifacts, parents and logged models.

Runs go in chunks (up to a thousand runs, or half a million points), each written inside one
`Store.batch()`: on a store whose batch is a transaction (SQL), a chunk lands whole or not at all,
so an interrupted import leaves no half run. On a store whose batch is not (a team server), a
run can be left part-written; it carries its `mlflow.importedRunId` tag from its first write
and is still RUNNING, so the next import finds it and completes it: it writes the params, tags,
points and files the run lacks, then ends it. A run MLflow still has RUNNING is completed the
same way on every import, so its new points arrive.

A run's metric points come from the source's ordered stream, one run at a time; they are
numbered as `points.py` says and written as columns, the store's fast path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from plinth.core.entities import Experiment, LineageEdge, LoggedModel, Run, RunStatus
from plinth.core.errors import InvalidInput, NotFound, RunNotActive
from plinth.core.filters import parse_filter
from plinth.core.ids import now_ms
from plinth.importers.mlflow.artifacts import Located, folder_files, remote_files
from plinth.importers.mlflow.context import IMPORTED_RUN, ImportContext, imported_id
from plinth.importers.mlflow.logged import logged_model, model_files
from plinth.importers.mlflow.points import columns, missing
from plinth.importers.mlflow.prefetch import prefetched
from plinth.importers.mlflow.records import MlLoggedModel, MlRun, RunPoints
from plinth.store.base import ArtifactRecord, NewRun
from plinth.store.points import PointColumns
from plinth.tracking.progress import progress

if TYPE_CHECKING:
    from collections.abc import Iterator

PARENT = "mlflow.parentRunId"
CHUNK_RUNS = 1000
CHUNK_POINTS = 500_000
WRITE_POINTS = 500_000
"""Points per `write_metrics` call inside a chunk (a run with millions of points takes several)."""

_REFUSED = (InvalidInput, NotFound, RunNotActive)
"""What a store raises about the data written (a refused value, a run gone or ended)."""


@dataclass
class RunWork:
    """One MLflow run to write: new (`existing` None) or one an earlier import left unfinished."""

    ml: MlRun
    run_id: str
    experiment: Experiment
    existing: Run | None
    models: list[MlLoggedModel] = field(default_factory=list)
    points: RunPoints | None = None


@dataclass
class Prepared:
    """What one run's chunk write holds: its blobs are stored already."""

    work: RunWork
    spec: NewRun | None
    params: dict[str, str]
    tags: dict[str, str]
    mask: np.ndarray | None
    artifacts: list[ArtifactRecord]
    models: list[LoggedModel]
    edges: list[LineageEdge]


def imported_runs(ctx: ImportContext, experiments: Sequence[str]) -> dict[str, Run]:
    """The runs earlier imports wrote into these experiments, by MLflow run id."""
    if not experiments:
        return {}
    where = parse_filter(f"tags.`{IMPORTED_RUN}` is not null")
    found = ctx.store.search_runs(
        experiments=list(experiments), where=where, order_by=(), limit=None, now_ms=now_ms()
    )
    return {run.tags[IMPORTED_RUN]: run for run in found}


def run_ids(runs: Sequence[MlRun], existing: Mapping[str, Run]) -> dict[str, str]:
    """The plinth id of every MLflow run: the one an earlier import gave it, else its own."""
    return {
        ml.id: existing[ml.id].id if ml.id in existing else imported_id("run", ml.id, ml.start_ms)
        for ml in runs
    }


def plan_runs(
    ctx: ImportContext, runs: Sequence[MlRun], experiments: Mapping[str, Experiment]
) -> tuple[dict[str, str], dict[str, RunWork]]:
    """The plinth id of every MLflow run, and the runs to write: those plinth lacks or holds
    unfinished (the others are counted as already there).

    Args:
        runs: the MLflow runs of the chosen experiments.
        experiments: MLflow experiment id -> the plinth experiment its runs go into.
    """
    existing = imported_runs(ctx, sorted({e.name for e in experiments.values()}))
    ids = run_ids(runs, existing)
    works: dict[str, RunWork] = {}
    for ml in runs:
        found = existing.get(ml.id)
        if found is not None and found.status in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED):
            ctx.summary.add("runs", existing=1)
            continue
        works[ml.id] = RunWork(ml, ids[ml.id], experiments[ml.experiment_id], found)
    return ids, works


@dataclass(frozen=True)
class Chunk:
    """Runs written in one batch, with their points as one write where they could be computed
    ahead (new runs only: an unfinished run's are compared with what plinth holds first)."""

    works: list[RunWork]
    points: PointColumns | None = None
    ready: bool = False


def write_runs(
    ctx: ImportContext, works: Mapping[str, RunWork], ids: Mapping[str, str], experiment_ids: Sequence[str]
) -> None:
    """Write `works` (see `plan_runs`) with their points, chunk by chunk; the next chunks are read
    (and their points laid out) in a thread of their own while one is written."""
    writer = ChunkWriter(ctx, ids)
    with progress("Importing runs", total=len(works), unit="runs", show=ctx.show_progress) as advance:
        for chunk in prefetched(lambda: chunks(ctx, works, experiment_ids), depth=2):
            writer.write(chunk)
            advance(len(chunk.works))


def chunks(
    ctx: ImportContext, works: Mapping[str, RunWork], experiment_ids: Sequence[str]
) -> Iterator[Chunk]:
    """`works` with their points, gathered into chunks of at most CHUNK_RUNS runs or (but for a
    run larger alone) CHUNK_POINTS points, in the order the source streams them; runs with no
    points come last."""
    waiting = dict(works)
    chunk: list[RunWork] = []
    points = 0
    for found in ctx.source.metric_points(list(waiting), experiment_ids):
        work = waiting.pop(found.run_id, None)
        if work is None:
            continue
        chunk.append(dataclasses.replace(work, points=found))
        points += len(found)
        if len(chunk) >= CHUNK_RUNS or points >= CHUNK_POINTS:
            yield _laid_out(chunk)
            chunk, points = [], 0
    for work in waiting.values():
        chunk.append(work)
        if len(chunk) >= CHUNK_RUNS:
            yield _laid_out(chunk)
            chunk = []
    if chunk:
        yield _laid_out(chunk)


def _laid_out(works: list[RunWork]) -> Chunk:
    if any(work.existing is not None for work in works):
        return Chunk(works)
    return Chunk(works, columns([(w.run_id, w.points, None) for w in works if w.points]), ready=True)


class ChunkWriter:
    """Writes chunks of runs, each in one batch (see the module's docstring)."""

    def __init__(self, ctx: ImportContext, ids: Mapping[str, str]) -> None:
        self.ctx = ctx
        self.ids = ids
        self.atomic = ctx.store.batch_is_atomic()

    def write(self, chunk: Chunk) -> None:
        """Store the chunk's files, then write its runs."""
        prepared = [self._prepare(work) for work in chunk.works]
        self._write(prepared, chunk.points if chunk.ready else _points(prepared))

    def _write(self, prepared: list[Prepared], points: PointColumns | None) -> None:
        """Commit a chunk; a chunk the store refuses is split until the refused runs stand alone
        (where a batch is a transaction: elsewhere its runs are named, and the next import
        completes what was written of them)."""
        try:
            self._commit(prepared, points)
        except _REFUSED as exc:
            if self.atomic and len(prepared) > 1:
                half = len(prepared) // 2
                self._write(prepared[:half], _points(prepared[:half]))
                self._write(prepared[half:], _points(prepared[half:]))
                return
            named = ", ".join(repr(p.work.ml.id) for p in prepared[:3]) + (
                " ..." if len(prepared) > 3 else ""
            )
            self.ctx.summary.problem(
                f"MLflow run{'s' if len(prepared) > 1 else ''} {named} not imported: {exc}"
            )
            return
        self._count(prepared)

    def _commit(self, prepared: list[Prepared], points: PointColumns | None) -> None:
        store = self.ctx.store
        with store.batch():
            specs = [p.spec for p in prepared if p.spec is not None]
            if specs:
                store.create_runs(specs)
            for p in prepared:
                if p.params:
                    store.log_params(p.work.run_id, p.params)
                if p.tags:
                    store.set_tags(p.work.run_id, p.tags)
            if points is not None:
                for start in range(0, len(points), WRITE_POINTS):
                    store.write_metrics(points[start : start + WRITE_POINTS])
            for p in prepared:
                if p.artifacts:
                    store.add_artifacts(p.work.run_id, p.artifacts)
                for model in p.models:
                    store.create_logged_model(model)
            edges = [edge for p in prepared for edge in p.edges]
            if edges:
                store.add_edges(edges)
            ends = [_end(p.work) for p in prepared if p.work.ml.ended]
            if ends:
                store.end_runs(ends)

    def _count(self, prepared: list[Prepared]) -> None:
        summary = self.ctx.summary
        for p in prepared:
            points = 0
            if p.work.points is not None:
                points = len(p.work.points) if p.mask is None else int(p.mask.sum())
            if p.spec is not None:
                summary.add("runs", imported=1)
            elif p.params or p.tags or points or p.artifacts or p.models or p.work.ml.ended:
                summary.add("runs completed", imported=1)
            else:  # an unfinished run with nothing new: MLflow has it RUNNING still
                summary.add("runs", existing=1)
            summary.add("params", imported=len(p.spec.params) if p.spec else len(p.params))
            summary.add("tags", imported=len(p.spec.tags) if p.spec else len(p.tags))
            summary.add("metric points", imported=points)
            summary.add("artifact files", imported=len(p.artifacts))
            summary.add("artifact bytes", imported=sum(a.size for a in p.artifacts))
            summary.add("logged models", imported=len(p.models))

    # one run ------------------------------------------------------------------------------------
    def _prepare(self, work: RunWork) -> Prepared:
        ml, existing = work.ml, work.existing
        tags = {**ml.tags, IMPORTED_RUN: ml.id}
        edges = []
        parent = ml.tags.get(PARENT)
        if parent is not None and parent in self.ids:
            tags[PARENT] = self.ids[parent]
            edges.append(LineageEdge("run", self.ids[parent], "parent_of", "run", work.run_id, now_ms(), {}))
        artifacts = self._artifacts(work)
        models = [logged_model(model, work.experiment, work.run_id, work.run_id) for model in work.models]
        if existing is None:
            spec = NewRun(
                experiment=work.experiment.name,
                name=ml.name,
                params=ml.params,
                tags=tags,
                environment=None,
                heartbeat_s=self.ctx.heartbeat_s,
                user=ml.user or "unknown",
                id=work.run_id,
                start_ms=None if ml.start_ms is None else max(0, ml.start_ms),
            )
            return Prepared(work, spec, {}, {}, None, artifacts, models, edges)
        params = {k: v for k, v in ml.params.items() if k not in existing.params}
        changed = {k: v for k, v in tags.items() if existing.tags.get(k) != v}
        mask = self._missing_points(work)
        return Prepared(work, None, params, changed, mask, artifacts, models, edges)

    def _missing_points(self, work: RunWork) -> np.ndarray | None:
        """Which of an unfinished run's points plinth lacks (None: it has no points to compare)."""
        if work.points is None:
            return None
        keys = sorted(set(work.points.key.tolist()))
        stored = {key: self.ctx.store.metric_history(work.run_id, key) for key in keys}
        return missing(work.points, stored)

    def _artifacts(self, work: RunWork) -> list[ArtifactRecord]:
        """Store the run's files and its logged models' files; their records (those the run lacks)."""
        ml = work.ml
        found = self._run_files(ml)
        for model in work.models:
            extra = model_files(self.ctx, model)
            found = Located(found.files + extra.files, found.problems + extra.problems)
        files = found.files
        if work.existing is not None:
            held = {a.path: a.size for a in self.ctx.store.list_artifacts(work.run_id)}
            files = [f for f in files if held.get(f.path) != f.size]
        problems = list(found.problems)
        records = self.ctx.uploader.store(files, problems)
        for text in problems:
            self.ctx.summary.problem(f"Artifact of MLflow run {ml.id} not imported: {text}")
        return records

    def _run_files(self, ml: MlRun) -> Located:
        folder = self.ctx.locator.run_folder(ml.experiment_id, ml.id, ml.artifact_uri)
        if folder is not None:
            return folder_files(folder)
        served = remote_files(self.ctx.source, "run", ml.id)
        if served is not None:
            return served
        if self.ctx.locator.reachable(ml.artifact_uri):  # MLflow makes the folder with the first file
            self.ctx.summary.note_of("Runs that logged no artifacts (no folder)", ml.artifact_uri or ml.id)
        else:
            self.ctx.summary.problem_of(
                "Runs whose artifacts were not imported",
                f"{ml.id}: {self.ctx.locator.unreachable(ml.artifact_uri)}",
            )
        return Located([], [])


def _points(prepared: Sequence[Prepared]) -> PointColumns | None:
    """The points the prepared runs write, as one write."""
    return columns([(p.work.run_id, p.work.points, p.mask) for p in prepared if p.work.points])


def _end(work: RunWork) -> tuple[str, RunStatus, str | None, int]:
    ml = work.ml
    end = ml.end_ms if ml.end_ms is not None else (ml.start_ms or now_ms())
    return (work.run_id, RunStatus(ml.status), None, max(0, end))
