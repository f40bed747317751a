"""Adaptive micro-batching: concurrent requests for one model version share a predict call.

A request's rows join the open batch; the batch is predicted when it holds `max_batch` rows,
when `max_wait_ms` has passed since it opened, or at once when nothing else is waiting (so
a lone request pays no wait). Each caller gets back exactly its own rows' answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np


class Batcher:
    """Gathers parts (each a 2-D block of rows) and predicts them together.

    Args:
        predict: called with a list of parts; returns one output whose first axis covers all rows.
        max_batch: most rows per predict call.
        max_wait_ms: longest the first request of a batch waits for company.
        observe: called with the batch size after each predict (for metrics).
    """

    def __init__(
        self,
        predict: Callable[[list[Any]], Any],
        max_batch: int,
        max_wait_ms: float,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.observe = observe
        self._pending: list[tuple[Any, int, asyncio.Future[Any]]] = []
        self._rows = 0
        self._flush: asyncio.Handle | None = None

    async def submit(self, part: Any, rows: int) -> Any:
        """Predict `part` (possibly with others) and return the output for its rows."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((part, rows, future))
        self._rows += rows
        if self._rows >= self.max_batch:
            self._run()
        elif self._flush is None:
            # Let every request already readable on the loop join first; wait longer only when asked.
            self._flush = (
                loop.call_later(self.max_wait_s, self._run) if self.max_wait_s else loop.call_soon(self._run)
            )
        return await future

    def _run(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        pending, self._pending, self._rows = self._pending, [], 0
        if not pending:
            return
        try:
            output = self.predict([p for p, _, _ in pending])
        except Exception as exc:  # every caller of this batch gets the error
            for _, _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        if self.observe is not None:
            self.observe(sum(n for _, n, _ in pending))
        start = 0
        for _, n, future in pending:
            if not future.done():
                future.set_result(output[start : start + n])
            start += n


def split_output(output: Any) -> Any:
    """Predictions as an indexable array (lists and Series become NumPy)."""
    return output if isinstance(output, np.ndarray) else np.asarray(output)


def now_s() -> float:
    """Monotonic seconds (for latencies)."""
    return time.perf_counter()
