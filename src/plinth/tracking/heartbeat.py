"""One background thread per process beats for every run it has open."""

from __future__ import annotations

import logging
import threading
import time

from plinth.store.base import Store

log = logging.getLogger("plinth.tracking")


class Heartbeat:
    """Records every `interval_s` that this process's running runs are alive."""

    def __init__(self, store: Store, interval_s: float) -> None:
        self.store = store
        self.interval_s = interval_s
        self._runs: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0  # beats that could not be written, over the life of the process

    def add(self, run_id: str) -> None:
        """Start beating for a run."""
        with self._lock:
            self._runs.add(run_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="plinth-heartbeat", daemon=True)
                self._thread.start()

    def remove(self, run_id: str) -> None:
        """Stop beating for a run."""
        with self._lock:
            self._runs.discard(run_id)

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(self.interval_s):
            with self._lock:
                ids = sorted(self._runs)
            try:
                self.store.heartbeat(ids, time.time_ns() // 1_000_000)
            except Exception as exc:  # the thread must outlive any failure: a dead beat reads CRASHED
                self.failures += 1
                if not failing:
                    log.warning("could not record heartbeats of %d runs (will retry): %s", len(ids), exc)
                failing = True
                continue
            if failing:
                log.warning("heartbeats recorded again after %d failed beats", self.failures)
            failing = False

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
