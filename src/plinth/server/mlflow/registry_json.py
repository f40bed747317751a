"""MLflow's registry on the wire: its JSON for versions and models, its sources, filters, orders and pages.

A plinth model version is MLflow's `ModelVersion` with status READY and stage "None" (plinth keeps
aliases, not stages); its `source` is the one the client registered it from, and `model_id` the
logged model that source names. Search filters are MLflow's small language for the registry
(`name LIKE 'churn%' AND tags.team = 'risk'`), evaluated here over the store's entities; a page
token is an opaque offset, as MLflow's own server makes it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from plinth.core.entities import ModelVersion, RegisteredModel
from plinth.core.errors import InvalidInput
from plinth.core.validation import check_key, param_text
from plinth.server.mlflow.common import COMPARISONS

T = TypeVar("T")

STAGE = "None"
"""The stage of every version: plinth moves aliases, not stages (deprecated in MLflow)."""
READY = "READY"
PROMPT_TAG = "mlflow.prompt.is_prompt"
"""The tag MLflow's client filters on to leave prompts out; a model without it is no prompt."""

MODEL_ATTRIBUTES: Mapping[str, type] = {"name": str}
VERSION_ATTRIBUTES: Mapping[str, type] = {
    "name": str,
    "run_id": str,
    "source_path": str,
    "version_number": int,
    "creation_timestamp": int,
    "last_updated_timestamp": int,
}
MODEL_ORDER_KEYS = frozenset({"name", "creation_timestamp", "last_updated_timestamp"})
VERSION_ORDER_KEYS = frozenset({"name", "version_number", "creation_timestamp", "last_updated_timestamp"})


# entities ----------------------------------------------------------------------------------
def version_json(mv: ModelVersion) -> dict[str, Any]:
    """A model version as MLflow's `ModelVersion` message."""
    out: dict[str, Any] = {
        "name": mv.name,
        "version": str(mv.version),
        "creation_timestamp": mv.created_ms,
        "last_updated_timestamp": mv.created_ms,
        "user_id": mv.creator,
        "current_stage": STAGE,
        "description": mv.description,
        "source": mv.source or "",
        "run_id": mv.run_id or "",
        "status": READY,
        "tags": tags_json(mv.tags),
        "aliases": sorted(mv.aliases),
    }
    model_id = source_model_id(mv.source)
    if model_id is not None:
        out["model_id"] = model_id
    return out


def registered_model_json(rm: RegisteredModel, latest: ModelVersion | None) -> dict[str, Any]:
    """A registered model as MLflow's `RegisteredModel` message (`latest`: its newest version)."""
    return {
        "name": rm.name,
        "creation_timestamp": rm.created_ms,
        "last_updated_timestamp": model_updated_ms(rm, latest),
        "description": rm.description,
        "latest_versions": [] if latest is None else [version_json(latest)],
        "tags": tags_json(rm.tags),
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(rm.aliases.items())],
    }


def model_updated_ms(rm: RegisteredModel, latest: ModelVersion | None) -> int:
    """When a model last changed as far as plinth records: its creation or its newest version's."""
    return rm.created_ms if latest is None else max(rm.created_ms, latest.created_ms)


