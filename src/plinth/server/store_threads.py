"""The threads a server process runs its store calls in.

Store calls block (SQLite, a PostgreSQL round trip), so the server runs them in threads and
keeps its event loop free. anyio's `to_thread.run_sync` costs about 60 µs a call over a plain
executor's hand-off, for looking up its backend, its limiter and its cancel scopes on every
call: a fifth of a small request's work. `StoreThreads` is a fixed pool fed first come first
served, as the limiter was, with the caller's context variables carried into the thread.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

STORE_THREADS = 4
"""Store calls one dispatcher runs at once. Each holds Python's interpreter lock for most of
its work, so many at once mostly wait on each other and on the database's write lock: a few
threads keep a database's round trips overlapping, and a queue in front of them keeps
every caller's wait to the calls ahead of it."""


class StoreThreads:
    """A pool of `threads` threads; `await run(fn, *args)` calls `fn(*args)` in one of them.

    The threads start on first use and end when the pool is garbage-collected or the
    interpreter exits.
    """

    def __init__(self, threads: int = STORE_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="plinth-store")

    async def run(self, fn: Callable[..., T], /, *args: object) -> T:
        """`fn(*args)` in a pool thread, once one is free; its result, or its exception raised here."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, contextvars.copy_context().run, fn, *args)

    def close(self) -> None:
        """Let the running calls finish and end the threads (later calls would fail)."""
        self._pool.shutdown(wait=False)
