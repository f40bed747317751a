"""MLflow's model registry over plinth's: registered models, versions, aliases, tags, download URIs.

    registered-models/  create get search update(PATCH) set-tag delete-tag get-latest-versions
                        alias (POST set, DELETE, GET: the version an alias names)
                        rename, delete: refused (plinth keeps a model's name and versions for life)
    model-versions/     create get search update(PATCH) set-tag delete-tag get-download-uri
                        delete, transition-stage: refused (versions stay; aliases replace stages)

`model-versions/create` makes a real plinth model version of flavor "mlflow": its files are
the files the source names, already in the blob store as a run's artifacts (a logged model's
`models:/m-<id>`, `runs:/<run_id>/<path>`, an `mlflow-artifacts:` folder, or another version),
registered without copying a byte, with the source kept and a lineage edge from the run that
produced it. MLflow's client polls a new version until it is READY; plinth's are READY at once.
Version numbers are plinth's. Reading needs `read` (what loading a model needs: `load`),
registering and describing `write`, moving aliases and deleting tags `maintain`; the store
writes the audit events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from plinth.core.access import Right
from plinth.core.entities import ModelFile, ModelVersion, RegisteredModel
from plinth.core.errors import ConflictError, InvalidInput, NotFound
from plinth.core.refs import check_alias
from plinth.registry.adopt import artifact_files, mlflow_model_meta, register_files
from plinth.server.context import RequestContext, require
from plinth.server.mlflow import registry_json as wire
from plinth.server.mlflow.common import (
    PREFIX,
    json_body,
    logged_model_prefix,
    logged_model_uri,
    needs,
    query_body,
    run_artifact_uri,
    run_of,
    text_field,
)
from plinth.server.mlflow.errors import BAD_REQUEST, RESOURCE_ALREADY_EXISTS, MlflowError

if TYPE_CHECKING:
    from plinth.store.base import Store

Body = dict[str, Any]
Handler = Callable[[RequestContext, Body], Body]

MODELS_PAGE, MODELS_LIMIT = 100, 1000
VERSIONS_PAGE, VERSIONS_LIMIT = 10_000, 200_000
"""MLflow's default and largest `max_results` of each search."""
VERSION_ORDER = [("last_updated_timestamp", False), ("name", True), ("version_number", False)]
"""MLflow's order of a version search that names none."""


def registry_router() -> APIRouter:
    """Every registry route of MLflow's REST API, each requiring its right."""
    router = APIRouter(tags=["mlflow"])
    for path, method, handler, right in ROUTES:
        router.add_api_route(
            f"{PREFIX}/{path}",
            _endpoint(handler, right),
            methods=[method],
            openapi_extra=needs(right),
            name=f"mlflow_{path.replace('/', '_').replace('-', '_')}_{method.lower()}",
        )
    return router


def _endpoint(handler: Handler, right: Right) -> Callable[..., JSONResponse]:
    """A route calling `handler` with the caller's context (holding `right`) and the request's body."""

    caller, sent = Depends(require(right)), Depends(_body)

    def endpoint(ctx: RequestContext = caller, body: Body = sent) -> JSONResponse:
        return JSONResponse(handler(ctx, body))

    endpoint.__doc__ = handler.__doc__
    return endpoint


LISTS = frozenset({"order_by", "stages"})
"""Query parameters a registry GET may repeat."""


async def _body(request: Request) -> Body:
    """A GET's query parameters (lists repeated) or another method's JSON body, as MLflow sends them."""
    if request.method == "GET":
        return query_body(request, LISTS)
    return await json_body(request)


