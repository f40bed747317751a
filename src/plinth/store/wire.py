"""The wire format of the team server: typed values as plain JSON, and back by type hint.

One serde for the server, its clients and the UI. `encode` turns entities (frozen dataclasses),
named tuples, enums, mappings, sequences and scalars into JSON values; `decode` rebuilds them
from the type hint the receiving side expects, refusing what does not fit with an `InvalidInput`
that names the place, the expected type and what came:

    >>> decode(encode(RunStatus.FINISHED), RunStatus)
    <RunStatus.FINISHED: 'FINISHED'>

What plain JSON cannot say is tagged: a float that is NaN or infinite is `{"$float": "NaN"}`
(or "Infinity", "-Infinity"), bytes are `{"$bytes": "<base64>"}`, and the nodes of a parsed
filter carry `"$type"` (`And` and `Or` have the same fields). NumPy arrays and Arrow tables are
not JSON: they travel as binary bodies (`plinth.store.rpc`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import functools
import json
import math
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Literal, Union

from plinth.core.errors import InvalidInput
from plinth.core.filters import And, Compare, Not, Or

Decoder = Callable[[Any, str], Any]
"""Decodes one JSON value; the second argument names its place for messages."""

TAGGED: frozenset[type] = frozenset({Compare, And, Or, Not})
"""Dataclasses encoded with `"$type"`: members of a union whose fields alone cannot tell them apart."""

_INT64 = 2**63
"""Typed integers are stored in 64-bit columns: what does not fit is refused here, not by a database."""
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_SEQUENCES = (list, tuple, set, frozenset, Sequence, typing.Sequence)
_MAPPINGS = (dict, Mapping, typing.Mapping)


class WireError(InvalidInput):
    """A value that does not have the shape its place asks for (answered 422)."""


def encode(value: Any) -> Any:
    """`value` as a JSON value (dicts, lists, str, int, finite float, bool, None).

    Raises:
        WireError: `value` holds something the wire cannot carry (a function, an open file).
    """
    kind = type(value)
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        encoder = _ENCODERS[kind] = _encoder(kind)
    return encoder(value)


def _encoder(kind: type) -> Callable[[Any], Any]:
    """How values of exactly type `kind` are encoded (found once per type: the checks are by type)."""
    if issubclass(kind, float):
        return _encode_float
    if issubclass(kind, enum.Enum):
        return lambda value: encode(value.value)
    if issubclass(kind, str):
        return lambda value: str(value)
    if issubclass(kind, int):
        return lambda value: int(value)
    if issubclass(kind, tuple) and hasattr(kind, "_fields"):  # a NamedTuple
        names = tuple(kind._fields)
        return lambda value: {name: encode(item) for name, item in zip(names, value, strict=True)}
    if dataclasses.is_dataclass(kind):
        return _dataclass_encoder(kind)
    if issubclass(kind, Mapping):
        return _encode_mapping
    if issubclass(kind, list | tuple):
        return _encode_list
    if issubclass(kind, set | frozenset):
        return lambda value: [encode(item) for item in sorted(value, key=repr)]
    if issubclass(kind, bytes | bytearray | memoryview):
        return lambda value: {"$bytes": base64.b64encode(bytes(value)).decode()}
    if callable(getattr(kind, "item", None)):  # a NumPy scalar
        return lambda value: encode(value.item())
    return _unsendable


def _plain(value: Any) -> Any:
    return value


def _encode_float(value: float) -> Any:
    return float(value) if math.isfinite(value) else {"$float": _float_name(value)}


def _encode_mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    if _kinds(value.keys()) <= _STR and _sent_as_is(value.values()):
        return dict(value)
    return {k if type(k) is str else _key(k): encode(v) for k, v in value.items()}


def _encode_list(value: Sequence[Any]) -> list[Any]:
    if _sent_as_is(value):
        return list(value)
    return [encode(item) for item in value]


def _kinds(values: Iterable[Any]) -> set[type]:
    """The exact types of `values` (a walk in C, not a call per value)."""
    return set(map(type, values))


def _sent_as_is(values: Collection[Any]) -> bool:
    """Whether every one of `values` is its own JSON value: text, a 64-bit-or-not integer, a bool,
    None, or (all of them) finite floats; a mapping's params and metrics are, and skip a call
    per value. Floats are checked by their sum, which is finite only when each is (a sum past
    the largest float is not, and takes the long way)."""
    kinds = _kinds(values)
    if kinds <= _AS_IS:
        return True
    return kinds == _FLOAT and math.isfinite(sum(values))


def _dataclass_encoder(kind: type) -> Callable[[Any], Any]:
    names = tuple(f.name for f in dataclasses.fields(kind))
    tag = kind.__name__ if kind in TAGGED else None

    def encode_fields(value: Any) -> dict[str, Any]:
        body = {name: encode(getattr(value, name)) for name in names}
        if tag is not None:
            body["$type"] = tag
        return body

    return encode_fields


def _unsendable(value: Any) -> Any:
    raise WireError(f"A {type(value).__name__} cannot be sent to the server: {value!r:.80}.")


_STR: frozenset[type] = frozenset({str})
_FLOAT: frozenset[type] = frozenset({float})
_AS_IS: frozenset[type] = frozenset({str, int, bool, type(None)})
"""The types whose values are their own JSON value, each encoded by `_plain`."""

_ENCODERS: dict[type, Callable[[Any], Any]] = {
    type(None): _plain,
    bool: _plain,
    str: _plain,
    int: _plain,
    float: _encode_float,
    dict: _encode_mapping,
    list: _encode_list,
}
"""The encoder of each type met so far (see `_encoder`)."""


def decode(data: Any, hint: Any, where: str = "body") -> Any:
    """Rebuild the value of type `hint` from the JSON value `data`.

    Args:
        data: what `json.loads` gave.
        hint: the type expected there (a class, `list[Run]`, `str | None`, `Any`...).
        where: how messages name the place of `data` (e.g. "body.specs").

    Raises:
        WireError: `data` does not fit `hint`; the message and `problems` name the place.
    """
    return decoder(hint)(data, where)


def dumps(value: Any) -> bytes:
    """The JSON text of `encode(value)`, as UTF-8 (with orjson where it is installed; text it
    cannot write, such as a lone surrogate, is written with non-ASCII escaped, so any text survives)."""
    data = encode(value)
    if _fast_dumps is not None:
        try:
            return _fast_dumps(data)
        except TypeError:  # orjson's JSONEncodeError: a lone surrogate, an integer past 64 bits
            pass
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode()


def loads(body: bytes | str, what: str = "The request body") -> Any:
    """Parse JSON text (with orjson where it is installed, as on a server).

    Raises:
        WireError: the text is not JSON; the message says where it broke.
    """
    if _fast_loads is not None:
        try:
            return _fast_loads(body)
        except ValueError:
            pass  # orjson refuses what the wire allows (escaped lone surrogates, huge integers)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"{what} is not valid JSON: {exc}.") from None


def _orjson() -> tuple[Callable[[bytes | str], Any] | None, Callable[[Any], bytes] | None]:
    try:
        import orjson
    except ImportError:
        return None, None
    return orjson.loads, orjson.dumps


_fast_loads, _fast_dumps = _orjson()


@functools.cache
def decoder(hint: Any) -> Decoder:
    """The decoder of values of type `hint` (built once per hint)."""
    if hint is Any or hint is object:
        return _untag
    if hint is None or hint is type(None):
        return _none
    if hint in _SCALARS:
        return _SCALARS[hint]
    origin = typing.get_origin(hint)
    if origin is Literal:
        return _literal(typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return _union(typing.get_args(hint))
    if origin in _SEQUENCES or hint in _SEQUENCES:
        return _sequence(hint, origin or hint)
    if origin in _MAPPINGS or hint in _MAPPINGS:
        args = typing.get_args(hint)
        return _mapping(decoder(args[1]) if args else _untag)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(hint)
    if _is_named_tuple(hint):
        return _record(hint, named_tuple=True)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record(hint, named_tuple=False)
    raise TypeError(f"The wire has no JSON form for {hint!r}")


def refused(where: str, expected: str, got: Any) -> WireError:
    """The error for a value that is not what its place expects."""
    shown = _shown(got)
    return WireError(
        f"{where}: expected {expected}, got {shown}.", [{"field": where, "expected": expected, "got": shown}]
    )


# scalars -------------------------------------------------------------------------------------
def _none(data: Any, where: str) -> None:
    if data is not None:
        raise refused(where, "null", data)


def _bool(data: Any, where: str) -> bool:
    if data is True or data is False:
        return data
    raise refused(where, "true or false", data)


def _int(data: Any, where: str) -> int:
    if type(data) is int and -_INT64 <= data < _INT64:
        return data
    raise refused(where, "an integer (64 bits)", data)


def _float(data: Any, where: str) -> float:
    kind = type(data)
    if kind is float or kind is int:
        return float(data)
    if (
        kind is dict
        and data.keys() == {"$float"}
        and type(data["$float"]) is str
        and data["$float"] in _NON_FINITE
    ):
        return _NON_FINITE[data["$float"]]
    raise refused(where, "a number", data)


def _str(data: Any, where: str) -> str:
    if type(data) is str:
        return data
    raise refused(where, "a string", data)


def _bytes(data: Any, where: str) -> bytes:
    text = data.get("$bytes") if type(data) is dict and len(data) == 1 else data
    if type(text) is str:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise refused(where, "base64 text", data)


_UNTAGGED = _AS_IS | _FLOAT
"""JSON values `_untag` gives back as they came (a tagged float or bytes value is an object)."""
_SCALARS: dict[Any, Decoder] = {bool: _bool, int: _int, float: _float, str: _str, bytes: _bytes}
_KEPT_AS_IS = (str, float, bool)
"""The scalar types whose JSON values decode to themselves: a field, mapping or list of such
values is kept as it came (one walk in C), not decoded value by value (an integer where a
float is due still becomes a float, value by value)."""
_KEPT: dict[Decoder, frozenset[type]] = {_SCALARS[kind]: frozenset({kind}) for kind in _KEPT_AS_IS}
"""The JSON types each such scalar's decoder gives back unchanged."""