def tags_json(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """Tags as MLflow's list of `{key, value}`."""
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def tags_of(value: object) -> dict[str, str]:
    """A request's `tags` (MLflow's list of `{key, value}`) as a dict, checked as the store checks
    tags, so a create that carries tags refuses before it writes anything.

    Raises:
        InvalidInput: not such a list, or a key or value the store would refuse.
    """
    if value is None:
        return {}
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise InvalidInput('Parameter \'tags\' must be a list of {"key": ..., "value": ...} objects.')
    return {
        check_key(t.get("key"), "tag"): param_text(str(t.get("key")), t.get("value") or "", "tag")
        for t in value
    }


# sources -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """What an MLflow model version's `source` names.

    One of: a logged model (`model_id`; its files are its run's artifacts under
    `models/{model_id}/`), a folder of a run's artifacts (`run_id`), or another registered
    version (`model` with `version`, `alias`, or neither for the latest). `path` is a folder
    inside the logged model or the run's artifacts ("" for the root).
    """

    model_id: str | None = None
    run_id: str | None = None
    model: str | None = None
    version: int | None = None
    alias: str | None = None
    path: str = ""


SOURCE_FORMS = (
    "models:/<model_id>, runs:/<run_id>/<path>, mlflow-artifacts:/<experiment_id>/<run_id>/artifacts/<path>, "
    "mlflow-artifacts:/<experiment_id>/models/<model_id>/artifacts or models:/<name>/<version>"
)


def parse_source(text: str) -> Source:
    """The `Source` a model version's source URI names.

    Raises:
        InvalidInput: a URI plinth cannot find files for (another scheme, or a malformed one).
    """
    parts = urlsplit(text)
    segments = [s for s in parts.path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise _bad_source(text, "it holds '.' or '..'")
    if parts.scheme == "models" and not parts.netloc:
        return _models_source(text, segments)
    if parts.scheme == "runs" and not parts.netloc and segments:
        return Source(run_id=segments[0], path="/".join(segments[1:]))
    if parts.scheme == "mlflow-artifacts" and len(segments) >= 3:
        if segments[1] == "models" and len(segments) >= 4 and segments[3] == "artifacts":
            return Source(model_id=segments[2], path="/".join(segments[4:]))
        if segments[2] == "artifacts":
            return Source(run_id=segments[1], path="/".join(segments[3:]))
    raise _bad_source(text, "it is none of the forms plinth holds files for")


def source_model_id(source: str | None) -> str | None:
    """The logged model a version's source names, if it names one."""
    if not source:
        return None
    try:
        return parse_source(source).model_id
    except InvalidInput:
        return None


def _models_source(text: str, segments: list[str]) -> Source:
    if len(segments) == 1 and "@" in segments[0]:
        name, _, alias = segments[0].rpartition("@")
        if name and alias:
            return Source(model=name, alias=alias)
    elif len(segments) == 1:
        return Source(model_id=segments[0])
    elif len(segments) == 2 and segments[1].isdigit():
        return Source(model=segments[0], version=int(segments[1]))
    elif len(segments) == 2 and segments[1].lower() == "latest":
        return Source(model=segments[0])
    raise _bad_source(
        text, "it is none of models:/<model_id>, models:/<name>/<version>, models:/<name>@<alias>"
    )


def _bad_source(text: str, why: str) -> InvalidInput:
    return InvalidInput(
        f"Invalid model version source {text[:300]!r}: {why}. plinth registers files it holds: "
        f"use {SOURCE_FORMS}."
    )


# filters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One comparison of a search filter: `tags.team = 'risk'`, `name LIKE 'churn%'`."""

    tag: bool
    key: str
    op: str
    value: Any


_CLAUSE = re.compile(
    r"""\s*(?:(?P<entity>[A-Za-z_]+)\.)?(?P<key>`[^`]+`|"[^"]+"|[\w.\-]+)\s*
    (?P<op>!=|<=|>=|=|<|>|(?i:not\s+in)\b|(?i:in)\b|(?i:ilike)\b|(?i:like)\b)\s*(?P<value>.*?)\s*$""",
    re.VERBOSE | re.DOTALL,
)
_PIECES = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`|(?i:\b(?:and|or)\b)|.""", re.DOTALL)
_STRING = re.compile(r"""'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)\"""", re.DOTALL)
_TAG_ENTITIES = frozenset({"tag", "tags"})
_ATTRIBUTE_ENTITIES = frozenset({"attribute", "attributes", "attr"})
_STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"})
_NUMBER_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_TAG_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})


def parse_filter(text: str | None, attributes: Mapping[str, type]) -> list[Condition]:
    """The conditions of an MLflow registry filter (joined by AND), checked against `attributes`.

    Raises:
        InvalidInput: a clause that is not `key op value`, an unknown key, or an operator or
            value the key does not take.
    """
    if not text or not text.strip():
        return []
    return [_condition(clause, attributes) for clause in _clauses(text)]


def _clauses(text: str) -> list[str]:
    clauses, current = [], ""
    for piece in _PIECES.findall(text):
        if piece.lower() == "or":
            raise InvalidInput(
                f"Invalid filter {text[:200]!r}: MLflow's registry filters join clauses with AND only; "
                "search once per alternative."
            )
        if piece.lower() == "and":
            clauses.append(current)
            current = ""
        else:
            current += piece
    return [*clauses, current]


def _condition(clause: str, attributes: Mapping[str, type]) -> Condition:
    found = _CLAUSE.fullmatch(clause)
    if found is None:
        raise _bad_clause(
            clause,
            "write `key op value` clauses joined by AND, e.g. \"name LIKE 'churn%' AND tags.team = 'risk'\"",
        )
    entity = (found["entity"] or "").lower()
    key = found["key"].strip('`"')
    op = " ".join(found["op"].upper().split())
    if entity in _TAG_ENTITIES:
        return Condition(True, key, _checked_op(op, _TAG_OPS, clause), _string(found["value"], clause))
    if entity and entity not in _ATTRIBUTE_ENTITIES:
        raise _bad_clause(clause, f"{entity!r} is neither 'tags' nor an attribute")
    kind = attributes.get(key)
    if kind is None:
        raise InvalidInput(
            f"Invalid filter key {key!r}: search on {', '.join(sorted(attributes))} or tags.<key>."
        )
    if kind is int:
        return Condition(False, key, _checked_op(op, _NUMBER_OPS, clause), _number(found["value"], clause))
    op = _checked_op(op, _STRING_OPS, clause)
    value = _string_list(found["value"], clause) if op.endswith("IN") else _string(found["value"], clause)
    return Condition(False, key, op, value)


def _checked_op(op: str, allowed: frozenset[str], clause: str) -> str:
    if op not in allowed:
        raise _bad_clause(clause, f"{op} is not allowed here; use one of {', '.join(sorted(allowed))}")
    return op


def _string(text: str, clause: str) -> str:
    found = _STRING.fullmatch(text.strip())
    if found is None:
        raise _bad_clause(clause, "quote the value, e.g. 'churn'")
    raw = found[1] if found[1] is not None else found[2]
    return re.sub(r"\\(.)", r"\1", raw)


def _string_list(text: str, clause: str) -> tuple[str, ...]:
    inner = text.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise _bad_clause(clause, "IN takes a list, e.g. ('a', 'b')")
    values, current = [], ""
    for piece in [*_PIECES.findall(inner[1:-1]), ","]:
        if piece == ",":
            values.append(_string(current, clause))
            current = ""
        else:
            current += piece
    return tuple(values)


def _number(text: str, clause: str) -> int:
    value = text.strip().strip("'\"")
    if not re.fullmatch(r"-?[0-9]+", value):
        raise _bad_clause(clause, "the value must be an integer")
    return int(value)


def _bad_clause(clause: str, why: str) -> InvalidInput:
    return InvalidInput(f"Invalid filter clause {clause.strip()[:200]!r}: {why}.")


def matches(conditions: Sequence[Condition], attributes: Mapping[str, Any], tags: Mapping[str, str]) -> bool:
    """Whether an entity with these attributes and tags meets every condition (a missing tag meets none)."""
    for c in conditions:
        value = tags.get(c.key) if c.tag else attributes.get(c.key)
        if value is None:
            if c.tag and c.key == PROMPT_TAG and (c.op, c.value) in (("!=", "true"), ("=", "false")):
                continue
            return False
        if not _compare(c.op, value, c.value):
            return False
    return True


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "LIKE":
        return _like(right).fullmatch(left) is not None
    if op == "ILIKE":
        return _like(right, re.IGNORECASE).fullmatch(left) is not None
    if op == "IN":
        return bool(left in right)
    if op == "NOT IN":
        return bool(left not in right)
    compare: Callable[[Any, Any], bool] = COMPARISONS[op]
    return compare(left, right)


def _like(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """SQL LIKE as a regular expression: % any run of characters, _ any one."""
    body = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile(body, flags | re.DOTALL)


# orders and pages --------------------------------------------------------------------------
def parse_order(order_by: object, allowed: frozenset[str]) -> list[tuple[str, bool]]:
    """MLflow's `order_by` (`["name ASC", "version_number DESC"]`) as (key, ascending) pairs.

    Raises:
        InvalidInput: an unknown key or direction.
    """
    clauses = [order_by] if isinstance(order_by, str) else order_by or []
    if not isinstance(clauses, list):
        raise InvalidInput("Parameter 'order_by' must be a list of strings like 'name ASC'.")
    order = []
    for clause in clauses:
        words = str(clause).split()
        key = words[0].strip("`") if words else ""
        if key.startswith(("attribute.", "attributes.")):
            key = key.split(".", 1)[1]
        direction = words[1].upper() if len(words) > 1 else "ASC"
        if key not in allowed or direction not in ("ASC", "DESC") or len(words) > 2:
            raise InvalidInput(
                f"Invalid order_by clause {str(clause)[:200]!r}: use '<key> ASC' or '<key> DESC' with key "
                f"one of {', '.join(sorted(allowed))}."
            )
        order.append((key, direction == "ASC"))
    return order


def sort_by(items: list[T], order: Sequence[tuple[str, bool]], value: Callable[[T, str], Any]) -> list[T]:
    """`items` sorted by each (key, ascending) in turn, the first the most significant."""
    result = list(items)
    for key, ascending in reversed(order):
        result.sort(key=lambda item: value(item, key), reverse=not ascending)
    return result


def max_results(value: object, default: int, limit: int) -> int:
    """A request's `max_results` (default when absent), at most `limit`.

    Raises:
        InvalidInput: not a positive integer, or above `limit`.
    """
    if value is None or value == "":
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise InvalidInput(f"Parameter 'max_results' must be an integer, got {str(value)[:40]!r}.") from None
    if not 1 <= number <= limit:
        raise InvalidInput(f"Parameter 'max_results' must be between 1 and {limit}, got {number}.")
    return number


def page(items: list[T], token: object, size: int) -> tuple[list[T], str | None]:
    """One page of `items` from the offset `token` holds, and the token of the next page (None at the end).

    Raises:
        InvalidInput: a token this server did not make.
    """
    start = _offset(token)
    end = start + size
    following = base64.b64encode(json.dumps({"offset": end}).encode()).decode() if end < len(items) else None
    return items[start:end], following


def _offset(token: object) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.b64decode(str(token), validate=True))["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        offset = None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidInput("Invalid page_token: pass the next_page_token of the previous page as it came.")
    return offset
