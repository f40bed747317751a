"""The process's default backend (settings, stores, writer, heartbeat) and its open runs.

Opened lazily from `Settings.from_env()` on first use; `plinth.configure()` replaces it.
A forked child starts with none, so it never shares the parent's connections or threads.
Closing a backend first ends the runs still open on it, so their metrics are written.
"""

from __future__ import annotations

import atexit
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from plinth.core.errors import PlinthWarning
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
    if not settings.is_remote:  # a team server keys the chain itself: its clients hold no key
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
        end_open_runs(old)
        old.close()


class OpenRun(Protocol):
    """A run handle this process logs to (`ActiveRun`); ending it writes what it logged."""

    def end(self) -> None: ...


_runs_lock = threading.Lock()
_open_runs: list[tuple[OpenRun, Backend]] = []


def add_open_run(run: OpenRun, be: Backend) -> None:
    """Record `run` as open on `be`; it becomes the newest open run."""
    with _runs_lock:
        _open_runs.append((run, be))


def forget_open_run(run: OpenRun) -> None:
    """Stop tracking `run` (it ended or was detached); unknown runs are ignored."""
    with _runs_lock:
        for i in range(len(_open_runs) - 1, -1, -1):  # the newest run is the one usually ending
            if _open_runs[i][0] is run:
                del _open_runs[i]
                return


def newest_open_run() -> OpenRun | None:
    """The most recently opened run that is still open, on any backend."""
    with _runs_lock:
        return _open_runs[-1][0] if _open_runs else None


def end_open_runs(be: Backend) -> None:
    """End (FINISHED) the runs still open on `be`, newest first, e.g. at interpreter exit.

    A run that cannot be ended (the store is gone, the disk is full) is reported by a
    PlinthWarning naming it, and the others are still ended: its last metrics may be lost,
    and the warning says so rather than letting the process exit quietly.
    """
    with _runs_lock:
        mine = [run for run, owner in _open_runs if owner is be]
    for run in reversed(mine):
        try:
            run.end()
        except Exception as exc:  # one broken run must not keep the others from ending
            warnings.warn(
                PlinthWarning(
                    f"{run!r} could not be ended ({type(exc).__name__}: {exc}); metrics it logged "
                    "since its last flush may be lost. If it still reads RUNNING, `plinth runs reap` "
                    "marks it CRASHED once its heartbeats stop."
                ),
                stacklevel=2,
            )


def _forget_after_fork() -> None:
    global _backend, _lock
    _backend = None
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(reset)