def _untag(data: Any, where: str) -> Any:
    """Any JSON value as is, with tagged floats and bytes turned back into their values."""
    kind = type(data)
    if kind is dict:
        if len(data) == 1:
            if "$float" in data:
                return _float(data, where)
            if "$bytes" in data:
                return _bytes(data, where)
        if _kinds(data.values()) <= _UNTAGGED:
            return data
        return {k: _untag(v, where) for k, v in data.items()}
    if kind is list:
        if _kinds(data) <= _UNTAGGED:
            return data
        return [_untag(v, where) for v in data]
    return data


# composites ----------------------------------------------------------------------------------
def _literal(values: tuple[Any, ...]) -> Decoder:
    expected = " or ".join(repr(v) for v in values)

    def literal(data: Any, where: str) -> Any:
        if type(data) in (str, int, bool) and data in values:
            return data
        raise refused(where, expected, data)

    return literal


def _union(members: tuple[Any, ...]) -> Decoder:
    optional = type(None) in members
    rest = tuple(m for m in members if m is not type(None))
    named = {m.__name__: m for m in rest if isinstance(m, type) and m in TAGGED}
    expected = " or ".join(_name(m) for m in members)
    direct = _first_takers(rest)

    def union(data: Any, where: str) -> Any:
        if data is None:
            if optional:
                return None
            raise refused(where, expected, data)
        if named and type(data) is dict and "$type" in data:
            chosen = named.get(data["$type"])
            if chosen is None:
                raise refused(f"{where}.$type", " or ".join(map(repr, named)), data["$type"])
            return decoder(chosen)(data, where)
        first = direct.get(type(data))
        if first is not None:
            try:
                return first(data, where)
            except WireError:
                pass  # an integer past 64 bits: the members after it may take it
        for member in rest:
            try:
                return decoder(member)(data, where)
            except WireError:
                continue
        raise refused(where, expected, data)

    return union


