"""MLflow's tracking API over plinth's store: experiments, runs, params, metrics, tags, search.

    POST /api/2.0/mlflow/experiments/create               write     name, tags (artifact_location: ours)
    GET  /api/2.0/mlflow/experiments/get                  read      "0" is the experiment "Default"
    GET  /api/2.0/mlflow/experiments/get-by-name          read
    POST|GET /api/2.0/mlflow/experiments/search           read      filter, order_by, pages
    POST /api/2.0/mlflow/experiments/update               write     refused: plinth does not rename
    POST /api/2.0/mlflow/experiments/set-experiment-tag   write
    POST /api/2.0/mlflow/experiments/delete|restore       maintain  refused: plinth keeps experiments
    POST /api/2.0/mlflow/runs/create                      write     mlflow.parentRunId: a lineage edge
    GET  /api/2.0/mlflow/runs/get                         read      with dataset and model inputs, outputs
    POST /api/2.0/mlflow/runs/update                      write     end a run (once), rename it
    POST /api/2.0/mlflow/runs/delete|restore              maintain  refused: plinth keeps runs
    POST /api/2.0/mlflow/runs/search                      read
    POST /api/2.0/mlflow/runs/log-metric|log-parameter|set-tag|delete-tag|log-batch   write
    POST /api/2.0/mlflow/runs/log-inputs                  write     datasets: versions without bytes
    POST /api/2.0/mlflow/runs/outputs                     write     run -produced-> logged model
    POST /api/2.0/mlflow/runs/log-model                   write     MLflow 2's model history tag
    GET  /api/2.0/mlflow/metrics/get-history              read      every point, step and time

Every write goes through the request's store (audited as the caller, in its workspace), in one
transaction per request (a dataset version of log-inputs is recorded on its own first). The
run's user is the caller; MLflow's `mlflow.user` tag is kept as a tag. MLflow sends no
heartbeats, so its runs are created with a long heartbeat interval. A request is authorized,
answered and serialized in one trip to a worker thread: the hot paths are small requests.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from plinth.core.access import Right
from plinth.core.entities import DatasetVersion, Experiment, LineageEdge, Run, RunStatus
from plinth.core.errors import InvalidInput, NotFound, RunNotActive
from plinth.core.ids import now_ms
from plinth.core.validation import check_name
from plinth.server.context import RequestContext, require
from plinth.server.mlflow.common import (
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    PREFIX,
    experiment_of,
    json_body,
    needs,
    query_body,
    run_of,
)
from plinth.server.mlflow.errors import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, MlflowError
from plinth.server.mlflow.run_json import (
    CONTEXT_TAG,
    LOGGED_MODEL,
    LOGGED_MODELS_TAG,
    MAX_EXPERIMENT_TAG_VALUE,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    PARENT_RUN_TAG,
    RUN_NAME_TAG,
    batch_params,
    check_batch_limits,
    dataset_of,
    entity_key,
    experiment_id_of,
    experiment_json,
    history_json,
    items,
    limited,
    lineage_io,
    metric_point,
    mlflow_order,
    mlflow_status,
    optional_int64,
    refuse,
    run_id_of,
    run_info_json,
    run_json,
    run_status,
    string,
    strings,
    tag_pairs,
    unique_points,
    view_type,
)
from plinth.server.mlflow.search import (
    experiment_filter,
    max_results,
    offset_of,
    page_token,
    parse_filter,
    runs_order,
    runs_where,
    sort_experiments,
)
from plinth.store.base import NewRun
from plinth.store.filter_check import check_filter, check_order

if TYPE_CHECKING:
    from plinth.store.sql import SqlStore

Body = dict[str, Any]
Handler = Callable[[RequestContext, Body], Body]

MLFLOW_HEARTBEAT_S = 30 * 86_400.0
"""The heartbeat interval of runs MLflow's client creates: it sends no heartbeats, so a run it
leaves RUNNING reads as CRASHED (FAILED to MLflow) only after three silent months."""


@dataclass(frozen=True)
class Route:
    """One MLflow endpoint: its methods, path under /api/2.0/mlflow, right and handler."""

    methods: tuple[str, ...]
    path: str
    right: Right
    handler: Handler
    lists: frozenset[str] = frozenset()


def tracking_router() -> APIRouter:
    """The routes of MLflow's tracking API (full paths, each declaring its right)."""
    router = APIRouter(tags=["mlflow"])
    for route in ROUTES:
        endpoint = _endpoint(route)
        for method in route.methods:  # a route per method: each its own OpenAPI operation id
            router.add_api_route(
                f"{PREFIX}/{route.path}",
                endpoint,
                methods=[method],
                name=f"mlflow_{route.handler.__name__}_{method.lower()}",
                summary=(inspect.getdoc(route.handler) or "").split("\n")[0],
                response_class=Response,
                openapi_extra=needs(route.right),
            )
    return router


