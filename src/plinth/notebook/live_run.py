"""`run.live()`: a run's metrics as charts that redraw in the cell while the run is open.

A daemon thread reads the run every `every` seconds (`Store.get_run`: its status and the latest
value of each metric, one row per metric however many points were logged since the last read)
and adds each value that changed to that metric's series, kept in memory and folded when long
(`live_series`); no tick reads a metric's history, since the store can only hand over all of it.
While the run is open each chart is therefore its metric sampled every `every` seconds, over the
seconds since the view opened. When the stored run is no longer RUNNING, or the run's `end` calls
`stop`, the view reads each drawn metric's whole history once, and draws it by step, as stored,
for the last time; the thread ends. A read or draw that fails is counted and its message shown in
the view; the thread goes on, and nothing is ever raised into the user's cell.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from plinth.core.entities import Run, RunStatus
from plinth.notebook import svg
from plinth.notebook.html import badge, code, details, esc, head, muted, number
from plinth.notebook.live import Bundle, Display
from plinth.notebook.live_series import Series
from plinth.notebook.style import document
from plinth.notebook.tracking import is_bookkeeping

if TYPE_CHECKING:
    from plinth.store.base import Store
    from plinth.tracking.run import ActiveRun

CHARTS = 24
"""Metrics of the user's drawn as charts; the rest are counted."""
SYSTEM_LINES = 16
"""plinth's own metrics drawn as sparklines in the folded part."""


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
        self._lock = threading.Lock()  # one read and draw at a time: the thread's, `refresh`, the last
        self._finished = False
        self._opened = time.monotonic()
        self._run: Run | None = None
        self._series: dict[str, Series] = {}
        self._by_step = False
        self._sample()
        self._display = Display(self._bundle(final=False))
        self._thread = threading.Thread(target=self._loop, name=f"plinth-live-{self.run_id}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "stopped" if self._finished else f"every {self.every:g} s"
        return f"<RunView of run {self.run_id}, {state}>"

    def refresh(self) -> None:
        """Read the run's latest metrics and redraw now, as the thread does every `every` seconds."""
        with self._lock:
            if self._finished:
                return
            self._sample()
            self._draw(final=False)

    def stop(self) -> None:
        """Draw the run one last time, by step as stored, and stop redrawing (waits for the
        thread; never raises)."""
        self._stopped.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self._finish()

    def _loop(self) -> None:
        while not self._stopped.wait(self.every):
            with self._lock:
                self._sample()
                if self._run is not None and self._run.status is not RunStatus.RUNNING:
                    break  # ended elsewhere (another process, `plinth runs kill`): draw it as stored
                self._draw(final=False)
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._read_histories()
            self._draw(final=True)

    def _sample(self) -> None:
        """Add each drawn metric's latest value, where it changed, at the seconds since opening."""
        try:
            self._flush()
            run = self._store.get_run(self.run_id)
        except Exception as exc:  # shown in the view: a live chart must not break the user's cell
            self._failed(exc)
            return
        self._run = run
        at = time.monotonic() - self._opened
        for key in _drawn_keys(run.metrics):
            series = self._series.setdefault(key, Series())
            if series.changed_by(run.metrics[key]):
                series.add(at, run.metrics[key])

    def _read_histories(self) -> None:
        """Every point of each drawn metric, by step, read once; the samples stay when it fails."""
        try:
            self._flush()
            run = self._store.get_run(self.run_id)
            series = {}
            for key in _drawn_keys(run.metrics):
                points = self._store.metric_history(self.run_id, key)
                series[key] = Series.of(points["step"], points["value"])
        except Exception as exc:
            self._failed(exc)
            return
        self._run, self._series, self._by_step = run, series, True

    def _draw(self, *, final: bool) -> None:
        try:
            self._display.update(self._bundle(final=final))
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _bundle(self, *, final: bool) -> Bundle:
        return {"text/html": self._html(final), "text/plain": self._text(final)}

    def _html(self, final: bool) -> str:
        status = self._run.status.value if self._run is not None else "RUNNING"
        state = "final" if final else f"live, every {self.every:g} s"
        title = head(
            badge(status),
            f'<span class="title">{esc(self._name)}</span>',
            code(self.run_id),
            f'<span class="muted">{esc(state)} · {time.strftime("%H:%M:%S")}</span>',
        )
        parts = [title, self._charts(), _system(self._series)]
        if self.errors:
            failed = f"{self.errors} reads failed; last: {self.last_error}"
            parts.append(f'<p class="bad" data-errors="{self.errors}">{esc(failed)}</p>')
        final_text = "true" if final else "false"
        return document("run-live", "".join(parts), run_id=self.run_id, status=status, final=final_text)

    def _charts(self) -> str:
        own = [k for k in self._series if not is_bookkeeping(k)]
        if not own:
            return muted("No metrics logged yet: they appear here as the run logs them.")
        cells = [self._chart(key, self._series[key]) for key in own]
        return f'<div class="charts">{"".join(cells)}</div>'

    def _chart(self, key: str, series: Series) -> str:
        if self._by_step:
            axis, note = "step", f"{series.seen} points, last at step {number(series.xs[-1])}"
        else:
            axis, note = "seconds", f"sampled every {self.every:g} s"
        last = number(series.last) if series.last is not None else "no points"
        chart = (
            svg.line_chart(series.xs, series.ys, width=340, height=150, label=f"{key} by {axis}")
            if series.xs
            else ""
        )
        return (
            f'<div class="chart" data-metric="{esc(key)}" data-points="{series.seen}" data-x="{axis}" '
            f'data-last="{esc(last)}">'
            f'<b>{esc(key)}</b> <span class="muted">{esc(last)} · {esc(note)}</span>{chart}</div>'
        )

    def _text(self, final: bool) -> str:
        run = self._run
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


def _system(series: dict[str, Series]) -> str:
    kept = [k for k in series if is_bookkeeping(k)]
    if not kept:
        return ""
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{svg.sparkline(series[k].ys, label=k)}</td>"
        f'<td class="num">{number(series[k].last)}</td></tr>'
        for k in kept
    )
    return details(f"{len(kept)} system metrics", f"<table>{rows}</table>", kind="system")
