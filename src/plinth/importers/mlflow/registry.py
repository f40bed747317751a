"""Registered models (`--models`): names with descriptions and tags, versions, aliases.

Each MLflow version becomes a plinth model version of flavor "mlflow" whose files are the MLflow
model's own files (`plinth.registry.adopt.register_files`): the artifacts plinth already holds
when the version's source is an imported run's folder or logged model, else the files read from
the source's folder, stored first. plinth numbers versions itself; the MLflow number is the
version's `mlflow.importedVersion` tag, which is how a later import knows the version is there
and how aliases find the plinth version they point at.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from plinth.core.entities import ModelFile
from plinth.core.errors import InvalidInput, NotFound
from plinth.importers.mlflow.artifacts import folder_files
from plinth.importers.mlflow.context import IMPORTED_VERSION, ImportContext
from plinth.importers.mlflow.logged import model_files
from plinth.importers.mlflow.records import MlLoggedModel, MlModelVersion, MlRegisteredModel, SourceFile
from plinth.registry.adopt import artifact_files, mlflow_model_meta, register_files
from plinth.tracking.progress import progress

STAGE = "mlflow.currentStage"
"""Tag keeping a version's stage from MLflow's older registry (Staging, Production, Archived)."""


def import_registry(ctx: ImportContext, run_ids: Mapping[str, str]) -> None:
    """Import every registered model with its versions, tags, descriptions and aliases."""
    models = ctx.source.registered_models()
    logged = {m.id: m for m in ctx.source.logged_models(None)}
    with progress("Importing models", total=len(models), unit="models", show=ctx.show_progress) as advance:
        for model in models:
            try:
                _import_model(ctx, model, run_ids, logged)
            except (InvalidInput, NotFound) as exc:  # a name plinth cannot hold, a run not imported
                ctx.summary.problem(f"Registered model {model.name!r} not imported: {exc}")
            advance(1)


def _import_model(
    ctx: ImportContext,
    model: MlRegisteredModel,
    run_ids: Mapping[str, str],
    logged: Mapping[str, MlLoggedModel],
) -> None:
    store = ctx.store
    try:
        held = store.get_registered_model(model.name)
    except NotFound:
        held = store.create_registered_model(model.name, model.description)
        ctx.summary.add("registered models", imported=1)
    else:
        ctx.summary.add("registered models", existing=1)
        if held.description != model.description and model.description:
            store.set_model_description(model.name, None, model.description)
    if any(held.tags.get(key) != value for key, value in model.tags.items()):
        store.set_registered_model_tags(model.name, model.tags)
    numbers = _import_versions(ctx, model.name, run_ids, logged)
    _import_aliases(ctx, model, numbers)


def _import_versions(
    ctx: ImportContext, name: str, run_ids: Mapping[str, str], logged: Mapping[str, MlLoggedModel]
) -> dict[int, int]:
    """Write the versions plinth lacks; returns MLflow version -> plinth version, for all of them."""
    held = {
        int(mv.tags[IMPORTED_VERSION]): mv.version
        for mv in ctx.store.list_model_versions(name)
        if mv.tags.get(IMPORTED_VERSION, "").isdigit()
    }
    numbers = dict(held)
    for version in ctx.source.model_versions(name):
        if version.version in held:
            ctx.summary.add("model versions", existing=1)
            continue
        if version.status != "READY":
            ctx.summary.problem(
                f"Version {version.version} of model {name!r} not imported: MLflow has it {version.status}."
            )
            continue
        try:
            made = _import_version(ctx, version, run_ids, logged)
        except (InvalidInput, NotFound) as exc:  # e.g. files a package cannot hold
            ctx.summary.problem(f"Version {version.version} of model {name!r} not imported: {exc}")
            continue
        if made is not None:
            numbers[version.version] = made
    return numbers


def _import_version(
    ctx: ImportContext,
    version: MlModelVersion,
    run_ids: Mapping[str, str],
    logged: Mapping[str, MlLoggedModel],
) -> int | None:
    """Register one version; its plinth number, or None when its files could not be found."""
    label = f"Version {version.version} of model {version.name!r}"
    files = _files(ctx, version, run_ids, logged)
    if not files:
        ctx.summary.problem(
            f"{label} not imported: no files found at {version.storage_location or version.source}."
        )
        return None
    try:
        meta, environment, signature = mlflow_model_meta(ctx.blobs, files)
    except InvalidInput as exc:
        ctx.summary.problem(f"{label} not imported: {exc}")
        return None
    tags = {**version.tags, IMPORTED_VERSION: str(version.version)}
    if version.stage:
        tags[STAGE] = version.stage
    store = ctx.store
    with store.batch():  # the version and the tag that says it was imported, together
        made = register_files(
            store,
            ctx.blobs,
            name=version.name,
            files=files,
            source=version.source or version.storage_location or "",
            run_id=run_ids.get(version.run_id or ""),
            description=version.description,
            meta=meta,
            environment=environment,
            signer=ctx.signer,
            signature=signature,
        )
        store.set_model_version_tags(version.name, made.version, tags)
    ctx.summary.add("model versions", imported=1)
    return made.version


def _files(
    ctx: ImportContext,
    version: MlModelVersion,
    run_ids: Mapping[str, str],
    logged: Mapping[str, MlLoggedModel],
) -> list[ModelFile]:
    """The version's files in the blob store: held already as an imported run's artifacts,
    else read from where MLflow keeps them and stored."""
    held = _held_files(ctx, version, run_ids)
    if held:
        return held
    model_id = _logged_model_id(version.source)
    if model_id is not None and model_id in logged:
        found = model_files(ctx, logged[model_id])
        prefix = f"models/{model_id}/"
        files = [_renamed(f, prefix) for f in found.files]
    else:
        folder = ctx.locator.folder(version.storage_location) or ctx.locator.folder(version.source)
        if folder is None:
            return []
        found = folder_files(folder)
        files = found.files
    problems = list(found.problems)
    records = ctx.uploader.store(files, problems)
    for text in problems:
        ctx.summary.problem(
            f"File of version {version.version} of model {version.name!r} not imported: {text}"
        )
    return [ModelFile(r.path, r.digest, r.size) for r in records]


def _held_files(ctx: ImportContext, version: MlModelVersion, run_ids: Mapping[str, str]) -> list[ModelFile]:
    """The files of the version's logged model or run folder, when plinth holds them as artifacts."""
    source = version.source or ""
    model_id = _logged_model_id(source)
    if model_id is not None:
        try:
            held = ctx.store.get_logged_model(model_id)
        except NotFound:
            return []
        prefix = f"models/{model_id}"
        return artifact_files(ctx.store.list_artifacts(held.run_id, prefix), prefix)
    if source.startswith("runs:/"):
        run, _, path = source[len("runs:/") :].partition("/")
        plinth_run = run_ids.get(run)
        if plinth_run is not None:
            return artifact_files(ctx.store.list_artifacts(plinth_run, path), path)
    return []


def _logged_model_id(source: str | None) -> str | None:
    """The logged model a `models:/m-<id>` source names, else None."""
    if source and source.startswith("models:/m-") and "/" not in source[len("models:/") :]:
        return source[len("models:/") :]
    return None


def _renamed(file: SourceFile, prefix: str) -> SourceFile:
    return dataclasses.replace(file, path=file.path.removeprefix(prefix))


def _import_aliases(ctx: ImportContext, model: MlRegisteredModel, numbers: Mapping[int, int]) -> None:
    held = ctx.store.get_registered_model(model.name).aliases
    for alias, version in sorted(model.aliases.items()):
        target = numbers.get(version)
        if target is None:
            ctx.summary.problem(
                f"Alias {alias!r} of model {model.name!r} not set: its version {version} was not imported."
            )
        elif held.get(alias) == target:
            ctx.summary.add("aliases", existing=1)
        else:
            ctx.store.set_alias(model.name, alias, target)
            ctx.summary.add("aliases", imported=1)
