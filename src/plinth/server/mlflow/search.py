"""MLflow's search grammar: filter strings, order_by items and page tokens, for runs and experiments.

MLflow's filter is comparisons joined by AND (`metrics.acc > 0.9 and params.lr = '0.01'
and tags.`my tag` ilike '%x%' and attributes.run_id in ('a', 'b')`). A run filter becomes
plinth's own filter tree (`plinth.core.filters`), which the store runs as SQL; MLflow's names
map onto plinth's (`run_id` -> `id`, `run_name` and the tag `mlflow.runName` -> `name`,
`user_id` -> `user`, `created` -> `start_time`) and a status of FAILED also finds the runs plinth
calls CRASHED, which MLflow's client sees as FAILED. `datasets.name|digest|context` finds the
runs that consumed a matching dataset version through lineage. Experiments are few: their
filter and order are applied here, in Python.

Values keep MLflow's reading: a quoted value is the text between its quotes, unescaped, and a
number compares with metrics and times. Runs are ordered as MLflow's server orders them: by the
order_by keys (a run lacking the value last), then newest start first. plinth keeps a NaN metric
as no value, so a NaN neither passes `!=` nor sorts before the runs that lack the metric.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plinth.core.filters import And, Compare, CompareOp, Expr, Field, FieldKind, OrderKey
from plinth.server.mlflow.run_json import RUN_NAME_TAG, experiment_id_of, refuse

if TYPE_CHECKING:
    from plinth.core.entities import DatasetVersion, Experiment
    from plinth.store.base import TrackingStore

Value = str | int | float | tuple[str, ...] | None

DEFAULT_MAX_RESULTS = 1000
MAX_RESULTS = 50000
_KINDS = {
    "metric": "metric",
    "metrics": "metric",
    "parameter": "parameter",
    "parameters": "parameter",
    "param": "parameter",
    "params": "parameter",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}
_ALIASES = {"created": "start_time", "Created": "start_time", "run name": "run_name", "Run name": "run_name"}
_ALIASES["Run Name"] = "run_name"
_NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_TEXT_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"})
_STRING_ATTR_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"})
_RUN_TIMES = frozenset({"start_time", "end_time"})
_RUN_TEXTS = {"run_id": "id", "run_name": "name", "user_id": "user", "status": "status"}
_DATASET_KEYS = frozenset({"name", "digest", "context"})
_EXPERIMENT_TIMES = frozenset({"creation_time", "last_update_time"})
_EXPERIMENT_TEXTS = frozenset({"name", "experiment_id"})
_PLINTH_OPS: dict[str, CompareOp] = {
    "=": "=",
    "!=": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "LIKE": "like",
    "ILIKE": "ilike",
    "IN": "in",
    "NOT IN": "not in",
    "IS NULL": "is null",
    "IS NOT NULL": "is not null",
}
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
_BARE = re.compile(r"[^\s=!<>(),'\"`]+")
_WORD = re.compile(r"[A-Za-z]+\b")
_SYMBOLS = ("!=", "<>", "<=", ">=", "==", "=", "<", ">")
_NEVER = Compare(Field("attributes", "id"), "in", ())
_ALWAYS = Compare(Field("attributes", "id"), "not in", ())


@dataclass(frozen=True)
class Clause:
    """One comparison of an MLflow filter: `metric`/`parameter`/`tag`/`attribute`/`dataset`,
    the key, the operator (upper case, e.g. "NOT IN"), and the value (None for IS [NOT] NULL)."""

    kind: str
    key: str
    op: str
    value: Value
    quoted: bool = False


# the grammar ------------------------------------------------------------------------------------
class _Scanner:
    """Reads a filter or order_by item left to right."""

    def __init__(self, text: str) -> None:
        self.text, self.i = text, 0

    def skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def done(self) -> bool:
        self.skip()
        return self.i >= len(self.text)

    def word(self) -> str | None:
        """The keyword at the cursor (upper case), without consuming it."""
        self.skip()
        found = _WORD.match(self.text, self.i)
        return found.group().upper() if found else None

    def take_word(self, expected: str) -> bool:
        if self.word() == expected:
            self.i += len(expected)
            return True
        return False

    def quoted(self) -> str:
        """The text between the quote at the cursor and its closing quote, as written."""
        quote, j = self.text[self.i], self.i + 1
        while j < len(self.text):
            ch = self.text[j]
            if ch == "\\" and j + 1 < len(self.text):
                j += 2
            elif ch == quote and self.text[j + 1 : j + 2] == quote:
                j += 2
            elif ch == quote:
                inner = self.text[self.i + 1 : j]
                self.i = j + 1
                return inner
            else:
                j += 1
        raise refuse(f"Invalid filter {self.text!r}: the {quote} at position {self.i} is never closed.")

    def identifier(self) -> tuple[str | None, str]:
        """`kind.key` (a kind of None for a bare attribute), quotes and backticks removed."""
        self.skip()
        segments: list[tuple[str, bool]] = []
        while self.i < len(self.text):
            ch = self.text[self.i]
            after_dot = bool(segments) and not segments[-1][1] and segments[-1][0].endswith(".")
            if ch in '`"' or (ch == "'" and after_dot):
                segments.append((self.quoted(), True))
            elif found := _BARE.match(self.text, self.i):
                segments.append((found.group(), False))
                self.i = found.end()
            else:
                break
        if not segments:
            raise refuse(
                f"Invalid filter {self.text!r}: expected an identifier such as metrics.acc "
                f"at position {self.i}."
            )
        return _split_identifier(segments)

    def operator(self) -> str:
        self.skip()
        for symbol in _SYMBOLS:
            if self.text.startswith(symbol, self.i):
                self.i += len(symbol)
                return {"<>": "!=", "==": "="}.get(symbol, symbol)
        word = self.word()
        if word in ("LIKE", "ILIKE", "IN"):
            self.take_word(word)
            return word
        if word == "NOT" and self.take_word("NOT") and self.take_word("IN"):
            return "NOT IN"
        if word == "IS" and self.take_word("IS"):
            negated = self.take_word("NOT")
            if self.take_word("NULL"):
                return "IS NOT NULL" if negated else "IS NULL"
        raise refuse(
            f"Invalid filter {self.text!r}: expected a comparison operator (=, !=, <, <=, >, >=, LIKE, "
            f"ILIKE, IN, NOT IN, IS NULL, IS NOT NULL) at position {self.i}."
        )

    def value(self) -> tuple[Value, bool]:
        """A quoted string, a number, or a parenthesized list of them; and whether it was quoted."""
        self.skip()
        ch = self.text[self.i : self.i + 1]
        if ch in ("'", '"'):
            return self.quoted(), True
        if ch == "(":
            return self.values(), True
        if found := _NUMBER.match(self.text, self.i):
            self.i = found.end()
            return _number(found.group()), False
        raise refuse(
            f"Invalid filter {self.text!r}: expected a value (a quoted string or a number) "
            f"at position {self.i}."
        )

    def values(self) -> tuple[str, ...]:
        self.i += 1  # "("
        out: list[str] = []
        while True:
            self.skip()
            ch = self.text[self.i : self.i + 1]
            if ch not in ("'", '"'):
                raise refuse(
                    f"Invalid filter {self.text!r}: a list holds quoted strings, e.g. ('a', 'b') "
                    f"(position {self.i})."
                )
            out.append(self.quoted())
            self.skip()
            ch = self.text[self.i : self.i + 1]
            self.i += 1
            if ch == ")":
                return tuple(out)
            if ch != ",":
                raise refuse(f"Invalid filter {self.text!r}: expected ',' or ')' at position {self.i - 1}.")


def _split_identifier(segments: list[tuple[str, bool]]) -> tuple[str | None, str]:
    for index, (text, quoted) in enumerate(segments):
        if not quoted and "." in text:
            head, _, tail = text.partition(".")
            kind = "".join(t for t, _ in segments[:index]) + head
            rest = ([(tail, False)] if tail else []) + segments[index + 1 :]
            return kind, "".join(t for t, _ in rest)
    return None, "".join(t for t, _ in segments)


def _number(text: str) -> int | float:
    if re.fullmatch(r"[-+]?\d+", text):
        number = int(text)
        return number if abs(number) < 2**63 else float(number)
    return float(text)


def parse_filter(text: str | None) -> list[Clause]:
    """The comparisons of an MLflow filter string (none for an empty one).

    Raises:
        MlflowError: INVALID_PARAMETER_VALUE naming what could not be read.
    """
    if text is None or not text.strip():
        return []
    scanner, clauses = _Scanner(text), []
    while True:
        kind, key = scanner.identifier()
        op = scanner.operator()
        value, quoted = (None, False) if op.startswith("IS") else scanner.value()
        clauses.append(_clause(kind, key, op, value, quoted))
        if scanner.done():
            return clauses
        if scanner.word() == "OR":
            raise refuse(f"Invalid filter {text!r}: MLflow's search joins comparisons with AND only, not OR.")
        if not scanner.take_word("AND"):
            raise refuse(
                f"Invalid clause(s) in filter string {text!r} at position {scanner.i}: expected AND."
            )


def _clause(kind: str | None, key: str, op: str, value: Value, quoted: bool = False) -> Clause:
    if kind is None:
        return Clause("attribute", _ALIASES.get(key, key), op, value, quoted)
    found = _KINDS.get(kind.strip("`"))
    if found is None:
        raise refuse(
            f"Invalid entity type '{kind}'. Valid values are "
            "['metric', 'parameter', 'tag', 'attribute', 'dataset']."
        )
    if not key:
        raise refuse(f"Invalid identifier '{kind}.': a key must follow the '.'.")
    key = _ALIASES.get(key, key) if found == "attribute" else key
    return Clause(found, key, op, value, quoted)


# runs -------------------------------------------------------------------------------------------
def runs_where(clauses: Sequence[Clause], store: TrackingStore) -> Expr | None:
    """plinth's filter for MLflow's clauses on runs; dataset clauses are resolved through lineage.

    Raises:
        MlflowError: a field, operator or value MLflow would refuse, or one plinth cannot search.
    """
    versions: list[DatasetVersion] | None = None
    items: list[Expr] = []
    for clause in clauses:
        if clause.kind == "dataset":
            if versions is None:
                versions = store.list_dataset_versions()
            items.append(_dataset_runs(clause, store, versions))
        else:
            items.append(run_compare(clause))
    if not items:
        return None
    return items[0] if len(items) == 1 else And(tuple(items))


def run_compare(clause: Clause) -> Expr:
    """One clause on a run's metric, param, tag or attribute as plinth's comparison."""
    op, value = clause.op, clause.value
    if clause.kind == "metric":
        _allow(clause, _NUMERIC_OPS)
        return Compare(Field("metrics", clause.key), _PLINTH_OPS[op], _numeric(clause))
    if clause.kind == "tag" and clause.key == RUN_NAME_TAG:  # MLflow's name tag is the run's name
        _allow(clause, _TEXT_OPS)
        return Compare(
            Field("attributes", "name"), _PLINTH_OPS[op], None if op.startswith("IS") else _text(value)
        )
    if clause.kind in ("parameter", "tag"):
        _allow(clause, _TEXT_OPS)
        kind: FieldKind = "params" if clause.kind == "parameter" else "tags"
        return Compare(
            Field(kind, clause.key), _PLINTH_OPS[op], None if op.startswith("IS") else _text(value)
        )
    if clause.key in _RUN_TIMES:
        _allow(clause, _NUMERIC_OPS)
        return Compare(Field("attributes", clause.key), _PLINTH_OPS[op], _numeric(clause))
    if clause.key in _RUN_TEXTS:
        _allow(clause, _STRING_ATTR_OPS)
        if op in ("IN", "NOT IN") and clause.key != "run_id":
            raise refuse("Only ['run_id'] attributes support comparison with a list of quoted string values.")
        if clause.key == "status" and op not in ("LIKE", "ILIKE"):
            return _status(op, value)
        return Compare(Field("attributes", _RUN_TEXTS[clause.key]), _PLINTH_OPS[op], _text_or_list(clause))
    if clause.key == "artifact_uri":
        raise refuse("plinth does not search runs by artifact_uri; search by attributes.run_id instead.")
    raise refuse(
        f"Invalid attribute key '{clause.key}' specified. Valid keys are "
        "['end_time', 'run_id', 'run_name', 'start_time', 'status', 'user_id', 'created']."
    )


def _allow(clause: Clause, ops: frozenset[str]) -> None:
    if clause.op not in ops:
        raise refuse(
            f"Invalid comparator '{clause.op}' for {clause.kind} '{clause.key}': not one of {sorted(ops)}."
        )


def _numeric(clause: Clause) -> int | float:
    if isinstance(clause.value, int | float) and not clause.quoted:
        return clause.value
    raise refuse(f"Expected a numeric value for {clause.kind} '{clause.key}'. Found {clause.value!r}.")


def _text(value: Value) -> str:
    if isinstance(value, tuple) or value is None:
        raise refuse(f"Expected a quoted string value, found {value!r}.")
    return value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)


def _text_or_list(clause: Clause) -> str | tuple[str, ...]:
    if clause.op in ("IN", "NOT IN"):
        if not isinstance(clause.value, tuple):
            raise refuse(f"'{clause.op}' needs a list of quoted strings, e.g. ('a', 'b').")
        return clause.value
    return _text(clause.value)


def _status(op: str, value: Value) -> Expr:
    """status = / != a status name; FAILED covers plinth's CRASHED, and a status plinth never
    has (SCHEDULED, or a name in lower case, which MLflow compares exactly) matches no run."""
    status = _text(value)
    field = Field("attributes", "status")
    if status == "FAILED":
        return Compare(field, "in" if op == "=" else "not in", ("FAILED", "CRASHED"))
    if status in ("RUNNING", "FINISHED", "KILLED"):
        return Compare(field, _PLINTH_OPS[op], status)
    return _NEVER if op == "=" else _ALWAYS


def _dataset_runs(clause: Clause, store: TrackingStore, versions: list[DatasetVersion]) -> Expr:
    """The runs that consumed a dataset version matching the clause (by its name, digest, or the
    context it was logged with), as `run_id in (...)`."""
    if clause.key not in _DATASET_KEYS:
        raise refuse(f"Invalid dataset key '{clause.key}' specified. Valid keys are {sorted(_DATASET_KEYS)}.")
    _allow(clause, _STRING_ATTR_OPS)
    matches = text_matcher(clause.op, clause.value)
    runs: set[str] = set()
    for version in versions:
        if clause.key != "context" and not matches(getattr(version, clause.key)):
            continue
        for edge in store.edges(src=("dataset_version", version.id)):
            role = str(edge.attributes.get("role") or "")
            if edge.relation == "consumed_by" and (clause.key != "context" or matches(role)):
                runs.add(edge.dst_id)
    return Compare(Field("attributes", "id"), "in", tuple(sorted(runs)))


def text_matcher(op: str, value: Value) -> Callable[[str | None], bool]:
    """A test of text against `op value` as MLflow evaluates it (LIKE is case-sensitive)."""
    if op in ("IN", "NOT IN"):
        values = set(value) if isinstance(value, tuple) else {_text(value)}
        return lambda text: text is not None and (text in values) == (op == "IN")
    if op in ("LIKE", "ILIKE"):
        regex = like_regex(_text(value), ignore_case=op == "ILIKE")
        return lambda text: text is not None and regex.fullmatch(text) is not None
    target = _text(value)
    if op == "=":
        return lambda text: text is not None and text == target
    if op == "!=":
        return lambda text: text is not None and text != target
    raise refuse(f"Invalid comparator '{op}' for text: not one of {sorted(_STRING_ATTR_OPS)}.")


def like_regex(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """A LIKE pattern as a regular expression: `%` any text, `_` one character."""
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def parse_order_item(text: str) -> tuple[str | None, str, bool]:
    """One order_by item: (kind, key, ascending); `metrics.acc DESC`, `start_time`, ``params.`a b` ``."""
    body, ascending = text.strip(), True
    found = re.search(r"\s+(asc|desc)\s*$", body, re.IGNORECASE)
    if found:
        body, ascending = body[: found.start()], found.group(1).lower() == "asc"
    scanner = _Scanner(body)
    kind, key = scanner.identifier()
    if not scanner.done():
        raise refuse(f"Invalid order_by clause '{text}'. Could not be parsed.")
    return kind, key, ascending


def runs_order(items: Sequence[str]) -> list[OrderKey]:
    """plinth's order keys for MLflow's order_by on runs.

    Runs that tie on every key come newest first, as the store orders them. MLflow's server
    then orders by run id, which, its ids being random, is no order a client can rely on;
    adding the id as a key would cost a sort of every matching run.

    Raises:
        MlflowError: an item that does not parse, names a field twice, or one plinth cannot order by.
    """
    keys: list[OrderKey] = []
    for item in items:
        kind, key, ascending = parse_order_item(item)
        field = _order_field(_clause(kind, key, "=", None))
        if any(k.field == field for k in keys):
            raise refuse(f"`order_by` contains duplicate fields: {list(items)}")
        keys.append(OrderKey(field, not ascending))
    return keys


def _order_field(clause: Clause) -> Field:
    if clause.kind == "metric":
        return Field("metrics", clause.key)
    if clause.kind == "tag" and clause.key == RUN_NAME_TAG:
        return Field("attributes", "name")
    if clause.kind in ("parameter", "tag"):
        return Field("params" if clause.kind == "parameter" else "tags", clause.key)
    if clause.kind == "attribute" and clause.key in _RUN_TIMES:
        return Field("attributes", clause.key)
    if clause.kind == "attribute" and clause.key in ("run_id", "run_name", "user_id"):
        return Field("attributes", _RUN_TEXTS[clause.key])
    raise refuse(
        f"plinth cannot order runs by {clause.kind} '{clause.key}'; order by a metric, param, tag, "
        "start_time, end_time, run_id, run_name or user_id."
    )


def max_results(value: int | None, default: int = DEFAULT_MAX_RESULTS) -> int:
    """A page size: `default` when not given, else 1 to 50,000 as MLflow's server allows."""
    if value is None:
        return default
    if not 1 <= value <= MAX_RESULTS:
        raise refuse(
            f"Invalid value {value} for parameter 'max_results' supplied. It must be at most "
            f"{MAX_RESULTS} and a positive integer."
        )
    return value


