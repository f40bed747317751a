"""MLflow 3's logged models on the wire: their JSON, their statuses, and the filter a search sends.

A `LoggedModel` of plinth's store answers as MLflow's `LoggedModel` message
(`{"info": {...}, "data": {"params": [...], "metrics": []}}`), its artifact_uri pointing at the
proxied-artifacts path of its files. A search's `filter` is MLflow's small language for logged
models: clauses joined by AND, each `<key> <op> <value>`, keys being the attributes
(`name`, `model_id`, `model_type`, `status`, `source_run_id`, `creation_timestamp`,
`last_updated_timestamp`), `tags.<key>` and `params.<key>`; metrics are not held per logged
model, so a filter or order on them is refused with a message saying so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plinth.core.entities import LoggedModel
from plinth.core.errors import InvalidInput
from plinth.server.mlflow.common import COMPARISONS, DEFAULT_EXPERIMENT_ID, logged_model_uri

STATUS_TO_WIRE = {
    "PENDING": "LOGGED_MODEL_PENDING",
    "READY": "LOGGED_MODEL_READY",
    "FAILED": "LOGGED_MODEL_UPLOAD_FAILED",
}
"""plinth's status of a logged model, as MLflow's enum names it."""
_WIRE_NUMBERS = {1: "PENDING", 2: "READY", 3: "FAILED"}
_WIRE_NAMES = {wire: status for status, wire in STATUS_TO_WIRE.items()}


def logged_model_json(model: LoggedModel, default_experiment: str | None) -> dict[str, Any]:
    """`model` as MLflow's `LoggedModel` message.

    `default_experiment`: plinth's id of the experiment "Default", which MLflow's client knows
    as "0" (None when there is none).
    """
    experiment_id = (
        DEFAULT_EXPERIMENT_ID if model.experiment_id == default_experiment else model.experiment_id
    )
    info: dict[str, Any] = {
        "model_id": model.id,
        "experiment_id": experiment_id,
        "name": model.name,
        "creation_timestamp_ms": model.created_ms,
        "last_updated_timestamp_ms": model.updated_ms,
        "artifact_uri": logged_model_uri(experiment_id, model.id),
        "status": STATUS_TO_WIRE.get(model.status, "LOGGED_MODEL_STATUS_UNSPECIFIED"),
        "model_type": model.model_type,
        "source_run_id": model.source_run_id or "",
        "tags": key_value_list(model.tags),
    }
    return {"info": info, "data": {"params": key_value_list(model.params), "metrics": []}}


def key_value_list(values: Mapping[str, str]) -> list[dict[str, str]]:
    """A mapping as MLflow's repeated `{key, value}` messages, in key order."""
    return [{"key": key, "value": values[key]} for key in sorted(values)]


def key_values(body: Mapping[str, Any], field: str) -> dict[str, str]:
    """MLflow's repeated `{key, value}` field `field` of a request body, as a mapping.

    Raises:
        InvalidInput: the field is not a list of objects with a string key and value.
    """
    items = body.get(field) or []
    if not isinstance(items, list):
        raise InvalidInput(f"Parameter '{field}' must be a list of {{key, value}} objects.")
    out: dict[str, str] = {}
    for item in items:
        key = item.get("key") if isinstance(item, dict) else None
        value = item.get("value", "") if isinstance(item, dict) else None
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise InvalidInput(
                f"Each entry of '{field}' must be an object with a non-empty string 'key' and a "
                f"string 'value'; got {item!r:.200}."
            )
        out[key] = value
    return out


def status_from_wire(value: object) -> str:
    """plinth's status for MLflow's `LoggedModelStatus` (its name or its number).

    Raises:
        InvalidInput: not a status a logged model can be finalized with.
    """
    status = _WIRE_NUMBERS.get(value) if isinstance(value, int) else None
    if isinstance(value, str):
        status = _WIRE_NAMES.get(value.upper()) or (
            value.upper() if value.upper() in STATUS_TO_WIRE else None
        )
    if status is None:
        names = ", ".join(STATUS_TO_WIRE.values())
        raise InvalidInput(f"Logged model status {value!r:.80} is not one of {names}.")
    return status


# the filter of a search -----------------------------------------------------------------------

