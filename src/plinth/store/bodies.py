"""Bodies of the store API that are not plain JSON of the arguments: the metric hot path, and the
binary ones.

- `POST /metrics` carries `{"points": [[run_id, key, step, seq, timestamp_ms, value], ...]}`;
  a batch holds up to hundreds of thousands of points, so it is written and checked inline
  (`points_json`, `decode_points`), to the same rules as `wire`. The remote store sends plain
  points as columns instead (`plinth.store.points`), and these rows only for points it cannot.
- A metric history answers as a NumPy `.npy` body, a prediction table as an Arrow IPC stream,
  and `write_prediction_columns` sends its tables as Arrow IPC streams, each preceded by its
  length (`pack_tables`).
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from plinth.store import wire
from plinth.store.base import PointRow
from plinth.store.wire import WireError, refused

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

_BOUND = 2**63
_POINT = wire.decoder(PointRow)


# the metric hot path -----------------------------------------------------------------------------
def points_json(points: Sequence[PointRow]) -> bytes:
    """The body of `POST /metrics`: `{"points": [[run_id, key, step, seq, timestamp_ms, value]...]}`
    (a NaN or infinite value tagged as `wire.encode` does)."""
    rows = [p if math.isfinite(p[5]) else (*p[:5], wire.encode(p[5])) for p in points]
    return json.dumps({"points": rows}, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode()


def decode_points(data: Any, where: str) -> list[PointRow]:
    """The metric points of a `POST /metrics` body, checked as `wire.decode` would (a row of
    plain values is checked inline: a batch holds up to hundreds of thousands).

    Raises:
        WireError: a row that is not (text, text, integer, integer, integer, number).
    """
    if type(data) is not list:
        raise refused(where, "a list of points", data)
    out: list[PointRow] = []
    append = out.append
    for i, row in enumerate(data):
        if type(row) is list and len(row) == 6:
            run, key, step, seq, ts, value = row
            if (
                type(run) is str
                and type(key) is str
                and type(step) is int
                and type(seq) is int
                and type(ts) is int
                and type(value) is float
                and -_BOUND <= step < _BOUND
                and -_BOUND <= seq < _BOUND
                and -_BOUND <= ts < _BOUND
            ):
                append((run, key, step, seq, ts, value))
                continue
        append(_POINT(row, f"{where}[{i}]"))
    return out


# binary bodies ---------------------------------------------------------------------------------
def npy_bytes(array: np.ndarray) -> bytes:
    """A NumPy array as a `.npy` file's bytes (no pickles)."""
    import numpy as np

    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def npy_array(body: bytes) -> np.ndarray:
    """The array of `.npy` bytes.

    Raises:
        WireError: the bytes are not a `.npy` file of plain values.
    """
    import numpy as np

    try:
        array: np.ndarray = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise WireError(f"The body is not a NumPy .npy array: {exc}.") from None
    return array


def arrow_bytes(table: pa.Table) -> bytes:
    """A table as an Arrow IPC stream."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def arrow_table(body: bytes | memoryview) -> pa.Table:
    """The table of an Arrow IPC stream.

    Raises:
        WireError: the bytes are not an Arrow IPC stream.
    """
    import pyarrow as pa

    try:
        with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
            return reader.read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise WireError(f"The body is not an Arrow IPC stream: {exc}.") from None


def pack_tables(tables: Sequence[pa.Table]) -> bytes:
    """Tables as one body: each an Arrow IPC stream preceded by its length (8 bytes, big-endian)."""
    parts = []
    for table in tables:
        data = arrow_bytes(table)
        parts += [struct.pack(">Q", len(data)), data]
    return b"".join(parts)


def unpack_tables(body: bytes) -> list[pa.Table]:
    """The tables of a `pack_tables` body.

    Raises:
        WireError: the body is cut short or holds something else.
    """
    return list(_tables(memoryview(body)))


def _tables(view: memoryview) -> Iterator[pa.Table]:
    at = 0
    while at < len(view):
        if at + 8 > len(view):
            raise WireError("The body ends inside a table's length; send what `pack_tables` makes.")
        (size,) = struct.unpack(">Q", view[at : at + 8])
        if at + 8 + size > len(view):
            raise WireError(f"The body ends inside a table of {size} bytes; send what `pack_tables` makes.")
        yield arrow_table(view[at + 8 : at + 8 + size])
        at += 8 + size
