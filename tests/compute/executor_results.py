"""Waiting out an executor in tests: every result by task id, within a time budget."""

from __future__ import annotations

import time

from plinth.compute.base import Executor, TaskResult


def drain(executor: Executor, timeout: float = 120.0) -> dict[str, TaskResult]:
    """Wait for every queued and running task (well under the 600 s that sleeping tasks ask for)."""
    results: dict[str, TaskResult] = {}
    deadline = time.monotonic() + timeout
    while executor.running() and time.monotonic() < deadline:
        for result in executor.wait(timeout=1.0):
            results[result.task_id] = result
    for result in executor.wait(timeout=0):
        results[result.task_id] = result
    assert not executor.running(), "tasks still running after the test's time budget"
    return results
