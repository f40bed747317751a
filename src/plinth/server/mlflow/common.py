"""What every MLflow route shares: prefixes, rights, request bodies, experiments and runs by id,
artifact addresses."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request

from plinth.core.access import Right
from plinth.core.errors import InvalidInput, NotFound
from plinth.core.filters import Compare, Field
from plinth.core.ids import now_ms
from plinth.server.context import require, right_extra

if TYPE_CHECKING:
    from plinth.core.entities import Experiment, Run
    from plinth.store.base import TrackingStore

PREFIX = "/api/2.0/mlflow"
"""MLflow's tracking, logged-model and registry API."""
ARTIFACTS_PREFIX = "/api/2.0/mlflow-artifacts"
"""MLflow's proxied-artifacts API (bodies are files, not JSON: exempt from the JSON size limit)."""

READ = Depends(require(Right.READ))
WRITE = Depends(require(Right.WRITE))
MAINTAIN = Depends(require(Right.MAINTAIN))
LOAD = Depends(require(Right.LOAD))

DEFAULT_EXPERIMENT_ID = "0"
"""The experiment MLflow's client logs into when none is set."""
DEFAULT_EXPERIMENT_NAME = "Default"
ARTIFACTS_SCHEME = "mlflow-artifacts:"
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
"""The comparisons of MLflow's registry and logged-model filters, applied in Python."""


def needs(right: Right) -> dict[str, Any]:
    """`openapi_extra` naming a route's right (the route-table test reads it)."""
    return right_extra(right)


async def json_body(request: Request) -> dict[str, Any]:
    """The JSON object a POST, PATCH or DELETE carries (an empty body is `{}`).

    Raises:
        InvalidInput: the body is not a JSON object.
    """
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"The request body is not JSON ({exc}); send a JSON object.") from None
    if not isinstance(doc, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return doc


def query_body(request: Request, lists: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A GET's query parameters as MLflow's client sends them (keys in `lists` repeat)."""
    out: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in lists:
            out.setdefault(key, []).append(value)
        else:
            out[key] = value
    return out


def text_field(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    """`body[key]` as a string; InvalidInput naming the field when required and missing."""
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"Missing value for required parameter '{key}'.")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"Parameter '{key}' must be a string, got {type(value).__name__}.")
    return value


def experiment_of(store: TrackingStore, experiment_id: str, *, create_default: bool = True) -> Experiment:
    """The experiment an MLflow `experiment_id` names ("0" is the experiment called "Default").

    Raises:
        NotFound: no such experiment.
    """
    if experiment_id == DEFAULT_EXPERIMENT_ID:
        if create_default:
            return store.get_or_create_experiment(DEFAULT_EXPERIMENT_NAME)
        return store.get_experiment(DEFAULT_EXPERIMENT_NAME)
    return store.get_experiment(experiment_id)


def run_of(store: TrackingStore, run_id: str) -> Run:
    """The run `run_id` names, with what MLflow's answers show (info, params, tags, latest metrics).

    Read as a search for its id, which leaves out the run's artifacts and environment: MLflow's
    answers show neither, and `get_run` reads both, at four times the cost.

    Raises:
        NotFound: no such run.
    """
    found = store.search_runs(
        experiments=None,
        where=Compare(Field("attributes", "id"), "=", run_id),
        order_by=[],
        limit=1,
        now_ms=now_ms(),
    )
    if not found:
        raise NotFound(f"No run with id {run_id!r}; list runs with `plinth runs list`.")
    return found[0]


def experiment_location(experiment_id: str) -> str:
    """An experiment's artifact_location as MLflow's client reads it."""
    return f"{ARTIFACTS_SCHEME}/{experiment_id}"


def run_artifact_uri(experiment_id: str, run_id: str) -> str:
    """A run's artifact_uri: the proxied-artifacts path the client uploads to."""
    return f"{ARTIFACTS_SCHEME}/{experiment_id}/{run_id}/artifacts"


def logged_model_uri(experiment_id: str, model_id: str) -> str:
    """A logged model's artifact_location (its files are its run's artifacts under models/{model_id}/)."""
    return f"{ARTIFACTS_SCHEME}/{experiment_id}/models/{model_id}/artifacts"


def logged_model_prefix(model_id: str) -> str:
    """Where a logged model's files live among its run's artifacts."""
    return f"models/{model_id}/"
