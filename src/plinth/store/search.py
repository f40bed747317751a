"""Compile the filter language's AST into SQL text over the runs table.

Values always travel as bound parameters: filter text never reaches the database. A NaN metric
is stored as NULL, so it satisfies no comparison and sorts last, like a missing one.

The SQL is written as text, not built as SQLAlchemy expressions: a search runs often and its
statements are small, and building and compiling expression trees cost more than the query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func

from plinth.core.entities import RunStatus
from plinth.core.errors import InvalidInput
from plinth.core.filters import STATUSES, And, Compare, Expr, Field, Not, Or, OrderKey
from plinth.store.engine import FOLD
from plinth.store.schema import runs

KeyIds = Callable[[str], int]
ESCAPE = "\\"
"""The escape character of like/ilike patterns on every backend (PostgreSQL's default)."""

RUN_COLUMNS = (
    'runs."key", runs.id, runs.experiment_id, runs.name, runs.status, runs.user_name, runs.start_ms, '
    "runs.end_ms, runs.heartbeat_ms, runs.heartbeat_s, runs.error, runs.env_digest"
)
"""The columns of `runs` a `Run` is built from, in the order `SqlRunSearch` reads them."""

RUN_KEY = 'runs."key"'
NEWEST_FIRST = 'runs.start_ms DESC, runs."key" DESC'
"""How runs that tie on every ordered field are ordered: newest first."""

_ATTRIBUTES = {
    "id": "runs.id",
    "run_id": "runs.id",
    "name": "runs.name",
    "user": "runs.user_name",
    "experiment_id": "runs.experiment_id",
    "start_time": "runs.start_ms",
    "end_time": "runs.end_ms",
}
_COMPARISONS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
STALE_BEATS = 3
"""A RUNNING run whose last heartbeat is older than this many intervals reads as CRASHED."""
_STALE = (
    "(runs.status = 'RUNNING' AND coalesce(runs.heartbeat_ms, runs.start_ms) "
    f"+ runs.heartbeat_s * {STALE_BEATS * 1000} < ?)"
)
"""RUNNING runs whose heartbeat is older than STALE_BEATS intervals (as `stale`)."""


@dataclass(frozen=True)
class Sql:
    """A piece of SQL text and the values of its `?` marks, in the order they appear."""

    text: str
    params: tuple[Any, ...] = ()

    def __add__(self, other: Sql | str) -> Sql:
        if isinstance(other, str):
            return Sql(self.text + other, self.params)
        return Sql(self.text + other.text, self.params + other.params)

    @staticmethod
    def join(separator: str, parts: Iterable[Sql]) -> Sql:
        """The parts one after another, `separator` between them."""
        items = list(parts)
        return Sql(separator.join(p.text for p in items), tuple(v for p in items for v in p.params))

    @staticmethod
    def marks(values: Sequence[Any]) -> Sql:
        """`?, ?, ...`: one mark per value."""
        return Sql(", ".join(["?"] * len(values)), tuple(values))

    def for_driver(self, sqlite: bool) -> str:
        """The text with the driver's marks: `?` for sqlite3, `%s` for psycopg."""
        return self.text if sqlite else self.text.replace("?", "%s")


def stale(now_ms: int) -> ColumnElement[bool]:
    """RUNNING rows whose heartbeat is older than STALE_BEATS intervals: these read as CRASHED."""
    last = func.coalesce(runs.c.heartbeat_ms, runs.c.start_ms)
    return and_(runs.c.status == "RUNNING", last + runs.c.heartbeat_s * (STALE_BEATS * 1000) < now_ms)


class SearchCompiler:
    """Turns a parsed filter and order keys into SQL over `runs`, for one database at one moment.

    Args:
        key_id: the id of a metric name (-1 for a metric no run has logged).
        now_ms: the time at which a RUNNING run with a stale heartbeat reads as CRASHED.
        sqlite: compile for SQLite, whose ilike folds case through the FOLD function.
        run_key: the column holding the run's key that metrics, params and tags are looked up by;
            a column of a table joined before `runs` lets them be checked before its row is read.
        semi_joins: compile a comparison of a metric, param or tag (outside a `not`) as membership
            in the runs whose value passes it, read from the value index once, instead of a
            lookup per run: what counting every match wants; a search that stops at a page of
            runs is faster with lookups.
    """

    def __init__(
        self, key_id: KeyIds, now_ms: int, *, sqlite: bool, run_key: str = RUN_KEY, semi_joins: bool = False
    ) -> None:
        self._key_id = key_id
        self._now_ms = now_ms
        self._sqlite = sqlite
        self._run_key = run_key
        self._semi_joins = semi_joins
        self._negated = 0
        self._aliases = 0

    def where(self, expr: Expr) -> Sql:
        """A boolean SQL expression over `runs` that holds for the runs the filter matches."""
        if isinstance(expr, And):
            return Sql("(") + Sql.join(" AND ", (self.where(e) for e in _equalities_first(expr.items))) + ")"
        if isinstance(expr, Or):
            return Sql("(") + Sql.join(" OR ", (self.where(e) for e in expr.items)) + ")"
        if isinstance(expr, Not):
            self._negated += 1  # NOT of a missing value stays unknown: no semi-join under it
            try:
                return Sql("NOT (") + self.where(expr.item) + ")"
            finally:
                self._negated -= 1
        if isinstance(expr, Compare):
            return self._compare(expr)
        raise InvalidInput(f"Unsupported filter node {expr!r}")

    def order(self, keys: Sequence[OrderKey]) -> Sql:
        """ORDER BY terms; runs lacking an ordered metric/param sort last, ties newest first."""
        terms: list[Sql] = []
        for key in keys:
            columns = [self._column(key.field, numeric=True)]
            if key.field.kind == "params":  # numbers by value, then the rest as text
                columns.append(self._column(key.field, numeric=False))
            direction = " DESC NULLS LAST" if key.descending else " ASC NULLS LAST"
            terms.extend(column + direction for column in columns)
        terms.append(Sql(NEWEST_FIRST))
        return Sql.join(", ", terms)

    def _metric(self, name: str) -> Sql:
        """The run's latest value of metric `name`: NULL when NaN or never logged."""
        m = self._alias("m")
        return Sql(
            f"(SELECT {m}.value FROM latest_metrics {m} "
            f"WHERE {m}.run_key = {self._run_key} AND {m}.key_id = ?)",
            (self._key_id(name),),
        )

    def _alias(self, prefix: str) -> str:
        self._aliases += 1
        return f"{prefix}{self._aliases}"

    def _compare(self, cmp: Compare) -> Sql:
        field = cmp.field
        if field.kind == "attributes" and field.name == "status":
            return self._status(cmp)
        if field.kind == "metrics" and cmp.op in ("is null", "is not null"):
            # whether the run has the metric: a NaN value is NULL too, yet the metric is there
            m = self._alias("m")
            logged = Sql(
                f"EXISTS (SELECT 1 FROM latest_metrics {m} "
                f"WHERE {m}.run_key = {self._run_key} AND {m}.key_id = ?)",
                (self._key_id(field.name),),
            )
            return Sql("NOT ") + logged if cmp.op == "is null" else logged
        if self._semi_joins and not self._negated and _needs_a_value(cmp):
            return self._member(cmp)
        column = self._column(field, _is_numeric(cmp.value))
        return self._apply(column, cmp.op, cmp.value)

    def _member(self, cmp: Compare) -> Sql:
        """`run IN (runs whose metric, param or tag passes cmp)`: true exactly where the lookup
        form is (a run without the value fails both), read from the (key, value) index."""
        field = cmp.field
        if field.kind == "metrics":
            alias = self._alias("m")
            table, key, value = (
                "latest_metrics",
                Sql(f"{alias}.key_id = ?", (self._key_id(field.name),)),
                "value",
            )
        else:
            table = "params" if field.kind == "params" else "tags"
            alias = self._alias(table[0])
            key = Sql(f'{alias}."key" = ?', (field.name,))
            value = "value_num" if (field.kind == "params" and _is_numeric(cmp.value)) else "value"
        passes = self._apply(Sql(f"{alias}.{value}"), cmp.op, cmp.value)
        return (
            Sql(f"{self._run_key} IN (SELECT {alias}.run_key FROM {table} {alias} WHERE ")
            + key
            + " AND "
            + passes
            + ")"
        )

    def _column(self, field: Field, numeric: bool) -> Sql:
        if field.kind == "attributes":
            if field.name not in _ATTRIBUTES:
                raise InvalidInput(f"Unknown run attribute {field.name!r}; use one of {sorted(_ATTRIBUTES)}.")
            return Sql(_ATTRIBUTES[field.name])
        if field.kind == "metrics":
            return self._metric(field.name)
        table = "params" if field.kind == "params" else "tags"
        alias = self._alias(table[0])
        value = "value_num" if (numeric and field.kind == "params") else "value"
        return Sql(
            f"(SELECT {alias}.{value} FROM {table} {alias} "
            f'WHERE {alias}.run_key = {self._run_key} AND {alias}."key" = ?)',
            (field.name,),
        )

    def _apply(self, column: Sql, op: str, value: Any) -> Sql:
        if op in _COMPARISONS:
            return column + f" {_COMPARISONS[op]} " + Sql("?", (value,))
        if op in ("like", "not like"):
            return column + f" {op.upper()} " + Sql(f"? ESCAPE '{ESCAPE}'", (value,))
        if op == "ilike":
            return self._ilike(column, value)
        if op in ("in", "not in"):
            values = list(value)
            if not values:  # nothing is in an empty list
                return Sql("1 = 0" if op == "in" else "1 = 1")
            return Sql("(") + column + f" {op.upper()} (" + Sql.marks(values) + "))"
        if op in ("is null", "is not null"):
            return column + f" {op.upper()}"
        raise InvalidInput(f"Unsupported operator {op!r} in filter.")

    def _ilike(self, column: Sql, pattern: Any) -> Sql:
        """`column ILIKE pattern`, folding case by Unicode rules on every backend.

        PostgreSQL's ILIKE folds every letter; SQLite's lower() only ASCII ones, so there both
        sides go through the connection's FOLD function (str.lower) and a case-sensitive LIKE.
        """
        if not self._sqlite:
            return column + " ILIKE " + Sql(f"? ESCAPE '{ESCAPE}'", (pattern,))
        return Sql(f"{FOLD}(") + column + f") LIKE {FOLD}(" + Sql(f"?) ESCAPE '{ESCAPE}'", (pattern,))

    def _status(self, cmp: Compare) -> Sql:
        # CRASHED is computed from heartbeats, so a pattern is matched against the status names here
        if cmp.op.endswith("like"):
            values: tuple[Any, ...] = like_matches(str(cmp.value), STATUSES, cmp.op == "ilike")
        else:
            values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
        matches = [self._status_is(str(v)) for v in values]
        positive = Sql("(") + Sql.join(" OR ", matches) + ")" if matches else Sql("1 = 0")
        if cmp.op in ("=", "in", "like", "ilike"):
            return positive
        if cmp.op in ("!=", "not in", "not like"):
            return Sql("NOT ") + positive
        if cmp.op == "is null":
            return Sql("1 = 0")
        if cmp.op == "is not null":
            return Sql("1 = 1")
        raise InvalidInput(f"status supports =, !=, in and not in, not {cmp.op!r}.")

    def _status_is(self, value: str) -> Sql:
        status = RunStatus(value.upper())
        stale_ = Sql(_STALE, (self._now_ms,))
        if status is RunStatus.CRASHED:
            return Sql("(runs.status = 'CRASHED' OR ") + stale_ + ")"
        if status is RunStatus.RUNNING:
            return Sql("(runs.status = 'RUNNING' AND NOT ") + stale_ + ")"
        return Sql("runs.status = ?", (status.value,))


def _needs_a_value(cmp: Compare) -> bool:
    """Whether `cmp` can hold only for a run that has the metric, param or tag it names."""
    if cmp.field.kind == "attributes" or cmp.op in ("is null", "is not null"):
        return False
    return not (isinstance(cmp.value, tuple) and not cmp.value)  # `not in ()` holds for every run


def _is_numeric(value: Any) -> bool:
    if isinstance(value, tuple):
        return bool(value) and all(_is_numeric(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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


def _equalities_first(items: tuple[Expr, ...]) -> list[Expr]:
    """The terms of an AND with equality tests first (otherwise in their order): a row is checked
    term by term until one fails, and `params.opt = 'adam'` passes far fewer runs than a range
    such as `metrics.acc > 0.5`, so the lookups behind the terms after it are made less often."""
    return sorted(items, key=lambda item: not (isinstance(item, Compare) and item.op in ("=", "in")))
