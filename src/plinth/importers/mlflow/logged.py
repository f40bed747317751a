"""MLflow 3's logged models (`m-<32 hex>`): which plinth lacks, and a run to hold each orphan.

A logged model keeps its MLflow id in plinth. Its files become artifacts of the run that logged
it, under `models/<model id>/`, written with that run (`runs.py`). A model whose run is not
being imported now (MLflow named no run, the run is deleted, or an earlier import finished the
run before the model existed) gets a run of its own, named after the model and FINISHED, as
plinth's MLflow dialect does for a model logged without a run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from plinth.core.entities import Experiment, LoggedModel, RunStatus
from plinth.core.errors import InvalidInput, NotFound, RunNotActive
from plinth.importers.mlflow.artifacts import Located, folder_files, remote_files
from plinth.importers.mlflow.context import IMPORTED_MODEL, ImportContext, imported_id
from plinth.importers.mlflow.records import MlLoggedModel
from plinth.store.base import NewRun

_PAGE = 1000


def held_model_ids(ctx: ImportContext, experiments: Sequence[Experiment]) -> set[str]:
    """Ids of the logged models plinth holds in these experiments."""
    ids: set[str] = set()
    exp_ids = [e.id for e in experiments]
    offset = 0
    while exp_ids:
        page = ctx.store.search_logged_models(experiment_ids=exp_ids, limit=_PAGE, offset=offset)
        ids.update(model.id for model in page)
        if len(page) < _PAGE:
            break
        offset += _PAGE
    return ids


def split_models(
    ctx: ImportContext, models: Sequence[MlLoggedModel], held: Collection[str], with_runs: Collection[str]
) -> tuple[dict[str, list[MlLoggedModel]], list[MlLoggedModel]]:
    """The models plinth lacks: by the MLflow run that will write them, and the orphans.

    Args:
        held: ids of the logged models plinth holds (counted as already there).
        with_runs: MLflow ids of the runs this import writes.
    """
    by_run: dict[str, list[MlLoggedModel]] = {}
    orphans: list[MlLoggedModel] = []
    for model in models:
        if model.id in held:
            ctx.summary.add("logged models", existing=1)
        elif model.source_run_id is not None and model.source_run_id in with_runs:
            by_run.setdefault(model.source_run_id, []).append(model)
        else:
            orphans.append(model)
    return by_run, orphans


def import_orphans(
    ctx: ImportContext,
    orphans: Sequence[MlLoggedModel],
    experiments: Mapping[str, Experiment],
    run_ids: Mapping[str, str],
) -> None:
    """Write each orphan model with a FINISHED run of its own holding its files."""
    for model in orphans:
        experiment = experiments.get(model.experiment_id)
        if experiment is None:
            continue
        try:
            _orphan(ctx, model, experiment, run_ids.get(model.source_run_id or ""))
        except (InvalidInput, NotFound, RunNotActive) as exc:
            ctx.summary.problem(f"Logged model {model.id} ({model.name!r}) not imported: {exc}")


def _orphan(ctx: ImportContext, model: MlLoggedModel, experiment: Experiment, source_run: str | None) -> None:
    store = ctx.store
    holder = imported_id("model run", model.id, model.created_ms)
    found = model_files(ctx, model)
    for text in found.problems:
        ctx.summary.problem(f"Artifact of logged model {model.id} not imported: {text}")
    try:
        existing = store.get_run(holder)
    except NotFound:
        existing = None
    files = found.files
    if existing is not None:
        held = {a.path for a in existing.artifacts}
        files = [f for f in files if f.path not in held]
    problems: list[str] = []
    records = ctx.uploader.store(files, problems)
    for text in problems:
        ctx.summary.problem(f"Artifact of logged model {model.id} not imported: {text}")
    with store.batch():
        if existing is None:
            store.create_runs([_holder_run(ctx, model, experiment, holder)])
        if records:
            store.add_artifacts(holder, records)
        store.create_logged_model(logged_model(model, experiment, holder, source_run))
        if existing is None or existing.status is RunStatus.RUNNING:
            store.end_runs([(holder, RunStatus.FINISHED, None, model.created_ms)])
    ctx.summary.add("logged models", imported=1)
    ctx.summary.add("artifact files", imported=len(records))
    ctx.summary.add("artifact bytes", imported=sum(r.size for r in records))


def _holder_run(ctx: ImportContext, model: MlLoggedModel, experiment: Experiment, run_id: str) -> NewRun:
    return NewRun(
        experiment=experiment.name,
        name=model.name,
        params={},
        tags={IMPORTED_MODEL: model.id, "mlflow.user": model.tags.get("mlflow.user", "unknown")},
        environment=None,
        heartbeat_s=ctx.heartbeat_s,
        user=model.tags.get("mlflow.user", "unknown"),
        id=run_id,
        start_ms=max(0, model.created_ms),
    )


def logged_model(
    model: MlLoggedModel, experiment: Experiment, run_id: str, source_run: str | None
) -> LoggedModel:
    """The plinth logged model of an MLflow one, its files held by run `run_id`."""
    return LoggedModel(
        id=model.id,
        experiment_id=experiment.id,
        name=model.name,
        run_id=run_id,
        status=model.status,
        model_type=model.model_type,
        source_run_id=source_run,
        created_ms=model.created_ms,
        updated_ms=model.updated_ms,
        tags={**model.tags, IMPORTED_MODEL: model.id},
        params=model.params,
    )


def model_files(ctx: ImportContext, model: MlLoggedModel) -> Located:
    """A logged model's files, named as artifacts of the run that holds them: models/<id>/..."""
    prefix = f"models/{model.id}"
    folder = ctx.locator.model_folder(model.experiment_id, model.id, model.artifact_location)
    if folder is not None:
        return folder_files(folder, prefix)
    served = remote_files(ctx.source, "model", model.id, prefix)
    if served is not None and (served.files or served.problems):
        return served
    if served is not None:
        where = f"{ctx.source.describe()} lists none at {model.artifact_location}"
    else:
        where = ctx.locator.unreachable(model.artifact_location)
    return Located([], [f"the files of logged model {model.id} ({model.name!r}): {where}"])