def _endpoint(route: Route) -> Callable[..., Any]:
    authorize = require(route.right)

    async def endpoint(request: Request) -> Response:
        body: Body | InvalidInput
        try:
            body = query_body(request, route.lists) if request.method == "GET" else await json_body(request)
        except InvalidInput as exc:  # refused once the caller is known to hold the right
            body = exc
        return await run_in_threadpool(serve, authorize, route.handler, request, body)

    endpoint.__name__ = route.handler.__name__
    return endpoint


def serve(
    authorize: Callable[[Request], RequestContext],
    handler: Handler,
    request: Request,
    body: Body | InvalidInput,
) -> Response:
    """Authorize the request, run its handler and answer with MLflow's JSON (a blocking call).

    One trip to a worker thread does all three: the hot paths (a metric, a batch, a search) are
    small requests, whose cost is mostly such trips.
    """
    ctx = authorize(request)
    if isinstance(body, InvalidInput):
        raise body
    try:
        result = handler(ctx, body)
    except RunNotActive as exc:
        raise refuse(f"{exc} MLflow's client can log to a run only while plinth has it running.") from exc
    return Response(encode(result), media_type="application/json")


def encode(result: Body) -> bytes:
    """`result` as JSON: orjson (a page of 100 runs in a tenth of the time), or the standard
    library for text orjson refuses (a lone surrogate, which the standard library escapes)."""
    try:
        return orjson.dumps(result)
    except orjson.JSONEncodeError:
        return json.dumps(result, allow_nan=False).encode()


# experiments ------------------------------------------------------------------------------------
def create_experiment(ctx: RequestContext, body: Body) -> Body:
    """Create an experiment (RESOURCE_ALREADY_EXISTS for a name in use); its artifacts are plinth's."""
    name = check_name(string(body, "name", required=True), "experiment")
    tags = tag_pairs(items(body, "tags"), "tags", MAX_EXPERIMENT_TAG_VALUE)
    store = ctx.store
    if _named(store, name) is not None:
        raise MlflowError(RESOURCE_ALREADY_EXISTS, f"Experiment '{name}' already exists.")
    with store.batch():
        experiment = store.get_or_create_experiment(name)
        if tags:
            store.set_experiment_tags(experiment.id, tags)
    return {"experiment_id": experiment_id_of(experiment)}


def _named(store: SqlStore, name: str) -> Experiment | None:
    """The experiment called `name` (not one whose id it is), or None."""
    try:
        found = store.get_experiment(name)
    except NotFound:
        return None
    return found if found.name == name else None


def get_experiment(ctx: RequestContext, body: Body) -> Body:
    """One experiment by id ("0": the experiment "Default", made on first use)."""
    experiment = experiment_of(ctx.store, string(body, "experiment_id", required=True))
    return {"experiment": experiment_json(experiment)}


def get_experiment_by_name(ctx: RequestContext, body: Body) -> Body:
    """One experiment by name (RESOURCE_DOES_NOT_EXIST, which the client reads as None)."""
    name = string(body, "experiment_name", required=True)
    found = _named(ctx.store, name)
    if found is None:
        raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"Could not find experiment with name '{name}'.")
    return {"experiment": experiment_json(found)}


def search_experiments(ctx: RequestContext, body: Body) -> Body:
    """Experiments matching a filter on name and tags, ordered and paged (all are active)."""
    test = experiment_filter(string(body, "filter") or None)
    limit = max_results(optional_int64(body, "max_results"))
    offset = offset_of(string(body, "page_token") or None)
    order = strings(body, "order_by")
    found = [] if view_type(body.get("view_type")) == "DELETED_ONLY" else ctx.store.list_experiments()
    matching = sort_experiments([exp for exp in found if test(exp)], order)
    out: Body = {"experiments": [experiment_json(exp) for exp in matching[offset : offset + limit]]}
    if offset + limit < len(matching):
        out["next_page_token"] = page_token(offset + limit)
    return out