_TAKES = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}
"""The JSON scalar types each plain scalar's decoder may take (a float also takes an integer)."""


def _first_takers(members: tuple[Any, ...]) -> dict[type, Decoder]:
    """For each JSON scalar type, the decoder of the first of a union's `members` that may take
    it, where every member before that one surely refuses it: what trying the members in order
    would come to, without building the refusals of those before (a filter's values, a float
    after `int`)."""
    found: dict[type, Decoder] = {}
    for kind in (int, float, str, bool):
        for member in members:
            if member in _TAKES:
                if kind in _TAKES[member]:
                    found[kind] = _SCALARS[member]
                    break
            elif not _takes_no_scalar(member):
                break  # a member that might take it: try them all in order
    return found


def _takes_no_scalar(member: Any) -> bool:
    """Whether a union member refuses every JSON scalar (a list, an object or a record)."""
    if typing.get_origin(member) in (list, tuple, set, frozenset, dict):
        return True
    return _is_named_tuple(member) or (isinstance(member, type) and dataclasses.is_dataclass(member))


def _is_named_tuple(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields")


def _sequence(hint: Any, origin: Any) -> Decoder:
    args = typing.get_args(hint)
    if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
        return _fixed_tuple(tuple(decoder(a) for a in args))
    item = decoder(args[0]) if args else _untag
    kept = _KEPT.get(item)
    build: Callable[[list[Any]], Any] = {tuple: tuple, set: set, frozenset: frozenset}.get(origin, list)

    def sequence(data: Any, where: str) -> Any:
        if type(data) is not list:
            raise refused(where, "a list", data)
        if kept is not None and _kinds(data) <= kept:
            return build(data)
        return build([item(v, f"{where}[{i}]") for i, v in enumerate(data)])

    return sequence


def _fixed_tuple(items: tuple[Decoder, ...]) -> Decoder:
    size = len(items)

    def fixed(data: Any, where: str) -> tuple[Any, ...]:
        if type(data) is not list or len(data) != size:
            raise refused(where, f"a list of {size} items", data)
        return tuple(d(v, where) for d, v in zip(items, data, strict=True))

    return fixed


def _mapping(value: Decoder) -> Decoder:
    kept = _KEPT.get(value)

    def mapping(data: Any, where: str) -> dict[str, Any]:
        if type(data) is not dict:
            raise refused(where, "an object", data)
        if kept is not None and _kinds(data.values()) <= kept:
            return data
        return {k: value(v, f"{where}.{k}") for k, v in data.items()}

    return mapping


def _enum(cls: type[enum.Enum]) -> Decoder:
    values = {member.value: member for member in cls}
    expected = "one of " + ", ".join(repr(v) for v in values)

    def member(data: Any, where: str) -> enum.Enum:
        try:
            return values[data]
        except (KeyError, TypeError):
            raise refused(where, expected, data) from None

    return member


def _record(cls: type, *, named_tuple: bool) -> Decoder:
    """A dataclass or named tuple from an object of its fields (field decoders built on first use)."""

    resolved: tuple[dict[str, tuple[Decoder, frozenset[type]]], frozenset[str]] | None = None

    def record(data: Any, where: str) -> Any:
        nonlocal resolved
        if type(data) is not dict:
            raise refused(where, f"an object ({cls.__name__})", data)
        if resolved is None:
            resolved = _fields(cls, named_tuple)
        fields, required = resolved
        values = {}
        for key, item in data.items():
            found = fields.get(key)
            if found is None:
                if key == "$type":
                    continue
                raise refused(f"{where}.{key}", f"only the fields of {cls.__name__}", "an unknown field")
            field, kept = found
            values[key] = item if type(item) in kept else field(item, f"{where}.{key}")
        if not required.issubset(values):
            missing = required - values.keys()
            raise refused(f"{where}.{min(missing)}", "a value (the field is required)", "nothing")
        return cls(**values)

    return record


@functools.cache
def _fields(
    cls: type, named_tuple: bool
) -> tuple[dict[str, tuple[Decoder, frozenset[type]]], frozenset[str]]:
    """Each field's decoder and the JSON types its value is kept as it came in (`_kept`), and the
    fields that must be given."""
    hints = typing.get_type_hints(cls)
    if named_tuple:
        names = list(cls._fields)  # type: ignore[attr-defined]
        defaults = getattr(cls, "_field_defaults", {})
        required = frozenset(n for n in names if n not in defaults)
    else:
        specs = [f for f in dataclasses.fields(cls) if f.init]
        names = [f.name for f in specs]
        required = frozenset(
            f.name
            for f in specs
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
    return {n: (decoder(hints[n]), _kept(hints[n])) for n in names}, required


def _kept(hint: Any) -> frozenset[type]:
    """The JSON types a value of type `hint` is as it came in: text for `str`, a float for
    `float`, null for an optional field; none where decoding checks or changes it (an integer's
    range, an enum, a float where an integer came)."""
    if hint in _KEPT_AS_IS:
        return frozenset({hint})
    if typing.get_origin(hint) in (Union, types.UnionType):
        members = typing.get_args(hint)
        if type(None) in members:
            rest = [m for m in members if m is not type(None)]
            plain = {m for m in rest if m in _KEPT_AS_IS}
            return frozenset({type(None), *plain}) if len(plain) == len(rest) else frozenset({type(None)})
    return frozenset()


# messages ------------------------------------------------------------------------------------
def _float_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _key(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    raise WireError(f"Only text keys can be sent to the server, not {key!r:.40} ({type(key).__name__}).")


def _name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _shown(data: Any) -> str:
    if data is None:
        return "null"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object"}
    text = json.dumps(data, default=str)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({kind.get(type(data), type(data).__name__)})"


# JSON Schema -----------------------------------------------------------------------------------
_FLOAT_SCHEMA = {
    "anyOf": [
        {"type": "number"},
        {
            "type": "object",
            "properties": {"$float": {"enum": list(_NON_FINITE)}},
            "required": ["$float"],
            "additionalProperties": False,
        },
    ]
}
_SCALAR_SCHEMAS: dict[Any, dict[str, Any]] = {
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: _FLOAT_SCHEMA,
    str: {"type": "string"},
    bytes: {"type": "string", "contentEncoding": "base64"},
    type(None): {"type": "null"},
}


def schema(hint: Any, _seen: frozenset[type] = frozenset()) -> dict[str, Any]:
    """The JSON Schema of what `encode` makes of values of type `hint` (for the OpenAPI document).

    A dataclass inside itself (a filter's `And` of `Or`s) is described as any object there.
    """
    if hint is Any or hint is object:
        return {}
    if hint is None or hint in _SCALAR_SCHEMAS:
        return dict(_SCALAR_SCHEMAS[type(None) if hint is None else hint])
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        return {"anyOf": [schema(a, _seen) for a in args]}
    if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
        items = [schema(a, _seen) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if origin in _SEQUENCES or hint in _SEQUENCES:
        return {"type": "array", "items": schema(args[0], _seen) if args else {}}
    if origin in _MAPPINGS or hint in _MAPPINGS:
        return {"type": "object", "additionalProperties": schema(args[1], _seen) if args else {}}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}
    if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or hasattr(hint, "_fields")):
        if hint in _seen:
            return {"type": "object"}
        return _record_schema(hint, _seen | {hint})
    return {}


def object_schema(
    fields: Mapping[str, Any], required: Sequence[str], _seen: frozenset[type] = frozenset()
) -> dict[str, Any]:
    """The JSON Schema of an object with these typed fields."""
    doc: dict[str, Any] = {
        "type": "object",
        "properties": {name: schema(hint, _seen) for name, hint in fields.items()},
        "additionalProperties": False,
    }
    if required:
        doc["required"] = sorted(required)
    return doc


def _record_schema(cls: type, seen: frozenset[type]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    if dataclasses.is_dataclass(cls):
        specs = [f for f in dataclasses.fields(cls) if f.init]
        names = [f.name for f in specs]
        required = [
            f.name
            for f in specs
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
    else:
        names = list(cls._fields)  # type: ignore[attr-defined]
        required = [n for n in names if n not in getattr(cls, "_field_defaults", {})]
    doc = object_schema({n: hints[n] for n in names}, required, seen)
    if cls in TAGGED:
        doc["properties"]["$type"] = {"const": cls.__name__}
        doc["required"] = sorted([*required, "$type"])
    doc["title"] = cls.__name__
    return doc
