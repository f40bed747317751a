"""Running a coroutine to its end from a test, whatever this thread's state."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on a thread of its own. The test's thread may have an event loop
    running: a Playwright browser that a UI test of the same worker left open keeps one, and
    `asyncio.run` refuses to start beside it."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main).result()
