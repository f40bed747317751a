"""Metric points as columns: the shape a batch takes between a remote client and the server.

A batch of a run's points repeats its run id and metric key on every row; as columns it names
each once (`runs`, `keys`) and holds the rest as NumPy arrays. `PointColumns` is still a
`Sequence[PointRow]` (indexing and iterating give rows), so whatever takes rows takes it, and
the SQL store writes it without making a row object per point.

Its body on the wire (`POINTS`, `POST /metrics`) is

    b"PLPT" + version (1 byte) + 3 zero bytes + header length (uint32 LE)
    + header: JSON {"runs": [...], "keys": [...], "n": N}, padded with spaces to 8 bytes
    + step, seq, timestamp_ms (int64 LE), value (float64 LE), run index, key index (uint32 LE)

each array N long. NaN and infinities travel as they are.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, overload

import numpy as np

from plinth.store.base import PointRow
from plinth.store.wire import WireError

POINTS = "application/vnd.plinth.points"
"""The media type of a `PointColumns` body."""

_MAGIC = b"PLPT\x01\x00\x00\x00"
_HEAD = struct.Struct("<8sI")
_INT = np.dtype("<i8")
_FLOAT = np.dtype("<f8")
_INDEX = np.dtype("<u4")
_MAX_NAMES = 2**32 - 1


@dataclass(frozen=True, eq=False)
class PointColumns(Sequence[PointRow]):
    """Metric points as columns (see the module's docstring); rows in order, as `rows()` gives them.

    Args:
        runs: the distinct run ids, each once.
        keys: the distinct metric keys, each once.
        run_index, key_index: per point, its run's and its key's place in `runs` and `keys`.
        step, seq, timestamp_ms: per point (int64).
        value: per point (float64; NaN and infinities allowed).
    """

    runs: tuple[str, ...]
    keys: tuple[str, ...]
    run_index: np.ndarray
    key_index: np.ndarray
    step: np.ndarray
    seq: np.ndarray
    timestamp_ms: np.ndarray
    value: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[PointRow]) -> PointColumns | None:
        """The columns of `rows`; None when a row is not plain (text, text, int, int, int, float)
        or an integer does not fit 64 bits, which the row path checks and refuses one by one."""
        if isinstance(rows, PointColumns):
            return rows
        if not rows:
            return None
        if set(map(len, rows)) != {6}:
            return None
        runs, keys, steps, seqs, stamps, values = (list(map(itemgetter(i), rows)) for i in range(6))
        if not (_all(steps, int) and _all(seqs, int) and _all(stamps, int) and _all(values, float)):
            return None
        try:
            step, seq, stamp = (np.array(c, dtype=_INT) for c in (steps, seqs, stamps))
        except OverflowError:
            return None
        run_names, run_index = _dictionary(runs)
        key_names, key_index = _dictionary(keys)
        if not (_all(run_names, str) and _all(key_names, str)):
            return None
        return cls(
            run_names, key_names, run_index, key_index, step, seq, stamp, np.array(values, dtype=_FLOAT)
        )

    def __len__(self) -> int:
        return len(self.step)

    @overload
    def __getitem__(self, index: int) -> PointRow: ...

    @overload
    def __getitem__(self, index: slice) -> PointColumns: ...

    def __getitem__(self, index: int | slice) -> PointRow | PointColumns:
        if isinstance(index, slice):
            return PointColumns(
                self.runs,
                self.keys,
                self.run_index[index],
                self.key_index[index],
                self.step[index],
                self.seq[index],
                self.timestamp_ms[index],
                self.value[index],
            )
        return (
            self.runs[int(self.run_index[index])],
            self.keys[int(self.key_index[index])],
            int(self.step[index]),
            int(self.seq[index]),
            int(self.timestamp_ms[index]),
            float(self.value[index]),
        )

    def __iter__(self) -> Iterator[PointRow]:
        runs, keys = self.runs, self.keys
        return zip(
            [runs[i] for i in self.run_index.tolist()],
            [keys[i] for i in self.key_index.tolist()],
            self.step.tolist(),
            self.seq.tolist(),
            self.timestamp_ms.tolist(),
            self.value.tolist(),
            strict=True,
        )

    def rows(self) -> list[PointRow]:
        """The points as rows."""
        return list(self)

    def to_bytes(self) -> bytes:
        """The body of `POST /metrics` in the `POINTS` media type."""
        header = json.dumps(
            {"runs": self.runs, "keys": self.keys, "n": len(self)}, ensure_ascii=True
        ).encode()
        header += b" " * (-len(header) % 8)
        parts = [_HEAD.pack(_MAGIC, len(header)), header]
        parts += [
            np.ascontiguousarray(a, dtype=_INT).tobytes() for a in (self.step, self.seq, self.timestamp_ms)
        ]
        parts.append(np.ascontiguousarray(self.value, dtype=_FLOAT).tobytes())
        parts += [np.ascontiguousarray(a, dtype=_INDEX).tobytes() for a in (self.run_index, self.key_index)]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, body: bytes) -> PointColumns:
        """The points of a `to_bytes` body.

        Raises:
            WireError: the body is not one (cut short, a bad header, an index out of range).
        """
        if len(body) < _HEAD.size or body[:8] != _MAGIC:
            raise WireError(f"The body is not a {POINTS} body; send what `PointColumns.to_bytes` makes.")
        _, size = _HEAD.unpack_from(body)
        start = _HEAD.size + size
        runs, keys, n = _header(body[_HEAD.size : start])
        if len(body) != start + n * 40:
            raise WireError(
                f"The {POINTS} body holds {len(body) - start} bytes after its header, not {n * 40}."
            )
        view = memoryview(body)
        step, seq, stamp = (np.frombuffer(view, _INT, n, start + i * n * 8) for i in range(3))
        value = np.frombuffer(view, _FLOAT, n, start + 3 * n * 8)
        run_index, key_index = (np.frombuffer(view, _INDEX, n, start + 32 * n + i * n * 4) for i in range(2))
        if n and (int(run_index.max()) >= len(runs) or int(key_index.max()) >= len(keys)):
            raise WireError(f"A point of the {POINTS} body names a run or key its header does not list.")
        return cls(runs, keys, run_index, key_index, step, seq, stamp, value)


def _all(values: Sequence[object], kind: type) -> bool:
    """Whether every value is of exactly type `kind` (a bool is not an int here, as on the wire)."""
    return set(map(type, values)) == {kind}


def _dictionary(values: list[Any]) -> tuple[tuple[Any, ...], np.ndarray]:
    """The distinct values in order of first appearance, and each value's place among them."""
    distinct = tuple(dict.fromkeys(values))
    if len(distinct) == 1:
        return distinct, np.zeros(len(values), dtype=_INDEX)
    places = {value: i for i, value in enumerate(distinct)}
    return distinct, np.fromiter(map(places.__getitem__, values), dtype=_INDEX, count=len(values))


def _header(text: bytes) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    try:
        header = json.loads(text)
    except ValueError:
        header = None
    if isinstance(header, dict):
        runs, keys, n = header.get("runs"), header.get("keys"), header.get("n")
        if (
            isinstance(runs, list)
            and isinstance(keys, list)
            and all(type(r) is str for r in runs)
            and all(type(k) is str for k in keys)
            and type(n) is int
            and 0 <= n
            and len(runs) <= _MAX_NAMES
            and len(keys) <= _MAX_NAMES
        ):
            return tuple(runs), tuple(keys), n
    raise WireError(
        f'The {POINTS} body\'s header is not {{"runs": [text...], "keys": [text...], "n": count}}.'
    )
