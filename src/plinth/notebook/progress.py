"""A progress bar in the notebook where the terminal draws rich's: batch prediction's rows, artifacts' files.

With ipywidgets installed the bar is a widget (a progress bar and a line of text beside it);
without, it is one output updated in place through its display id: a `<progress>` element and
the same line, and that line alone as `text/plain`. Either way redraws are throttled to
`UPDATE_EVERY_S`, and the end draws the final count (100% when the work is done, where it
stopped and why when it failed), which stays in the cell.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from plinth.core.units import format_duration
from plinth.notebook.html import esc
from plinth.notebook.live import UPDATE_EVERY_S, Display
from plinth.notebook.style import document


def notebook_progress(
    description: str, total: int | None, unit: str
) -> contextlib.AbstractContextManager[Callable[[int], None]]:
    """A context manager yielding `advance(n)`, drawing a notebook bar of `total` `unit`s."""
    return _progress(description, total, unit)


@contextlib.contextmanager
def _progress(description: str, total: int | None, unit: str) -> Iterator[Callable[[int], None]]:
    bar = WidgetBar(description, total, unit) if _widgets() is not None else TextBar(description, total, unit)
    outcome = "done"
    try:
        yield bar.advance
    except BaseException as exc:
        outcome = f"stopped: {type(exc).__name__}"
        raise
    finally:
        bar.finish(outcome)


def _widgets() -> Any | None:
    """The ipywidgets module, or None where it is not installed."""
    try:
        import ipywidgets  # type: ignore[import-untyped]  # no stubs
    except ImportError:
        return None
    return ipywidgets


class Count:
    """How far a bar is: done of total units, and the line of text that says so."""

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done = 0
        self.started = time.monotonic()
        self.drawn = 0.0

    def due(self) -> bool:
        """Whether a redraw is due (`UPDATE_EVERY_S` since the last)."""
        now = time.monotonic()
        if now - self.drawn < UPDATE_EVERY_S:
            return False
        self.drawn = now
        return True

    def share(self) -> float | None:
        """Done over total, from 0 to 1; None when the total is unknown."""
        return min(1.0, self.done / self.total) if self.total else None

    def line(self, outcome: str | None = None) -> str:
        """'Scoring: 45,000/100,000 rows (45%) · 12,345 rows/s · 4.5 s left' (or how it ended)."""
        took = time.monotonic() - self.started
        share = self.share()
        count = f"{self.done:,}/{self.total:,}" if self.total is not None else f"{self.done:,}/?"
        shown = f" ({share:.0%})" if share is not None else ""
        parts = [f"{self.description}: {count} {self.unit}{shown}"]
        if took > 0 and self.done:
            parts.append(f"{self.done / took:,.0f} {self.unit}/s")
        if outcome is not None:
            parts.append(f"{outcome} in {format_duration(took)}")
        elif share is not None and 0 < share < 1:
            parts.append(f"{format_duration(took * (1 - share) / share)} left")
        return " · ".join(parts)


class TextBar:
    """The bar without widgets: one output of HTML and text, replaced in place."""

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self.count = Count(description, total, unit)
        self._display = Display(self._bundle(None))

    def advance(self, n: int) -> None:
        """Count `n` more units; redraw when due."""
        self.count.done += n
        if self.count.due():
            self._display.update(self._bundle(None))

    def finish(self, outcome: str) -> None:
        """Draw the final count and how it ended."""
        self._display.update(self._bundle(outcome))

    def _bundle(self, outcome: str | None) -> dict[str, str]:
        line = self.count.line(outcome)
        share = self.count.share()
        value = f' value="{share:.4f}"' if share is not None else ""
        state = "running" if outcome is None else ("done" if outcome == "done" else "stopped")
        html = document(
            "progress",
            f'<progress max="1"{value}></progress> <span class="muted">{esc(line)}</span>',
            state=state,
            done=str(self.count.done),
        )
        return {"text/html": html, "text/plain": line}


class WidgetBar:
    """The bar as ipywidgets: an IntProgress and a label, their values set as work advances."""

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        from IPython.display import display

        widgets = _widgets()
        assert widgets is not None  # chosen by `_progress` only where it imports
        self.count = Count(description, total, unit)
        self.bar = widgets.IntProgress(value=0, min=0, max=max(total or 1, 1), bar_style="info")
        self.label = widgets.Label(value=self.count.line())
        self.box = widgets.HBox([self.bar, self.label])
        display(self.box)

    def advance(self, n: int) -> None:
        """Count `n` more units; move the bar when due."""
        self.count.done += n
        if self.count.due():
            self._draw(None)

    def finish(self, outcome: str) -> None:
        """Fill the bar (green when done, red when stopped) and say how it ended."""
        self._draw(outcome)
        self.bar.bar_style = "success" if outcome == "done" else "danger"

    def _draw(self, outcome: str | None) -> None:
        total = self.count.total
        if total is None:  # an unknown total: the bar fills at the end only
            self.bar.value = 1 if outcome == "done" else 0
        else:
            self.bar.value = min(self.count.done, total)
        self.label.value = self.count.line(outcome)
