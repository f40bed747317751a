"""What the UI benchmark does in MLflow 3.17.2's UI (selectors read from its rendered pages).

- Runs page: `/#/experiments/<id>/runs`, ready when its AG Grid shows a row whose `row-id` is a
  run id (32 hex digits) with a height on screen.
- Run page: `/#/experiments/<id>/runs/<run id>/model-metrics` (its "Model metrics" tab), ready
  when the chart card's Plotly line has a path.
- Compare view: `/#/compare-runs?runs=[...]&experiments=[...]` (what its "Compare" button opens),
  ready when its parallel-coordinates plot has drawn its axes' ticks and the run-details table
  is there. It draws no metric curves: that page's plots are the parallel coordinates (default)
  and, on other tabs, scatter, box and contour plots of the runs' latest values.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import _ui_browser as ui

METHOD = (
    "its runs page is /#/experiments/<id>/runs until an AG Grid row of a run is on screen; its run page is "
    "the big run's Model metrics tab until its chart's line is drawn; its compare view "
    "is /#/compare-runs (what its Compare button opens) until the parallel-coordinates plot has drawn its "
    "axes and the run-details table is there (that page draws no metric curves); API calls are those "
    "under /ajax-api/; `mlflow server` runs with its default workers and the job runner off"
)
PREFIXES = ("/ajax-api/", "/api/")
RUNS_READY = (
    "(() => { for (const r of document.querySelectorAll('.ag-center-cols-container .ag-row[row-id]')) {"
    " if (/^[0-9a-f]{32}$/.test(r.getAttribute('row-id'))"
    " && r.getBoundingClientRect().height > 0) return true; }"
    " return false; })()"
)
LINE_JS = (
    "document.querySelector('[data-testid=experiment-view-compare-runs-card] .scatterlayer path.js-line')"
)
RUN_READY = f"(() => {{ const l = {LINE_JS}; return !!l && (l.getAttribute('d') || '').length > 100; }})()"
COMPARE_READY = (
    "!!document.querySelector('.parcoords .y-axis .tick')"
    " && !!document.querySelector('table.mlflow-compare-run-table')"
)


def runs_page(page: Any, base: str, experiment_id: str) -> float:
    """The experiment's runs table with a run's row on screen."""
    return ui.load(page, f"{base}/#/experiments/{experiment_id}/runs", RUNS_READY)


def run_page(page: Any, base: str, experiment_id: str, run_id: str) -> float:
    """The big run's "Model metrics" tab with its chart's line drawn."""
    return ui.load(page, f"{base}/#/experiments/{experiment_id}/runs/{run_id}/model-metrics", RUN_READY)


def drawn_points(page: Any) -> int:
    """How many points the run page's line has (segments of its SVG path, plus one)."""
    return int(
        page.evaluate(
            f"(() => {{ const l = {LINE_JS}; return l ? l.getAttribute('d').split('L').length : 0; }})()"
        )
    )


def compare_url(base: str, experiment_id: str, run_ids: list[str]) -> str:
    runs = quote(json.dumps(run_ids, separators=(",", ":")))
    exps = quote(json.dumps([experiment_id], separators=(",", ":")))
    return f"{base}/#/compare-runs?runs={runs}&experiments={exps}"


def compare_page(page: Any, base: str, experiment_id: str, run_ids: list[str]) -> float:
    """The compare view of `run_ids` with its plot drawn."""
    return ui.load(page, compare_url(base, experiment_id, run_ids), COMPARE_READY)


def compare_detail(page: Any) -> str:
    """What the compare view showed when it was ready (for the notes)."""
    got = page.evaluate(
        """() => ({ axes: document.querySelectorAll('.parcoords .y-axis').length,
        title: (document.querySelector('h1, h2') || {}).textContent || '' })"""
    )
    return f'"{got["title"].strip()}", a parallel-coordinates plot with {got["axes"]} axes'
