"""MLflow's JSON for experiments and runs, both ways.

Out: plinth's `Experiment`, `Run`, metric histories and lineage as MLflow's protobuf JSON
(`Experiment`, `Run{info, data, inputs, outputs}`, `Metric`): int64 fields as JSON numbers,
doubles as numbers or "NaN" / "Infinity" / "-Infinity" (what protobuf's JSON writes and
MLflow's client parses back), field names as in MLflow's `.proto` files.

In: the fields of MLflow's requests, read as protobuf's JSON allows them (an int64 as a
number or a string of digits, a double as a number or one of those three words), and checked
against MLflow's own rules for names, sizes and batch limits, so the client gets the refusal
MLflow's server would give; then made into what plinth's store takes: metric points, params,
and dataset versions that hold no bytes.
"""

from __future__ import annotations

import itertools
import json
import math
import posixpath
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from plinth.core.entities import DatasetVersion, Experiment, LineageEdge, Run, RunStatus
from plinth.core.refs import check_ref_name
from plinth.core.validation import MAX_INT64, check_key
from plinth.server.mlflow.common import (
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    experiment_location,
    run_artifact_uri,
)
from plinth.server.mlflow.errors import INVALID_PARAMETER_VALUE, MlflowError
from plinth.store.base import NewDataset, PointRow

RUN_NAME_TAG = "mlflow.runName"
PARENT_RUN_TAG = "mlflow.parentRunId"
LOGGED_MODELS_TAG = "mlflow.log-model.history"
CONTEXT_TAG = "mlflow.data.context"
"""The input tag naming how a run used a dataset ("training", "eval"...): the lineage role."""
LOGGED_MODEL = "logged_model"
"""The lineage node type of an MLflow 3 logged model (`m-<32 hex>` ids)."""

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_EXPERIMENT_TAG_VALUE = 20000
_NAME_CHARS = re.compile(r"^[/\w.\- :]*$")
_STATUS_NUMBERS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
MLFLOW_STATUSES = frozenset(_STATUS_NUMBERS.values())
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_DATASET_DIGEST = 36
_VIEW_TYPES = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}
_seq = itertools.count(time.time_ns())
"""Orders points logged at one step, as plinth's own client does (`plinth.tracking.run`)."""


# out: plinth -> MLflow ---------------------------------------------------------------------------
def json_float(value: float) -> float | str:
    """A double as protobuf's JSON writes it (NaN and the infinities as words)."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def experiment_id_of(experiment: Experiment) -> str:
    """The id MLflow's client sees: "0" for the experiment "Default", else plinth's id."""
    return DEFAULT_EXPERIMENT_ID if experiment.name == DEFAULT_EXPERIMENT_NAME else experiment.id


def experiment_json(experiment: Experiment) -> dict[str, Any]:
    """An `Experiment` message (always active; plinth keeps no update time, so its creation time)."""
    exp_id = experiment_id_of(experiment)
    return {
        "experiment_id": exp_id,
        "name": experiment.name,
        "artifact_location": experiment_location(exp_id),
        "lifecycle_stage": "active",
        "creation_time": experiment.created_ms,
        "last_update_time": experiment.created_ms,
        "tags": pairs(experiment.tags),
    }


def mlflow_status(status: RunStatus) -> str:
    """MLflow's name for a run status; MLflow has no CRASHED, a run that crashed has FAILED."""
    return "FAILED" if status is RunStatus.CRASHED else status.value


def run_experiment_id(run: Run) -> str:
    """The experiment id of a run as MLflow's client sees it."""
    return DEFAULT_EXPERIMENT_ID if run.experiment_name == DEFAULT_EXPERIMENT_NAME else run.experiment_id