def update_experiment(ctx: RequestContext, body: Body) -> Body:
    """Rename an experiment: refused (plinth keeps names), unless the name stays the same."""
    experiment = experiment_of(ctx.store, string(body, "experiment_id", required=True))
    new_name = string(body, "new_name", required=True)
    if new_name != experiment.name:
        raise refuse(
            f"plinth does not rename experiments: runs, lineage and the audit trail name "
            f"'{experiment.name}'. Create an experiment named '{new_name}' for new runs instead."
        )
    return {}


def set_experiment_tag(ctx: RequestContext, body: Body) -> Body:
    """Set (or overwrite) one tag of an experiment."""
    store = ctx.store
    experiment = experiment_of(store, string(body, "experiment_id", required=True))
    key = entity_key(body.get("key"), "Tag", "key")
    value = limited(string(body, "value"), MAX_EXPERIMENT_TAG_VALUE, f"Tag '{key}' value")
    store.set_experiment_tags(experiment.id, {key: value})
    return {}


def delete_experiment(ctx: RequestContext, body: Body) -> Body:
    """Delete an experiment: refused, plinth keeps experiments."""
    experiment = experiment_of(ctx.store, string(body, "experiment_id", required=True))
    raise refuse(
        f"plinth does not delete experiments: the runs, lineage and audit trail of '{experiment.name}' "
        "stay. Tag what should be hidden (MlflowClient().set_experiment_tag(id, 'archived', 'true')) "
        "and filter on the tag."
    )


def restore_experiment(ctx: RequestContext, body: Body) -> Body:
    """Restore a deleted experiment: nothing to restore, plinth deletes none."""
    experiment = experiment_of(ctx.store, string(body, "experiment_id", required=True))
    raise refuse(f"plinth never deletes experiments, so '{experiment.name}' has nothing to restore.")


# runs -------------------------------------------------------------------------------------------
def create_run(ctx: RequestContext, body: Body) -> Body:
    """Create a RUNNING run; the caller is its user, `mlflow.parentRunId` a lineage edge too."""
    tags = tag_pairs(items(body, "tags"), "tags")
    run_name = string(body, "run_name")
    name_tag = tags.get(RUN_NAME_TAG)
    if run_name and name_tag and run_name != name_tag:
        raise refuse(
            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values "
            f"(run_name='{run_name}', mlflow.runName='{name_tag}')."
        )
    name = run_name or name_tag or None
    if name is not None:
        tags[RUN_NAME_TAG] = check_name(name, "run")
    store = ctx.store
    experiment_id = string(body, "experiment_id") or DEFAULT_EXPERIMENT_ID
    if experiment_id == DEFAULT_EXPERIMENT_ID:  # made, when new, by the run's own transaction
        experiment = DEFAULT_EXPERIMENT_NAME
    else:  # another experiment must exist: the store would make one of any name it is given
        experiment = store.known_experiment(experiment_id).id
    spec = NewRun(
        experiment=experiment,
        name=name,
        params={},
        tags=tags,
        environment=None,
        heartbeat_s=MLFLOW_HEARTBEAT_S,
        user=ctx.principal.name,
        start_ms=optional_int64(body, "start_time"),
    )
    with store.batch():
        run = store.create_runs([spec])[0]
        if PARENT_RUN_TAG in tags:
            store.add_edges([_parent_edge(tags[PARENT_RUN_TAG], run.id)])
    return {"run": run_json(run, {"dataset_inputs": []}, {"model_outputs": []})}


def _parent_edge(parent_id: str, child_id: str) -> LineageEdge:
    return LineageEdge("run", parent_id, "parent_of", "run", child_id, now_ms(), {})


def get_run(ctx: RequestContext, body: Body) -> Body:
    """One run with its latest metrics, params, tags, dataset and model inputs, model outputs."""
    store = ctx.store
    run = run_of(store, run_id_of(body))
    consumed, produced = store.run_edges(run.id)
    versions: dict[str, DatasetVersion] = {}
    if any(edge.src_type == "dataset_version" for edge in consumed):
        versions = {version.id: version for version in store.list_dataset_versions()}
    inputs, outputs = lineage_io(consumed, produced, versions)
    return {"run": run_json(run, inputs, outputs)}


