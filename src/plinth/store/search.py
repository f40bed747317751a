"""Compile the filter language's AST into SQLAlchemy expressions over the runs table.

Values always travel as bound parameters: filter text never reaches the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select, true
from sqlalchemy.sql.elements import UnaryExpression

from plinth.core.entities import RunStatus
from plinth.core.errors import InvalidInput
from plinth.core.filters import And, Compare, Expr, Field, Not, Or, OrderKey
from plinth.store.schema import latest_metrics, params, runs, tags

KeyIds = Callable[[str], int]

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
    column = _column(field, key_id, _is_numeric(cmp.value))
    return _apply(column, cmp.op, cmp.value)


def _is_numeric(value: Any) -> bool:
    if isinstance(value, tuple):
        return bool(value) and all(_is_numeric(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
        "like": lambda: column.like(value),
        "not like": lambda: column.not_like(value),
        "ilike": lambda: func.lower(column).like(func.lower(value)),
        "in": lambda: column.in_(list(value)),
        "not in": lambda: column.not_in(list(value)),
        "is null": lambda: column.is_(None),
        "is not null": lambda: column.is_not(None),
    }
    if op not in ops:
        raise InvalidInput(f"Unsupported operator {op!r} in filter.")
    return ops[op]()


def _status(cmp: Compare, now_ms: int) -> ColumnElement[bool]:
    values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
    matches = [_status_is(str(v), now_ms) for v in values]
    positive = or_(*matches) if matches else false()
    if cmp.op in ("=", "in"):
        return positive
    if cmp.op in ("!=", "not in"):
        return not_(positive)
    if cmp.op == "is null":
        return false()
    if cmp.op == "is not null":
        return true()
    raise InvalidInput(f"status supports =, !=, in and not in, not {cmp.op!r}.")


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