# registered models -------------------------------------------------------------------------
def create_registered_model(ctx: RequestContext, body: Body) -> Body:
    """Create a model name with no versions yet (RESOURCE_ALREADY_EXISTS if it exists)."""
    name = _name(body)
    description = text_field(body, "description", required=False) or ""
    tags = wire.tags_of(body.get("tags"))
    store = ctx.store
    try:
        store.create_registered_model(name, description)
    except ConflictError as exc:
        raise MlflowError(RESOURCE_ALREADY_EXISTS, f"Registered Model (name={name}) already exists.") from exc
    if tags:
        store.set_registered_model_tags(name, tags)
    return {"registered_model": _model_json(store, store.get_registered_model(name))}


def get_registered_model(ctx: RequestContext, body: Body) -> Body:
    """A registered model with its latest version, aliases and tags."""
    store = ctx.store
    return {"registered_model": _model_json(store, store.get_registered_model(_name(body)))}


def update_registered_model(ctx: RequestContext, body: Body) -> Body:
    """Change a model's description."""
    name, store = _name(body), ctx.store
    store.set_model_description(name, None, text_field(body, "description", required=False) or "")
    return {"registered_model": _model_json(store, store.get_registered_model(name))}


def rename_registered_model(ctx: RequestContext, body: Body) -> Body:
    """Refused: references, lineage and the audit log name a model by its name for good."""
    name = _name(body)
    raise MlflowError(
        BAD_REQUEST,
        f"plinth does not rename models: references, lineage and the audit log name {name!r} for good. "
        "Register the versions you need under the new name: mlflow.register_model(<source>, <new name>).",
    )


def delete_registered_model(ctx: RequestContext, body: Body) -> Body:
    """Refused: a model's versions stay, for lineage and audit."""
    name = _name(body)
    raise MlflowError(
        BAD_REQUEST,
        f"plinth does not delete models: the versions of {name!r} stay, since lineage and the audit log "
        "refer to them. Move its aliases away (delete_registered_model_alias) to stop serving it.",
    )


def search_registered_models(ctx: RequestContext, body: Body) -> Body:
    """Registered models matching MLflow's filter (name and tags), ordered and paged."""
    conditions = wire.parse_filter(body.get("filter"), wire.MODEL_ATTRIBUTES)
    order = [*wire.parse_order(body.get("order_by"), wire.MODEL_ORDER_KEYS), ("name", True)]
    size = wire.max_results(body.get("max_results"), MODELS_PAGE, MODELS_LIMIT)
    store = ctx.store
    found = [
        rm for rm in store.list_registered_models() if wire.matches(conditions, {"name": rm.name}, rm.tags)
    ]
    latest = _Latest(store)

    def value(rm: RegisteredModel, key: str) -> Any:
        if key == "last_updated_timestamp":
            return wire.model_updated_ms(rm, latest(rm))
        return rm.created_ms if key == "creation_timestamp" else rm.name

    shown, following = wire.page(wire.sort_by(found, order, value), body.get("page_token"), size)
    out: Body = {"registered_models": [wire.registered_model_json(rm, latest(rm)) for rm in shown]}
    if following:
        out["next_page_token"] = following
    return out


def get_latest_versions(ctx: RequestContext, body: Body) -> Body:
    """The newest version (every version is in stage "None"; other stages hold none)."""
    name, store = _name(body), ctx.store
    stages = body.get("stages") or []
    rm = store.get_registered_model(name)
    wanted = not stages or any(str(s).lower() == wire.STAGE.lower() for s in stages)
    latest = _Latest(store)(rm) if wanted else None
    return {"model_versions": [] if latest is None else [wire.version_json(latest)]}


def set_registered_model_tag(ctx: RequestContext, body: Body) -> Body:
    """Set one tag of a model."""
    ctx.store.set_registered_model_tags(_name(body), {_key(body): _value(body)})
    return {}


def delete_registered_model_tag(ctx: RequestContext, body: Body) -> Body:
    """Remove one tag of a model."""
    ctx.store.delete_registered_model_tag(_name(body), _key(body))
    return {}


def set_alias(ctx: RequestContext, body: Body) -> Body:
    """Point an alias at a version (plinth's alias: `plinth.load_model("name@alias")` follows it)."""
    alias = check_alias(_text(body, "alias"))
    ctx.store.set_alias(_name(body), alias, _version(body))
    return {}