def update_run(ctx: RequestContext, body: Body) -> Body:
    """End a run (status and end_time), resume an ended one (status RUNNING), or rename it
    (run_name, also its tag)."""
    run_id = run_id_of(body)
    status = None if body.get("status") is None else run_status(body["status"])
    end_ms = optional_int64(body, "end_time")
    store = ctx.store
    new_name = string(body, "run_name")
    if new_name:
        with store.batch():
            store.rename_run(run_id, new_name)
            store.set_tags(run_id, {RUN_NAME_TAG: new_name})
    run = run_of(store, run_id)
    if status is None:
        return {"run_info": run_info_json(run)}
    if status in ("RUNNING", "SCHEDULED"):  # start_run(run_id=...) resumes an ended run
        if run.status is not RunStatus.RUNNING:
            store.reopen_run(run_id, now_ms())
            run = run_of(store, run_id)
        return {"run_info": run_info_json(run)}
    ended = RunStatus(status)
    stamp = end_ms if end_ms is not None else now_ms()
    if run.status is not RunStatus.RUNNING:
        if mlflow_status(run.status) == status:  # ended twice the same way: as it is
            return {"run_info": run_info_json(run)}
        with store.batch():  # another end: MLflow moves it; plinth's audit log keeps both
            store.reopen_run(run_id, stamp)
            store.end_runs([(run_id, ended, None, stamp)])
    else:
        store.end_runs([(run_id, ended, None, stamp)])
    return {"run_info": run_info_json(dataclasses.replace(run, status=ended, end_ms=stamp))}


def delete_run(ctx: RequestContext, body: Body) -> Body:
    """Delete a run: refused, plinth keeps runs."""
    run = run_of(ctx.store, run_id_of(body))
    raise refuse(
        f"plinth does not delete runs: lineage and the audit trail refer to run {run.id}. Tag what should "
        "be hidden (mlflow.set_tag('archived', 'true')) and filter on the tag "
        "(\"tags.archived != 'true'\")."
    )


def restore_run(ctx: RequestContext, body: Body) -> Body:
    """Restore a deleted run: nothing to restore, plinth deletes none."""
    run = run_of(ctx.store, run_id_of(body))
    raise refuse(f"plinth never deletes runs, so run {run.id} has nothing to restore.")


def search_runs(ctx: RequestContext, body: Body) -> Body:
    """Runs of some experiments matching an MLflow filter, in MLflow's order, a page at a time."""
    clauses = parse_filter(string(body, "filter") or None)
    order = runs_order(strings(body, "order_by"))
    limit = max_results(optional_int64(body, "max_results"))
    offset = offset_of(string(body, "page_token") or None)
    view = view_type(body.get("run_view_type"))
    store = ctx.store
    where = runs_where(clauses, store)
    check_filter(where)
    check_order(order)
    experiments = [
        DEFAULT_EXPERIMENT_NAME if e == DEFAULT_EXPERIMENT_ID else e for e in strings(body, "experiment_ids")
    ]
    if view == "DELETED_ONLY" or not experiments:
        return {"runs": []}

    def page(names: list[str]) -> list[Run]:
        return store.search_runs(
            experiments=names, where=where, order_by=order, limit=limit + 1, now_ms=now_ms(), offset=offset
        )

    try:
        runs = page(experiments)
    except NotFound:  # MLflow leaves out experiments that do not exist
        known = [e for e in experiments if _exists(store, e)]
        runs = page(known) if known else []
    out: Body = {"runs": [run_json(run) for run in runs[:limit]]}
    if len(runs) > limit:
        out["next_page_token"] = page_token(offset + limit)
    return out


def _exists(store: SqlStore, experiment: str) -> bool:
    try:
        store.get_experiment(experiment)
    except NotFound:
        return False
    return True


# logging ----------------------------------------------------------------------------------------
def log_metric(ctx: RequestContext, body: Body) -> Body:
    """Log one metric point (value, timestamp, step; NaN and the infinities too)."""
    point = metric_point(run_id_of(body), body, "", {})
    ctx.store.write_metrics([point])
    return {}


