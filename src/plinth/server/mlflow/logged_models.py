"""MLflow 3's logged models (`m-<32 hex>` ids) as plinth's store keeps them.

    POST   /api/2.0/mlflow/logged-models                           write     create (PENDING)
    POST   /api/2.0/mlflow/logged-models/search                    read      search
    GET    /api/2.0/mlflow/logged-models/{id}                      load      one
    PATCH  /api/2.0/mlflow/logged-models/{id}                      write     finalize (READY, FAILED)
    DELETE /api/2.0/mlflow/logged-models/{id}                      maintain  refused (501)
    PATCH  /api/2.0/mlflow/logged-models/{id}/tags                 write     set tags
    DELETE /api/2.0/mlflow/logged-models/{id}/tags/{key}           write     delete a tag
    POST   /api/2.0/mlflow/logged-models/{id}/params               write     log params
    GET    /api/2.0/mlflow/logged-models/{id}/artifacts/directories  load    list its files
    GET    /api/2.0/mlflow/logged-models/{id}/artifacts/files      load      one of its files

`mlflow.<flavor>.log_model` creates a logged model, uploads its files to the model's
artifact_uri and finalizes it. The files are artifacts of a plinth run under
`models/<model_id>/`: the source run's, when the client names a running one, else those of a
run made for the model in its experiment (named after it, FINISHED or FAILED when the model is
finalized). `source_run_id` stays what the client said, so `runs:/<run>/<name>` finds the
model by name among that run's models, as MLflow's client looks for it.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from plinth.core.access import Right
from plinth.core.entities import Experiment, LoggedModel, RunStatus
from plinth.core.errors import InvalidInput, NotFound, PlinthError, RunNotActive
from plinth.core.identity import Principal
from plinth.core.ids import now_ms
from plinth.server.context import RequestContext, require
from plinth.server.mlflow.artifacts import (
    ArtifactTarget,
    file_response,
    folder_entries,
    model_files_path,
    not_implemented,
    parse_artifact_path,
)
from plinth.server.mlflow.common import (
    DEFAULT_EXPERIMENT_NAME,
    PREFIX,
    experiment_of,
    json_body,
    needs,
    run_of,
    text_field,
)
from plinth.server.mlflow.logged_json import (
    exact_name,
    key_values,
    logged_model_json,
    matches,
    order_models,
    parse_filter,
    status_from_wire,
)
from plinth.store.base import TrackingStore

MODELS = f"{PREFIX}/logged-models"
HOLDER_TAG = "plinth.logged_model"
"""Tag of a run made to hold a logged model's files: the model's id."""
HOLDER_HEARTBEAT_S = 86_400.0
"""A holding run beats no heartbeat; if its model is never finalized it reads as crashed after
a few days (the client that was uploading it died)."""
DEFAULT_RESULTS = 100
MAX_RESULTS = 1000
_PAGE = 1000

Body = Annotated[dict[str, Any], Depends(json_body)]
Loader = Annotated[RequestContext, Depends(require(Right.LOAD))]
Reader = Annotated[RequestContext, Depends(require(Right.READ))]
Writer = Annotated[RequestContext, Depends(require(Right.WRITE))]
Maintainer = Annotated[RequestContext, Depends(require(Right.MAINTAIN))]


def model_json(store: TrackingStore, model: LoggedModel) -> dict[str, Any]:
    """`model` as MLflow's `LoggedModel` message (the experiment "Default" named "0")."""
    return logged_model_json(model, default_experiment_id(store))


def default_experiment_id(store: TrackingStore) -> str | None:
    """plinth's id of the experiment "Default" (MLflow's "0"), None while there is none."""
    try:
        return store.get_experiment(DEFAULT_EXPERIMENT_NAME).id
    except NotFound:
        return None


def new_model_id() -> str:
    """A logged model id as MLflow makes them: `m-` and 32 hex characters."""
    return f"m-{uuid.uuid4().hex}"


