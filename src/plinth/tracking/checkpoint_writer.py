"""The checkpoint writer: one background thread per process stores checkpoints in call order.

`submit` takes a slot, runs `prepare` (the copy of the state) in the caller's thread, and queues
the job that stores it. There are `SLOTS` slots, each held from the copy until the job is done,
so a call made while two checkpoints are still being written waits for the first: at most two
copies are held in memory, however fast the loop checkpoints (back-pressure).

A job that fails is caught alone: the thread goes on with the next one, counts the failure,
logs a warning naming the checkpoint lost, and the handle's `wait()` raises its error. A
failure nobody asked the handle about is reported once more, as a `PlinthWarning`, when its
run ends or its checkpoints are next listed (`wait_for`).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import traceback
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from plinth.core.errors import PlinthWarning

SLOTS = 2
"""Checkpoints copied and not yet stored, at most (the next call waits for one to finish)."""

T = TypeVar("T")
log = logging.getLogger("plinth.tracking")


@dataclass(frozen=True)
class _Job(Generic[T]):
    run_id: str
    what: str
    future: Future[T]


class PendingCheckpoint(Generic[T]):
    """A checkpoint being stored in the background; `wait()` returns it once it is stored."""

    def __init__(self, future: Future[T], what: str, writer: CheckpointWriter) -> None:
        self._future = future
        self._writer = writer
        self.what = what

    def __repr__(self) -> str:
        state = "stored" if self.done() and self._future.exception() is None else "pending"
        return f"<PendingCheckpoint {self.what}: {'failed' if self.failed() else state}>"

    def done(self) -> bool:
        """Whether storing it has finished (stored, or failed)."""
        return self._future.done()

    def failed(self) -> bool:
        """Whether storing it has finished and failed."""
        return self._future.done() and self._future.exception() is not None

    def wait(self, timeout: float | None = None) -> T:
        """Block until it is stored, and return it.

        Raises:
            TimeoutError: it is still being written after `timeout` seconds.
            PlinthError: storing it failed (the store's or the blob store's error).
        """
        try:
            return self._future.result(timeout)
        except TimeoutError:
            raise
        except BaseException:
            self._writer.reported(self._future)
            raise

    result = wait


class CheckpointWriter:
    """Stores queued checkpoint jobs on one daemon thread, at most `slots` held at once."""

    def __init__(self, slots: int = SLOTS) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._queue: queue.SimpleQueue[tuple[_Job[object], Callable[[], object]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending: dict[str, list[Future[object]]] = {}
        self._unreported: dict[Future[object], tuple[str, str]] = {}
        self.failed = 0
        """Jobs that failed since the writer started (their checkpoints were not stored)."""

    def submit(self, run_id: str, what: str, prepare: Callable[[], Callable[[], T]]) -> PendingCheckpoint[T]:
        """Take a slot (waiting for one), call `prepare` here, and queue the job it returns.

        Raises:
            Whatever `prepare` raises (the slot is given back, nothing is queued).
        """
        self._slots.acquire()
        future: Future[T] = Future()
        queued = False
        try:  # an interrupt (Ctrl-C, SIGTERM) anywhere here leaves nothing a run's end would wait on
            work = prepare()
            with self._lock:
                self._pending.setdefault(run_id, []).append(future)  # type: ignore[arg-type]
                self._queue.put((_Job(run_id, what, future), work))  # type: ignore[arg-type]
                queued = True
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="plinth-checkpoints", daemon=True)
                    self._thread.start()
        finally:
            if not queued:
                self._forget(run_id, future)
                self._slots.release()
        return PendingCheckpoint(future, what, self)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                self._run(*item)
            except BaseException:  # a bug of the writer's own: logged, and the thread goes on
                log.exception("The checkpoint writer failed on a checkpoint of run %s", item[0].run_id)
            finally:
                del item  # the copy the job holds goes before its slot is given back
                self._slots.release()

    def _run(self, job: _Job[object], work: Callable[[], object]) -> None:
        try:
            result = work()
        except BaseException as exc:  # one failing checkpoint never stops the next ones
            if exc.__traceback__ is not None:  # its frames would keep the copy alive
                traceback.clear_frames(exc.__traceback__)
            self._fail(job, exc)
        else:
            self._finish(job)  # before the future resolves: a waiter then finds it done
            job.future.set_result(result)

    def _fail(self, job: _Job[object], exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
        log.warning("Checkpoint %s of run %s was not stored: %s", job.what, job.run_id, reason)
        with self._lock:
            self.failed += 1
            self._unreported[job.future] = (job.run_id, f"{job.what} ({reason})")
        self._finish(job)
        job.future.set_exception(exc)

    def _finish(self, job: _Job[object]) -> None:
        self._forget(job.run_id, job.future)

    def _forget(self, run_id: str, future: Future[T]) -> None:
        with self._lock:
            pending = self._pending.get(run_id, [])
            if future in pending:
                pending.remove(future)  # type: ignore[arg-type]
            if not pending:
                self._pending.pop(run_id, None)

    def idle(self) -> bool:
        """True when no checkpoint of any run is queued or being stored."""
        with self._lock:
            return not self._pending

    def reported(self, future: Future[T]) -> None:
        """The failure of `future` reached its caller: no warning about it later."""
        with self._lock:
            self._unreported.pop(future, None)  # type: ignore[arg-type]

    def wait_for(self, run_id: str) -> None:
        """Return once every checkpoint of run `run_id` submitted so far is stored or failed.

        Warns (PlinthWarning) about the run's checkpoints that failed and were not reported yet.
        """
        with self._lock:
            waiting = list(self._pending.get(run_id, ()))
        for future in waiting:
            future.exception()  # waits; the error is the handle's to raise
        with self._lock:
            lost = [what for f, (run, what) in self._unreported.items() if run == run_id]
            self._unreported = {f: v for f, v in self._unreported.items() if v[0] != run_id}
        if lost:
            warnings.warn(
                PlinthWarning(
                    f"{len(lost)} checkpoint{'s' if len(lost) > 1 else ''} of run {run_id} could not be "
                    f"stored and {'are' if len(lost) > 1 else 'is'} lost: {'; '.join(lost[:3])}. Its "
                    "other checkpoints were stored; fix what the error names and checkpoint again."
                ),
                stacklevel=3,
            )


_writer: CheckpointWriter | None = None
_writer_lock = threading.Lock()


def checkpoint_writer() -> CheckpointWriter:
    """The process's checkpoint writer (its thread starts with the first checkpoint)."""
    global _writer
    if _writer is None:
        with _writer_lock:
            if _writer is None:
                _writer = CheckpointWriter()
    return _writer


def current_writer() -> CheckpointWriter | None:
    """The process's checkpoint writer if one was made (does not make one)."""
    return _writer


def _forget_after_fork() -> None:
    global _writer, _writer_lock
    _writer, _writer_lock = None, threading.Lock()  # the thread did not come along


os.register_at_fork(after_in_child=_forget_after_fork)
