"""The filter language of ``search_runs(where=..., order_by=[...])``, parsed into a small AST.

Grammar (keywords are case-insensitive, field prefixes are lowercase)::

    filter  := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | "(" filter ")" | compare
    compare := field ("=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=") value
             | field ["not"] ("like" | "ilike") string
             | field ["not"] "in" "(" value ("," value)* ")"
             | field "is" ["not"] "null"
    field   := ("metrics" | "params" | "tags" | "attributes") "." (NAME | `NAME` | "NAME")
             | ATTRIBUTE                      (singular prefixes such as metric. are aliases)
    value   := NUMBER | 'string' | "string"   (\\' or '' puts a quote in a '...' string)

Value rules: metrics compare with numbers only; ``start_time``/``end_time`` take epoch
milliseconds or ISO-8601 strings (naive means UTC), converted to epoch-ms floats; ``status``
is checked and upper-cased. Params and tags are stored as text, so for ``=``, ``!=``, ``in``
and ``not in`` an unquoted number is taken as its source text (``params.lr = 0.01`` equals
``params.lr = '0.01'``); with ``<``, ``<=``, ``>``, ``>=`` it stays a number. Integers beyond
18 digits become floats; a number beyond the float range is refused where it is compared as a
number. ``not ilike`` parses to ``Not(Compare(..., "ilike", ...))``. Other backslash
sequences are kept verbatim.

``like`` is case-sensitive and ``ilike`` is not, on every backend (SQLite's ``ilike`` folds
ASCII letters only). In their patterns ``%`` is any text, ``_`` one character, and a backslash
makes the next character literal: ``params.opt like 'adam\\_%'``. A filter holds at most
``MAX_COMPARISONS`` comparisons, ``MAX_VALUES`` list values and ``MAX_NESTING`` levels of
and/or/not, and no NUL characters or lone surrogates.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn, TypeAlias, TypeVar, cast

from plinth.core.errors import InvalidInput
from plinth.core.validation import UNSTORABLE

__all__ = [
    "ATTRIBUTES",
    "MAX_COMPARISONS",
    "MAX_NESTING",
    "MAX_VALUES",
    "STATUSES",
    "And",
    "Compare",
    "CompareOp",
    "Expr",
    "Field",
    "FieldKind",
    "FilterSyntaxError",
    "Not",
    "Or",
    "OrderKey",
    "Value",
    "fields_of",
    "parse_filter",
    "parse_order_by",
]

FieldKind: TypeAlias = Literal["metrics", "params", "tags", "attributes"]
CompareOp: TypeAlias = Literal[
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "not like",
    "ilike",
    "in",
    "not in",
    "is null",
    "is not null",
]
Value: TypeAlias = int | float | str

ATTRIBUTES = frozenset({"id", "name", "status", "start_time", "end_time", "user", "experiment_id"})
STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED", "CRASHED")
_ALIASES = {"run_id": "id"}
_PREFIXES: dict[str, FieldKind] = {
    "metrics": "metrics",
    "metric": "metrics",
    "params": "params",
    "param": "params",
    "tags": "tags",
    "tag": "tags",
    "attributes": "attributes",
    "attribute": "attributes",
}
_TIMES = frozenset({"start_time", "end_time"})
_ORDERING = frozenset({"<", "<=", ">", ">="})
_KEYWORDS = frozenset(
    {"and", "or", "not", "like", "ilike", "in", "is", "null", "true", "false", "asc", "desc"}
)
_EXAMPLES = {
    "filter": "metrics.acc > 0.9 and params.lr = '0.1'",
    "order_by": "order_by=['-metrics.acc', 'start_time desc']",
}
_MAX_DEPTH = 100
MAX_COMPARISONS = 500
"""Comparisons in one filter; past about a thousand, databases refuse the query's depth."""
MAX_VALUES = 5000
"""Values in all the ``in (...)`` lists of one filter, each a bound parameter."""
MAX_NESTING = 24
"""Levels of and/or/not inside one another; SQLite's parser overflows past about 30."""
_MAX_INT_DIGITS = 18  # an int64 holds every 18-digit integer
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./]*")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"-?[\w.`]+")
_OPS = ("==", "!=", "<>", "<=", ">=", "=", "<", ">")
_T = TypeVar("_T")


@dataclass(frozen=True)
class Field:
    """A run field: a metric, param or tag by name, or a run attribute."""

    kind: FieldKind
    name: str


@dataclass(frozen=True)
class Compare:
    """One comparison; ``value`` is a tuple for in/not in and None for is (not) null."""

    field: Field
    op: CompareOp
    value: Value | tuple[Value, ...] | None


@dataclass(frozen=True)
class And:
    """All of ``items`` hold (never directly nested in another And)."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    """Any of ``items`` holds (never directly nested in another Or)."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    """``item`` does not hold."""

    item: Expr


Expr: TypeAlias = Compare | And | Or | Not


@dataclass(frozen=True)
class OrderKey:
    """One sort key of ``order_by``."""

    field: Field
    descending: bool


class FilterSyntaxError(InvalidInput):
    """A filter or order_by text that cannot be used; ``position`` is the 0-based bad index."""

    def __init__(self, reason: str, text: str, position: int, what: str = "filter") -> None:
        """Build the message: reason, the text with a caret under ``position``, an example.

        Args:
            reason: What is wrong, without a trailing period.
            text: The whole text that was being parsed.
            position: 0-based index of the offending character in ``text``.
            what: ``"filter"`` or ``"order_by"``; picks the header and the example.
        """
        self.reason, self.text, self.position, self.what = reason, text, position, what
        # a NUL or a lone surrogate cannot be shown (or encoded): '?' keeps the caret aligned
        flat = UNSTORABLE.sub("?", re.sub(r"\s", " ", text))
        start = max(0, position - 60) if len(flat) > 100 else 0
        shown = reason.encode("utf-8", "backslashreplace").decode()
        super().__init__(
            f"Invalid {what} at position {position}: {shown}.\n  {flat[start : start + 100]}\n"
            f"  {' ' * (position - start)}^\nExample: {_EXAMPLES[what]}"
        )

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        """Pickle by constructor arguments (the default would pass only the message)."""
        return (type(self), (self.reason, self.text, self.position, self.what))


class _Bad(Exception):
    """A problem the parser reports as a FilterSyntaxError at a token (or at ``position``)."""

    def __init__(self, reason: str, position: int | None = None) -> None:
        """Keep the reason and, when known better than the token's, the position."""
        super().__init__(reason)
        self.position = position


@dataclass(frozen=True)
class _Token:
    """A lexical token: ``text`` is the exact source slice, ``value`` its meaning."""

    kind: str  # ident, qfield, number, string, op, sign, "(", ")", ",", end
    text: str
    pos: int
    value: object = None

    def word(self) -> str | None:
        """Return the lower-cased text of an identifier token (for keywords), else None."""
        return self.text.lower() if self.kind == "ident" else None

    def describe(self) -> str:
        """Return how the token is named in messages: quoted text, or 'end of input'."""
        if self.kind == "end":
            return "end of input"
        return repr(self.text if len(self.text) <= 30 else self.text[:27] + "...")


def _read_quoted(text: str, start: int) -> tuple[int, str]:
    """Read a quoted string or name opening at ``start``.

    Args:
        text: The source text.
        start: Index of the opening quote (', " or `).

    Returns:
        The index just past the closing quote, and the decoded content.

    Raises:
        _Bad: The quote is never closed.
    """
    quote, parts, i = text[start], [], start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text[i + 1 : i + 2] in (quote, "\\"):
            parts.append(text[i + 1])
            i += 2
        elif ch == quote and text[i + 1 : i + 2] == quote:  # SQL-style doubled quote
            parts.append(quote)
            i += 2
        elif ch == quote:
            return i + 1, "".join(parts)
        else:
            parts.append(ch)
            i += 1
    raise _Bad(f"this {quote}...{quote} is never closed", start)


def _next_token(text: str, i: int) -> _Token:
    """Read the token that starts at ``i`` (not whitespace, not past the end).

    Raises:
        _Bad: No token starts here (unexpected character, bad number, open quote).
    """
    ch = text[i]
    if ch in "(),":
        return _Token(ch, ch, i)
    if ch in "'\"":
        end, decoded = _read_quoted(text, i)
        return _Token("string", text[i:end], i, decoded)
    if m := _NUMBER.match(text, i):
        if _IDENT.match(text, m.end()) or text[m.end() : m.end() + 1] in (".", "`"):
            raise _Bad(f"malformed number {(_WORD.match(text, i) or m).group()!r}")
        number = m.group()
        digits = number.lstrip("-")
        exact = digits.isdigit() and len(digits) <= _MAX_INT_DIGITS
        return _Token("number", number, i, int(number) if exact else float(number))
    if m := _IDENT.match(text, i):
        if m.group().endswith(".") and text[m.end() : m.end() + 1] in ("`", '"'):
            end, name = _read_quoted(text, m.end())
            return _Token("qfield", text[i:end], i, (m.group()[:-1], name))
        return _Token("ident", m.group(), i, m.group())
    op = next((op for op in _OPS if text.startswith(op, i)), None)
    if op is not None:
        return _Token("op", op, i)
    if ch in "+-":
        return _Token("sign", ch, i)
    raise _Bad(f"unexpected character {ch!r}")


def _attribute(name: str) -> str:
    """Return the canonical attribute name, or raise _Bad naming the known ones."""
    canonical = _ALIASES.get(name, name)
    if canonical not in ATTRIBUTES:
        known = ", ".join(sorted(ATTRIBUTES))
        raise _Bad(
            f"unknown field {name!r}; attributes are {known}, and metrics, params and tags "
            f"need a prefix, e.g. metrics.{name}"
        )
    return canonical


def _make_field(prefix: str | None, name: str) -> Field:
    """Build a Field from a prefix (None for a bare attribute) and a name.

    Raises:
        _Bad: Unknown prefix or attribute, or an empty name.
    """
    if prefix is None:
        return Field("attributes", _attribute(name))
    kind = _PREFIXES.get(prefix)
    if kind is None:
        hint = "lowercase " if prefix.lower() in _PREFIXES else ""
        raise _Bad(
            f"unknown field prefix {prefix!r}; prefixes are {hint}metrics, params, tags and attributes"
        )
    if not name:
        raise _Bad(f"expected a name after '{prefix}.'")
    return Field(kind, _attribute(name) if kind == "attributes" else name)


def _to_epoch_ms(token: _Token) -> Value:
    """Return epoch milliseconds for a number or ISO-8601 string token (naive = UTC)."""
    if token.kind == "number":
        return _number(token)
    try:
        moment = datetime.fromisoformat(cast(str, token.value))
    except ValueError:
        raise _Bad(
            f"{token.text} is neither epoch milliseconds nor an ISO-8601 time such as '2024-05-01T12:00:00Z'"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) / 1000


def _number(token: _Token) -> Value:
    """Return a number token's value, refusing one beyond the range of a 64-bit float."""
    value = cast(Value, token.value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _Bad(
            f"the number {token.describe()} is beyond the range of a 64-bit float (about 1.8e308); "
            "to find infinite metrics compare with a finite bound, e.g. metrics.loss > 1e308"
        )
    return value


def _pattern(op: str, token: _Token) -> str:
    """Return a like/ilike pattern, refusing one that ends in an escaping backslash."""
    if token.kind != "string":
        raise _Bad(f"{op} needs a quoted pattern such as '%vision%'")
    pattern = cast(str, token.value)
    if (len(pattern) - len(pattern.rstrip("\\"))) % 2:
        raise _Bad(
            f"the {op} pattern ends with a backslash, which escapes the next character; "
            "to match a backslash write four: '\\\\\\\\'"
        )
    return pattern


def _convert(field: Field, op: str, token: _Token) -> Value:
    """Check a value token against its field and operator; return the value to store.

    Raises:
        _Bad: The value does not fit the field or the operator.
    """
    is_text = token.kind == "string"
    special = field.kind == "metrics" or (field.kind == "attributes" and field.name in _TIMES)
    if op.endswith("like"):
        if special:
            raise _Bad(f"{op} works on params, tags and text attributes; metrics and times are numbers")
        return _pattern(op, token)
    if field.kind == "metrics":
        if is_text:
            raise _Bad(
                f"metrics are numbers; compare metrics.{field.name} with an unquoted number such as 0.9"
            )
        return _number(token)
    if special:
        return _to_epoch_ms(token)
    if field.kind == "attributes" and field.name == "status":
        status = str(token.value).upper()
        if op in _ORDERING or status not in STATUSES:
            raise _Bad(f"status takes =, !=, in or like with one of {', '.join(STATUSES)}")
        return status
    if is_text:
        return cast(Value, token.value)
    if op in _ORDERING:
        return _number(token)
    return token.text  # params/tags/text attributes are stored as text


class _Parser:
    """Recursive-descent parser over a lazily tokenized text."""

    def __init__(self, text: str, what: str) -> None:
        """Start at the beginning of ``text``; ``what`` is 'filter' or 'order_by'.

        Raises:
            FilterSyntaxError: ``text`` holds a NUL or a lone surrogate, which no database can
                take as text.
        """
        self.text, self.what, self.offset, self.depth = text, what, 0, 0
        self.ahead: _Token | None = None
        self.comparisons = self.values = 0
        if bad := UNSTORABLE.search(text):
            reason = (
                "'\\x00' is a NUL character, which no stored name or value holds; remove it"
                if bad.group() == "\x00"
                else f"{bad.group()!r} is a lone surrogate, not a character; use valid Unicode text"
            )
            raise FilterSyntaxError(reason, text, bad.start(), what)

    def fail(self, reason: str, token: _Token) -> NoReturn:
        """Raise a FilterSyntaxError at ``token``."""
        raise FilterSyntaxError(reason, self.text, token.pos, self.what)

    def guard(self, token: _Token, fn: Callable[..., _T], *args: object) -> _T:
        """Call ``fn(*args)``, reporting a _Bad it raises at ``token``."""
        try:
            return fn(*args)
        except _Bad as exc:
            where = token.pos if exc.position is None else exc.position
            raise FilterSyntaxError(str(exc), self.text, where, self.what) from None

    def peek(self) -> _Token:
        """Return the next token without consuming it."""
        if self.ahead is None:
            i = self.offset
            while i < len(self.text) and self.text[i].isspace():
                i += 1
            end = _Token("end", "", i)
            self.ahead = end if i >= len(self.text) else self.guard(end, _next_token, self.text, i)
        return self.ahead

    def advance(self) -> _Token:
        """Consume and return the next token."""
        token = self.peek()
        self.offset, self.ahead = token.pos + len(token.text), None
        return token

    def accept(self, word: str) -> bool:
        """Consume the next token if it is the keyword ``word``."""
        if self.peek().word() == word:
            self.advance()
            return True
        return False

    def nested(self, fn: Callable[[], Expr], token: _Token) -> Expr:
        """Call ``fn`` one nesting level deeper, refusing absurd depths."""
        if self.depth >= _MAX_DEPTH:
            self.fail(f"nested more than {_MAX_DEPTH} levels deep", token)
        self.depth += 1
        try:
            return fn()
        finally:
            self.depth -= 1

    def shallow(self, expr: Expr, token: _Token) -> Expr:
        """Return ``expr``, which starts at ``token``, unless and/or/not nest too deep in it."""
        if _nesting(expr) > MAX_NESTING:
            self.fail(
                f"and, or and not are nested more than {MAX_NESTING} levels deep; write it flatter", token
            )
        return expr

    def parse_or(self) -> Expr:
        """Parse ``and ("or" and)*``."""
        start = self.peek()
        items = [self.parse_and()]
        while self.accept("or"):
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else self.shallow(_combine(Or, items), start)

    def parse_and(self) -> Expr:
        """Parse ``unary ("and" unary)*``."""
        start = self.peek()
        items = [self.parse_unary()]
        while self.accept("and"):
            items.append(self.parse_unary())
        return items[0] if len(items) == 1 else self.shallow(_combine(And, items), start)

    def parse_unary(self) -> Expr:
        """Parse ``"not" unary | "(" filter ")" | compare``."""
        token = self.peek()
        if self.accept("not"):
            return self.shallow(Not(self.nested(self.parse_unary, token)), token)
        if token.kind != "(":
            return self.parse_compare()
        self.advance()
        inner = self.nested(self.parse_or, token)
        if self.peek().kind != ")":
            self.fail(
                f"expected ')' to close the '(' at position {token.pos}, found {self.peek().describe()}",
                self.peek(),
            )
        self.advance()
        return inner

    def parse_field(self) -> Field:
        """Parse a field name."""
        token = self.advance()
        if token.kind == "qfield":
            prefix, name = cast(tuple[str, str], token.value)
            return self.guard(token, _make_field, prefix, name)
        if token.kind != "ident" or token.text.lower() in _KEYWORDS:
            self.fail(f"expected a field such as metrics.acc, found {token.describe()}", token)
        prefix, dot, name = token.text.partition(".")
        if not dot:
            return self.guard(token, _make_field, None, token.text)
        return self.guard(token, _make_field, prefix, name)

    def parse_operator(self, field_token: _Token) -> str:
        """Parse an operator; ``not ilike`` is returned as such."""
        token = self.advance()
        if token.kind == "op":
            return {"==": "=", "<>": "!="}.get(token.text, token.text)
        word = token.word()
        if word in ("like", "ilike", "in"):
            return word
        if word == "not" and self.peek().word() in ("like", "ilike", "in"):
            return f"not {self.advance().word()}"
        if word == "is":
            negated = self.accept("not")
            if self.accept("null"):
                return "is not null" if negated else "is null"
            self.fail(f"expected 'null' after 'is', found {self.peek().describe()}", self.peek())
        after = self.text[field_token.pos : token.pos].strip()
        self.fail(
            f"expected an operator (=, !=, <, >, like, in, is null...) after {after!r}, "
            f"found {token.describe()}",
            token,
        )

    def parse_value(self, after: str) -> _Token:
        """Consume a number or string token; ``after`` names the operator for messages."""
        token = self.advance()
        if token.kind in ("number", "string"):
            return token
        if token.word() in ("true", "false"):
            self.fail(f"{token.text} is not a value here; quote it: '{token.text}'", token)
        if token.word() == "null":
            self.fail("compare with null using 'is null' or 'is not null'", token)
        self.fail(f"expected a value after {after!r}, found {token.describe()}", token)

    def parse_list(self, field: Field, op: str, op_token: _Token) -> tuple[Value, ...]:
        """Parse ``"(" value ("," value)* ")"`` and check it is homogeneous."""
        if self.advance().kind != "(":
            self.fail(f"expected '(' after '{op}', e.g. {op} ('a', 'b')", op_token)
        if self.peek().kind == ")":
            self.fail(f"'{op} (...)' needs at least one value", self.peek())
        tokens = [self.parse_value(op)]
        while self.peek().kind == ",":
            self.advance()
            tokens.append(self.parse_value(","))
        self.values += len(tokens)
        if self.values > MAX_VALUES:
            self.fail(f"a filter holds at most {MAX_VALUES} list values; search in parts", op_token)
        if self.peek().kind != ")":
            self.fail(f"expected ',' or ')' in the list, found {self.peek().describe()}", self.peek())
        self.advance()
        for token in tokens:
            if token.kind != tokens[0].kind:
                self.fail("list values must be all numbers or all strings", token)
        return tuple(self.guard(t, _convert, field, op, t) for t in tokens)

    def parse_compare(self) -> Expr:
        """Parse ``field operator [value | list]``."""
        field_token = self.peek()
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            self.fail(
                f"a filter holds at most {MAX_COMPARISONS} comparisons; use 'in (...)' for many "
                "values of one field, or search in parts",
                field_token,
            )
        field = self.parse_field()
        op_token = self.peek()
        op = self.parse_operator(field_token)
        value: Value | tuple[Value, ...] | None = None
        if op.endswith("in"):
            value = self.parse_list(field, op, op_token)
        elif not op.endswith("null"):
            token = self.parse_value(op)
            value = self.guard(token, _convert, field, op, token)
        if op == "not ilike":
            return Not(Compare(field, "ilike", value))
        return Compare(field, cast(CompareOp, op), value)

    def parse_order_key(self) -> OrderKey:
        """Parse ``["-" | "+"] field ["asc" | "desc"]``."""
        sign = self.advance().text if self.peek().kind == "sign" else ""
        field = self.parse_field()
        token = self.peek()
        if token.word() in ("asc", "desc"):
            if sign:
                self.fail(f"use either '{sign}' or {token.text}, not both", token)
            self.advance()
            return OrderKey(field, token.word() == "desc")
        return OrderKey(field, sign == "-")

    def expect_end(self, expected: str) -> None:
        """Fail unless every token has been consumed."""
        if self.peek().kind != "end":
            self.fail(f"expected {expected}, found {self.peek().describe()}", self.peek())


def _combine(cls: type[And] | type[Or], items: list[Expr]) -> Expr:
    """Join ``items`` with ``cls``, flattening items that are already ``cls``."""
    if len(items) == 1:
        return items[0]
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, cls) else (item,))
    return cls(tuple(flat))