def delete_alias(ctx: RequestContext, body: Body) -> Body:
    """Remove an alias."""
    ctx.store.delete_alias(_name(body), _text(body, "alias"))
    return {}


def get_version_by_alias(ctx: RequestContext, body: Body) -> Body:
    """The version an alias names."""
    name, store = _name(body), ctx.store
    version = store.resolve_alias(name, _text(body, "alias"))
    return {"model_version": wire.version_json(store.get_model_version(name, version))}


# model versions ----------------------------------------------------------------------------
def create_model_version(ctx: RequestContext, body: Body) -> Body:
    """Register the files `source` names as the next version of an existing model name."""
    name, source, tags = _name(body), _text(body, "source"), wire.tags_of(body.get("tags"))
    store = ctx.store
    store.get_registered_model(name)  # MLflow's client creates the name first; a version needs one
    found = _source_files(
        store,
        source,
        text_field(body, "run_id", required=False),
        text_field(body, "model_id", required=False),
    )
    meta, environment, signature = mlflow_model_meta(ctx.blobs, found.files)
    mv = register_files(
        store,
        ctx.blobs,
        name=name,
        files=found.files,
        source=found.source,
        run_id=found.run_id,
        description=text_field(body, "description", required=False) or "",
        meta=meta,
        environment=environment,
        signature=signature,
    )
    if tags:
        store.set_model_version_tags(name, mv.version, tags)
        mv = store.get_model_version(name, mv.version)
    return {"model_version": wire.version_json(mv)}


def get_model_version(ctx: RequestContext, body: Body) -> Body:
    """One version."""
    return {"model_version": wire.version_json(ctx.store.get_model_version(_name(body), _version(body)))}


def update_model_version(ctx: RequestContext, body: Body) -> Body:
    """Change a version's description."""
    name, version, store = _name(body), _version(body), ctx.store
    store.set_model_description(name, version, text_field(body, "description", required=False) or "")
    return {"model_version": wire.version_json(store.get_model_version(name, version))}


def delete_model_version(ctx: RequestContext, body: Body) -> Body:
    """Refused: a version stays, for lineage and audit."""
    name, version = _name(body), _version(body)
    raise MlflowError(
        BAD_REQUEST,
        f"plinth does not delete model versions: {name}/{version} stays, since lineage and the audit log "
        "refer to it. Move its aliases away (delete_registered_model_alias) to stop serving it.",
    )


def transition_stage(ctx: RequestContext, body: Body) -> Body:
    """Refused: stages are deprecated in MLflow; plinth keeps aliases."""
    name = _name(body)
    raise MlflowError(
        BAD_REQUEST,
        "plinth keeps no model stages (MLflow deprecated them): use an alias instead, e.g. "
        f"client.set_registered_model_alias({name!r}, 'production', <version>), and load "
        f"'models:/{name}@production'.",
    )


def search_model_versions(ctx: RequestContext, body: Body) -> Body:
    """Versions matching MLflow's filter (name, run_id, source_path, version_number, tags), in pages."""
    conditions = wire.parse_filter(body.get("filter"), wire.VERSION_ATTRIBUTES)
    order = wire.parse_order(body.get("order_by"), wire.VERSION_ORDER_KEYS) or VERSION_ORDER
    order += [pair for pair in (("name", True), ("version_number", False)) if pair[0] not in dict(order)]
    size = wire.max_results(body.get("max_results"), VERSIONS_PAGE, VERSIONS_LIMIT)
    store = ctx.store
    named = [c.value for c in conditions if not c.tag and c.key == "name" and c.op == "="]
    names = named[:1] or [rm.name for rm in store.list_registered_models() if rm.latest_version]
    found = [mv for mv in _versions(store, names) if wire.matches(conditions, _attributes(mv), mv.tags)]
    ordered = wire.sort_by(found, order, lambda mv, key: _attributes(mv)[key])
    shown, following = wire.page(ordered, body.get("page_token"), size)
    out: Body = {"model_versions": [wire.version_json(mv) for mv in shown]}
    if following:
        out["next_page_token"] = following
    return out


