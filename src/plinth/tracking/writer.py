"""The metric writer: `log_metric` appends to memory, a background thread writes batches.

One writer per store per process. `flush()` writes everything appended before it was called,
from the caller's thread, and returns once it is durable; `flush_then(finish)` does the same and
commits `finish` (a run's end) with the points, one transaction where the store can.

A point the store refuses (bad data, a run that is gone) is dropped alone: a failing batch is
split in halves until the bad points stand alone, so its good points still land. Dropped points
are counted, logged, and reported once as a `PlinthWarning` by the next `flush()` (which
`run.end()` calls). When the store itself fails (locked, unreachable), nothing is dropped: the
batch stays queued, the thread tries again later, and `flush()` raises the store's error.
"""

from __future__ import annotations

import collections
import logging
import threading
import warnings
from collections.abc import Callable, Iterable

from plinth.core.errors import PlinthWarning
from plinth.store.base import PointRow, Store
from plinth.store.isolate import write_isolating

MAX_BATCH = 200_000
_REASON_CHARS = 200

log = logging.getLogger("plinth.tracking")


class MetricWriter:
    """Buffers metric points and writes them in batches every `interval_s` seconds."""

    def __init__(self, store: Store, interval_s: float) -> None:
        self.store = store
        self.interval_s = interval_s
        self._queue: collections.deque[PointRow] = collections.deque()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._dropped = 0
        self._dropped_by_run: collections.Counter[str] = collections.Counter()
        self._unreported: collections.Counter[str] = collections.Counter()

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
        failing = ""
        while not self._stopped:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                self._drain()
                failing = ""
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # the store is down: the points stay queued for later
                if _reason(exc) != failing:  # once per outage, not once per try
                    failing = _reason(exc)
                    log.warning("%d metric points wait in memory: %s", len(self._queue), failing)

    def _drain(self) -> None:
        with self._write_lock:
            queue = self._queue
            while queue:
                n = min(len(queue), MAX_BATCH)
                self._write([queue.popleft() for _ in range(n)])

    def _write(self, batch: list[PointRow]) -> None:
        """Write `batch`; each point the store refuses on its own is dropped alone.

        Raises:
            StoreError: the store itself failed; every unwritten point is back at the queue's head.
        """
        rest, error = write_isolating(self.store.write_metrics, batch, self._drop)
        if error is not None:
            self._queue.extendleft(reversed(rest))
            raise error

    def _drop(self, row: PointRow, exc: BaseException) -> None:
        reason = _reason(exc)
        if reason not in self._unreported:
            log.warning("Dropped metric %r of run %s: %s", row[1], row[0], reason)
        self._dropped += 1
        self._dropped_by_run[row[0]] += 1
        self._unreported[reason] += 1

    def _report(self) -> None:
        """Warn once about the points dropped since the last report."""
        with self._write_lock:
            unreported, self._unreported = self._unreported, collections.Counter()
        if unreported:
            why = "; ".join(f"{n} x {reason}" for reason, n in unreported.most_common(3))
            total = unreported.total()
            warnings.warn(
                f"{total} metric point{'s' if total > 1 else ''} could not be stored and "
                f"{'were' if total > 1 else 'was'} dropped ({why}); "
                "the other points were written. Log real numbers with valid keys and steps.",
                PlinthWarning,
                stacklevel=3,
            )

    def flush(self) -> None:
        """Write every queued point now; raise the store's error if it cannot.

        Warns (PlinthWarning) once about points the store refused since the last flush.
        """
        self._drain()
        self._report()

    def flush_then(self, finish: Callable[[], None]) -> None:
        """Write every queued point and call `finish` (store writes) in the same transaction.

        Where the store's `batch()` is a transaction of its own, the points and `finish` land in
        one commit. Should that fail for any reason it rolls back whole, and the points are written
        as `flush()` writes them (refused points dropped alone) before `finish` is called on its
        own, as it is with any other store. `finish` is called even when the flush fails.
        """
        if self.store.batch_is_atomic():
            try:
                together = self._flush_together(finish)
            except BaseException:  # interrupted, nothing written: `finish` still runs, as after a flush
                finish()
                raise
            if together:
                self._report()
                return
        try:
            self.flush()
        finally:
            finish()

    def _flush_together(self, finish: Callable[[], None]) -> bool:
        """True when the queued points and `finish` were committed together."""
        with self._write_lock:
            queue = self._queue
            if len(queue) > MAX_BATCH:
                return False
            taken = [queue.popleft() for _ in range(len(queue))]
            try:
                with self.store.batch():
                    if taken:
                        self.store.write_metrics(taken)
                    finish()
            except BaseException as exc:
                self._queue.extendleft(reversed(taken))  # rolled back: nothing of it was written
                if not isinstance(exc, Exception):
                    raise
                return False
        return True

    @property
    def pending(self) -> int:
        """Points queued and not yet written."""
        return len(self._queue)

    @property
    def dropped(self) -> int:
        """Points the store refused and that were dropped, since this writer started."""
        return self._dropped

    def dropped_for(self, run_id: str) -> int:
        """Points of run `run_id` that were dropped."""
        return self._dropped_by_run[run_id]

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._stopped = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."
