"""Live views in a real IPython shell: `run.live()`, a flow's steps advancing, batch prediction's bar."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from notebook_markup import Chart, charts, text_of, with_data

import plinth
import plinth.notebook
from plinth.core.errors import ConfigError, InvalidInput, StoreError
from plinth.notebook import live
from plinth.notebook.html import number
from plinth.notebook.live_run import RunView
from plinth.notebook.live_series import KEPT, Series
from plinth.serving.batch import batch_predict
from plinth.tracking.context import Backend

RESOURCES = Path(__file__).parent.parent / "resources"
sys.path.insert(0, str(RESOURCES))
import flows_example as ex  # noqa: E402

WAIT_S = 30.0
"""The longest a test waits for a redraw it expects (a bound, never how long it takes)."""


@dataclass(frozen=True)
class Output:
    """One message the shell published: a new display, or an update of one by its id."""

    data: dict[str, Any]
    display_id: str | None
    update: bool

    @property
    def html(self) -> str:
        return str(self.data.get("text/html", ""))


class Recorder(DisplayPublisher):
    """The shell's display publisher, keeping what would go to the notebook (from any thread)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outputs: list[Output] = []
        self.changed = threading.Condition()

    def publish(  # type: ignore[override]  # IPython's signature, keyword-only extras
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        with self.changed:
            self.outputs.append(Output(dict(data), (transient or {}).get("display_id"), update))
            self.changed.notify_all()

    def wait_for(self, found: Callable[[Output], bool]) -> Output:
        """The first output `found` accepts, waiting for it to be published."""
        with self.changed:
            assert self.changed.wait_for(lambda: any(found(o) for o in self.outputs), WAIT_S), self.outputs[
                -1:
            ]
            return next(o for o in self.outputs if found(o))

    def snapshot(self) -> list[Output]:
        with self.changed:
            return list(self.outputs)


@pytest.fixture
def shell() -> Iterator[Recorder]:
    """A real IPython shell with plinth registered, as a notebook's kernel has; what it displays is kept."""
    ip = InteractiveShell.instance()
    recorder = Recorder(shell=ip)
    ip.display_pub = recorder
    plinth.notebook.register(ip)
    yield recorder
    plinth.notebook.unregister(ip)
    InteractiveShell.clear_instance()


@pytest.fixture
def every_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redraw on every change, so the updates a test sees do not depend on timing."""
    monkeypatch.setattr(live, "UPDATE_EVERY_S", 0.0)


def charted(output: Output, key: str, last: str) -> bool:
    """Whether `output` is a redraw charting metric `key` with `last` as its latest value."""
    return output.update and bool(with_data(output.html, "div", metric=key, last=last))


def live_threads(run_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"plinth-live-{run_id}"]


def line_points(chart: Chart) -> int:
    """The points a line chart draws: its path's vertices and its lone points (not the last mark)."""
    vertices = sum(len(re.findall(r"[ML]", path.get("d", ""))) for path in chart.all("path"))
    return vertices + len(chart.all("circle")) - 1


class Counting:
    """The run's store, counting the metric rows each read returns (latest values, histories)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.latest_rows = 0
        self.history_rows = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def get_run(self, run_id: str, **kwargs: Any) -> Any:
        run = self._store.get_run(run_id, **kwargs)
        self.latest_rows += len(run.metrics)
        return run

    def metric_history(self, run_id: str, key: str) -> Any:
        points = self._store.metric_history(run_id, key)
        self.history_rows += len(points)
        return points


# run.live() ------------------------------------------------------------------------------------
def test_run_live_redraws_metrics_as_they_are_logged_and_stops_when_the_run_ends(
    tracking: Backend, shell: Recorder
) -> None:
    with plinth.start_run(experiment="nb-live", name="warmup") as run:
        view = run.live(every=0.05)
        first = shell.snapshot()[0]
        assert not first.update and first.display_id
        assert with_data(first.html, "div", plinth="run-live", run_id=run.id, final="false")
        assert "No metrics logged yet" in text_of(first.html)

        run.log_metric("loss", 0.5, step=0)
        run.log_metric("loss", 0.25, step=1)
        shell.wait_for(lambda o: charted(o, "loss", "0.250"))
        run.log_metric("acc", 0.875, step=1)
        drawn = shell.wait_for(lambda o: charted(o, "acc", "0.875"))
        assert with_data(drawn.html, "div", metric="acc", x="seconds")  # sampled while it runs
        assert [c.alt.split(":")[0] for c in charts(drawn.html)][-1] == "acc by seconds"
        assert "acc=0.875" in drawn.data["text/plain"]

    # the run's end drew the view a last time, every point by step as stored, and stopped its thread
    outputs = shell.snapshot()
    last = outputs[-1]
    assert with_data(last.html, "div", plinth="run-live", status="FINISHED", final="true")
    assert with_data(last.html, "div", metric="loss", points="2", x="step")
    loss = next(c for c in charts(last.html) if c.alt.startswith("loss by step"))
    assert "2 points" in loss.alt and "last 0.250 at 1" in loss.alt and line_points(loss) == 2
    assert {o.display_id for o in outputs} == {first.display_id}  # one output, updated in place
    assert all(o.update for o in outputs[1:])
    assert live_threads(run.id) == [] and "stopped" in repr(view)
    view.stop()  # stopping again draws nothing more
    assert len(shell.snapshot()) == len(outputs)


def test_a_tick_reads_each_metric_s_latest_value_however_many_points_came(
    tracking: Backend, shell: Recorder
) -> None:
    with plinth.start_run(experiment="nb-live", system_metrics=False, capture_env=False) as run:
        store = Counting(tracking.store)
        view = RunView(run, store, every=3600.0)  # its thread waits: the test ticks it
        for first, new in ((0, 500), (500, 1000)):
            steps = list(range(first, first + new))
            run.log_metric_points("loss", [1 / (1 + step) for step in steps], steps=steps)
            store.latest_rows = store.history_rows = 0
            view.refresh()
            assert (store.latest_rows, store.history_rows) == (1, 0)  # one row: loss's latest value
            assert charted(shell.snapshot()[-1], "loss", number(1 / (first + new)))
        view.stop()
    assert store.history_rows == 1500  # the end reads the history once, to draw it by step
    final = shell.snapshot()[-1].html
    assert with_data(final, "div", metric="loss", points="1500", x="step")
    assert 0 < line_points(charts(final)[0]) <= 2 * 340  # a few points per pixel, not 1500


def test_a_long_series_is_folded_keeping_extremes_and_its_last_point() -> None:
    series = Series()
    for i in range(100_000):
        series.add(float(i), 10.0 if i == 54_321 else math.sin(i / 500))
    assert series.seen == 100_000 and len(series.xs) <= KEPT
    assert max(series.ys) == 10.0  # the spike survives
    assert (series.xs[-1], series.last) == (99_999.0, math.sin(99_999 / 500))
    assert series.xs == sorted(series.xs)
    whole = Series.of(np.arange(5000.0), np.arange(5000.0))
    assert whole.seen == 5000 and len(whole.xs) <= KEPT and whole.last == 4999.0


def test_run_live_counts_failed_reads_in_the_view_and_never_raises(
    tracking: Backend, shell: Recorder
) -> None:
    class Unreachable:
        """The run's store, whose reads fail as a store gone away does."""

        def __init__(self, store: Any) -> None:
            self._store = store

        def __getattr__(self, name: str) -> Any:
            return getattr(self._store, name)

        def get_run(self, run_id: str, **kwargs: Any) -> Any:
            raise StoreError("database is unreachable")

    with plinth.start_run(experiment="nb-live") as run:
        run.log_metric("loss", 1.0)
        view = RunView(run, Unreachable(tracking.store), every=0.05)
        shown = shell.wait_for(lambda o: o.update and "data-errors" in o.html)
        assert "database is unreachable" in text_of(shown.html)
        run.log_metric("loss", 0.5)  # the cell goes on
        view.stop()
    assert view.errors >= 2 and "StoreError" in view.last_error
    assert with_data(shell.snapshot()[-1].html, "div", plinth="run-live", final="true")


def test_run_live_outside_a_notebook_says_it_needs_one(tracking: Backend) -> None:
    with plinth.start_run(experiment="nb-live") as run:
        with pytest.raises(ConfigError, match="IPython kernel"):
            run.live()
        with pytest.raises(InvalidInput, match="seconds between redraws"):
            run.live(every=0)


def test_an_open_runs_view_says_run_live_redraws_it(tracking: Backend, shell: Recorder) -> None:
    with plinth.start_run(experiment="nb-live") as run:
        open_html = plinth.notebook.to_html(run)
        assert open_html is not None and with_data(open_html, "p", note="live")
        assert "run.live()" in text_of(open_html)
    ended = plinth.notebook.to_html(run)
    assert ended is not None and not with_data(ended, "p", note="live")


# flows -----------------------------------------------------------------------------------------
def test_a_flow_run_in_a_notebook_shows_its_steps_advancing_then_the_final_run(
    tracking: Backend, shell: Recorder, every_change: None
) -> None:
    result = ex.pipeline.run(lr=0.2)
    outputs = shell.snapshot()
    first, last = outputs[0], outputs[-1]
    assert not first.update
    assert with_data(first.html, "div", plinth="flow-live", flow_run_id=result.id, done="0")
    assert {o.display_id for o in outputs} == {first.display_id}

    advancing = [o for o in outputs[1:-1] if with_data(o.html, "div", plinth="flow-live")]
    assert advancing, "no redraw while the steps ran"
    done = [int(with_data(o.html, "div", plinth="flow-live")[0]["data-done"]) for o in advancing]
    assert done == sorted(done)  # steps only ever advance

    assert last.update and with_data(last.html, "div", plinth="flow-run", status="FINISHED")
    nodes = {a["data-node-id"]: a["data-status"] for a in with_data(last.html, "g") if "data-node-id" in a}
    assert nodes == {
        c: "FINISHED" for c in ["load#0", "train#0", "train#1", "train#2", "train#3", "pick_best#0"]
    }
    assert "6/6 steps done" in last.data["text/plain"]


def test_a_cell_ending_with_the_flow_result_draws_its_graph_once(tracking: Backend, shell: Recorder) -> None:
    ip = InteractiveShell.instance()
    ip.user_ns["ex"] = ex
    ip.run_cell("result = ex.pipeline.run(lr=0.2)")
    result = ip.user_ns["result"]
    [live_end] = [o for o in shell.snapshot() if with_data(o.html, "div", plinth="flow-run")]
    assert len(charts(live_end.html)) == 1  # the live view ended on the graph

    in_that_cell = ip.display_formatter.format(result)[0]["text/html"]
    assert with_data(in_that_cell, "div", plinth="flow-result", flow_run_id=result.id, drawn="above")
    assert charts(in_that_cell) == [] and "drawn above" in text_of(in_that_cell)

    ip.run_cell("pass")  # a later cell shows the result in full
    later = ip.display_formatter.format(result)[0]["text/html"]
    assert with_data(later, "div", plinth="flow-run", flow_run_id=result.id, status="FINISHED")
    assert len(charts(later)) == 1


def test_a_flow_given_an_observer_draws_nothing_of_its_own(tracking: Backend, shell: Recorder) -> None:
    seen: list[int] = []
    ex.pipeline.run(lr=0.2, observer=lambda driver: seen.append(len(driver.futures)))
    assert seen and shell.snapshot() == []


# batch prediction ------------------------------------------------------------------------------
class Doubler:
    """A model of the plain-Python flavor."""

    def predict(self, frame: Any) -> Any:
        return frame["x"] * 2


@pytest.fixture
def rows(tracking: Backend, tmp_path: Path) -> Path:
    """150 rows to score with the model 'doubler'."""
    frame = pd.DataFrame({"x": np.arange(150, dtype="float64")})
    plinth.register_model("doubler", Doubler(), input_example=frame.head(3))
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_batch_prediction_without_widgets_draws_a_line_updated_to_100_percent(
    rows: Path, tmp_path: Path, shell: Recorder, every_change: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed: `import ipywidgets` fails
    batch_predict("doubler", rows, tmp_path / "out.parquet", batch_size=40)
    outputs = shell.snapshot()
    assert not outputs[0].update and {o.display_id for o in outputs} == {outputs[0].display_id}
    bars = [with_data(o.html, "div", plinth="progress")[0] for o in outputs]
    assert [int(b["data-done"]) for b in bars] == [
        0,
        40,
        80,
        120,
        150,
        150,
    ]  # one redraw per chunk, then the end
    assert bars[-1]["data-state"] == "done" and bars[0]["data-state"] == "running"
    assert "150/150 rows (100%)" in outputs[-1].data["text/plain"]
    assert "done in" in text_of(outputs[-1].html)


def test_batch_prediction_with_widgets_moves_a_progress_widget_to_the_end(
    rows: Path, tmp_path: Path, shell: Recorder, every_change: None
) -> None:
    import ipywidgets

    made: list[Any] = []
    values: list[int] = []

    def constructed(widget: Any) -> None:
        made.append(widget)
        if isinstance(widget, ipywidgets.IntProgress):
            widget.observe(lambda change: values.append(change["new"]), "value")

    ipywidgets.Widget.on_widget_constructed(constructed)
    try:
        batch_predict("doubler", rows, tmp_path / "out.parquet", batch_size=40)
    finally:
        ipywidgets.Widget.on_widget_constructed(None)
    bar = next(w for w in made if isinstance(w, ipywidgets.IntProgress))
    label = next(w for w in made if isinstance(w, ipywidgets.Label))
    box = next(w for w in made if isinstance(w, ipywidgets.HBox))
    assert values == [40, 80, 120, 150]
    assert (bar.value, bar.max, bar.bar_style) == (150, 150, "success")
    assert "150/150 rows (100%)" in label.value and "done in" in label.value
    shown = [o.data.get("application/vnd.jupyter.widget-view+json") for o in shell.snapshot()]
    assert shown == [{"version_major": 2, "version_minor": 0, "model_id": box.model_id}]


# import cost -----------------------------------------------------------------------------------
def test_import_plinth_outside_ipython_loads_no_live_view() -> None:
    probe = "import sys, plinth; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert not {m for m in loaded if m.startswith(("plinth.notebook", "IPython", "ipywidgets"))}
