"""Live views: outputs a cell shows while work runs, updated in place, and the hook that opens them.

A view is one display with a display id (`IPython.display.display(..., display_id=True)`),
redrawn through its handle's `update`: the notebook replaces the output, it does not append
one. Redraws are throttled to `UPDATE_EVERY_S`, with a last one always drawn at the end, so a
loop that advances a thousand times a second sends a few messages, not thousands.

Tracking, flows and serving sit below `plinth.notebook` and never import it: they ask the
`live_view` hook of `plinth.tracking.progress`, which `register` points at `live_view` here.
Views appear only where a kernel draws rich output; a terminal IPython keeps the rich bars.

A view that ends by drawing an object in full (a flow run's graph) says so with `shown_live`;
the object's formatter then draws a short line in place of a second copy, if the same cell ends
with that object. `register` hooks `new_cell` to IPython's `pre_run_cell` event, which forgets
them all, so a later cell showing the object draws it in full.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from plinth.core.errors import ConfigError, InvalidInput

UPDATE_EVERY_S = 0.25
"""Least seconds between two redraws of one view (the last redraw is never held back)."""

Bundle = dict[str, str]
"""A display's data by MIME type: 'text/html' for notebooks, 'text/plain' for anything else."""

_shown: set[str] = set()
"""What a live view of the cell running now has drawn in full, by key ("flow-run:ID")."""


def shown_live(key: str) -> None:
    """Remember that a live view of the cell running now drew the object `key` in full."""
    _shown.add(key)


def was_shown_live(key: str) -> bool:
    """Whether a live view of the cell running now drew the object `key` in full."""
    return key in _shown


def new_cell(info: object = None) -> None:
    """IPython's `pre_run_cell` callback: a new cell runs, and draws everything afresh."""
    _shown.clear()


def notebook_shell() -> Any | None:
    """The running IPython shell where it draws rich output (a kernel), else None.

    None outside IPython, and in a terminal IPython, whose own bars (rich) already draw in place.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return None
    terminal = sys.modules.get("IPython.terminal.interactiveshell")
    if terminal is not None and isinstance(shell, terminal.TerminalInteractiveShell):
        return None
    return shell


def live_view(kind: str, *args: Any) -> Any:
    """The `live_view` hook: a view of `kind` in the running notebook, or None outside one.

    Raises:
        ConfigError: kind "run" where no notebook runs (`run.live()` has nowhere to draw).
        InvalidInput: an unknown kind.
    """
    if notebook_shell() is None:
        from plinth.tracking.progress import outside_notebooks

        return outside_notebooks(kind, *args)
    if kind == "run":
        from plinth.notebook.live_run import RunView

        return RunView(*args)
    if kind == "flow":
        from plinth.notebook.live_flow import FlowView

        return FlowView(*args)
    if kind == "progress":
        from plinth.notebook.progress import notebook_progress

        return notebook_progress(*args)
    raise InvalidInput(f"No live view of kind {kind!r}; plinth draws 'run', 'flow' and 'progress'.")


class Display:
    """One output of the cell, shown now and replaced in place by `update`.

    Thread-safe: a background thread (a run's live chart) and the caller (its `stop`) may
    both redraw it.
    """

    def __init__(self, bundle: Bundle) -> None:
        from IPython.display import display

        self._lock = threading.Lock()
        self._drawn = time.monotonic()
        self._handle = display(bundle, raw=True, display_id=True)
        if self._handle is None:
            raise ConfigError("IPython returned no display handle; live views need IPython 7 or later.")

    def due(self) -> bool:
        """Whether `UPDATE_EVERY_S` has passed since the last redraw."""
        return time.monotonic() - self._drawn >= UPDATE_EVERY_S

    def update(self, bundle: Bundle) -> None:
        """Replace the output with `bundle` (whenever asked: callers check `due` first)."""
        with self._lock:
            self._handle.update(bundle, raw=True)
            self._drawn = time.monotonic()
