"""What runs inside a Ray worker process for one `RayExecutor` task.

`execute` is the body of every Ray task the executor submits. It runs the request exactly as a
local worker does (`worker.run_request`: environment applied for the call, CPU time, peak memory,
errors caught and reported, never raised), in the driver's working folder when this node has it,
and returns the encoded reply with where it ran.

Limits are enforced here, from the moment the task starts, so time spent queued for a free slot
does not count (as with the local executor). A watchdog thread samples the process tree's memory
every `SAMPLE_S` seconds; past the task's timeout or memory limit it leaves a note in Ray's
key-value store (`note_key(task_id)`) and ends the worker process at once, which is what
`ray.cancel(force=True)` would do. The driver reads the note to turn the resulting
`WorkerCrashedError` into TIMEOUT or MEMORY. Should the thread itself be starved (an extension
holding the GIL), SIGALRM, left at its default action, ends the process a little later.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil

from plinth.compute.worker import run_request, tree_rss

SAMPLE_S = 0.1
NAMESPACE = "plinth"
_GRACE_S = 2.0  # how much later SIGALRM ends a process whose watchdog could not run
_HOST = socket.gethostname()
_me: psutil.Process | None = None
_where: str | None = None


def note_key(task_id: str) -> bytes:
    """The key-value store key of the note a watchdog leaves for task `task_id`."""
    return f"plinth:outcome:{task_id}".encode()


def execute(
    request: bytes, task_id: str, cwd: str, timeout_s: float | None, memory: int | None
) -> tuple[bytes, str, tuple[int, ...], int]:
    """Run one request; returns (reply, where it ran, GPU ids, peak memory seen by the watchdog)."""
    me = _process()
    watchdog = _Watchdog(task_id, timeout_s, memory) if timeout_s is not None or memory is not None else None
    with _working_folder(cwd):
        try:
            reply = run_request(request, me)
        finally:
            if watchdog is not None:
                watchdog.stop()
    return reply, where(), _gpu_ids(), watchdog.max_rss if watchdog is not None else 0


def execute_many(requests: list[bytes], cwd: str) -> list[tuple[bytes, str, tuple[int, ...], int]]:
    """Run several requests (tasks without limits), one after the other; a reply for each."""
    me = _process()
    with _working_folder(cwd):
        return [(run_request(request, me), where(), (), 0) for request in requests]


def _process() -> psutil.Process:
    """This worker process (created once: psutil caches what it reads about it)."""
    global _me
    if _me is None or _me.pid != os.getpid():
        _me = psutil.Process()
    return _me


def where() -> str:
    """This worker's place in the cluster: 'host:pid node NODE_ID8 (IP)'."""
    global _where
    if _where is None or not _where.startswith(f"{_HOST}:{os.getpid()} "):
        import ray

        node = ray.get_runtime_context().get_node_id()[:8]
        _where = f"{_HOST}:{os.getpid()} node {node} ({ray.util.get_node_ip_address()})"
    return _where


def _gpu_ids() -> tuple[int, ...]:
    import ray

    ids = []
    for gpu in ray.get_gpu_ids():
        with contextlib.suppress(TypeError, ValueError):
            ids.append(int(gpu))
    return tuple(ids)


@contextlib.contextmanager
def _working_folder(cwd: str) -> Iterator[None]:
    """Run in the driver's working folder where this node has it (relative paths then agree)."""
    try:
        here = os.getcwd()
    except OSError:
        here = None
    moved = bool(cwd) and cwd != here and os.path.isdir(cwd)
    if moved:
        os.chdir(cwd)
    try:
        yield
    finally:
        if moved and here is not None:
            with contextlib.suppress(OSError):
                os.chdir(here)


class _Watchdog:
    """Ends this worker process when its task runs past `timeout_s` or uses more than `memory`."""

    def __init__(self, task_id: str, timeout_s: float | None, memory: int | None) -> None:
        self.task_id = task_id
        self.memory = memory
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.max_rss = 0
        self._stop = threading.Event()
        self._alarm = False
        if timeout_s is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.setitimer(signal.ITIMER_REAL, timeout_s + _GRACE_S)
            self._alarm = True
        self._thread = threading.Thread(target=self._run, name="plinth-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The task ended: stop watching."""
        if self._alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            rss = tree_rss(_process())
            self.max_rss = max(self.max_rss, rss)
            if self.memory is not None and rss > self.memory:
                self._end("memory", f"{rss} {self.memory}")
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self._end("timeout", f"{self.timeout_s}")

    def _end(self, outcome: str, detail: str) -> None:
        """Leave the note for the driver, then end the process and everything it started."""
        import ray.experimental.internal_kv as kv

        with contextlib.suppress(Exception):
            kv._internal_kv_put(note_key(self.task_id), f"{outcome} {detail}".encode(), namespace=NAMESPACE)
        _kill_children()
        os._exit(70)


def _kill_children() -> None:
    with contextlib.suppress(psutil.Error):
        for child in _process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()


def read_note(task_id: str) -> tuple[str, list[str]] | None:
    """The note a watchdog left for `task_id` (and delete it), or None. Driver side."""
    import ray.experimental.internal_kv as kv

    try:
        data: Any = kv._internal_kv_get(note_key(task_id), namespace=NAMESPACE)
        if data is None:
            return None
        kv._internal_kv_del(note_key(task_id), namespace=NAMESPACE)
    except Exception:
        return None
    outcome, *detail = data.decode().split()
    return outcome, detail
