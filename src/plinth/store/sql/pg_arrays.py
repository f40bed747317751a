"""Columns of numbers sent to PostgreSQL as arrays in its binary format, made by numpy.

A metric write sends its points as one array per column (`INSERT ... SELECT * FROM unnest(...)`).
In text, each number is formatted by Python and parsed again by PostgreSQL; in the binary format
(`array_send`'s layout: a header, then each element as its length and its big-endian bytes) numpy
lays out a whole column at once and PostgreSQL copies the numbers as they are.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

import numpy as np

_HEADER = struct.Struct(">iiIii")
"""Dimensions (1), whether any element is NULL, the element's type, the length, the lower bound (1)."""
_INT8, _FLOAT8 = 20, 701
_INT8_ARRAY, _FLOAT8_ARRAY = 1016, 1022
_ELEMENT = {_INT8: np.dtype([("n", ">i4"), ("v", ">i8")]), _FLOAT8: np.dtype([("n", ">i4"), ("v", ">f8")])}


class PgArray:
    """A column bound as one PostgreSQL array parameter in binary (`bigint[]` or `float8[]`)."""

    __slots__ = ("element", "values")

    def __init__(self, values: np.ndarray, element: int) -> None:
        self.values = values
        self.element = element


def int8_array(values: np.ndarray) -> PgArray:
    """`values` (int64) as a `bigint[]` parameter (of a cursor `teach` was given)."""
    return PgArray(np.asarray(values, dtype=np.int64), _INT8)


def float8_array(values: np.ndarray) -> PgArray:
    """`values` (float64) as a `float8[]` parameter, each NaN as NULL (what NULL stands for in
    `metrics`), of a cursor `teach` was given."""
    return PgArray(np.asarray(values, dtype=np.float64), _FLOAT8)


def array_bytes(array: PgArray) -> bytes:
    """The array in PostgreSQL's binary format: NULL elements (NaN floats) are a length of -1 alone."""
    values = array.values
    body = np.empty(len(values), dtype=_ELEMENT[array.element])
    body["n"] = 8
    body["v"] = values
    null = np.isnan(values) if array.element == _FLOAT8 else None
    has_null = null is not None and bool(null.any())
    if has_null:
        body["n"][null] = -1
        keep = np.ones((len(values), body.itemsize), dtype=bool)
        keep[null, 4:] = False  # a NULL element has no bytes after its length
        data = body.view(np.uint8).reshape(len(values), body.itemsize)[keep].tobytes()
    else:
        data = body.tobytes()
    return _HEADER.pack(1, int(has_null), array.element, len(values), 1) + data


def teach(cursor: Any) -> None:
    """Have psycopg's `cursor` send `PgArray` parameters in binary (its own adapters: the
    connection's and other cursors' are left as they are)."""
    cursor.adapters.register_dumper(PgArray, _dumper())


@functools.cache
def _dumper() -> type:
    """psycopg's dumper of `PgArray` (made on first use: psycopg is imported only where
    PostgreSQL is)."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class _Dumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: Any) -> bytes:
            return array_bytes(obj)

        def get_key(self, obj: Any, format: Any) -> Any:
            return (PgArray, obj.element)

        def upgrade(self, obj: Any, format: Any) -> Dumper:
            return _Float8Dumper(PgArray) if obj.element == _FLOAT8 else _Int8Dumper(PgArray)

    class _Int8Dumper(_Dumper):
        oid = _INT8_ARRAY

    class _Float8Dumper(_Dumper):
        oid = _FLOAT8_ARRAY

    return _Dumper
