"""Prediction logging off the response path: a bounded queue written in batches by a thread.

The response path only appends; a full queue drops the log and counts it. The writer thread
survives any failure: when the store is unreachable the logs wait in the queue and are retried;
when the store refuses some logs (a value it cannot hold), those are found by splitting the
batch, counted and dropped, and the rest are written. Every log not written is counted (in
`/metrics`), named in `trouble` (for `/readyz`), warned about once and logged. `close()` writes
everything still queued.

The store keeps a large batch as a columnar segment, a small one as rows. Each time a model's
written logs pass `COMPACT_ROWS` (plinth.store.segments), the thread asks the store to compact them
(rows gathered into a segment, small segments merged); a compaction that fails is logged and
counted, and the logs stay readable as they are until the next one.
"""

from __future__ import annotations

import collections
import logging
import threading
import warnings
from collections.abc import Callable

from plinth.core.entities import PredictionLog
from plinth.core.errors import PlinthWarning, StoreError
from plinth.store import segments
from plinth.store.base import Store
from plinth.store.isolate import write_isolating

log = logging.getLogger("plinth.serving")
MAX_BATCH = 50_000


class PredictionLogger:
    """Writes prediction logs to the store every `interval_s` seconds.

    Args:
        store: where the logs go.
        capacity: logs waiting at most; past it new logs are dropped and counted.
        interval_s: how often the thread writes what is queued.
        on_drop: called with the number of logs lost (queue full, or refused by the store).
        on_failure: called once per failed write attempt.
    """

    def __init__(
        self,
        store: Store,
        capacity: int,
        interval_s: float = 0.2,
        on_drop: Callable[[int], None] | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.capacity = capacity
        self.interval_s = interval_s
        self.on_drop = on_drop
        self.on_failure = on_failure
        self.dropped = 0
        self.refused = 0
        self.written = 0
        self.failures = 0
        self.compaction_failures = 0
        self.last_error: str | None = None
        self.unreachable = False
        self._warning: str | None = None
        self._warned = False
        self._queue: collections.deque[PredictionLog] = collections.deque()
        self._uncompacted: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="plinth-prediction-log", daemon=True)
        self._thread.start()

    def put(self, entry: PredictionLog) -> None:
        """Queue one log; drop and count it when the queue is full."""
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            self._lost(1)
            if self.dropped in (1, 10, 100, 1000) or self.dropped % 10_000 == 0:
                log.warning(
                    "prediction log queue is full (%d): %d logs dropped so far", self.capacity, self.dropped
                )
            self._warning = (
                self._warning or f"the prediction log queue is full ({self.capacity}); logs are dropped"
            )
            return
        self._queue.append(entry)

    @property
    def pending(self) -> int:
        """Logs queued and not yet written."""
        return len(self._queue)

    @property
    def trouble(self) -> str | None:
        """Why prediction logging is degraded (for `/readyz`), or None while nothing was lost."""
        if self.unreachable:
            return (
                f"the store is not taking prediction logs; {self.pending} wait and are retried every "
                f"{self.interval_s:g}s: {self.last_error}"
            )
        if not (self.dropped or self.refused):
            return None
        return (
            f"{self.dropped + self.refused} prediction logs were not written since the server started "
            f"({self.refused} refused by the store, {self.dropped} dropped with the queue full); "
            f"last error: {self.last_error or 'none'}"
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except Exception as exc:  # the writer outlives anything that goes wrong in one pass
                log.exception("prediction log writer: %s", exc)

    def flush(self) -> None:
        """Write every queued log now; logs wait in the queue while the store is unreachable."""
        with self._lock:
            self._drain()
        if self._warning is not None and not self._warned:
            self._warned = True  # one PlinthWarning per logger; the server log and /readyz say the rest
            warnings.warn(self._warning, PlinthWarning, stacklevel=2)

    def _drain(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
            waiting = self._write(batch)
            if waiting:
                self._queue.extendleft(reversed(waiting))
                return
        if self.unreachable:
            self.unreachable = False
            log.warning("the store takes prediction logs again")
        if not self._stop.is_set():
            self._compact()

    def _compact(self) -> None:
        """Ask the store to compact the logs of each model that wrote `COMPACT_ROWS` since the last time."""
        for model in [m for m, n in self._uncompacted.items() if n >= segments.COMPACT_ROWS]:
            del self._uncompacted[model]
            try:
                self.store.compact_prediction_logs(model)
            except Exception as exc:  # the logs are written and readable; the next pass tries again
                self.compaction_failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("compacting the prediction logs of %r failed (tried again later): %s", model, exc)

    def _write(self, batch: list[PredictionLog]) -> list[PredictionLog]:
        """Write `batch`, leaving out each log the store refuses on its own; returns the logs to
        retry later (the store was unreachable)."""
        before = self.refused
        rest, error = write_isolating(self.store.write_prediction_logs, batch, self._refuse, self._failed)
        if error is not None and not isinstance(error, StoreError):
            self._queue.extendleft(reversed(rest))  # interrupted: nothing is lost, close() writes it
            raise error
        self.written += len(batch) - len(rest) - (self.refused - before)
        if not rest:
            self._uncompacted.update(entry.model for entry in batch)
        if isinstance(error, StoreError) and not self.unreachable:
            self.unreachable = True  # unreachable or locked: everything waits for the next pass
            log.error("the store is not taking prediction logs (they wait and are retried): %s", error)
            self._warning = self._warning or f"the store is not taking prediction logs: {error}"
        return rest

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        if self.on_failure is not None:
            self.on_failure()

    def _refuse(self, entry: PredictionLog, exc: BaseException) -> None:
        self.refused += 1
        self._lost(1)
        text = f"the store refused the prediction log of request {entry.request_id!r:.140}: {self.last_error}"
        if self.refused in (1, 10, 100, 1000) or self.refused % 10_000 == 0:
            log.error("%s (%d refused so far); other logs are still written", text, self.refused)
        self._warning = self._warning or f"{text}; other logs are still written"

    def _lost(self, n: int) -> None:
        if self.on_drop is not None:
            self.on_drop(n)

    def close(self) -> None:
        """Stop the thread and write what is left; logs that still cannot be written are counted."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()
        left = len(self._queue)
        if left:
            self._queue.clear()
            self.dropped += left
            self._lost(left)
            log.error("%d prediction logs could not be written before exit: %s", left, self.last_error)
