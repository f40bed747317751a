"""Writes a store holds back to join the next write: a run's creation, mostly.

A run started and ended within moments (a sweep's trials, a test) would otherwise cost two
transactions, its creation and its end. Held back, the creation goes with the run's end (or with
its first points, or any other write of the process), one commit for both. Nothing is held back
long: a writer thread writes what is still waiting `DEFER_S` after it was held back, and every
read through the store writes it first, so the process never misses a run it started.

`SqlStore` holds writes back for its next write transaction (`store/sql/base.py`), and
`RemoteStore` for its next request to the server (`store/remote_held.py`).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from plinth.store.forks import reset_in_children

DEFER_S = 0.2
"""The longest a held-back write waits for another write to join before it is written alone."""

_IDLE_S = 30.0
"""How long the writer thread waits for more work before it ends (the next hold-back starts one)."""

log = logging.getLogger("plinth.store")


@dataclasses.dataclass(eq=False)
class Deferred:
    """One held-back write: `write(target)` makes it (`SqlStore`: inside a write transaction, on
    its connection; `RemoteStore`: into the batch of runs its next request sends)."""

    what: str
    write: Callable[[Any], None]
    pid: int = dataclasses.field(default_factory=os.getpid)
    taken: bool = False


class Deferrals:
    """The writes a store holds back (shared by the copies `acting_as` makes).

    A write transaction takes every held-back write that no other transaction has taken, holds
    `turn` until it ends, and drops them once it commits; on a rollback they wait for the next.
    Taking `turn` first, a transaction waits for one that is making them, so it never writes
    against a run another thread's transaction is still creating. A forked child leaves its
    parent's alone: the parent writes them.
    """

    def __init__(self) -> None:
        self.reset_after_fork()
        reset_in_children(self)

    def reset_after_fork(self) -> None:
        """Fresh locks and no work: at creation, and in a forked child, whose copies of the
        parent's locks may be held by threads it does not have (its parent writes the work)."""
        self.turn = threading.RLock()
        self._lock = threading.Lock()
        self._items: list[Deferred] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0

    def __bool__(self) -> bool:
        return bool(self._items)

    def hold(self, item: Deferred, settle: Callable[[], None]) -> None:
        """Hold `item` back; `settle` (a write transaction of the store) makes it if no other
        write has within `DEFER_S`."""
        with self._lock:
            self._items.append(item)
            thread = self._thread
            if thread is None or not thread.is_alive() or self._thread_pid != os.getpid():
                self._thread = _start_writer(self, settle)
                self._thread_pid = os.getpid()
        self._wake.set()

    def take(self) -> list[Deferred]:
        """The held-back writes of this process no transaction has taken yet, marked taken."""
        pid = os.getpid()
        with self._lock:
            taken = [item for item in self._items if item.pid == pid and not item.taken]
            for item in taken:
                item.taken = True
        return taken

    def done(self, items: list[Deferred]) -> None:
        """`items` were committed."""
        with self._lock:
            self._items = [item for item in self._items if all(item is not done for done in items)]

    def put_back(self, items: list[Deferred]) -> None:
        """`items` were rolled back: the next transaction takes them again."""
        with self._lock:
            for item in items:
                item.taken = False

    def drop(self, item: Deferred) -> None:
        """Give up on `item` (the database refuses it)."""
        self.done([item])

    def waiting(self) -> bool:
        """Whether writes of this process are held back (taken or not)."""
        if not self._items:
            return False
        pid = os.getpid()
        return any(item.pid == pid for item in self._items)

    def retry_soon(self) -> None:
        """Have the writer thread try again after `DEFER_S`."""
        self._wake.set()

    def pending(self) -> list[Deferred]:
        """This process's held-back writes no transaction has taken."""
        pid = os.getpid()
        with self._lock:
            return [item for item in self._items if item.pid == pid and not item.taken]

    def wait(self) -> bool:
        """Block until work is held back or the thread has idled long enough; False to end it
        (decided under the lock `hold` starts a thread under, so no work is left without one)."""
        woken = self._wake.wait(_IDLE_S)
        with self._lock:
            self._wake.clear()
            if woken or any(item.pid == os.getpid() for item in self._items):
                return True
            self._thread = None
            return False


def _start_writer(deferrals: Deferrals, settle: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(
        target=_write_soon,
        args=(weakref.ref(deferrals), _weak_call(settle)),
        name="plinth-deferred",
        daemon=True,
    )
    thread.start()
    return thread


def _weak_call(settle: Callable[[], None]) -> Callable[[], Callable[[], None] | None]:
    """`settle` as a call that gives it back while its store lives (the thread must not keep a
    store alive); a plain function is kept as it is."""
    if inspect.ismethod(settle):
        return weakref.WeakMethod(settle)
    return lambda: settle


def _write_soon(
    deferrals_ref: weakref.ref[Deferrals], settle_ref: Callable[[], Callable[[], None] | None]
) -> None:
    """The writer thread: `DEFER_S` after work is held back, write what no transaction has."""
    failing = ""
    while True:
        deferrals = deferrals_ref()
        if deferrals is None or not deferrals.wait():
            return
        del deferrals  # not kept alive while asleep
        time.sleep(DEFER_S)
        settle = settle_ref()
        if settle is None:
            return
        try:
            settle()
            failing = ""
        except Exception as exc:  # the store is down: the writes stay held back, tried again
            reason = f"{type(exc).__name__}: {exc}"
            if reason != failing:
                failing = reason
                log.warning("Writes held back to join another could not be made yet: %s", reason)
            deferrals = deferrals_ref()
            if deferrals is not None:
                deferrals.retry_soon()
        del settle