def run_info_json(run: Run) -> dict[str, Any]:
    """A `RunInfo` message (end_time only once the run has ended, as MLflow writes it)."""
    exp_id = run_experiment_id(run)
    info: dict[str, Any] = {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.name,
        "experiment_id": exp_id,
        "user_id": run.user,
        "status": mlflow_status(run.status),
        "start_time": run.start_ms,
        "artifact_uri": run_artifact_uri(exp_id, run.id),
        "lifecycle_stage": "active",
    }
    if run.end_ms is not None:
        info["end_time"] = run.end_ms
    return info


def run_tags(run: Run) -> dict[str, str]:
    """A run's tags as MLflow shows them: with `mlflow.runName` (MLflow's name tag) always there."""
    if RUN_NAME_TAG in run.tags:
        return run.tags
    return {**run.tags, RUN_NAME_TAG: run.name}


def run_json(
    run: Run, inputs: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A `Run` message: info, data (latest metrics, params, tags), inputs and outputs.

    plinth keeps a metric's latest value, not its step and time, with a run: those come as 0
    (the whole history, with every step and time, is `metrics/get-history`'s).
    """
    data = {
        "metrics": [
            {"key": k, "value": json_float(v), "timestamp": 0, "step": 0} for k, v in run.metrics.items()
        ],
        "params": pairs(run.params),
        "tags": pairs(run_tags(run)),
    }
    return {
        "info": run_info_json(run),
        "data": data,
        "inputs": inputs if inputs is not None else {},
        "outputs": outputs if outputs is not None else {},
    }


def pairs(values: Mapping[str, str]) -> list[dict[str, str]]:
    """`{key: value}` as MLflow's repeated `{key, value}` messages."""
    return [{"key": k, "value": v} for k, v in values.items()]


def mlflow_order(points: np.ndarray) -> np.ndarray:
    """Metric points (plinth's structured array, by step) in MLflow's order: by timestamp, then
    step, then value."""
    return points[np.lexsort((points["value"], points["step"], points["timestamp_ms"]))]


def history_json(run_id: str, key: str, points: np.ndarray) -> list[dict[str, Any]]:
    """Metric points (plinth's structured array of step, timestamp_ms, value) as `Metric` messages."""
    steps = points["step"].tolist()
    stamps = points["timestamp_ms"].tolist()
    values = [json_float(v) for v in points["value"].tolist()]
    return [
        {"key": key, "value": v, "timestamp": ts, "step": s, "run_id": run_id}
        for s, ts, v in zip(steps, stamps, values, strict=True)
    ]


def dataset_input_json(version: DatasetVersion, edge: LineageEdge) -> dict[str, Any]:
    """A `DatasetInput`: a dataset version a run consumed, with the input tags it was logged with.

    A version logged through MLflow gives back exactly what MLflow sent (kept in its profile);
    one logged by plinth itself is described from its own schema and row count.
    """
    sent = version.profile.get("mlflow") if isinstance(version.profile.get("mlflow"), dict) else None
    if sent is not None:
        dataset = {
            "name": version.name,
            "digest": version.digest,
            "source_type": str(sent.get("source_type", "")),
            "source": str(sent.get("source", version.source)),
            "schema": str(sent.get("schema", "")),
            "profile": str(sent.get("profile", "")),
        }
    else:
        columns = [
            {"name": c.get("name", ""), "type": c.get("dtype", c.get("type", ""))} for c in version.schema
        ]
        dataset = {
            "name": version.name,
            "digest": version.digest,
            "source_type": "plinth",
            "source": version.source,
            "schema": json.dumps({"mlflow_colspec": columns}),
            "profile": json.dumps({"num_rows": version.rows}),
        }
    tags = edge.attributes.get("mlflow_tags")
    if not isinstance(tags, dict):
        tags = {CONTEXT_TAG: str(edge.attributes.get("role") or edge.relation)}
    return {"tags": pairs({str(k): str(v) for k, v in tags.items()}), "dataset": dataset}


def lineage_io(
    consumed: Iterable[LineageEdge], produced: Iterable[LineageEdge], versions: Mapping[str, DatasetVersion]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run's `RunInputs` and `RunOutputs` from the lineage edges into and out of it."""
    datasets, models_in = [], []
    for edge in consumed:
        if edge.src_type == "dataset_version" and edge.src_id in versions:
            datasets.append(dataset_input_json(versions[edge.src_id], edge))
        elif edge.src_type == LOGGED_MODEL:
            models_in.append({"model_id": edge.src_id})
    models_out = [
        {"model_id": edge.dst_id, "step": int(edge.attributes.get("step", 0))}
        for edge in produced
        if edge.dst_type == LOGGED_MODEL
    ]
    inputs: dict[str, Any] = {"dataset_inputs": datasets}
    if models_in:
        inputs["model_inputs"] = models_in
    return inputs, {"model_outputs": models_out}


# in: MLflow -> values ----------------------------------------------------------------------------
def refuse(message: str) -> MlflowError:
    """MLflow's INVALID_PARAMETER_VALUE with `message`."""
    return MlflowError(INVALID_PARAMETER_VALUE, message)


def int64(value: object, path: str) -> int:
    """An int64 field: a JSON number, or a string of digits as protobuf's JSON also writes it.

    Raises:
        MlflowError: anything else, or a number outside the int64 range.
    """
    if type(value) is int and -MAX_INT64 - 1 <= value <= MAX_INT64:  # the usual case, first
        return value
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        number = int(value)
    if number is None or not -MAX_INT64 - 1 <= number <= MAX_INT64:
        raise refuse(f"Invalid value {value!r:.60} for parameter '{path}': expected a 64-bit integer.")
    return number


def optional_int64(body: Mapping[str, Any], key: str) -> int | None:
    """`body[key]` as an int64, or None when it is absent."""
    value = body.get(key)
    return None if value is None else int64(value, key)


def double(value: object, path: str) -> float:
    """A double field: a JSON number, or "NaN", "Infinity", "-Infinity" or a numeric string.

    Raises:
        MlflowError: anything else (booleans included).
    """
    if type(value) is float:  # the usual case, first
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        special = _SPECIAL_FLOATS.get(value.strip())
        if special is not None:
            return special
        try:
            return float(value)
        except ValueError:
            pass
    raise refuse(
        f"Invalid value {value!r:.60} for parameter '{path}': please specify value as a valid double "
        "(64-bit floating point)."
    )


def string(body: Mapping[str, Any], key: str, *, required: bool = False, path: str | None = None) -> str:
    """`body[key]` as text ("" when absent and not required).

    Raises:
        MlflowError: missing while required, or not a string.
    """
    value = body.get(key)
    where = path or key
    if value is None:
        if required:
            raise refuse(f"Missing value for required parameter '{where}'.")
        return ""
    if not isinstance(value, str):
        raise refuse(f"Invalid value {value!r:.60} for parameter '{where}': expected a string.")
    if required and not value:
        raise refuse(f"Missing value for required parameter '{where}'.")
    return value


def run_id_of(body: Mapping[str, Any]) -> str:
    """The run a request names (`run_id`, or the older `run_uuid`)."""
    if body.get("run_id"):
        return string(body, "run_id", required=True)
    return string(body, "run_uuid", required=True, path="run_id")


def items(body: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """A repeated message field: a list of JSON objects (none when absent)."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise refuse(f"Invalid value for parameter '{key}': expected a list of objects.")
    return value


def strings(body: Mapping[str, Any], key: str) -> list[str]:
    """A repeated string field (a single string counts as a list of one, as a GET sends it)."""
    value = body.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise refuse(f"Invalid value {value!r:.60} for parameter '{key}': expected a list of strings.")
    return value


def entity_key(key: object, what: str, path: str) -> str:
    """A metric, param or tag name, under MLflow's rules (and plinth's, which agree).

    Names hold letters, digits, `_ - . / :` and spaces, at most 250 characters, and do not
    resolve to another name as a path would (`a//b`, `./a`, `/a`).
    """
    if not isinstance(key, str):
        raise refuse(f"Missing value for required parameter '{path}'. A key name must be provided.")
    if not _NAME_CHARS.match(key):
        raise refuse(
            f"Invalid value {key!r:.120} for parameter '{path}' supplied: Names may only contain "
            "alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )
    normal = posixpath.normpath(key)
    if normal != key or normal == "." or normal.startswith(("..", "/")):
        raise refuse(
            f"Invalid value {key!r:.120} for parameter '{path}' supplied: Names may be treated as files "
            f"in certain cases, and must not resolve to other names when treated as such. This name "
            f"would resolve to {normal!r}."
        )
    if len(key) > MAX_KEY:
        raise refuse(f"{what} name '{key[:40]}...' exceeds the maximum length of {MAX_KEY} characters.")
    return check_key(key, what.lower())


def limited(value: str, limit: int, what: str) -> str:
    """`value` unless it is longer than MLflow allows for `what`."""
    if len(value) > limit:
        raise refuse(f"{what} is {len(value)} characters long, which exceeds the maximum length of {limit}.")
    return value


def tag_pairs(entries: list[dict[str, Any]], field: str, limit: int = MAX_TAG_VALUE) -> dict[str, str]:
    """Repeated `{key, value}` tags as a dict (a later key wins), each name and value checked."""
    out: dict[str, str] = {}
    for i, entry in enumerate(entries):
        key = entity_key(entry.get("key"), "Tag", f"{field}[{i}].key")
        out[key] = limited(string(entry, "value", path=f"{field}[{i}].value"), limit, f"Tag '{key}' value")
    return out


def run_status(value: object) -> str:
    """A `RunStatus` enum field, by name or number."""
    name = _STATUS_NUMBERS.get(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(name, str) or name not in MLFLOW_STATUSES:
        raise refuse(
            f"Invalid value {value!r:.60} for parameter 'status': expected one of {sorted(MLFLOW_STATUSES)}."
        )
    return name


# in: requests -> plinth's points, params and dataset versions -----------------------------------
def view_type(value: object) -> str:
    """A ViewType by name or number (ACTIVE_ONLY when absent)."""
    if value is None:
        return "ACTIVE_ONLY"
    if isinstance(value, str) and value in _VIEW_TYPES.values():
        return value
    try:
        name = _VIEW_TYPES.get(int64(value, "view_type"))
    except MlflowError:
        name = None
    if name is None:
        raise refuse(
            f"Invalid value {value!r:.60} for parameter 'view_type': "
            f"expected one of {list(_VIEW_TYPES.values())}."
        )
    return name


def metric_point(run_id: str, entry: dict[str, Any], path: str, keys: dict[str, str]) -> PointRow:
    """A metric point of a request, checked as MLflow checks it; `keys` holds the names
    checked already (a batch repeats a few names many times)."""
    name = entry.get("key")
    key = keys.get(name) if isinstance(name, str) else None
    if key is None:
        key = entity_key(name, "Metric", f"{path}key")
        keys[key] = key
    if entry.get("value") is None:
        raise refuse(f"Missing value for required parameter '{path}value'.")
    value = double(entry["value"], f"{path}value")
    if entry.get("timestamp") is None:
        raise refuse(f"Missing value for required parameter '{path}timestamp'.")
    stamp = int64(entry["timestamp"], f"{path}timestamp")
    if stamp < 0:
        raise refuse(f"Invalid value {stamp} for parameter '{path}timestamp': it must be a nonnegative long.")
    step = entry.get("step")
    step = 0 if step is None else int64(step, f"{path}step")
    return (run_id, key, step, next(_seq), stamp, value)


def check_batch_limits(metrics: int, params: int, tags: int) -> None:
    """Refuse a batch beyond MLflow's limits: 1000 metrics, 100 params, 100 tags, 1000 in all."""
    for what, count, limit in (
        ("metrics", metrics, MAX_METRICS_PER_BATCH),
        ("params", params, MAX_PARAMS_TAGS_PER_BATCH),
        ("tags", tags, MAX_PARAMS_TAGS_PER_BATCH),
        ("metrics, params, and tags", metrics + params + tags, MAX_ENTITIES_PER_BATCH),
    ):
        if count > limit:
            raise refuse(
                f"A batch logging request can contain at most {limit} {what}. Got {count} {what}. "
                f"Please split up {what} across multiple requests and try again."
            )


def unique_points(points: list[PointRow]) -> list[PointRow]:
    """The points without repeats of one (key, step, timestamp, value), as MLflow stores them."""
    seen: set[tuple[str, int, int, float | None]] = set()
    unique = []
    for point in points:
        mark = (point[1], point[2], point[4], point[5] if point[5] == point[5] else None)  # NaN as None
        if mark not in seen:
            seen.add(mark)
            unique.append(point)
    return unique


def batch_params(entries: list[dict[str, Any]]) -> dict[str, str]:
    """A batch's params as a dict; a key given twice is refused, as MLflow refuses it."""
    values: dict[str, str] = {}
    for i, entry in enumerate(entries):
        key = entity_key(entry.get("key"), "Param", f"params[{i}].key")
        if key in values:
            raise refuse(
                f"Duplicate parameter keys have been submitted: ['{key}']. Please ensure the request "
                "contains only one param value per param key."
            )
        values[key] = limited(
            string(entry, "value", path=f"params[{i}].value"), MAX_PARAM_VALUE, f"Param '{key}' value"
        )
    return values


def dataset_of(entry: dict[str, Any], path: str) -> tuple[NewDataset, dict[str, str]]:
    """The dataset version an MLflow `DatasetInput` describes, and its input tags."""
    dataset = entry.get("dataset")
    if not isinstance(dataset, dict):
        raise refuse(f"Missing value for required parameter '{path}.dataset'.")
    name = check_ref_name(string(dataset, "name", required=True, path=f"{path}.dataset.name"), "dataset")
    digest = limited(
        string(dataset, "digest", required=True, path=f"{path}.dataset.digest"),
        MAX_DATASET_DIGEST,
        "Dataset digest",
    )
    sent = {
        field: string(dataset, field, path=f"{path}.dataset.{field}")
        for field in ("source_type", "source", "schema", "profile")
    }
    new = NewDataset(
        name=name,
        digest=digest,
        size=0,
        rows=dataset_rows(sent["profile"]),
        schema=dataset_columns(sent["schema"]),
        profile={"mlflow": sent, "bytes_held": False},
        source=sent["source"],
    )
    return new, input_tags(entry, path)


def input_tags(entry: dict[str, Any], path: str) -> dict[str, str]:
    """The `InputTag`s of a dataset input (`mlflow.data.context` among them) as a dict."""
    tags: dict[str, str] = {}
    for j, tag in enumerate(items(entry, "tags")):
        key = string(tag, "key", required=True, path=f"{path}.tags[{j}].key")
        tags[key] = string(tag, "value", path=f"{path}.tags[{j}].value")
    return tags


def dataset_rows(profile: str) -> int:
    """The row count an MLflow dataset profile gives (`num_rows`), else 0."""
    try:
        rows = json.loads(profile).get("num_rows") if profile else None
    except (ValueError, AttributeError):
        return 0
    return rows if isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0 else 0


def dataset_columns(schema: str) -> list[dict[str, str]]:
    """Columns (name, dtype) of an MLflow dataset schema (`mlflow_colspec`), else none."""
    try:
        columns = json.loads(schema).get("mlflow_colspec") if schema else None
    except (ValueError, AttributeError):
        return []
    if not isinstance(columns, list):
        return []
    return [
        {"name": str(c.get("name", "")), "dtype": str(c.get("type", ""))}
        for c in columns
        if isinstance(c, dict)
    ]
