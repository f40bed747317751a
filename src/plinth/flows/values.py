"""Step results as content-addressed blobs, and references to them inside step arguments."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any

import cloudpickle

from plinth.store.blobs import BlobStore

_CACHE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Ref:
    """Stands for the stored result `digest` of step call `call` inside arguments."""

    digest: str
    call: str


def dump(value: Any) -> bytes:
    """Serialize a step result (pickle protocol 5, by value for user code)."""
    return cloudpickle.dumps(value, protocol=5)


def store_value(blobs: BlobStore, value: Any) -> tuple[str, int]:
    """Store a result; returns (digest, size). Not fsynced: it must outlive the process only."""
    return blobs.put_bytes(dump(value), durable=False)


class ValueCache:
    """Recently loaded results of this process, so a fan-out reading one input loads it once."""

    def __init__(self, budget: int = _CACHE_BYTES) -> None:
        self.budget = budget
        self._items: collections.OrderedDict[str, tuple[Any, int]] = collections.OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def load(self, blobs: BlobStore, ref: Ref) -> Any:
        """The value a Ref stands for, hash-verified when first read."""
        with self._lock:
            hit = self._items.get(ref.digest)
            if hit is not None:
                self._items.move_to_end(ref.digest)
                return hit[0]
        data = blobs.read_bytes(ref.digest, name=f"result of step {ref.call}")
        value = cloudpickle.loads(data)
        self._remember(ref.digest, value, len(data))
        return value

    def _remember(self, digest: str, value: Any, size: int) -> None:
        if size > self.budget:
            return
        with self._lock:
            self._items[digest] = (value, size)
            self._size += size
            while self._size > self.budget:
                _digest, (_value, dropped) = self._items.popitem(last=False)
                self._size -= dropped


def resolve(value: Any, load: Any) -> Any:
    """`value` with every Ref inside lists, tuples, sets and dicts replaced by `load(ref)`."""
    if isinstance(value, Ref):
        return load(value)
    if isinstance(value, list):
        return [resolve(v, load) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve(v, load) for v in value)
    if isinstance(value, dict):
        return {k: resolve(v, load) for k, v in value.items()}
    return value
