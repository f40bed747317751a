"""Checks of a filter that arrives parsed (over the wire) rather than as text.

`parse_filter` refuses text a store cannot run: unknown attributes, values of the wrong kind for
an operator, too many comparisons, text no database binds. A filter decoded from JSON skipped the
parser, so the server holds it to the same rules before a store compiles it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plinth.core.errors import InvalidInput
from plinth.core.filters import (
    ATTRIBUTES,
    MAX_COMPARISONS,
    MAX_NESTING,
    MAX_VALUES,
    STATUSES,
    And,
    Compare,
    Expr,
    Field,
    Not,
    OrderKey,
)
from plinth.core.validation import UNSTORABLE

_INT64 = 2**63
_SCALAR_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_PATTERN_OPS = frozenset({"like", "not like", "ilike"})
_LIST_OPS = frozenset({"in", "not in"})
_NULL_OPS = frozenset({"is null", "is not null"})


def check_filter(expr: Expr | None) -> None:
    """Refuse a parsed filter that `parse_filter` could not have produced.

    Raises:
        InvalidInput: naming the first comparison or node that cannot be run.
    """
    if expr is None:
        return
    counts = [0, 0]  # comparisons, list values
    _check(expr, 0, counts)
    if counts[0] > MAX_COMPARISONS:
        raise InvalidInput(f"The filter holds {counts[0]} comparisons; the limit is {MAX_COMPARISONS}.")
    if counts[1] > MAX_VALUES:
        raise InvalidInput(f"The filter's in-lists hold {counts[1]} values; the limit is {MAX_VALUES}.")


def check_order(keys: Sequence[OrderKey]) -> None:
    """Refuse order keys on fields no run has.

    Raises:
        InvalidInput: an unknown attribute, or a name no database can bind.
    """
    for key in keys:
        _field(key.field)


def _check(expr: Expr, depth: int, counts: list[int]) -> None:
    if depth > MAX_NESTING:
        raise InvalidInput(f"The filter nests and/or/not deeper than {MAX_NESTING} levels.")
    if isinstance(expr, Compare):
        counts[0] += 1
        counts[1] += len(expr.value) if isinstance(expr.value, tuple) else 0
        _compare(expr)
    elif isinstance(expr, Not):
        _check(expr.item, depth + 1, counts)
    else:
        kind = "and" if isinstance(expr, And) else "or"
        if not expr.items:
            raise InvalidInput(f"An '{kind}' of the filter has no items; give at least one.")
        for item in expr.items:
            _check(item, depth + 1, counts)


def _compare(cmp: Compare) -> None:
    _field(cmp.field)
    value, op, name = cmp.value, cmp.op, f"{cmp.field.kind}.{cmp.field.name}"
    if op in _NULL_OPS:
        _expect(value is None, name, op, "no value")
    elif op in _LIST_OPS:
        _expect(isinstance(value, tuple), name, op, "a list of values")
        for item in value if isinstance(value, tuple) else ():
            _value(item, name)
    elif op in _PATTERN_OPS:
        _expect(isinstance(value, str), name, op, "a text pattern")
        _value(value, name)
    else:
        _expect(
            op in _SCALAR_OPS and value is not None and not isinstance(value, tuple), name, op, "one value"
        )
        _value(value, name)
    if cmp.field.kind == "metrics" and op not in _NULL_OPS:
        items = value if isinstance(value, tuple) else (value,)
        _expect(all(isinstance(v, int | float) for v in items), name, op, "numbers (metrics are numbers)")
    if cmp.field == Field("attributes", "status") and op not in _NULL_OPS | _PATTERN_OPS:
        items = value if isinstance(value, tuple) else (value,)
        _expect(all(v in STATUSES for v in items), name, op, f"statuses among {', '.join(STATUSES)}")


def _field(field: Field) -> None:
    if field.kind == "attributes" and field.name not in ATTRIBUTES:
        raise InvalidInput(f"Unknown run attribute {field.name!r}; use one of {sorted(ATTRIBUTES)}.")
    if not field.name or UNSTORABLE.search(field.name):
        raise InvalidInput(f"The filter names a field {field.name!r} that no run can have.")


def _value(value: Any, name: str) -> None:
    if isinstance(value, str) and UNSTORABLE.search(value):
        raise InvalidInput(f"The filter compares {name} with text holding a NUL or a lone surrogate.")
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        raise InvalidInput(f"The filter compares {name} with {value}, beyond the integers a store holds.")


def _expect(ok: bool, name: str, op: str, what: str) -> None:
    if not ok:
        raise InvalidInput(f"The filter's '{name} {op}' needs {what}.")
