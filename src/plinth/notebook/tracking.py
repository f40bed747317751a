"""Notebook views of tracking: a run, an active run, `search_runs` results and a metric's history.

A run shows its status, facts, params, latest metrics and tags, the user's own keys first and
plinth's bookkeeping (`plinth.*` tags, `system/*` and `plinth.*` metrics) folded away; a list
of runs is one table with params and metrics as columns; a history is a line chart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from plinth.core.entities import Run, RunStatus
from plinth.notebook import links, svg
from plinth.notebook.html import (
    Table,
    badge,
    clip,
    code,
    details,
    duration,
    esc,
    head,
    heading,
    kv,
    link,
    muted,
    number,
    size,
    ui_link,
    when,
)
from plinth.notebook.sortable import Key, SortableTable
from plinth.notebook.style import document

if TYPE_CHECKING:
    from plinth.tracking.history import MetricHistory
    from plinth.tracking.run import ActiveRun

BOOKKEEPING = ("plinth.", "system/")
"""Prefixes of the keys plinth itself logs (tags and metrics), shown after the user's own."""
LIVE_TIP = "A snapshot of the run as stored now: run.live() redraws its metrics here as they are logged."
"""What an open run's view says under its title."""
ROWS = 50
"""Runs a table lists; it counts the rest."""
KEY_COLUMNS = 20
"""Params (and, apart, metrics) a runs table gives a column each; it counts the rest."""


def is_bookkeeping(key: str) -> bool:
    """Whether `key` is one plinth logs for itself rather than the user's."""
    return key.startswith(BOOKKEEPING)


def run_html(run: Run, *, note: str = "") -> str:
    """A run: status badge, facts, params, latest metrics, tags and artifacts, with its UI link.

    `note` (plain text) is written under the title, e.g. how to see an open run live.
    """
    experiment = link(esc(run.experiment_name), links.experiment_url(run.experiment_name))
    title = head(
        badge(run.status.value),
        f'<span class="title">{esc(run.name or run.id)}</span>',
        f'<span class="muted">in {experiment}</span>',
        ui_link(links.run_url(run.id)),
    )
    facts = kv(
        [
            ("Run id", code(run.id)),
            ("Experiment", esc(run.experiment_name)),
            ("Name", esc(run.name)),
            ("User", esc(run.user)),
            ("Started", when(run.start_ms)),
            ("Duration", duration(run.duration_s) if run.duration_s is not None else "running"),
            ("Error", f"<pre>{esc(run.error)}</pre>" if run.error else ""),
        ]
    )
    tip = f'<p class="muted" data-note="live">{esc(note)}</p>' if note else ""
    parts = [title, tip, facts, _params(run.params), _metrics(run.metrics), _tags(run.tags), _artifacts(run)]
    return document("run", "".join(parts), run_id=run.id, status=run.status.value)


def active_run_html(active: ActiveRun) -> str:
    """An active run as it is stored now (its logged metrics flushed first); while it is open, a
    line says that `run.live()` redraws its metrics as they are logged."""
    run = active.get()
    if run.status is not RunStatus.RUNNING:
        return run_html(run)
    return run_html(run, note=LIVE_TIP)


def _params(params: dict[str, str]) -> str:
    if not params:
        return ""
    table = Table(("param", "value"), name="params")
    for key in sorted(params):
        table.add([esc(key), clip(params[key])], key=key)
    return heading(f"Params ({len(params)})") + table.render(more="params")


def _metrics(metrics: dict[str, float]) -> str:
    if not metrics:
        return ""
    own = sorted(k for k in metrics if not is_bookkeeping(k))
    kept = sorted(k for k in metrics if is_bookkeeping(k))
    out = heading(f"Latest metrics ({len(own)})") if own else ""
    if own:
        out += _metric_table(own, metrics, "metrics")
    if kept:
        out += details(
            f"{len(kept)} system metrics", _metric_table(kept, metrics, "system-metrics"), kind="system"
        )
    return out


def _metric_table(keys: Sequence[str], metrics: dict[str, float], name: str) -> str:
    table = Table(("metric", "latest"), numeric=frozenset({1}), name=name)
    for key in keys:
        table.add([esc(key), number(metrics[key])], key=key)
    return table.render(more="metrics")


def _tags(tags: dict[str, str]) -> str:
    own = sorted(k for k in tags if not is_bookkeeping(k))
    kept = sorted(k for k in tags if is_bookkeeping(k))
    out = heading(f"Tags ({len(own)})") + _tag_table(own, tags, "tags") if own else ""
    if kept:
        out += details(f"{len(kept)} plinth tags", _tag_table(kept, tags, "plinth-tags"), kind="plinth-tags")
    return out


