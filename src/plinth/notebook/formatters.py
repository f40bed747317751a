"""Which function draws which plinth type, named by module and class so that registering imports none.

IPython's `for_type_by_name` keeps a formatter under the (module, name) of a type and binds it
the first time an object of that type is displayed; the drawing module itself
(`plinth.notebook.tracking`, `...flows`, ...) is imported on that first call. Lists are looked
at by their items: a list of runs, model versions, dataset versions, cost rows or drift results
(what `list_*`, `costs` and `drift_over_time` return) is drawn as one table; any other list is
left to IPython's plain text.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from plinth.core.errors import PlinthError
from plinth.notebook.html import esc
from plinth.notebook.style import document

Draw = Callable[[Any], "str | None"]

TYPES: dict[tuple[str, str], str] = {
    ("plinth.core.entities", "Run"): "tracking:run_html",
    ("plinth.tracking.run", "ActiveRun"): "tracking:active_run_html",
    ("plinth.tracking.results", "Runs"): "tracking:runs_html",
    ("plinth.tracking.history", "MetricHistory"): "tracking:history_html",
    ("plinth.core.entities", "ModelVersion"): "registry:model_version_html",
    ("plinth.core.entities", "RegisteredModel"): "registry:registered_model_html",
    ("plinth.flows.flow", "FlowResult"): "flows:flow_result_html",
    ("plinth.core.entities", "FlowRun"): "flows:flow_run_html",
    ("plinth.core.entities", "DatasetVersion"): "data:dataset_html",
    ("plinth.monitoring.drift", "DriftReport"): "monitoring:drift_report_html",
    ("plinth.monitoring.drift", "FeatureDrift"): "monitoring:feature_drift_html",
    ("plinth.monitoring.served", "ModelDrift"): "monitoring:model_drift_html",
    ("plinth.monitoring.performance", "PerformanceReport"): "monitoring:performance_html",
    ("plinth.monitoring.ops", "OpsReport"): "monitoring:operations_html",
    ("plinth.monitoring.report", "Report"): "monitoring_report:report_html",
    ("plinth.governance.lineage", "LineageGraph"): "governance:lineage_html",
    ("plinth.monitoring.costs", "CostRow"): "governance:cost_row_html",
}
"""(module, class) of each type drawn, and the `module:function` of plinth.notebook that draws it."""

LISTS: dict[tuple[str, str], str] = {
    ("plinth.core.entities", "Run"): "tracking:runs_html",
    ("plinth.core.entities", "ModelVersion"): "registry:model_versions_html",
    ("plinth.core.entities", "DatasetVersion"): "data:datasets_html",
    ("plinth.monitoring.costs", "CostRow"): "governance:costs_html",
    ("plinth.monitoring.served", "ModelDrift"): "monitoring:drift_over_time_html",
}
"""The item types a list of which is drawn as one table, and what draws it."""

_loaded: dict[str, Callable[[Any], str]] = {}


def drawer(target: str) -> Draw:
    """A display function for `target` ('module:function'), imported on its first call.

    A `PlinthError` while drawing (a store gone away, a run deleted) is shown in the output
    in place of the object, so one stale object does not fill the cell with a traceback.
    """

    def draw(obj: Any) -> str | None:
        try:
            return _function(target)(obj)
        except PlinthError as exc:
            return _error(obj, exc)

    draw.__name__ = draw.__qualname__ = f"draw_{target.replace(':', '_')}"
    draw.__doc__ = f"HTML of an object, drawn by plinth.notebook.{target.replace(':', '.')}."
    return draw


def list_html(obj: Any) -> str | None:
    """HTML of a non-empty list whose items are all of one type `LISTS` names; else None."""
    if type(obj) is not list or not obj:
        return None
    kind = type(obj[0])
    target = LISTS.get((kind.__module__, kind.__qualname__))
    if target is None or any(type(item) is not kind for item in obj):
        return None
    return drawer(target)(obj)


def to_html(obj: Any) -> str | None:
    """The HTML plinth draws for `obj` (a type of `TYPES`, or a list of `LISTS`), or None."""
    for kind in type(obj).__mro__:
        target = TYPES.get((kind.__module__, kind.__qualname__))
        if target is not None:
            return drawer(target)(obj)
    return list_html(obj)


def _function(target: str) -> Callable[[Any], str]:
    found = _loaded.get(target)
    if found is None:
        module, _, name = target.partition(":")
        found = _loaded[target] = getattr(importlib.import_module(f"plinth.notebook.{module}"), name)
    return found


def _error(obj: Any, exc: PlinthError) -> str:
    what = type(obj).__name__
    body = (
        f'<p class="bad">Could not draw this {esc(what)}: {esc(exc)}</p><p class="muted">{esc(repr(obj))}</p>'
    )
    return document("error", body)
