"""Columns of numbers sent to PostgreSQL in its binary formats, laid out by numpy.

A metric write sends its points as one array per column (`INSERT ... SELECT * FROM unnest(...)`),
or, many at once, as rows of a binary COPY (`copy_bytes`). In text, each number is formatted by
Python and parsed again by PostgreSQL; in the binary formats (a length, then big-endian bytes,
per value) numpy lays out a whole column at once and PostgreSQL copies the numbers as they are.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

_HEADER = struct.Struct(">iiIii")
"""Dimensions (1), whether any element is NULL, the element's type, the length, the lower bound (1)."""


class PgArray:
    """A column bound as one PostgreSQL array parameter in binary."""

    __slots__ = ("values",)
    element: ClassVar[int]  # the element's type
    oid: ClassVar[int]  # the array's type
    layout: ClassVar[np.dtype]  # an element: its length, then its big-endian bytes

    def __init__(self, values: np.ndarray) -> None:
        self.values = values


class Int8Array(PgArray):
    __slots__ = ()
    element, oid, layout = 20, 1016, np.dtype([("n", ">i4"), ("v", ">i8")])


class Float8Array(PgArray):
    __slots__ = ()
    element, oid, layout = 701, 1022, np.dtype([("n", ">i4"), ("v", ">f8")])


def int8_array(values: np.ndarray) -> PgArray:
    """`values` (int64) as a `bigint[]` parameter (of a cursor `teach` was given)."""
    return Int8Array(np.asarray(values, dtype=np.int64))


def float8_array(values: np.ndarray) -> PgArray:
    """`values` (float64) as a `float8[]` parameter, each NaN as NULL (what NULL stands for in
    `metrics`), of a cursor `teach` was given."""
    return Float8Array(np.asarray(values, dtype=np.float64))


def array_bytes(array: PgArray) -> bytes:
    """The array in PostgreSQL's binary format: NULL elements (NaN floats) are a length of -1 alone."""
    values = array.values
    body = np.empty(len(values), dtype=array.layout)
    body["n"] = 8
    body["v"] = values
    null = np.isnan(values) if isinstance(array, Float8Array) else None
    has_null = null is not None and bool(null.any())
    if has_null:
        body["n"][null] = -1
        keep = np.ones((len(values), body.itemsize), dtype=bool)
        keep[null, 4:] = False  # a NULL element has no bytes after its length
        data = body.view(np.uint8).reshape(len(values), body.itemsize)[keep].tobytes()
    else:
        data = body.tobytes()
    return _HEADER.pack(1, int(has_null), array.element, len(values), 1) + data


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
"""A binary COPY's signature, its flags (none) and the length of its header extension (0)."""
_COPY_TRAILER = struct.pack(">h", -1)


def copy_bytes(ints: Sequence[np.ndarray], floats: np.ndarray) -> bytes:
    """Rows of `bigint` columns then one `float8` column, as the data of `COPY ... FROM STDIN
    (FORMAT BINARY)`: each row its number of fields, then each field's length and bytes; a NaN
    float is NULL (a length of -1 alone), as in `array_bytes`."""
    fields = [("n", ">i2")]
    for i in range(len(ints)):
        fields += [(f"l{i}", ">i4"), (f"v{i}", ">i8")]
    whole = np.dtype([*fields, ("lf", ">i4"), ("vf", ">f8")])
    null = np.isnan(floats)
    parts = [_COPY_HEADER]
    for layout, rows, valued in ((whole, ~null, True), (np.dtype([*fields, ("lf", ">i4")]), null, False)):
        count = int(np.count_nonzero(rows))
        if not count:
            continue
        body = np.empty(count, dtype=layout)
        body["n"] = len(ints) + 1
        for i, column in enumerate(ints):
            body[f"l{i}"] = 8
            body[f"v{i}"] = column[rows]
        if valued:
            body["lf"], body["vf"] = 8, floats[rows]
        else:
            body["lf"] = -1
        parts.append(body.tobytes())
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


def teach(cursor: Any) -> None:
    """Have psycopg's `cursor` send `PgArray` parameters in binary (its own adapters: the
    connection's and other cursors' are left as they are)."""
    for kind, dumper in _dumpers().items():
        cursor.adapters.register_dumper(kind, dumper)


@functools.cache
def _dumpers() -> dict[type[PgArray], type]:
    """psycopg's dumper of each kind of `PgArray` (made on first use: psycopg is imported only
    where PostgreSQL is)."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    def dumper(kind: type[PgArray]) -> type:
        def dump(_self: Dumper, obj: Any) -> bytes:
            return array_bytes(obj)

        return type(
            f"{kind.__name__}Dumper", (Dumper,), {"format": Format.BINARY, "oid": kind.oid, "dump": dump}
        )

    return {kind: dumper(kind) for kind in (Int8Array, Float8Array)}
