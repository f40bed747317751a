"""Both ends of a LocalExecutor worker: the loop the process runs, and the handle the driver keeps.

Workers are started with multiprocessing's "forkserver" method, the server preloading this module
(and so plinth): a new worker is a fork of that small single-threaded server (a few ms), never of the
driver, whose metrics-writer and heartbeat threads would make a plain fork unsafe. A worker takes the
driver's environment as it is when the worker starts (not the server's, which may be older), and
does not re-import the driver's `__main__` (multiprocessing would; fn travels by value with
cloudpickle instead), so driver scripts need no `if __name__ == "__main__":` guard.

Protocol, one request in flight per worker, over a duplex `multiprocessing` pipe:

    driver -> worker  pickle((sys_path | None, env, cloudpickle((fn, args))))
    worker -> driver  cloudpickle((status, value, error, traceback, cpu_s, wall_s, rss, peak_rss, cpu_total))

`status` is "ok" (value is what fn returned) or "error" (error is "TypeName: message"); sys_path is
sent when the driver's changed since the worker's last task, so by-reference functions import alike.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import resource
import signal
import socket
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle
import psutil

_KIB = 1 if sys.platform == "darwin" else 1024  # ru_maxrss unit: bytes on macOS, KiB on Linux
_HOST = socket.gethostname()
_WATCH_S = 1.0  # how often a busy worker checks that its driver is still there
_busy = threading.Event()
_context: Any = None


# ----------------------------------------------------------------------------- worker side


def serve(conn: Connection, environ: dict[str, str]) -> None:
    """Body of a worker process: serve requests on `conn` until the driver closes it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    os.environ.clear()
    os.environ.update(environ)
    me = psutil.Process()
    threading.Thread(target=_watch_driver, args=(conn.fileno(),), name="plinth-watch", daemon=True).start()
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return
        _busy.set()
        reply = run_request(request, me)
        _busy.clear()
        conn.send_bytes(reply)


def _watch_driver(fd: int) -> None:
    """End the worker when its driver has gone (EOF on the pipe) while a task runs.

    An idle worker sees the EOF in `recv_bytes` and returns; a busy one would otherwise run its
    task to the end (holding CPUs and GPUs) after its driver was killed.
    """
    sock = socket.socket(fileno=os.dup(fd))
    while True:
        time.sleep(_WATCH_S)
        if not _busy.is_set():
            continue
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue  # nothing to read: the driver is there
        except OSError:
            data = b""
        if not data:
            os._exit(70)


def run_request(request: bytes, me: psutil.Process) -> bytes:
    """Run one request (see the module docstring) and return the encoded reply."""
    sys_path, env, payload = pickle.loads(request)
    if sys_path is not None:
        sys.path[:] = sys_path
    saved = _apply_env(env)
    peak_before = _max_rss()
    cpu_before = _cpu_total()
    start = time.perf_counter()
    try:
        status, value, error, trace = _call(payload)
    finally:
        _restore_env(saved)
    wall_s = time.perf_counter() - start
    cpu_total = _cpu_total()
    cpu_s = cpu_total - cpu_before
    peak_after = _max_rss()
    peak = peak_after if peak_after > peak_before else 0  # exact only when fn set a new high
    rss = me.memory_info().rss
    try:
        return cloudpickle.dumps((status, value, error, trace, cpu_s, wall_s, rss, peak, cpu_total))
    except Exception as exc:
        error = f"{type(exc).__name__}: the value fn returned could not be pickled to send back ({exc})"
        trace = traceback.format_exc()
        return cloudpickle.dumps(("error", None, error, trace, cpu_s, wall_s, rss, peak, cpu_total))


def _call(payload: bytes) -> tuple[str, Any, str | None, str | None]:
    try:
        fn, args = cloudpickle.loads(payload)
    except BaseException as exc:
        error = (
            f"{type(exc).__name__}: the task could not be loaded in the worker ({exc}); functions from "
            "modules the worker cannot import need cloudpickle.register_pickle_by_value(module)"
        )
        return "error", None, error, traceback.format_exc()
    try:
        return "ok", fn(*args), None, None
    except BaseException as exc:  # SystemExit and friends too: the worker must survive fn
        return "error", None, f"{type(exc).__name__}: {exc}", traceback.format_exc()


def _apply_env(env: dict[str, str]) -> dict[str, str | None]:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _KIB


