"""CPU memory kept from the last stored checkpoint, for the next checkpoint's copy to reuse.

Copying a state dict into freshly allocated memory costs a page fault per 4 kB page the first
time each page is written: for tensors past the allocator's reuse threshold (32 MB with glibc),
every checkpoint pays it again, and it is most of the time the training loop waits. So once
the writer has serialised a checkpoint, its tensors are kept here, and the next copy writes into
them (same shape and dtype) instead of allocating. At most one checkpoint's tensors are kept;
they are dropped when no run of the process has a checkpoint left to write (a run's end).
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterable
from typing import Any

Key = tuple[tuple[int, ...], Any]


class BufferPool:
    """CPU tensors by (shape, dtype), kept for reuse."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[Key, collections.deque[Any]] = {}

    def take(self, shape: tuple[int, ...], dtype: Any) -> Any | None:
        """A kept tensor of this shape and dtype (no longer kept), or None."""
        with self._lock:
            free = self._free.get((shape, dtype))
            return free.pop() if free else None

    def keep(self, tensors: Iterable[Any]) -> None:
        """Keep `tensors` for reuse, in place of whatever was kept."""
        free: dict[Key, collections.deque[Any]] = {}
        for tensor in tensors:
            free.setdefault((tuple(tensor.shape), tensor.dtype), collections.deque()).append(tensor)
        with self._lock:
            self._free = free

    def clear(self) -> None:
        """Drop every kept tensor (their memory goes back to the allocator)."""
        with self._lock:
            self._free = {}

    @property
    def nbytes(self) -> int:
        """Bytes held by the kept tensors."""
        with self._lock:
            return sum(t.numel() * t.element_size() for free in self._free.values() for t in free)


_pool = BufferPool()


def buffer_pool() -> BufferPool:
    """The process's pool."""
    return _pool


def _forget_after_fork() -> None:
    global _pool
    _pool = BufferPool()


os.register_at_fork(after_in_child=_forget_after_fork)
