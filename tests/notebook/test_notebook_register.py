"""`plinth.notebook.register` on a real IPython shell: every type plinth returns displays as HTML."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from notebook_markup import checked, with_data

import plinth
import plinth.notebook
from plinth.core.entities import FlowRun, RunStatus
from plinth.core.windows import Window
from plinth.flows.flow import FlowResult
from plinth.monitoring.costs import CostRow
from plinth.monitoring.drift import drift, reference_from_frame
from plinth.monitoring.ops import OpsReport, OpsWindow
from plinth.monitoring.performance import PerformanceReport, PerformanceWindow
from plinth.monitoring.served import ModelDrift
from plinth.notebook.formatters import LISTS, TYPES
from plinth.tracking.context import Backend


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    """A real IPython shell, as a notebook's kernel runs one; cleared after the test."""
    ip = InteractiveShell.instance()
    yield ip
    plinth.notebook.unregister(ip)
    InteractiveShell.clear_instance()


def html_of(shell: InteractiveShell, obj: Any) -> str | None:
    data, _ = shell.display_formatter.format(obj)
    return data.get("text/html")


class Constant:
    def predict(self, frame: Any) -> Any:
        return frame["x"] * 0


def objects(be: Backend) -> list[tuple[str, Any]]:
    """One object of each type plinth returns, made through the public API, by the view it gets."""
    frame = pd.DataFrame({"x": np.linspace(0, 1, 200), "kind": ["a", "b"] * 100})
    with plinth.start_run(experiment="nb", params={"lr": 0.5}) as active:
        active.log_metric("loss", 0.5)
        dataset = active.log_dataset(frame, name="points")
        version = active.log_model(Constant(), name="const", input_example=frame[["x"]].head(2))
    report = drift(reference_from_frame(frame), frame.assign(x=frame["x"] + 3))
    window = Window(0, 3_600_000)
    ops = OpsWindow(0, 3_600_000, None, 10, 10, 1, 0.003, 2.0, 5.0, 9.0, 1.0)
    flow_run = FlowRun(active.id, "nb-flow", RunStatus.FINISHED, {}, "nb.py:flow", 0, 1000)
    drawn = {
        "run": plinth.get_run(active.id),
        "runs": plinth.search_runs(experiment="nb"),
        "metric-history": plinth.metric_history(active.id, "loss"),
        "model-version": version,
        "registered-model": plinth.list_models()[0],
        "model-versions": plinth.list_model_versions("const"),
        "dataset": dataset,
        "datasets": plinth.list_datasets(),
        "drift": report,
        "feature-drift": report.features[0],
        "model-drift": ModelDrift("const", 1, window, "points/1", "lineage", 200, report),
        "drift-over-time": [ModelDrift("const", 1, window, "points/1", "lineage", 200, report)],
        "performance": PerformanceReport(
            "const", "regression", PerformanceWindow(0, 1, 10, 5, {"mae": 0.5}), ()
        ),
        "operations": OpsReport("const", ops, (ops,), ()),
        "lineage": plinth.lineage(active.id),
        "costs": plinth.costs(since=None),
        "flow-run": flow_run,
    }
    # a flow result draws its flow run, an active run the run as stored
    return [*drawn.items(), ("flow-run", FlowResult(flow_run, be)), ("run", active)]


def test_every_type_plinth_returns_displays_as_html(tracking: Backend, shell: InteractiveShell) -> None:
    plinth.notebook.register(shell)
    for kind, obj in objects(tracking):
        html = html_of(shell, obj)
        assert html is not None, kind
        assert with_data(html, "div", plinth=kind), kind
        assert "<script" not in html
        data, _ = shell.display_formatter.format(obj)
        assert "text/plain" in data  # the plain repr stays


def test_registering_twice_changes_nothing(tracking: Backend, shell: InteractiveShell) -> None:
    plinth.notebook.register(shell)
    formatter = shell.display_formatter.formatters["text/html"]
    first = dict(formatter.deferred_printers)
    plinth.notebook.register(shell)
    assert formatter.deferred_printers.keys() == first.keys()
    with plinth.start_run(experiment="nb") as run:
        pass
    html = html_of(shell, plinth.get_run(run.id))
    assert html is not None
    checked(html)


def test_load_ext_registers_and_unload_removes(tracking: Backend, shell: InteractiveShell) -> None:
    with plinth.start_run(experiment="nb") as run:
        pass
    stored = plinth.get_run(run.id)
    assert html_of(shell, stored) is None
    shell.run_line_magic("load_ext", "plinth.notebook")
    assert html_of(shell, stored) is not None
    shell.run_line_magic("unload_ext", "plinth.notebook")
    assert html_of(shell, stored) is None


def test_other_lists_stay_plain(shell: InteractiveShell) -> None:
    plinth.notebook.register(shell)
    row = CostRow("a", 1, 0.0, 0.0, 0.0, 0.0, 0.0, None, None)
    assert html_of(shell, [1, 2, 3]) is None
    assert html_of(shell, []) is None
    assert html_of(shell, [row, 1]) is None
    assert html_of(shell, [row]) is not None


def test_register_with_a_ui_address_links_to_it(tracking: Backend, shell: InteractiveShell) -> None:
    plinth.notebook.register(shell, ui_url="http://127.0.0.1:5050/")
    try:
        with plinth.start_run(experiment="nb") as run:
            pass
        html = html_of(shell, plinth.get_run(run.id))
        assert html is not None and f'href="http://127.0.0.1:5050/runs/{run.id}"' in html
    finally:
        plinth.notebook.links.choose(None)


@pytest.mark.parametrize(("key", "target"), [*TYPES.items(), *LISTS.items()])
def test_each_name_registered_is_a_real_type_and_view(key: tuple[str, str], target: str) -> None:
    module, name = key
    assert inspect.isclass(getattr(importlib.import_module(module), name))
    view_module, _, view = target.partition(":")
    assert callable(getattr(importlib.import_module(f"plinth.notebook.{view_module}"), view))


def test_registering_imports_nothing_heavy() -> None:
    probe = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "before = set(sys.modules)\n"
        "import plinth.notebook\n"
        "plinth.notebook.register(InteractiveShell.instance())\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(found.stdout.split())
    for heavy in ("pandas", "plotly", "numpy", "sqlalchemy", "plinth.flows.flow", "plinth.monitoring.drift"):
        assert heavy not in loaded
    views = {m.removeprefix("plinth.notebook.") for m in loaded if m.startswith("plinth.notebook.")}
    # each type's view loads when first displayed; `live` holds the cell hook, and no view
    assert views <= {"formatters", "html", "style", "live"}


def test_register_outside_a_notebook_says_how() -> None:
    probe = "import plinth.notebook\nplinth.notebook.register()\n"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert found.returncode != 0 and "found no running IPython shell" in found.stderr
