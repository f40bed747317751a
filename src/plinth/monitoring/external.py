"""Predictions made elsewhere (a batch job, another serving system), logged to be monitored like
the ones plinth's server answers: drift, performance with delayed labels, operations, erasure.

Each row is logged as one request of route "external", answered (status 200) and written as a
columnar segment at once, without a JSON body per row; its latency is not measured (logged as 0,
and left out of latency percentiles).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.core.errors import InvalidInput
from plinth.core.ids import now_ms
from plinth.core.refs import ModelRef
from plinth.core.validation import id_problem
from plinth.monitoring.windows import UNMEASURED
from plinth.store import segments as seg
from plinth.tracking.context import backend

if TYPE_CHECKING:
    from plinth.core.entities import ModelVersion
    from plinth.store.base import Store

ROUTE = UNMEASURED
CHUNK = 500_000
"""Rows per segment (all of a call's segments are written in one transaction)."""


def log_predictions(
    model_ref: str | ModelRef,
    inputs: Any,
    outputs: Any,
    request_ids: Sequence[str] | None = None,
    subject_ids: Sequence[str | int | None] | None = None,
    timestamps: Sequence[int | dt.datetime] | Any | None = None,
) -> list[str]:
    """Log predictions made elsewhere, so they are monitored like the ones plinth serves.

    Drift (`plinth.drift`), performance once labels arrive (`plinth.log_labels` with the
    returned ids), operations, the monitoring report and erasure by subject all cover them.

    Args:
        model_ref: the model version that made them: 'NAME/VERSION', 'NAME@ALIAS', or 'NAME'
            for its newest version.
        inputs: one row per prediction, with the model's inputs: a pandas DataFrame, a list of
            dicts, or a 2-D array whose columns are the signature's inputs in order.
        outputs: one prediction per row (an array, a list or a Series; a 2-D array holds
            class probabilities).
        request_ids: an id per row (1 to 128 printable characters, each once) to join labels
            by; default new ids.
        subject_ids: whose data each row is, for erasure (`plinth.erase_subject`); default none.
        timestamps: when each prediction was made: epoch milliseconds (int) or datetimes (naive
            means UTC); default now.

    Returns:
        The request ids, in row order.

    Raises:
        InvalidInput: a bad reference, inputs without the model's inputs, outputs, ids or
            timestamps, or lengths that differ; nothing is logged.
        NotFound: the model, version or alias does not exist.

    Example:
        >>> ids = plinth.log_predictions("churn/3", batch_frame, model.predict(batch_frame))  # doctest: +SKIP
        >>> plinth.log_labels("churn", dict(zip(ids, truth)))  # doctest: +SKIP
    """
    store = backend().store
    return write_predictions(store, model_ref, inputs, outputs, request_ids, subject_ids, timestamps)


def write_predictions(
    store: Store,
    model_ref: str | ModelRef,
    inputs: Any,
    outputs: Any,
    request_ids: Sequence[str] | None = None,
    subject_ids: Sequence[str | int | None] | None = None,
    timestamps: Sequence[int | dt.datetime] | Any | None = None,
) -> list[str]:
    """`log_predictions` on `store`; returns the request ids."""
    mv = _version_of(store, ModelRef.parse(model_ref))
    columns, n = _inputs(inputs, _signature_names(mv))
    predicted = _outputs(outputs, n)
    ids = _request_ids(request_ids, n)
    request: dict[str, list[Any]] = {
        "request_id": ids,
        "time_ms": _times(timestamps, n),
        "version": [mv.version] * n,
        "route": [ROUTE] * n,
        "latency_ms": [0.0] * n,
        "status": [200] * n,
        "n_rows": [1] * n,
        "subject_id": _subjects(subject_ids, n),
    }
    tables = []
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        tables.append(
            seg.encode_frame(
                {k: v[part] for k, v in request.items()},
                {k: v[part] for k, v in columns.items()},
                predicted[part],
                range(min(n, start + CHUNK) - start),
            )
        )
    store.write_prediction_columns(mv.name, tables)
    store.compact_prediction_logs(mv.name)
    return ids


def _version_of(store: Store, ref: ModelRef) -> ModelVersion:
    if ref.alias is not None:
        return store.get_model_version(ref.name, store.resolve_alias(ref.name, ref.alias))
    return store.get_model_version(ref.name, ref.version)


def _signature_names(mv: ModelVersion) -> list[str] | None:
    inputs = (mv.signature or {}).get("inputs") or {}
    if inputs.get("type") != "frame":
        return None
    return [str(c["name"]) for c in inputs.get("columns", [])]


def _inputs(inputs: Any, names: list[str] | None) -> tuple[dict[str, Any], int]:
    """Input columns by name (positions '0', '1'… for an array) and the number of rows."""
    if hasattr(inputs, "columns") and hasattr(inputs, "iloc"):  # a DataFrame
        columns = {str(c): inputs[c].reset_index(drop=True) for c in inputs.columns}
        if len(columns) != len(inputs.columns):
            raise InvalidInput("inputs has two columns of the same name; name each column once.")
        _check_names(columns, names)
        return columns, len(inputs)
    if isinstance(inputs, list) and inputs and all(isinstance(r, Mapping) for r in inputs):
        keys = list(dict.fromkeys(str(k) for r in inputs for k in r))
        rows = [{str(k): v for k, v in r.items()} for r in inputs]
        columns = {k: [r.get(k) for r in rows] for k in keys}
        _check_names(columns, names)
        return columns, len(rows)
    array = _matrix(inputs)
    if names is not None and array.shape[1] != len(names):
        raise InvalidInput(
            f"inputs has {array.shape[1]} columns but the model takes {len(names)} "
            f"({', '.join(names[:10])}); pass a DataFrame or one column per input, in that order."
        )
    labels = names if names is not None else [str(i) for i in range(array.shape[1])]
    return {label: array[:, i] for i, label in enumerate(labels)}, array.shape[0]


def _matrix(inputs: Any) -> np.ndarray:
    if isinstance(inputs, dict | str | bytes) or inputs is None:
        raise InvalidInput(_INPUTS + f" Got {type(inputs).__name__}.")
    try:
        array = np.asarray(inputs)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(_INPUTS + f" Got rows of unequal length ({exc}).") from exc
    if array.ndim != 2 or not array.shape[0]:
        raise InvalidInput(_INPUTS + f" Got an array of shape {array.shape}.")
    return array


_INPUTS = (
    "inputs must be one row per prediction: a pandas DataFrame, a non-empty list of dicts, or a "
    "2-D array whose columns are the model's inputs in order."
)


def _check_names(columns: Mapping[str, Any], names: list[str] | None) -> None:
    missing = [n for n in names or [] if n not in columns]
    if missing:
        raise InvalidInput(
            f"inputs lack the model's inputs {missing[:10]}; it takes {names}. Pass one column per input."
        )


def _outputs(outputs: Any, n: int) -> Any:
    """The predictions as an array or list, one per row."""
    if isinstance(outputs, str | bytes | Mapping) or outputs is None or not hasattr(outputs, "__len__"):
        raise InvalidInput(
            f"outputs must hold one prediction per row (an array, a list or a Series), not "
            f"{type(outputs).__name__}."
        )
    if hasattr(outputs, "to_numpy") and not isinstance(outputs, np.ndarray):
        outputs = outputs.to_numpy()
    if len(outputs) != n:
        given = len(outputs)
        raise InvalidInput(f"outputs has {given} predictions for {n} rows of inputs; give one per row.")
    if isinstance(outputs, np.ndarray) and outputs.ndim > 2:
        raise InvalidInput(f"outputs must be 1-D, or 2-D for class probabilities; got shape {outputs.shape}.")
    return outputs if isinstance(outputs, np.ndarray) else list(outputs)


def _request_ids(given: Sequence[Any] | None, n: int) -> list[str]:
    if given is None:
        return _new_ids(n)
    ids = _listed(given, "request_ids", n)
    _check_each(ids, "request_ids", lambda v: id_problem(v))
    if len(set(ids)) != len(ids):
        raise InvalidInput("request_ids repeats an id; give each prediction its own (labels join by it).")
    return [str(v) for v in ids]


def _new_ids(n: int) -> list[str]:
    """`n` random ids (32 hex digits each), made at once."""
    text = os.urandom(16 * n).hex()
    return [text[i : i + 32] for i in range(0, 32 * n, 32)]


def _subjects(given: Sequence[Any] | None, n: int) -> list[str | None]:
    if given is None:
        return [None] * n
    subjects = [
        str(v) if isinstance(v, int | np.integer) and not isinstance(v, bool) else v
        for v in _listed(given, "subject_ids", n)
    ]
    _check_each(subjects, "subject_ids", lambda v: None if v is None else id_problem(v))
    return subjects


def _times(given: Any, n: int) -> list[int]:
    if given is None:
        return [now_ms()] * n
    if isinstance(given, np.ndarray) and given.dtype.kind == "M":
        return [int(v) for v in given.astype("datetime64[ms]").astype(np.int64)]
    if hasattr(given, "dt") and hasattr(given, "to_numpy"):  # a pandas datetime Series
        return _times(given.to_numpy(), n)
    values = _listed(given, "timestamps", n)
    out = []
    for i, value in enumerate(values):
        out.append(_ms(value, i))
    return out


def _ms(value: Any, i: int) -> int:
    if isinstance(value, dt.datetime):  # naive means UTC, as everywhere in plinth
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return int(aware.timestamp() * 1000)
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return int(value)
    raise InvalidInput(
        f"timestamps[{i}] is {value!r:.60}; give epoch milliseconds (int) or datetimes (naive means UTC)."
    )


def _listed(given: Any, what: str, n: int) -> list[Any]:
    if isinstance(given, str | bytes | Mapping) or not hasattr(given, "__len__"):
        raise InvalidInput(f"{what} must be a list with one entry per row, not {type(given).__name__}.")
    values = given.tolist() if hasattr(given, "tolist") else list(given)
    if len(values) != n:
        raise InvalidInput(f"{what} has {len(values)} entries for {n} rows of inputs; give one per row.")
    return values


def _check_each(values: list[Any], what: str, problem_of: Any) -> None:
    problems = [(i, p) for i, p in ((i, problem_of(v)) for i, v in enumerate(values)) if p]
    if problems:
        i, problem = problems[0]
        more = f" ({len(problems) - 1} more like it)" if len(problems) > 1 else ""
        raise InvalidInput(f"{what}[{i}] {values[i]!r:.60} is not valid: {problem}{more}.")
