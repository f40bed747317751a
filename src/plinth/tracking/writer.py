"""The metric writer: `log_metric` appends to memory, a background thread writes batches.

One writer per store per process. `flush()` writes everything appended before it was called,
from the caller's thread, and returns once it is durable.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable

from plinth.core.errors import PlinthError
from plinth.store.base import PointRow, Store

MAX_BATCH = 200_000


class MetricWriter:
    """Buffers metric points and writes them in batches every `interval_s` seconds."""

    def __init__(self, store: Store, interval_s: float) -> None:
        self.store = store
        self.interval_s = interval_s
        self._queue: collections.deque[PointRow] = collections.deque()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._error: PlinthError | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def append(self, row: PointRow) -> None:
        """Queue one point; never touches the database."""
        self._queue.append(row)
        if self._thread is None:
            self._start()

    def extend(self, rows: Iterable[PointRow]) -> None:
        """Queue many points."""
        self._queue.extend(rows)
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._loop, name="plinth-metrics", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                self._drain()
            except PlinthError as exc:  # kept for the next flush() to raise
                self._error = exc

    def _drain(self) -> None:
        with self._write_lock:
            queue = self._queue
            while queue:
                n = min(len(queue), MAX_BATCH)
                batch = [queue.popleft() for _ in range(n)]
                try:
                    self.store.write_metrics(batch)
                except BaseException:
                    queue.extendleft(reversed(batch))
                    raise
            self._error = None

    def flush(self) -> None:
        """Write every queued point now; raise the store's error if it cannot."""
        self._drain()

    @property
    def pending(self) -> int:
        """Points queued and not yet written."""
        return len(self._queue)

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._stopped = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._drain()