def get_download_uri(ctx: RequestContext, body: Body) -> Body:
    """Where MLflow's client downloads a version's files from: the proxied artifacts of its source."""
    store = ctx.store
    return {"artifact_uri": _download_uri(store, store.get_model_version(_name(body), _version(body)))}


def set_model_version_tag(ctx: RequestContext, body: Body) -> Body:
    """Set one tag of a version."""
    ctx.store.set_model_version_tags(_name(body), _version(body), {_key(body): _value(body)})
    return {}


def delete_model_version_tag(ctx: RequestContext, body: Body) -> Body:
    """Remove one tag of a version."""
    ctx.store.delete_model_version_tag(_name(body), _version(body), _key(body))
    return {}


ROUTES: list[tuple[str, str, Handler, Right]] = [
    ("registered-models/create", "POST", create_registered_model, Right.WRITE),
    ("registered-models/get", "GET", get_registered_model, Right.READ),
    ("registered-models/update", "PATCH", update_registered_model, Right.WRITE),
    ("registered-models/rename", "POST", rename_registered_model, Right.MAINTAIN),
    ("registered-models/delete", "DELETE", delete_registered_model, Right.MAINTAIN),
    ("registered-models/search", "GET", search_registered_models, Right.READ),
    ("registered-models/get-latest-versions", "POST", get_latest_versions, Right.LOAD),
    ("registered-models/get-latest-versions", "GET", get_latest_versions, Right.LOAD),
    ("registered-models/set-tag", "POST", set_registered_model_tag, Right.WRITE),
    ("registered-models/delete-tag", "DELETE", delete_registered_model_tag, Right.MAINTAIN),
    ("registered-models/alias", "POST", set_alias, Right.MAINTAIN),
    ("registered-models/alias", "DELETE", delete_alias, Right.MAINTAIN),
    ("registered-models/alias", "GET", get_version_by_alias, Right.LOAD),
    ("model-versions/create", "POST", create_model_version, Right.WRITE),
    ("model-versions/get", "GET", get_model_version, Right.LOAD),
    ("model-versions/update", "PATCH", update_model_version, Right.WRITE),
    ("model-versions/delete", "DELETE", delete_model_version, Right.MAINTAIN),
    ("model-versions/transition-stage", "POST", transition_stage, Right.MAINTAIN),
    ("model-versions/search", "GET", search_model_versions, Right.READ),
    ("model-versions/get-download-uri", "GET", get_download_uri, Right.LOAD),
    ("model-versions/set-tag", "POST", set_model_version_tag, Right.WRITE),
    ("model-versions/delete-tag", "DELETE", delete_model_version_tag, Right.MAINTAIN),
]
"""(path under the prefix, method, handler, right) of every route."""


# what the handlers share -------------------------------------------------------------------
def _text(body: Body, key: str) -> str:
    """A required text field (InvalidInput naming it when missing)."""
    return text_field(body, key) or ""


def _name(body: Body) -> str:
    return _text(body, "name")


def _key(body: Body) -> str:
    return _text(body, "key")


def _value(body: Body) -> str:
    value = body.get("value")
    return "" if value is None else str(value)


def _version(body: Body) -> int:
    """The `version` a request names (MLflow sends it as text: "3")."""
    value = body.get("version")
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise InvalidInput(f"Parameter 'version' must be a version number such as '3', got {value!r:.80}.")
    return int(text)