def page_token(offset: int) -> str:
    """An opaque token for the page that starts at `offset`."""
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def offset_of(token: str | None) -> int:
    """Where the page a token names starts (0 without one).

    Raises:
        MlflowError: a token no search handed out.
    """
    if not token:
        return 0
    try:
        parsed = json.loads(base64.b64decode(token, validate=True))
        offset = parsed["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise refuse(
            f"Invalid page token {token!r:.60}; pass the next_page_token of the previous page."
        ) from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise refuse(f"Invalid page token {token!r:.60}; pass the next_page_token of the previous page.")
    return offset


# experiments ------------------------------------------------------------------------------------
def experiment_filter(text: str | None) -> Callable[[Experiment], bool]:
    """A test of an experiment against MLflow's experiment filter (attributes name, experiment_id,
    creation_time, last_update_time; tags)."""
    tests = [_experiment_test(c) for c in parse_filter(text)]
    return lambda exp: all(test(exp) for test in tests)


def _experiment_test(clause: Clause) -> Callable[[Experiment], bool]:
    if clause.kind == "tag":
        _allow(clause, _TEXT_OPS)
        key = clause.key
        if clause.op in ("IS NULL", "IS NOT NULL"):
            present = clause.op == "IS NOT NULL"
            return lambda exp: (key in exp.tags) == present
        matches = text_matcher(clause.op, clause.value)
        return lambda exp: matches(exp.tags.get(key))
    if clause.kind != "attribute":
        raise refuse(
            f"Invalid entity type '{clause.kind}'. Valid entity types are ('attribute', 'tag', 'tags')."
        )
    if clause.key in _EXPERIMENT_TIMES:
        _allow(clause, _NUMERIC_OPS)
        bound = float(_numeric(clause))
        compare = _NUMBER_TESTS[clause.op]
        return lambda exp: compare(float(exp.created_ms), bound)
    if clause.key in _EXPERIMENT_TEXTS:
        _allow(clause, _STRING_ATTR_OPS)
        if clause.op in ("IN", "NOT IN") and clause.key != "experiment_id":
            raise refuse(
                "Only ['experiment_id'] attributes support comparison with a list of quoted string values."
            )
        matches = text_matcher(clause.op, clause.value)
        if clause.key == "name":
            return lambda exp: matches(exp.name)
        return lambda exp: matches(experiment_id_of(exp))
    raise refuse(
        f"Invalid attribute key '{clause.key}' specified. Valid keys are "
        "['creation_time', 'experiment_id', 'last_update_time', 'name']."
    )