def log_param(ctx: RequestContext, body: Body) -> Body:
    """Log one param (the same value again is fine; another value is refused)."""
    key = entity_key(body.get("key"), "Param", "key")
    value = limited(string(body, "value"), MAX_PARAM_VALUE, f"Param '{key}' value")
    ctx.store.log_params(run_id_of(body), {key: value})
    return {}


def set_tag(ctx: RequestContext, body: Body) -> Body:
    """Set (or overwrite) one tag of a run."""
    run_id = run_id_of(body)
    key = entity_key(body.get("key"), "Tag", "key")
    value = limited(string(body, "value"), MAX_TAG_VALUE, f"Tag '{key}' value")
    _write_tags(ctx.store, run_id, {key: value})
    return {}


def _write_tags(store: SqlStore, run_id: str, tags: dict[str, str]) -> None:
    """Set tags in one transaction: `mlflow.runName` also renames the run, and
    `mlflow.parentRunId` also records the parent's lineage edge."""
    with store.batch():
        if tags.get(RUN_NAME_TAG):
            store.rename_run(run_id, tags[RUN_NAME_TAG])
        store.set_tags(run_id, tags)
        if PARENT_RUN_TAG in tags:
            store.add_edges([_parent_edge(tags[PARENT_RUN_TAG], run_id)])


def delete_tag(ctx: RequestContext, body: Body) -> Body:
    """Delete one tag of a run (RESOURCE_DOES_NOT_EXIST when it has none by that key)."""
    ctx.store.delete_run_tag(string(body, "run_id", required=True), string(body, "key", required=True))
    return {}


def log_batch(ctx: RequestContext, body: Body) -> Body:
    """Log up to 1000 metric points, 100 params and 100 tags in one transaction."""
    run_id = string(body, "run_id", required=True)
    metrics, params, tags = items(body, "metrics"), items(body, "params"), items(body, "tags")
    check_batch_limits(len(metrics), len(params), len(tags))
    keys: dict[str, str] = {}
    points = unique_points(
        [metric_point(run_id, entry, f"metrics[{i}].", keys) for i, entry in enumerate(metrics)]
    )
    values = batch_params(params)
    tag_values = tag_pairs(tags, "tags")
    store = ctx.store
    with store.batch():
        if tag_values.get(RUN_NAME_TAG):
            store.rename_run(run_id, tag_values[RUN_NAME_TAG])
        if values:
            store.log_params(run_id, values)
        if points:
            store.write_metrics(points)
        if tag_values:
            store.set_tags(run_id, tag_values)
            if PARENT_RUN_TAG in tag_values:
                store.add_edges([_parent_edge(tag_values[PARENT_RUN_TAG], run_id)])
    return {}


def log_inputs(ctx: RequestContext, body: Body) -> Body:
    """Record the datasets (and MLflow 3 logged models) a run consumed, as lineage.

    A dataset becomes a plinth dataset version that holds no bytes: MLflow's digest, its
    schema and row count where MLflow's profile says, and what MLflow sent kept in its profile.
    """
    run_id = string(body, "run_id", required=True)
    datasets, models = items(body, "datasets"), items(body, "models")
    store = ctx.store
    run_of(store, run_id)
    edges = []
    for i, entry in enumerate(datasets):
        new, input_tags = dataset_of(entry, f"datasets[{i}]")
        version, _created = store.add_dataset_version(new)
        role = input_tags.get(CONTEXT_TAG) or "input"
        attributes = {"role": role, "mlflow_tags": input_tags}
        edges.append(
            LineageEdge("dataset_version", version.id, "consumed_by", "run", run_id, now_ms(), attributes)
        )
    for i, entry in enumerate(models):
        model_id = string(entry, "model_id", required=True, path=f"models[{i}].model_id")
        edges.append(LineageEdge(LOGGED_MODEL, model_id, "consumed_by", "run", run_id, now_ms(), {}))
    if edges:
        store.add_edges(edges)
    return {}


