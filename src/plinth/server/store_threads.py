"""The threads a server process runs its store calls in.

Store calls block (SQLite, a PostgreSQL round trip), so the server runs them in threads and
keeps its event loop free. anyio's `to_thread.run_sync` costs about 60 µs a call over a plain
executor's hand-off, for looking up its backend, its limiter and its cancel scopes on every
call: a fifth of a small request's work. A `ThreadPoolExecutor` under `run_in_executor` costs
about 55 µs more than need be, for a concurrent future with its lock and condition, a work
item, and the callbacks that copy its state onto an asyncio future. `StoreThreads` is a fixed
pool fed first come first served from one queue: a thread calls the function in the caller's
context and hands the result straight to the caller's future on its event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

STORE_THREADS = 4
"""Store calls one dispatcher runs at once. Each holds Python's interpreter lock for most of
its work, so many at once mostly wait on each other and on the database's write lock: a few
threads keep a database's round trips overlapping, and a queue in front of them keeps
every caller's wait to the calls ahead of it."""

_Work = tuple[
    asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context, Callable[..., Any], tuple[Any, ...]
]


class StoreThreads:
    """A pool of `threads` threads; `await run(fn, *args)` calls `fn(*args)` in one of them.

    The threads start on first use and end with `close()`, once the pool is garbage-collected
    (they hold its queue, never the pool), or with the interpreter (they are daemons: a call
    still running when the process exits is abandoned, and its transaction rolls back with the
    connection).
    """

    def __init__(self, threads: int = STORE_THREADS) -> None:
        self._size = threads
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        weakref.finalize(self, _stop, self._work, threads)

    async def run(self, fn: Callable[..., T], /, *args: object) -> T:
        """`fn(*args)` in a pool thread, once one is free; its result, or its exception raised here.

        Raises:
            RuntimeError: the pool is closed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if len(self._threads) < self._size:
            self._start()
        if self._closed:
            raise RuntimeError("The store's threads are closed: the server is stopping.")
        self._work.put((loop, future, contextvars.copy_context(), fn, args))
        return await future

    def close(self) -> None:
        """Let the running calls finish and end the threads (later calls fail)."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._work.put(None)

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                return
            while len(self._threads) < self._size:
                thread = threading.Thread(
                    target=_serve, args=(self._work,), name=f"plinth-store_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)


def _stop(work: queue.SimpleQueue[_Work | None], threads: int) -> None:
    for _ in range(threads):
        work.put(None)


def _serve(work: queue.SimpleQueue[_Work | None]) -> None:
    while (item := work.get()) is not None:
        loop, future, context, fn, args = item
        del item
        try:
            result = context.run(fn, *args)
        except BaseException as exc:  # handed to the caller, whatever it is
            _hand(loop, future, None, exc)
        else:
            _hand(loop, future, result, None)
        del loop, future, context, fn, args


def _hand(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, error: BaseException | None
) -> None:
    try:
        loop.call_soon_threadsafe(_settle, future, result, error)
    except RuntimeError:  # the loop is closed: nobody waits for the answer
        pass


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # its caller was cancelled (the client went away)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
