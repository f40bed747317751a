"""Progress bars on a terminal, silence elsewhere: one helper for every long loop in plinth.

Artifact uploads and downloads count files, batch inference counts rows; both draw the same bar
(description, bar, done/total, rate, time left) on stderr, so stdout keeps only what a command
prints and a piped or logged run shows no bar at all.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress(
    description: str, total: int | None, *, unit: str = "items", show: bool = True
) -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n)` function that drives a bar on stderr when it is a terminal.

    Args:
        description: the text left of the bar ("Storing artifacts").
        total: how many `unit`s there are; None when unknown (the bar counts up, "10/?").
        unit: what is counted, shown after the count and in the rate ("rows", "rows/s").
        show: False draws nothing, whatever stderr is.

    Nothing is drawn when stderr is not a terminal or there are fewer than two units to count.

    Example:
        >>> with progress("Scoring", total=10, unit="rows") as advance:
        ...     advance(4)
    """
    if not show or not sys.stderr.isatty() or (total is not None and total < 2):
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total, unit=unit, rate="")

        def advance(n: int) -> None:
            speed = bar.tasks[0].speed
            bar.update(task, advance=n, rate=f"{speed:,.0f} {unit}/s" if speed else "")

        yield advance
