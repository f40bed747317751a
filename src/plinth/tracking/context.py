"""The process's default backend: settings, metadata store, blob store, writer, heartbeat.

Opened lazily from `Settings.from_env()` on first use; `plinth.configure()` replaces it.
A forked child starts with none, so it never shares the parent's connections or threads.
"""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plinth.core.settings import Settings
from plinth.store.audit_key import with_audit_key
from plinth.store.base import Store
from plinth.store.open import open_blobs, open_store
from plinth.tracking.heartbeat import Heartbeat
from plinth.tracking.writer import MetricWriter

if TYPE_CHECKING:
    from plinth.store.blobs import BlobStore


@dataclass
class Backend:
    """Everything a tracking call needs, opened once per process."""

    settings: Settings
    store: Store
    writer: MetricWriter
    heartbeat: Heartbeat
    _blobs: BlobStore | None = field(default=None, repr=False)

    @property
    def blobs(self) -> BlobStore:
        """The artifact store, opened on first use."""
        if self._blobs is None:
            self._blobs = open_blobs(self.settings)
        return self._blobs

    def close(self) -> None:
        """Flush pending metrics and release the store."""
        self.heartbeat.close()
        try:
            self.writer.close()
        finally:
            self.store.close()


_lock = threading.RLock()
_backend: Backend | None = None


def open_backend(settings: Settings) -> Backend:
    """Open a backend for `settings` without making it the default."""
    settings = with_audit_key(settings)  # flow steps get these settings, so the key goes with them
    store = open_store(settings)
    return Backend(
        settings=settings,
        store=store,
        writer=MetricWriter(store, settings.flush_s),
        heartbeat=Heartbeat(store, settings.heartbeat_s),
    )


def backend() -> Backend:
    """The default backend, opened from the environment on first use."""
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                _backend = open_backend(Settings.from_env())
    return _backend


def current() -> Backend | None:
    """The default backend if one is open (does not open one)."""
    return _backend


def configure(settings: Settings | None = None) -> Backend:
    """Replace the default backend (closing the old one) with one for `settings`."""
    global _backend
    with _lock:
        reset()
        _backend = open_backend(settings or Settings.from_env())
        return _backend


def reset() -> None:
    """Close and forget the default backend (the next call opens a fresh one)."""
    global _backend
    with _lock:
        old, _backend = _backend, None
    if old is not None:
        from plinth.tracking.run import end_open_runs

        end_open_runs(old)
        old.close()


def _forget_after_fork() -> None:
    global _backend, _lock
    _backend = None
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(reset)
