"""SQLite's write-ahead log, moved into the database file by a thread of its own.

SQLite checkpoints by itself: the commit that takes the log past 1,000 pages copies them into
the database and syncs both files before it returns, so one write in every few dozen pays for
the writes before it. Here a process's writes leave that to a thread, which checkpoints (without
blocking writers or readers) shortly after commits, while the next writes go on. The threshold
at which a commit checkpoints by itself stays, raised, as a floor for when the thread falls
behind.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref

from sqlalchemy import Engine

from plinth.store.forks import reset_in_children

AUTOCHECKPOINT_PAGES = 10_000
"""Log pages past which a commit checkpoints by itself (SQLite's default is 1,000)."""

GAP_S = 0.05
"""The least time between two of the thread's checkpoints: commits in between share one."""

_IDLE_S = 30.0
"""How long the thread waits for a commit before it ends (the next commit starts another)."""

log = logging.getLogger("plinth.store")


class Checkpointer:
    """Checkpoints one engine's database soon after commits (`committed`), on a thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self.reset_after_fork()
        reset_in_children(self)

    def reset_after_fork(self) -> None:
        """Fresh locks and no thread: at creation, and in a forked child, whose copies of the
        parent's locks may be held by a thread it does not have."""
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self.running = threading.Lock()
        """Held while the thread checkpoints: a caller that needs the log to itself (truncating
        it) holds it to keep the thread out, which SQLite would answer busy at once."""
        self._thread: threading.Thread | None = None
        self._pid = 0

    def committed(self) -> None:
        """A write transaction committed: checkpoint soon."""
        if not self._wake.is_set():  # most commits find it set, the thread between checkpoints
            self._wake.set()
        if self._thread is None or self._pid != os.getpid():
            with self._lock:
                if self._thread is None or self._pid != os.getpid():  # a forked child starts its own
                    self._pid = os.getpid()
                    self._thread = threading.Thread(target=self._run, name="plinth-checkpoint", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        failing = ""
        while self._waited():
            engine = self._engine()
            if engine is None:
                return
            try:
                with self.running:
                    _checkpoint(engine)
                failing = ""
            except Exception as exc:  # busy or gone: commits checkpoint by themselves past the floor
                if str(exc) != failing:
                    failing = str(exc)
                    log.debug("Checkpoint of %s put off: %s", engine.url, exc)
            del engine  # not kept alive between checkpoints
            time.sleep(GAP_S)

    def _waited(self) -> bool:
        """Wait for a commit; False (the thread ends) after `_IDLE_S` without one."""
        if self._wake.wait(_IDLE_S):
            self._wake.clear()
            return True
        with self._lock:  # decided where `committed` starts threads: no commit goes unseen
            if self._wake.is_set():
                self._wake.clear()
                return True
            self._thread = None
            return False


def _checkpoint(engine: Engine) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            cursor.close()
    finally:
        raw.close()