def _cpu_total() -> float:
    """CPU seconds this process and the children it has reaped used so far."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# ----------------------------------------------------------------------------- driver side


def _forkserver() -> Any:
    """The forkserver context, told (once, before its server starts) to preload this module."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload([__name__])
    return _context


def _process_name(gpus: tuple[int, ...]) -> str:
    return f"plinth-worker-gpu{','.join(map(str, gpus))}" if gpus else "plinth-worker"


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """Show multiprocessing a blank `__main__` while it starts a process, so the child skips
    re-running the driver script (or re-importing its module) as `__mp_main__`."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


class WorkerHandle:
    """The driver's end of one worker process, dedicated to one GPU set (empty for CPU work)."""

    def __init__(self, gpus: tuple[int, ...] = ()) -> None:
        ctx = _forkserver()
        environ = dict(os.environ)
        if gpus:
            environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
        self.conn, theirs = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=serve, args=(theirs, environ), name=_process_name(gpus))
        with _main_hidden():
            self.proc.start()
        theirs.close()
        self.gpus = gpus
        self.pid: int = self.proc.pid
        self.name = f"{_HOST}:{self.pid}"
        self.replied = False  # whether it ever answered: a death before that is a failed start
        self.cpu_mark = 0.0  # its CPU seconds when the last task ended, i.e. when the next one began
        self._ps = psutil.Process(self.pid)
        self._sent_path: tuple[str, ...] | None = None

    def send(self, env: dict[str, str], payload: bytes) -> None:
        """Start a task. Raises OSError when the worker is gone."""
        path = tuple(sys.path)
        sys_path = None if path == self._sent_path else list(path)
        self.conn.send_bytes(pickle.dumps((sys_path, env, payload), protocol=pickle.HIGHEST_PROTOCOL))
        self._sent_path = path

    def receive(self) -> tuple[Any, ...]:
        """The reply to the task in flight, less cpu_total. Raises EOFError/OSError when it died."""
        *reply, self.cpu_mark = pickle.loads(self.conn.recv_bytes())
        self.replied = True
        return tuple(reply)

    def cpu_since_mark(self) -> float:
        """CPU seconds the worker used since its last task ended (the running task's so far)."""
        try:
            t = self._ps.cpu_times()
        except psutil.Error:
            return 0.0
        return max(0.0, t.user + t.system + t.children_user + t.children_system - self.cpu_mark)

    def rss(self) -> int:
        """Resident memory of the worker and all its descendants, bytes; 0 once it is gone."""
        try:
            total = self._ps.memory_info().rss
            for child in self._ps.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            return 0
        return total

    def death(self) -> str:
        """How the process ended, for messages: 'exit code 1' or 'signal 9 (SIGKILL)'."""
        self.proc.join(timeout=1.0)
        code = self.proc.exitcode
        if code is None:
            return "no exit status yet"
        if code < 0:
            try:
                return f"signal {-code} ({signal.Signals(-code).name})"
            except ValueError:
                return f"signal {-code}"
        return f"exit code {code}"

    def kill(self) -> None:
        """Kill the worker and everything it started, then reap it."""
        family = [self._ps]
        try:
            family += self._ps.children(recursive=True)
        except psutil.Error:
            pass
        for proc in family:
            try:
                proc.kill()
            except psutil.Error:
                pass
        self.conn.close()
        self.proc.join(timeout=5.0)

    def close(self) -> None:
        """Release the handle's own resources once the process is known to be gone."""
        self.conn.close()
        if self.proc.is_alive():
            self.proc.join(timeout=1.0)
        if not self.proc.is_alive():
            self.proc.close()


def stop_all(workers: list[WorkerHandle], grace_s: float = 2.0) -> None:
    """Stop workers together: close their pipes and SIGTERM them, then kill what is left."""
    family: list[psutil.Process] = []
    for worker in workers:
        worker.conn.close()
        if worker.proc.is_alive():
            try:
                family.extend(worker._ps.children(recursive=True))
            except psutil.Error:
                pass
            worker.proc.terminate()
    deadline = time.monotonic() + grace_s
    for worker in workers:
        worker.proc.join(timeout=max(0.0, deadline - time.monotonic()))
        if worker.proc.is_alive():
            worker.kill()
        worker.close()
    for proc in family:  # what the workers started and left behind
        try:
            proc.kill()
        except psutil.Error:
            pass


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of `process` and all its descendants, bytes (what a memory limit counts)."""
    total = 0
    with contextlib.suppress(psutil.Error):
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    return total