class _Latest:
    """Each model's newest version, read once per request (None for a name without versions)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: dict[str, ModelVersion | None] = {}

    def __call__(self, rm: RegisteredModel) -> ModelVersion | None:
        if rm.name not in self.seen:
            self.seen[rm.name] = self.store.get_model_version(rm.name) if rm.latest_version else None
        return self.seen[rm.name]


def _model_json(store: Store, rm: RegisteredModel) -> Body:
    return wire.registered_model_json(rm, _Latest(store)(rm))


def _versions(store: Store, names: list[str]) -> list[ModelVersion]:
    found: list[ModelVersion] = []
    for name in names:
        try:
            found.extend(store.list_model_versions(name))
        except NotFound:  # a name without versions, or none at all: nothing to match
            continue
    return found


def _attributes(mv: ModelVersion) -> dict[str, Any]:
    """What a version search filters and orders on, by MLflow's names."""
    return {
        "name": mv.name,
        "run_id": mv.run_id,
        "source_path": mv.source,
        "version_number": mv.version,
        "creation_timestamp": mv.created_ms,
        "last_updated_timestamp": mv.created_ms,
    }


class _Found(NamedTuple):
    """What a version's source gave: its files, the run that produced them, the source to keep."""

    files: list[ModelFile]
    run_id: str | None
    source: str


def _source_files(store: Store, text: str, run_id: str | None, model_id: str | None) -> _Found:
    """The files `text` names, already stored as a run's artifacts (or another version's files).

    A source naming another version by alias or as the latest is kept as `models:/name/<number>`,
    as MLflow keeps it: the alias may move, the version's files may not.

    Raises:
        InvalidInput: a source of another form, one that names no files, or a `run_id` or
            `model_id` other than the one the source names.
        NotFound: no such logged model, run or version.
    """
    source = wire.parse_source(text)
    if source.model_id is not None:
        _same("model_id", model_id, source.model_id)
        logged = store.get_logged_model(source.model_id)
        prefix = logged_model_prefix(logged.id) + source.path
        files = artifact_files(store.list_artifacts(logged.run_id, prefix), prefix)
        found = _Found(files, run_id or logged.source_run_id or logged.run_id, text)
    elif source.run_id is not None:
        _same("run_id", run_id, source.run_id)
        files = artifact_files(store.list_artifacts(source.run_id, source.path), source.path)
        found = _Found(files, source.run_id, text)
    else:
        origin = _named_version(store, source)
        found = _Found(store.model_files(origin.id), run_id or origin.run_id, f"models:/{origin.ref}")
    if not found.files:
        raise InvalidInput(
            f"The source {text[:300]!r} names no files: log the model first (mlflow.<flavor>.log_model), "
            "then register the URI it returns (model_info.model_uri)."
        )
    return found


def _same(field: str, given: str | None, named: str) -> None:
    if given and given != named:
        raise InvalidInput(
            f"Parameter '{field}' is {given!r}, but the source names {named!r}; send one or match them."
        )


def _named_version(store: Store, source: wire.Source) -> ModelVersion:
    name = source.model or ""
    version = store.resolve_alias(name, source.alias) if source.alias else source.version
    return store.get_model_version(name, version)


def _download_uri(store: Store, mv: ModelVersion) -> str:
    """The proxied-artifacts URI of a version's files, from its source (through the versions it copies).

    Raises:
        InvalidInput: a version plinth registered itself (no MLflow model to download).
    """
    while True:
        if mv.source is None or mv.flavor != "mlflow":
            raise InvalidInput(
                f"Model version {mv.ref} was registered by plinth ({mv.flavor}), not from an MLflow model, "
                f"so MLflow's client cannot load it: load it with plinth.load_model({mv.ref!r})."
            )
        source = wire.parse_source(mv.source)
        tail = f"/{source.path}" if source.path else ""
        if source.model_id is not None:
            logged = store.get_logged_model(source.model_id)
            return logged_model_uri(logged.experiment_id, logged.id) + tail
        if source.run_id is not None:
            run = run_of(store, source.run_id)
            return run_artifact_uri(run.experiment_id, run.id) + tail
        mv = _named_version(store, source)  # a copy names an older version: this ends
