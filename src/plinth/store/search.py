"""Compile the filter language's AST into SQLAlchemy expressions over the runs table.

Values always travel as bound parameters: filter text never reaches the database. A NaN metric
is stored as NULL, so it satisfies no comparison and sorts last, like a missing one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, exists, false, func, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.functions import FunctionElement

from plinth.core.entities import RunStatus
from plinth.core.errors import InvalidInput
from plinth.core.filters import STATUSES, And, Compare, Expr, Field, Not, Or, OrderKey
from plinth.store.engine import FOLD
from plinth.store.schema import latest_metrics, params, runs, tags

KeyIds = Callable[[str], int]
ESCAPE = "\\"
"""The escape character of like/ilike patterns on every backend (PostgreSQL's default)."""

_ATTRIBUTES = {
    "id": runs.c.id,
    "run_id": runs.c.id,
    "name": runs.c.name,
    "user": runs.c.user_name,
    "experiment_id": runs.c.experiment_id,
    "start_time": runs.c.start_ms,
    "end_time": runs.c.end_ms,
}


def stale(now_ms: int) -> ColumnElement[bool]:
    """RUNNING rows whose heartbeat is older than three intervals: these read as CRASHED."""
    last = func.coalesce(runs.c.heartbeat_ms, runs.c.start_ms)
    return and_(runs.c.status == "RUNNING", last + runs.c.heartbeat_s * 3000 < now_ms)


def compile_where(expr: Expr, key_id: KeyIds, now_ms: int) -> ColumnElement[bool]:
    """Turn a parsed filter into a boolean SQL expression over `runs`."""
    if isinstance(expr, And):
        return and_(*(compile_where(e, key_id, now_ms) for e in expr.items))
    if isinstance(expr, Or):
        return or_(*(compile_where(e, key_id, now_ms) for e in expr.items))
    if isinstance(expr, Not):
        return not_(compile_where(expr.item, key_id, now_ms))
    if isinstance(expr, Compare):
        return _compare(expr, key_id, now_ms)
    raise InvalidInput(f"Unsupported filter node {expr!r}")


def _compare(cmp: Compare, key_id: KeyIds, now_ms: int) -> ColumnElement[bool]:
    field = cmp.field
    if field.kind == "attributes" and field.name == "status":
        return _status(cmp, now_ms)
    if field.kind == "metrics" and cmp.op in ("is null", "is not null"):
        # whether the run has the metric: a NaN value is NULL too, yet the metric is there
        logged = _has_metric(field.name, key_id)
        return not_(logged) if cmp.op == "is null" else logged
    column = _column(field, key_id, _is_numeric(cmp.value))
    return _apply(column, cmp.op, cmp.value)


def _is_numeric(value: Any) -> bool:
    if isinstance(value, tuple):
        return bool(value) and all(_is_numeric(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _has_metric(name: str, key_id: KeyIds) -> ColumnElement[bool]:
    lm = latest_metrics.alias()
    return exists().where(lm.c.run_key == runs.c.key, lm.c.key_id == key_id(name))


def _column(field: Field, key_id: KeyIds, numeric: bool) -> Any:
    if field.kind == "attributes":
        if field.name not in _ATTRIBUTES:
            raise InvalidInput(f"Unknown run attribute {field.name!r}; use one of {sorted(_ATTRIBUTES)}.")
        return _ATTRIBUTES[field.name]
    if field.kind == "metrics":
        lm = latest_metrics.alias()
        sub = select(lm.c.value).where(lm.c.run_key == runs.c.key, lm.c.key_id == key_id(field.name))
        return sub.scalar_subquery()
    table = params if field.kind == "params" else tags
    alias = table.alias()
    value = alias.c.value_num if (numeric and field.kind == "params") else alias.c.value
    sub = select(value).where(alias.c.run_key == runs.c.key, alias.c.key == field.name)
    return sub.scalar_subquery()


def _apply(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    ops: dict[str, Callable[[], ColumnElement[bool]]] = {
        "=": lambda: column == value,
        "!=": lambda: column != value,
        "<": lambda: column < value,
        "<=": lambda: column <= value,
        ">": lambda: column > value,
        ">=": lambda: column >= value,
        "like": lambda: column.like(value, escape=ESCAPE),
        "not like": lambda: column.not_like(value, escape=ESCAPE),
        "ilike": lambda: ILike(column, value),
        "in": lambda: column.in_(list(value)),
        "not in": lambda: column.not_in(list(value)),
        "is null": lambda: column.is_(None),
        "is not null": lambda: column.is_not(None),
    }
    if op not in ops:
        raise InvalidInput(f"Unsupported operator {op!r} in filter.")
    return ops[op]()


class ILike(FunctionElement[bool]):
    """`column ILIKE pattern`, folding case by Unicode rules on every backend.

    PostgreSQL's ILIKE folds every letter; SQLite's lower() only ASCII ones, so there both
    sides go through the connection's FOLD function (str.lower) and a case-sensitive LIKE.
    """

    name = "plinth_ilike"
    type = Boolean()
    inherit_cache = True


@compiles(ILike)
def _ilike(element: ILike, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = element.clauses
    return compiler.process(column.ilike(pattern, escape=ESCAPE), **kw)


@compiles(ILike, "sqlite")
def _ilike_sqlite(element: ILike, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = element.clauses
    folded = getattr(func, FOLD)
    return f"({compiler.process(folded(column).like(folded(pattern), escape=ESCAPE), **kw)})"


def _status(cmp: Compare, now_ms: int) -> ColumnElement[bool]:
    # CRASHED is computed from heartbeats, so a pattern is matched against the status names here
    if cmp.op.endswith("like"):
        values: tuple[Any, ...] = like_matches(str(cmp.value), STATUSES, cmp.op == "ilike")
    else:
        values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
    matches = [_status_is(str(v), now_ms) for v in values]
    positive = or_(*matches) if matches else false()
    if cmp.op in ("=", "in", "like", "ilike"):
        return positive
    if cmp.op in ("!=", "not in", "not like"):
        return not_(positive)
    if cmp.op == "is null":
        return false()
    if cmp.op == "is not null":
        return true()
    raise InvalidInput(f"status supports =, !=, in and not in, not {cmp.op!r}.")


def like_matches(pattern: str, texts: Sequence[str], ignore_case: bool) -> tuple[str, ...]:
    """The ``texts`` a like (or, with ``ignore_case``, ilike) pattern matches, as SQL would."""
    parts, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == ESCAPE and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    regex = re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))
    return tuple(text for text in texts if regex.fullmatch(text))


def _status_is(value: str, now_ms: int) -> ColumnElement[bool]:
    status = RunStatus(value.upper())
    if status is RunStatus.CRASHED:
        return or_(runs.c.status == "CRASHED", stale(now_ms))
    if status is RunStatus.RUNNING:
        return and_(runs.c.status == "RUNNING", not_(stale(now_ms)))
    return runs.c.status == status.value


def compile_order(keys: Sequence[OrderKey], key_id: KeyIds) -> list[UnaryExpression[Any]]:
    """ORDER BY clauses; runs lacking an ordered metric/param sort last."""
    clauses: list[UnaryExpression[Any]] = []
    for key in keys:
        columns = [_column(key.field, key_id, numeric=True)]
        if key.field.kind == "params":  # numbers by value, then the rest as text
            columns.append(_column(key.field, key_id, numeric=False))
        for column in columns:
            ordered = column.desc() if key.descending else column.asc()
            clauses.append(ordered.nulls_last())
    clauses.append(runs.c.start_ms.desc())
    clauses.append(runs.c.key.desc())
    return clauses
