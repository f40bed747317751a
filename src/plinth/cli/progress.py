"""A running flow's progress on a terminal: a live table of its steps, counted by state."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rich.live import Live

from plinth.cli.render import console, table

if TYPE_CHECKING:
    from plinth.flows.driver import FlowDriver

STATES = ("waiting", "ready", "running", "done", "cached", "failed", "cancelled")
"""The columns of the table: the states a step call moves through, in order."""

Observer = Callable[["FlowDriver"], None]


@contextlib.contextmanager
def flow_progress(title: str) -> Iterator[Observer | None]:
    """An observer to pass to `Flow.run(observer=...)` that redraws the steps table in place.

    Yields None where stdout is not a terminal, so piped output holds only the final summary.
    The table is removed when the block ends.

    Example:
        >>> with flow_progress(f"flow {chosen.name}") as observer:  # doctest: +SKIP
        ...     result = chosen.run(observer=observer)
    """
    if not sys.stdout.isatty():
        yield None
        return
    columns = ["step", *STATES]
    with Live(table(title, columns, []), console=console, transient=True) as live:

        def observe(driver: FlowDriver) -> None:
            rows = [(name, *(c.get(s, 0) or "" for s in STATES)) for name, c in driver.counts().items()]
            live.update(table(title, columns, rows))

        yield observe