_NUMERIC = {
    "creation_timestamp": "created_ms",
    "creation_time": "created_ms",
    "last_updated_timestamp": "updated_ms",
    "last_updated_time": "updated_ms",
}
_TEXT = {"name": "name", "model_id": "id", "model_type": "model_type", "status": "status"}
_KINDS = {
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "tag": "tag",
    "tags": "tag",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "metric": "metric",
    "metrics": "metric",
}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<ident>(?:[A-Za-z_]+\.)?(?:`[^`]+`|[A-Za-z_][\w.\-]*))
      | (?P<number>-?\d+(?:\.\d+)?)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Clause:
    """One comparison of a filter: `kind` is attribute, tag or param; `key` the field compared."""

    kind: str
    key: str
    op: str
    value: str | int


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of an MLflow logged-model filter (all must hold); none for an empty filter.

    Raises:
        InvalidInput: the filter is not `<key> <op> <value> [AND ...]`, names an unknown key or
            compares metrics (not held per logged model).
    """
    tokens = _tokens(text or "")
    clauses: list[Clause] = []
    while tokens:
        if clauses:
            word = tokens.pop(0)
            if word.upper() != "AND":
                raise _bad_filter(text, f"expected AND before {word!r}")
        if len(tokens) < 3:
            raise _bad_filter(text, "each clause is <key> <op> <value>")
        ident, op, value = tokens.pop(0), tokens.pop(0), tokens.pop(0)
        clauses.append(_clause(text, ident, op, value))
    return clauses


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        found = _TOKEN.match(text, pos)
        if found is None or found.end() == pos:
            raise _bad_filter(text, f"cannot read it from {text[pos : pos + 20]!r}")
        tokens.append(found.group(found.lastgroup or "ident"))
        pos = found.end()
    return tokens


def _clause(text: str | None, ident: str, op: str, raw: str) -> Clause:
    prefix, dot, rest = ident.partition(".")
    kind = _KINDS.get(prefix.lower()) if dot else None
    if kind is None:
        kind, rest = "attribute", ident
    key = rest.strip("`")
    op = {"<>": "!="}.get(op, op).upper()
    if kind == "metric":
        raise _bad_filter(
            text, "plinth keeps no metrics per logged model; filter on attributes, tags or params"
        )
    if op not in COMPARISONS and op not in ("LIKE", "ILIKE"):
        raise _bad_filter(text, f"{op!r} is not a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE)")
    value = _literal(text, raw)
    if kind == "attribute":
        if key in _NUMERIC:
            if not isinstance(value, int) and not (isinstance(value, str) and value.isdigit()):
                raise _bad_filter(text, f"{key} compares with a number of milliseconds")
            return Clause(kind, _NUMERIC[key], op, int(value))
        if key not in (*_TEXT, "source_run_id"):
            known = ", ".join([*_TEXT, "source_run_id", *_NUMERIC])
            raise _bad_filter(text, f"{key!r} is not a logged model attribute ({known})")
        key = _TEXT.get(key, key)
    if op not in ("=", "!=", "LIKE", "ILIKE"):
        raise _bad_filter(text, f"{key!r} compares with =, !=, LIKE or ILIKE")
    return Clause(kind, key, op, str(value))


def _literal(text: str | None, raw: str) -> str | int:
    if raw[:1] in ("'", '"'):
        return raw[1:-1].replace(raw[0] * 2, raw[0])
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    raise _bad_filter(text, f"{raw!r} is not a quoted string or a number")


def _bad_filter(text: str | None, why: str) -> InvalidInput:
    return InvalidInput(
        f"Cannot read the logged model filter {text!r:.200}: {why}. Write e.g. "
        "\"name = 'model' AND tags.stage = 'prod'\"."
    )


def matches(model: LoggedModel, clauses: Sequence[Clause]) -> bool:
    """True when `model` meets every clause."""
    return all(_holds(model, clause) for clause in clauses)


def _holds(model: LoggedModel, clause: Clause) -> bool:
    found: object
    if clause.kind == "tag":
        found = model.tags.get(clause.key)
    elif clause.kind == "param":
        found = model.params.get(clause.key)
    elif clause.key == "source_run_id":
        found = model.source_run_id or ""
    else:
        found = getattr(model, clause.key)
    if found is None:
        return False
    if clause.op in ("LIKE", "ILIKE"):
        return _like(str(found), str(clause.value), clause.op == "ILIKE")
    if clause.key == "status" and clause.kind == "attribute":
        found, value = str(found), _WIRE_NAMES.get(str(clause.value).upper(), str(clause.value).upper())
        return COMPARISONS[clause.op](found, value)
    return COMPARISONS[clause.op](found, clause.value)


def _like(text: str, pattern: str, fold: bool) -> bool:
    """SQL's LIKE: `%` any run of characters, `_` one character."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL | (re.IGNORECASE if fold else 0)) is not None


def exact_name(clauses: Sequence[Clause]) -> str | None:
    """The name a filter asks for exactly (`name = '...'`), which the store can look up itself."""
    for clause in clauses:
        if clause.kind == "attribute" and clause.key == "name" and clause.op == "=":
            return str(clause.value)
    return None


# the order of a search ------------------------------------------------------------------------

_ORDER_KEYS = {**_NUMERIC, **_TEXT, "source_run_id": "source_run_id"}


def order_models(models: list[LoggedModel], order_by: object) -> list[LoggedModel]:
    """`models` (newest first already) sorted by MLflow's `order_by` list, first key first.

    Raises:
        InvalidInput: an order names a key other than an attribute.
    """
    if not order_by:
        return models
    if not isinstance(order_by, list):
        raise InvalidInput("Parameter 'order_by' must be a list of {field_name, ascending} objects.")
    for item in reversed(order_by):
        field = item.get("field_name") if isinstance(item, dict) else None
        name = str(field or "").removeprefix("attributes.").removeprefix("attribute.")
        if name not in _ORDER_KEYS:
            known = ", ".join(sorted(_ORDER_KEYS))
            raise InvalidInput(f"Cannot order logged models by {field!r:.80}; order by one of {known}.")
        descending = not item.get("ascending", True)
        models = sorted(models, key=_sort_key(_ORDER_KEYS[name]), reverse=descending)
    return models


def _sort_key(attr: str) -> Callable[[LoggedModel], Any]:
    def key(model: LoggedModel) -> Any:
        value = getattr(model, attr)
        return "" if value is None else value

    return key
