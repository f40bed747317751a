"""`run.live()`: a run's metrics as charts that redraw in the cell while the run is open.

A daemon thread reads the run from the store every `every` seconds (its status, then each
metric's history) and replaces the output: one line chart per metric of the user's, plinth's
own `system/*` metrics as sparklines folded away. When the stored run is no longer RUNNING,
or the run's `end` calls `stop`, the view draws once more and the thread ends. A read or draw
that fails is counted and its message shown in the view; the thread goes on, and nothing is
ever raised into the user's cell.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plinth.core.entities import Run, RunStatus
from plinth.notebook import svg
from plinth.notebook.html import badge, code, details, esc, head, muted, number
from plinth.notebook.live import Bundle, Display
from plinth.notebook.style import document
from plinth.notebook.tracking import is_bookkeeping

if TYPE_CHECKING:
    from plinth.store.base import Store
    from plinth.tracking.run import ActiveRun

CHARTS = 24
"""Metrics of the user's drawn as charts; the rest are counted."""
SYSTEM_LINES = 16
"""plinth's own metrics drawn as sparklines in the folded part."""


@dataclass
class Snapshot:
    """What one read of the store found: the run and each drawn metric's (steps, values)."""

    run: Run | None = None
    series: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)


class RunView:
    """The live view `ActiveRun.live` returns: redraws until the run ends or `stop()` is called."""

    def __init__(self, active: ActiveRun, store: Store, every: float) -> None:
        self.run_id = active.id
        self.every = every
        self.errors = 0
        self.last_error = ""
        self._name = active.name or active.id
        self._store = store
        self._flush = active.flush
        self._stopped = threading.Event()
        self._done = threading.Lock()  # the last draw happens once
        self._finished = False
        self._snapshot = Snapshot()
        self._display = Display(self._bundle(self._read(), final=False))
        self._thread = threading.Thread(target=self._loop, name=f"plinth-live-{self.run_id}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "stopped" if self._finished else f"every {self.every:g} s"
        return f"<RunView of run {self.run_id}, {state}>"

    def stop(self) -> None:
        """Draw the run one last time and stop redrawing (waits for the thread; never raises)."""
        self._stopped.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self._finish()

    def _loop(self) -> None:
        while not self._stopped.wait(self.every):
            snapshot = self._read()
            if snapshot.run is not None and snapshot.run.status is not RunStatus.RUNNING:
                break  # ended elsewhere (another process, `plinth runs kill`): draw it as stored
            self._draw(snapshot, final=False)
        self._finish()

    def _finish(self) -> None:
        with self._done:
            if self._finished:
                return
            self._finished = True
            self._draw(self._read(), final=True)

    def _read(self) -> Snapshot:
        """The run and its metrics as stored now; the last good snapshot when the read fails."""
        try:
            self._flush()
            run = self._store.get_run(self.run_id)
            series = {key: self._history(key) for key in _drawn_keys(run.metrics)}
            self._snapshot = Snapshot(run, series)
        except Exception as exc:  # shown in the view: a live chart must not break the user's cell
            self._failed(exc)
        return self._snapshot

    def _history(self, key: str) -> tuple[list[float], list[float]]:
        points = self._store.metric_history(self.run_id, key)
        return points["step"].tolist(), points["value"].tolist()

    def _draw(self, snapshot: Snapshot, *, final: bool) -> None:
        try:
            self._display.update(self._bundle(snapshot, final=final))
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _bundle(self, snapshot: Snapshot, *, final: bool) -> Bundle:
        return {"text/html": self._html(snapshot, final), "text/plain": self._text(snapshot, final)}

    def _html(self, snapshot: Snapshot, final: bool) -> str:
        run = snapshot.run
        status = run.status.value if run is not None else "RUNNING"
        state = "final" if final else f"live, every {self.every:g} s"
        title = head(
            badge(status),
            f'<span class="title">{esc(self._name)}</span>',
            code(self.run_id),
            f'<span class="muted">{esc(state)} · {time.strftime("%H:%M:%S")}</span>',
        )
        parts = [title, _charts(snapshot.series), _system(snapshot.series)]
        if self.errors:
            failed = f"{self.errors} reads failed; last: {self.last_error}"
            parts.append(f'<p class="bad" data-errors="{self.errors}">{esc(failed)}</p>')
        final_text = "true" if final else "false"
        return document("run-live", "".join(parts), run_id=self.run_id, status=status, final=final_text)

    def _text(self, snapshot: Snapshot, final: bool) -> str:
        run = snapshot.run
        status = run.status.value if run is not None else "RUNNING"
        latest = run.metrics if run is not None else {}
        own = ", ".join(f"{k}={number(latest[k])}" for k in sorted(latest) if not is_bookkeeping(k))
        ended = " (final)" if final else ""
        line = f"run {self._name} ({self.run_id}) {status}{ended}: {own or 'no metrics yet'}"
        return line + (f" [{self.errors} reads failed: {self.last_error}]" if self.errors else "")


def _drawn_keys(metrics: dict[str, float]) -> list[str]:
    own = sorted(k for k in metrics if not is_bookkeeping(k))[:CHARTS]
    kept = sorted(k for k in metrics if is_bookkeeping(k))[:SYSTEM_LINES]
    return own + kept


def _charts(series: dict[str, tuple[list[float], list[float]]]) -> str:
    own = [k for k in series if not is_bookkeeping(k)]
    if not own:
        return muted("No metrics logged yet: they appear here as the run logs them.")
    cells = [_chart(key, *series[key]) for key in own]
    return f'<div class="charts">{"".join(cells)}</div>'


def _chart(key: str, steps: Sequence[float], values: Sequence[float]) -> str:
    last = f"{number(values[-1])} at step {number(steps[-1])}" if values else "no points"
    chart = svg.line_chart(steps, values, width=340, height=150, label=f"{key} by step") if values else ""
    return (
        f'<div class="chart" data-metric="{esc(key)}" data-points="{len(values)}">'
        f'<b>{esc(key)}</b> <span class="muted">{esc(last)}</span>{chart}</div>'
    )


def _system(series: dict[str, tuple[list[float], list[float]]]) -> str:
    kept = [k for k in series if is_bookkeeping(k)]
    if not kept:
        return ""
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{svg.sparkline(series[k][1], label=k)}</td>"
        f'<td class="num">{number(series[k][1][-1]) if series[k][1] else "—"}</td></tr>'
        for k in kept
    )
    return details(f"{len(kept)} system metrics", f"<table>{rows}</table>", kind="system")
