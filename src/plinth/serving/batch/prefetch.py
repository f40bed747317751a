"""Prefetching: an iterator run in a thread a few items ahead of its consumer, so reading overlaps scoring."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_END = object()


@dataclass(frozen=True)
class _Failed:
    """An exception raised while reading ahead, to re-raise in the consumer."""

    error: BaseException


class Prefetch:
    """Runs an iterator in a thread, a few items ahead of the consumer (reading overlaps scoring)."""

    def __init__(self, items: Iterator[Any], depth: int = 2) -> None:
        self._items = items
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plinth-batch-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._offer(item):
                    return
            self._offer(_END)
        except BaseException as exc:
            self._offer(_Failed(exc))
        finally:
            with contextlib.suppress(Exception):
                self._items.close()  # type: ignore[attr-defined]

    def _offer(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while (item := self._queue.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop reading ahead and wait for the thread."""
        self._stop.set()
        self._thread.join()
