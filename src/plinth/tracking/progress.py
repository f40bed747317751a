"""Progress bars on a terminal or in a notebook, silence elsewhere: one helper for every long loop.

Artifact uploads and downloads count files, batch inference counts rows; both draw the same bar
(description, bar, done/total, rate, time left) on stderr, so stdout keeps only what a command
prints and a piped or logged run shows no bar at all. In a notebook, where stderr is no terminal,
the bar is the notebook's own (`plinth.notebook.progress`).

Notebook views reach tracking, flows and serving through the `live_view` hook rather than an
import (`plinth.notebook` sits above them): `plinth.notebook.register` provides it inside an
IPython kernel; until then `outside_notebooks` answers that there is no view to show.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from plinth.core import hooks
from plinth.core.errors import ConfigError

LIVE_VIEW = "live_view"
"""The hook: `(kind, *args)` -> a live view of kind "run", "flow" or "progress", or None."""


class LiveView(Protocol):
    """A view redrawn in place while work runs (what `ActiveRun.live` returns)."""

    def stop(self) -> None:
        """Draw one last time and stop redrawing."""


def live_view(kind: str, *args: Any) -> Any:
    """The notebook's live view of `kind` for `args`, or None where no notebook shows one.

    "run" (active run, store, every) -> a `LiveView`; "flow" (flow name, flow run id) -> an
    object with `observe(driver)` and `close()`; "progress" (description, total, unit) -> a
    context manager yielding `advance(n)`.

    Raises:
        ConfigError: `kind` "run" outside a notebook: that view has no fallback.
    """
    return hooks.call(LIVE_VIEW, kind, *args)


def outside_notebooks(kind: str, *args: Any) -> None:
    """The `live_view` hook where no notebook is running: no view; `run.live()` says why."""
    if kind == "run":
        raise ConfigError(
            "run.live() draws in a notebook, and no IPython kernel is running here: call it in "
            "Jupyter, VS Code or Colab. Elsewhere read the metrics with plinth.metric_history(run_id, "
            "key), or follow the run on its page in `plinth ui`."
        )


hooks.provide(LIVE_VIEW, outside_notebooks)


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

    In a notebook the bar is the notebook's (a widget, or a line of text updated in place).
    Elsewhere nothing is drawn when stderr is not a terminal; nowhere when there are fewer than
    two units to count.

    Example:
        >>> with progress("Scoring", total=10, unit="rows") as advance:
        ...     advance(4)
    """
    if not show or (total is not None and total < 2):
        yield _nothing
        return
    in_notebook = live_view("progress", description, total, unit)
    if in_notebook is not None:
        with in_notebook as advance:
            yield advance
        return
    if not sys.stderr.isatty():
        yield _nothing
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


def _nothing(n: int) -> None:
    """`advance` where no bar is drawn."""