_NUMBER_TESTS: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def sort_experiments(experiments: list[Experiment], items: Sequence[str]) -> list[Experiment]:
    """Experiments in MLflow's order: `items` (default newest first, then by id), then by id."""
    keys: list[tuple[str, bool]] = []
    for item in items or ("creation_time DESC", "experiment_id ASC"):
        kind, key, ascending = parse_order_item(item)
        if kind not in (None, "attribute", "attributes") or key not in _EXPERIMENT_TIMES | _EXPERIMENT_TEXTS:
            raise refuse(
                f"Invalid order_by clause '{item}': order experiments by name, experiment_id, "
                "creation_time or last_update_time."
            )
        keys.append((key, ascending))
    if not any(key == "experiment_id" for key, _ in keys):
        keys.append(("experiment_id", False))
    ordered = list(experiments)
    for key, ascending in reversed(keys):  # stable sorts, last key first
        ordered.sort(key=_EXPERIMENT_KEYS[key], reverse=not ascending)
    return ordered


_EXPERIMENT_KEYS: dict[str, Callable[[Experiment], Any]] = {
    "name": lambda exp: exp.name,
    "experiment_id": experiment_id_of,
    "creation_time": lambda exp: exp.created_ms,
    "last_update_time": lambda exp: exp.created_ms,
}
