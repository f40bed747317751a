"""Waiting on a condition in tests, instead of sleeping for a time that is long enough on most days."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = 60, every_s: float = 0.05) -> T:
    """Call `condition` until it returns something true, and return that; fail after `timeout_s`.

    The deadline is generous on purpose: a loaded machine makes a test slow, never wrong.

    Args:
        condition: Checks the state once; a true result ends the wait.
        what: The awaited state in words, for the failure message ("the shadow logged 20 answers").
        timeout_s: How long to keep trying.
        every_s: Pause between tries.

    Raises:
        AssertionError: `condition` stayed false for `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"Waited {timeout_s:g} s for {what}; last saw {found!r}.")
        time.sleep(every_s)