def create_logged_model(store: TrackingStore, principal: Principal, body: dict[str, Any]) -> LoggedModel:
    """Record a PENDING logged model from MLflow's CreateLoggedModel body, with a run for its files.

    Raises:
        NotFound: no such experiment or source run.
        InvalidInput: a missing experiment_id, or malformed tags or params.
    """
    experiment = experiment_of(store, text_field(body, "experiment_id") or "")
    tags, params = key_values(body, "tags"), key_values(body, "params")
    model_id = new_model_id()
    name = text_field(body, "name", required=False) or f"model-{model_id[2:10]}"
    source = text_field(body, "source_run_id", required=False)
    holder = _files_run(store, principal, experiment, name, model_id, source)
    now = now_ms()
    model = LoggedModel(
        id=model_id,
        experiment_id=experiment.id,
        name=name,
        run_id=holder,
        status="PENDING",
        model_type=text_field(body, "model_type", required=False) or "",
        source_run_id=source,
        created_ms=now,
        updated_ms=now,
        tags=tags,
        params=params,
    )
    try:
        return store.create_logged_model(model)
    except PlinthError:
        if holder != source:
            store.end_run(holder, RunStatus.FAILED, "Its logged model could not be recorded.", now_ms())
        raise


def _files_run(
    store: TrackingStore,
    principal: Principal,
    experiment: Experiment,
    name: str,
    model_id: str,
    source: str | None,
) -> str:
    """The run whose artifacts will hold the model's files: the source run (running or ended),
    else a new one named after the model, which ends when the model is finalized."""
    if source is not None:
        run_of(store, source)  # NotFound for an unknown run
        return source
    run = store.create_run(
        experiment=experiment.name,
        name=name,
        params={},
        tags={HOLDER_TAG: model_id},
        environment=None,
        heartbeat_s=HOLDER_HEARTBEAT_S,
        user=principal.name,
    )
    return run.id


def finalize_logged_model(store: TrackingStore, model_id: str, body: dict[str, Any]) -> LoggedModel:
    """Set a logged model READY or FAILED; a run made for its files ends with it.

    Raises:
        NotFound: no such logged model.
        InvalidInput: a status other than READY or FAILED.
    """
    status = status_from_wire(body.get("status"))
    if status == "PENDING":
        raise InvalidInput("A logged model is finalized as LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED.")
    model = store.update_logged_model(model_id, status=status)
    if model.run_id != model.source_run_id:
        ended = RunStatus.FINISHED if status == "READY" else RunStatus.FAILED
        error = None if status == "READY" else "The upload of its logged model failed."
        try:
            store.end_run(model.run_id, ended, error, now_ms())
        except RunNotActive:
            pass  # finalized twice, or ended by hand: the model's status is what was asked
    return model