def _nesting(expr: Expr) -> int:
    """How many and/or/not levels ``expr`` nests (0 for a comparison)."""
    if isinstance(expr, Compare):
        return 0
    if isinstance(expr, Not):
        return 1 + _nesting(expr.item)
    return 1 + max(_nesting(item) for item in expr.items)


def parse_filter(text: str | None) -> Expr | None:
    """Parse a ``where`` filter.

    Args:
        text: The filter, e.g. ``"metrics.acc > 0.9 and params.lr = 0.01"``.

    Returns:
        The expression, or None when ``text`` is None, empty or only whitespace. Expressions
        are immutable, and the same text gives the same one: a page or a loop that searches
        with one filter again and again parses it once (`PARSED`).

    Raises:
        FilterSyntaxError: The text is not a valid filter; the message shows where.
        InvalidInput: ``text`` is not a string.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInput(f"a filter must be a string, not {type(text).__name__}")
    return _parsed_filter(text)


PARSED = 256
"""Filters and order_by texts whose parse is kept (the most recently used)."""


@functools.lru_cache(maxsize=PARSED)
def _parsed_filter(text: str) -> Expr | None:
    if not text.strip():
        return None
    parser = _Parser(text, "filter")
    expr = parser.parse_or()
    parser.expect_end("'and', 'or' or the end of the filter")
    return expr


def parse_order_by(items: str | Sequence[str] | None) -> tuple[OrderKey, ...]:
    """Parse ``order_by`` items such as ``"-metrics.acc"``, ``"start_time desc"`` or ``"name"``.

    Args:
        items: One string (may hold comma-separated items), a sequence of them, or None.

    Returns:
        The sort keys in order; empty for None, an empty string or an empty sequence.

    Raises:
        FilterSyntaxError: An item does not parse, or a field is given twice.
        InvalidInput: ``items`` is not a string or a sequence of strings.
    """
    if items is None or (isinstance(items, str) and not items.strip()):
        return ()
    texts = [items] if isinstance(items, str) else items
    if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
        raise InvalidInput(f"order_by must be a string or a list of strings, not {items!r}")
    return _parsed_order_by(tuple(texts))


@functools.lru_cache(maxsize=PARSED)
def _parsed_order_by(texts: tuple[str, ...]) -> tuple[OrderKey, ...]:
    keys: list[OrderKey] = []
    for text in texts:
        parser = _Parser(text, "order_by")
        while True:
            start = parser.peek()
            key = parser.parse_order_key()
            if any(k.field == key.field for k in keys):
                parser.fail("this field is already in order_by", start)
            keys.append(key)
            if parser.peek().kind != ",":
                break
            parser.advance()
        parser.expect_end("',' or the end of the order_by item")
    return tuple(keys)


def fields_of(expr: Expr | None) -> set[Field]:
    """Return every field an expression refers to.

    Args:
        expr: A parsed filter, or None.

    Returns:
        The set of fields (empty for None).
    """
    found: set[Field] = set()
    stack: list[Expr] = [] if expr is None else [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Compare):
            found.add(node.field)
        elif isinstance(node, Not):
            stack.append(node.item)
        else:
            stack.extend(node.items)
    return found