def _tag_table(keys: Sequence[str], tags: dict[str, str], name: str) -> str:
    table = Table(("tag", "value"), name=name)
    for key in keys:
        table.add([esc(key), clip(tags[key])], key=key)
    return table.render(more="tags")


def _artifacts(run: Run) -> str:
    if not run.artifacts:
        return ""
    table = Table(("path", "size"), numeric=frozenset({1}), name="artifacts")
    for artifact in sorted(run.artifacts, key=lambda a: a.path):
        table.add([esc(artifact.path), size(artifact.size)], key=artifact.path)
    total = size(sum(a.size for a in run.artifacts))
    return details(
        f"{len(run.artifacts)} artifacts ({total})", table.render(more="artifacts"), kind="artifacts"
    )


def runs_html(runs: Sequence[Run]) -> str:
    """Runs in the order given: one row each, params and metrics as columns, ids linked; a click
    on a column header sorts the rows by it (`plinth.notebook.sortable`)."""
    if not runs:
        return document("runs", muted("No runs."), count="0")
    shown = runs[:ROWS]
    every_param = _columns(r.params for r in shown)
    every_metric = _columns((k for k in r.metrics if not is_bookkeeping(k)) for r in shown)
    params, metrics = every_param[:KEY_COLUMNS], every_metric[:KEY_COLUMNS]
    headers = ["run", "name", "status", "started", "duration"]
    headers += [f"params.{k}" for k in params] + [f"metrics.{k}" for k in metrics]
    first_metric = 5 + len(params)
    table = SortableTable(headers, numeric=frozenset(range(first_metric, len(headers))) | {4}, name="runs")
    numbers = {k for k in params if all(_number(r.params[k]) is not None for r in shown if k in r.params)}
    for run in shown:
        table.add(_run_row(run, params, metrics), _run_keys(run, params, metrics, numbers), key=run.id)
    count = len(runs)
    parts = [
        head(f'<span class="title">{count} run{"s" if count != 1 else ""}</span>'),
        table.render(),
    ]
    if count > len(shown):
        parts.append(muted(f"{count - len(shown)} more runs not shown; .to_frame() has every run."))
    hidden = len(every_param) - len(params) + len(every_metric) - len(metrics)
    if hidden:
        parts.append(muted(f"{hidden} more param and metric columns in .to_frame()."))
    return document("runs", "".join(parts), count=str(count))


def _columns(keys: Iterable[Iterable[str]]) -> list[str]:
    """The keys of every run, each once, sorted."""
    return sorted({key for found in keys for key in found})


def _run_keys(run: Run, params: Sequence[str], metrics: Sequence[str], numbers: set[str]) -> list[Key]:
    """What each cell of a run's row sorts by: text, times, seconds, params (as numbers where
    every run's value of that param is one) and metric values."""
    keys: list[Key] = [run.id, run.name or None, run.status.value, float(run.start_ms), run.duration_s]
    for k in params:
        text = run.params.get(k)
        keys.append(_number(text) if text is not None and k in numbers else text)
    keys += [run.metrics.get(k) for k in metrics]
    return keys


def _number(text: str) -> float | None:
    """A param's text as a finite number, or None when it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _run_row(run: Run, params: Sequence[str], metrics: Sequence[str]) -> list[str]:
    cells = [
        link(code(run.id), links.run_url(run.id)),
        clip(run.name, 40),
        badge(run.status.value),
        when(run.start_ms),
        duration(run.duration_s) if run.duration_s is not None else "running",
    ]
    cells += [clip(run.params[k], 40) if k in run.params else "" for k in params]
    cells += [number(run.metrics[k]) if k in run.metrics else "" for k in metrics]
    return cells


def history_html(history: MetricHistory) -> str:
    """A metric's points as a line chart (steps across), with its extremes and last value."""
    steps, values = history.steps.tolist(), history.values.tolist()
    title = head(
        f'<span class="title">{esc(history.key)}</span>',
        f'<span class="muted">of run {link(code(history.run_id), links.run_url(history.run_id))}</span>',
    )
    if not steps:
        return document(
            "metric-history", title + muted("No points logged."), run_id=history.run_id, key=history.key
        )
    chart = svg.line_chart(steps, values, label=f"{history.key} by step")
    facts = _history_facts(svg.summarize(steps, values))
    return document(
        "metric-history",
        title + chart + facts,
        run_id=history.run_id,
        key=history.key,
        points=str(len(steps)),
    )


def _history_facts(found: svg.Summary) -> str:
    items = [f"{found.points} points"]
    for name, point in (("min", found.min), ("max", found.max), ("last", found.last)):
        if point is not None:
            items.append(f"{name} <b>{number(point[1])}</b> at step {number(point[0])}")
    if found.gaps:
        items.append(f"{found.gaps} not finite (gaps in the line)")
    return f'<p class="muted" data-facts="history">{" · ".join(items)}</p>'