def search_logged_models(store: TrackingStore, body: dict[str, Any]) -> dict[str, Any]:
    """One page of MLflow's SearchLoggedModels: models of the experiments meeting the filter.

    Raises:
        InvalidInput: no experiment_ids, an unreadable filter, order or page token, or a
            dataset filter (plinth keeps no metrics per logged model).
    """
    ids = body.get("experiment_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("Parameter 'experiment_ids' must be a non-empty list of experiment ids.")
    if body.get("datasets"):
        raise InvalidInput("plinth keeps no metrics per logged model, so it cannot filter them by dataset.")
    clauses = parse_filter(text_field(body, "filter", required=False))
    limit = _max_results(body.get("max_results"))
    start = _page_start(body.get("page_token"))
    experiments = _experiment_ids(store, ids)
    found = [m for m in _all_models(store, experiments, exact_name(clauses)) if matches(m, clauses)]
    page = order_models(found, body.get("order_by"))[start : start + limit]
    default = default_experiment_id(store)
    answer: dict[str, Any] = {"models": [logged_model_json(m, default) for m in page]}
    if start + limit < len(found):
        answer["next_page_token"] = str(start + limit)
    return answer


def _experiment_ids(store: TrackingStore, ids: list[str]) -> list[str]:
    """plinth's ids of the experiments MLflow names ("0" is Default); unknown ones hold nothing."""
    out = []
    for experiment_id in ids:
        try:
            out.append(experiment_of(store, experiment_id, create_default=False).id)
        except NotFound:
            continue
    return out


def _all_models(store: TrackingStore, experiments: list[str], name: str | None) -> list[LoggedModel]:
    if not experiments:
        return []
    models: list[LoggedModel] = []
    while True:
        page = store.search_logged_models(
            experiment_ids=experiments, name=name, limit=_PAGE, offset=len(models)
        )
        models += page
        if len(page) < _PAGE:
            return models


def _max_results(value: object) -> int:
    if value is None or value == "":
        return DEFAULT_RESULTS
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_RESULTS:
        raise InvalidInput(f"Parameter 'max_results' must be a whole number from 1 to {MAX_RESULTS}.")
    return value


def _page_start(token: object) -> int:
    if token is None or token == "":
        return 0
    if not isinstance(token, str) or not token.isdigit():
        raise InvalidInput(f"Page token {token!r:.80} was not given by this server; start without one.")
    return int(token)


def list_model_files(store: TrackingStore, model_id: str, folder: str | None) -> dict[str, Any]:
    """MLflow's ListLoggedModelArtifacts: the entries of a folder of the model's files."""
    model = store.get_logged_model(model_id)
    rel = _model_rel(model, folder) if folder else ""
    entries = folder_entries(store, ArtifactTarget(model.run_id, model_files_path(model.id, rel)))
    files = [
        {"path": f"{rel}/{e.name}" if rel else e.name, "is_dir": e.is_dir}
        | ({} if e.is_dir else {"file_size": e.size})
        for e in entries
    ]
    return {"root_uri": model_json(store, model)["info"]["artifact_uri"], "files": files}


def _model_rel(model: LoggedModel, path: str) -> str:
    """`path` below the model's root, checked as an artifact path."""
    return parse_artifact_path(f"{model.experiment_id}/models/{model.id}/artifacts/{path}").rel


def logged_models_router() -> APIRouter:
    """The routes of MLflow 3's logged models (see the module's table)."""
    router = APIRouter(tags=["mlflow"])

    @router.post(MODELS, openapi_extra=needs(Right.WRITE))
    def create(ctx: Writer, body: Body) -> dict[str, Any]:
        return {"model": model_json(ctx.store, create_logged_model(ctx.store, ctx.principal, body))}

    @router.post(f"{MODELS}/search", openapi_extra=needs(Right.READ))
    def search(ctx: Reader, body: Body) -> dict[str, Any]:
        return search_logged_models(ctx.store, body)

    @router.get(f"{MODELS}/{{model_id}}", openapi_extra=needs(Right.LOAD))
    def get(model_id: str, ctx: Loader) -> dict[str, Any]:
        return {"model": model_json(ctx.store, ctx.store.get_logged_model(model_id))}

    @router.patch(f"{MODELS}/{{model_id}}", openapi_extra=needs(Right.WRITE))
    def finalize(model_id: str, ctx: Writer, body: Body) -> dict[str, Any]:
        return {"model": model_json(ctx.store, finalize_logged_model(ctx.store, model_id, body))}

    @router.delete(f"{MODELS}/{{model_id}}", openapi_extra=needs(Right.MAINTAIN))
    def delete(model_id: str, ctx: Maintainer) -> Response:
        ctx.store.get_logged_model(model_id)
        return not_implemented(
            f"plinth keeps logged model {model_id}: its files are artifacts of run(s) that lineage "
            "and audit refer to. Tag it instead (e.g. set a tag 'deprecated')."
        )

    @router.patch(f"{MODELS}/{{model_id}}/tags", openapi_extra=needs(Right.WRITE))
    def set_tags(model_id: str, ctx: Writer, body: Body) -> dict[str, Any]:
        store = ctx.store
        return {
            "model": model_json(store, store.update_logged_model(model_id, tags=key_values(body, "tags")))
        }

    @router.delete(f"{MODELS}/{{model_id}}/tags/{{tag_key:path}}", openapi_extra=needs(Right.WRITE))
    def delete_tag(model_id: str, tag_key: str, ctx: Writer) -> dict[str, Any]:
        ctx.store.delete_logged_model_tag(model_id, tag_key)
        return {}

    @router.post(f"{MODELS}/{{model_id}}/params", openapi_extra=needs(Right.WRITE))
    def log_params(model_id: str, ctx: Writer, body: Body) -> dict[str, Any]:
        ctx.store.update_logged_model(model_id, params=key_values(body, "params"))
        return {}

    @router.get(f"{MODELS}/{{model_id}}/artifacts/directories", openapi_extra=needs(Right.LOAD))
    def list_files(model_id: str, ctx: Loader, artifact_directory_path: str | None = None) -> dict[str, Any]:
        return list_model_files(ctx.store, model_id, artifact_directory_path)

    @router.get(f"{MODELS}/{{model_id}}/artifacts/files", openapi_extra=needs(Right.LOAD))
    def get_file(
        model_id: str, ctx: Loader, artifact_file_path: Annotated[str, Query(min_length=1)]
    ) -> Response:
        model = ctx.store.get_logged_model(model_id)
        target = ArtifactTarget(
            model.run_id, model_files_path(model.id, _model_rel(model, artifact_file_path))
        )
        return file_response(ctx, target, artifact_file_path)

    return router