def log_outputs(ctx: RequestContext, body: Body) -> Body:
    """Record the logged models a run produced: run -produced-> logged model (with the step)."""
    run_id = string(body, "run_id", required=True)
    if body.get("models") is None:
        raise refuse("Missing value for required parameter 'models'.")
    models = items(body, "models")
    store = ctx.store
    run_of(store, run_id)
    edges = [
        LineageEdge(
            "run",
            run_id,
            "produced",
            LOGGED_MODEL,
            string(entry, "model_id", required=True, path=f"models[{i}].model_id"),
            now_ms(),
            {"step": optional_int64(entry, "step") or 0},
        )
        for i, entry in enumerate(models)
    ]
    if edges:
        store.add_edges(edges)
    return {}


def log_model(ctx: RequestContext, body: Body) -> Body:
    """Append a logged model's metadata to the run's `mlflow.log-model.history` tag (MLflow 2)."""
    run_id = string(body, "run_id", required=True)
    text = string(body, "model_json", required=True)
    try:
        model = json.loads(text)
    except ValueError:
        raise refuse(f"Malformed model info. \n {text:.200} \n is not a valid JSON.") from None
    missing = {"artifact_path", "flavors", "utc_time_created", "run_id"} - set(
        model if isinstance(model, dict) else ()
    )
    if missing:
        raise refuse(f"Model json is missing mandatory fields: {sorted(missing)}")
    store = ctx.store
    run = run_of(store, run_id)
    try:
        history = json.loads(run.tags.get(LOGGED_MODELS_TAG, "[]"))
    except ValueError:
        history = []
    history = [*history, model] if isinstance(history, list) else [model]
    store.set_tags(run_id, {LOGGED_MODELS_TAG: json.dumps(history)})
    return {}


def get_metric_history(ctx: RequestContext, body: Body) -> Body:
    """Every point of one metric of a run (step, timestamp, value) in MLflow's order (by time),
    paged when max_results is given."""
    run_id = run_id_of(body)
    key = string(body, "metric_key", required=True)
    size = optional_int64(body, "max_results")
    if size is not None and size <= 0:
        raise refuse(
            f"Invalid value {size} for parameter 'max_results' supplied. It must be a positive integer."
        )
    offset = offset_of(string(body, "page_token") or None)
    points = mlflow_order(ctx.store.metric_history(run_id, key))
    end = len(points) if size is None else min(len(points), offset + size)
    out: Body = {"metrics": history_json(run_id, key, points[offset:end])}
    if end < len(points):
        out["next_page_token"] = page_token(end)
    return out


def _route(
    methods: str, path: str, right: Right, handler: Handler, lists: frozenset[str] = frozenset()
) -> Route:
    return Route(tuple(methods.split("|")), path, right, handler, lists)


ROUTES = (
    _route("POST", "experiments/create", Right.WRITE, create_experiment),
    _route("GET", "experiments/get", Right.READ, get_experiment),
    _route("GET", "experiments/get-by-name", Right.READ, get_experiment_by_name),
    _route("POST|GET", "experiments/search", Right.READ, search_experiments, frozenset({"order_by"})),
    _route("POST", "experiments/update", Right.WRITE, update_experiment),
    _route("POST", "experiments/set-experiment-tag", Right.WRITE, set_experiment_tag),
    _route("POST", "experiments/delete", Right.MAINTAIN, delete_experiment),
    _route("POST", "experiments/restore", Right.MAINTAIN, restore_experiment),
    _route("POST", "runs/create", Right.WRITE, create_run),
    _route("GET", "runs/get", Right.READ, get_run),
    _route("POST", "runs/update", Right.WRITE, update_run),
    _route("POST", "runs/delete", Right.MAINTAIN, delete_run),
    _route("POST", "runs/restore", Right.MAINTAIN, restore_run),
    _route("POST", "runs/search", Right.READ, search_runs),
    _route("POST", "runs/log-metric", Right.WRITE, log_metric),
    _route("POST", "runs/log-parameter", Right.WRITE, log_param),
    _route("POST", "runs/set-tag", Right.WRITE, set_tag),
    _route("POST", "runs/delete-tag", Right.WRITE, delete_tag),
    _route("POST", "runs/log-batch", Right.WRITE, log_batch),
    _route("POST", "runs/log-inputs", Right.WRITE, log_inputs),
    _route("POST", "runs/outputs", Right.WRITE, log_outputs),
    _route("POST", "runs/log-model", Right.WRITE, log_model),
    _route("GET", "metrics/get-history", Right.READ, get_metric_history),
)
"""Every tracking endpoint: methods, path under /api/2.0/mlflow, right, handler."""
