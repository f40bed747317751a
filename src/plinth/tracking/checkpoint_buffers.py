"""CPU memory kept from the last stored checkpoint, for the next checkpoint's copy to reuse.

Copying a state dict into freshly allocated memory costs a page fault per 4 kB page the first
time each page is written: for tensors past the allocator's reuse threshold (32 MB with glibc),
every checkpoint pays it again, and it is most of the time the training loop waits. So once
the writer has serialised a checkpoint, its tensors are kept here, and the next copy writes into
them (same shape and dtype) instead of allocating.

Up to two checkpoints' tensors (two generations) are kept: a loop that checkpoints again while
the writer still serialises the previous checkpoint holds two copies at once, and with a second
generation kept its next two copies both land in memory that is already mapped. A loop whose
writer keeps up only ever makes one generation, so it holds one copy. Everything kept is dropped
when no run of the process has a checkpoint left to write (a run's end).
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Iterable
from typing import Any

Key = tuple[tuple[int, ...], Any]
Generation = dict[Key, collections.deque[Any]]
GENERATIONS = 2


class BufferPool:
    """CPU tensors by (shape, dtype), kept for reuse."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generations: collections.deque[Generation] = collections.deque(maxlen=GENERATIONS)

    def take(self, shape: tuple[int, ...], dtype: Any) -> Any | None:
        """A kept tensor of this shape and dtype (no longer kept), newest generation first, or None."""
        with self._lock:
            for generation in reversed(self._generations):
                free = generation.get((shape, dtype))
                if free:
                    tensor = free.pop()
                    if not free:
                        del generation[(shape, dtype)]
                    if not generation:
                        self._generations.remove(generation)
                    return tensor
            return None

    def keep(self, tensors: Iterable[Any]) -> None:
        """Keep `tensors` for reuse as the newest generation; the oldest of more than two is dropped."""
        generation: Generation = {}
        for tensor in tensors:
            generation.setdefault((tuple(tensor.shape), tensor.dtype), collections.deque()).append(tensor)
        if generation:
            with self._lock:
                self._generations.append(generation)

    def clear(self) -> None:
        """Drop every kept tensor (their memory goes back to the allocator)."""
        with self._lock:
            self._generations.clear()

    @property
    def generations(self) -> int:
        """How many checkpoints' tensors are kept."""
        with self._lock:
            return len(self._generations)

    @property
    def nbytes(self) -> int:
        """Bytes held by the kept tensors."""
        with self._lock:
            return sum(
                t.numel() * t.element_size()
                for generation in self._generations
                for free in generation.values()
                for t in free
            )


_pool = BufferPool()


def buffer_pool() -> BufferPool:
    """The process's pool."""
    return _pool


def _forget_after_fork() -> None:
    global _pool
    _pool = BufferPool()


os.register_at_fork(after_in_child=_forget_after_fork)
