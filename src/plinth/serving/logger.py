"""Prediction logging off the response path: a bounded queue written in batches by a thread.

The response path only appends; a full queue drops the log and counts it (in `/metrics` and
in the server log, never silently). `close()` writes everything still queued.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

from plinth.core.entities import PredictionLog
from plinth.core.errors import PlinthError
from plinth.store.base import Store

log = logging.getLogger("plinth.serving")


class PredictionLogger:
    """Writes prediction logs to the store every `interval_s` seconds."""

    def __init__(
        self,
        store: Store,
        capacity: int,
        interval_s: float = 0.2,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.capacity = capacity
        self.interval_s = interval_s
        self.on_drop = on_drop
        self.dropped = 0
        self.written = 0
        self._queue: collections.deque[PredictionLog] = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="plinth-prediction-log", daemon=True)
        self._thread.start()

    def put(self, entry: PredictionLog) -> None:
        """Queue one log; drop and count it when the queue is full."""
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop(1)
            if self.dropped in (1, 10, 100, 1000) or self.dropped % 10_000 == 0:
                log.warning(
                    "prediction log queue is full (%d): %d logs dropped so far", self.capacity, self.dropped
                )
            return
        self._queue.append(entry)

    @property
    def pending(self) -> int:
        """Logs queued and not yet written."""
        return len(self._queue)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except PlinthError as exc:
                log.error("could not write prediction logs (will retry): %s", exc)

    def flush(self) -> None:
        """Write every queued log now."""
        with self._lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), 50_000))]
                try:
                    self.store.write_prediction_logs(batch)
                except BaseException:
                    self._queue.extendleft(reversed(batch))
                    raise
                self.written += len(batch)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()
