"""Notebook views of flows: a flow run's graph of step calls, its facts and its steps table.

The graph is the web UI's flow page graph: one box per step call coloured by status, with its
duration, and an arrow where one call's result fed another. Those arrows are the "feeds"
lineage edges the driver records between the runs behind the calls (a call reused from an
earlier run stands for that run, as on the UI's page). A distributed step lists its ranks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from plinth.core.entities import FlowRun, StepRun, StepStatus
from plinth.notebook import graph, links
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
    size,
    ui_link,
    when,
)
from plinth.notebook.live import was_shown_live
from plinth.notebook.style import document
from plinth.tracking import context

if TYPE_CHECKING:
    from plinth.flows.flow import FlowResult
    from plinth.store.base import Store


def flow_result_html(result: FlowResult[Any]) -> str:
    """A finished (or failed) flow run: facts, the graph of its step calls, and its steps.

    In the cell whose live view already ended on that drawing, a line pointing at it instead.
    """
    if was_shown_live(f"flow-run:{result.id}"):
        return drawn_above(result.flow_run)
    return flow_run_html(result.flow_run, result.steps)


def drawn_above(run: FlowRun) -> str:
    """A flow run in one line, for the cell whose live view above draws it in full."""
    took = (run.end_ms - run.start_ms) / 1000 if run.end_ms is not None else None
    title = head(
        badge(run.status.value),
        f'<span class="title">flow {esc(run.flow)}</span>',
        code(run.id),
        f'<span class="muted">{esc(duration(took))} · its graph and steps are drawn above</span>',
        ui_link(links.flow_run_url(run.id)),
    )
    return document("flow-result", title, flow_run_id=run.id, status=run.status.value, drawn="above")


def flow_run_html(run: FlowRun, steps: Sequence[StepRun] | None = None) -> str:
    """A flow run with its step calls (read from the store in use when not given)."""
    store = context.backend().store
    calls = list(steps) if steps is not None else store.step_runs(run.id)
    title = head(
        badge(run.status.value),
        f'<span class="title">flow {esc(run.flow)}</span>',
        code(run.id),
        ui_link(links.flow_run_url(run.id)),
    )
    parts = [title, _facts(run, calls)]
    if calls:
        parts.append(
            heading("Graph") + graph.draw(_nodes(calls), step_edges(store, calls), label=f"flow {run.flow}")
        )
        parts.append(heading(f"Steps ({len(calls)})") + steps_table(calls, run.start_ms))
        parts.extend(ranks_html(step) for step in calls if step.usage.get("ranks"))
    else:
        parts.append(muted("No step has been called."))
    return document("flow-run", "".join(parts), flow_run_id=run.id, status=run.status.value)


def _facts(run: FlowRun, calls: Sequence[StepRun]) -> str:
    done = sum(1 for s in calls if s.status.has_result)
    cached = sum(1 for s in calls if s.status is StepStatus.CACHED)
    took = (run.end_ms - run.start_ms) / 1000 if run.end_ms is not None else None
    resumed = link(code(run.resumed_from), links.flow_run_url(run.resumed_from)) if run.resumed_from else ""
    return kv(
        [
            ("Flow run id", code(run.id)),
            ("Flow", esc(run.flow)),
            ("Started", when(run.start_ms)),
            ("Duration", duration(took) if took is not None else "running"),
            ("Steps done", f"{done}/{len(calls)}" + (f" ({cached} cached)" if cached else "")),
            ("Params", code(json.dumps(run.params, sort_keys=True))),
            ("Source", code(run.source)),
            ("Resumed from", resumed),
            ("Error", f"<pre>{esc(run.error)}</pre>" if run.error else ""),
        ]
    )


def step_edges(store: Store, steps: Sequence[StepRun]) -> list[tuple[str, str]]:
    """(from call, to call) for each "feeds" edge between the runs behind `steps`."""
    call_of = {s.reused_from or s.id: s.call for s in steps}
    found: list[tuple[str, str]] = []
    for step in steps:
        behind = step.reused_from or step.id
        sources = [e.src_id for e in store.edges(dst=("run", behind)) if e.relation == "feeds"]
        found.extend((call_of[src], step.call) for src in dict.fromkeys(sources) if src in call_of)
    return found


def _nodes(steps: Sequence[StepRun]) -> list[graph.Node]:
    return [graph.Node(s.call, s.call, s.status.value, _detail(s)) for s in steps]


def _detail(step: StepRun) -> str:
    parts = []
    if step.status is StepStatus.CACHED:
        parts.append("cache hit")
    elif step.duration_s is not None:
        parts.append(duration(step.duration_s))
    if step.attempts > 1:
        parts.append(f"{step.attempts} attempts")
    ranks = step.usage.get("ranks") or []
    if ranks:
        parts.append(f"{len(ranks)} ranks")
    return " · ".join(parts)


def steps_table(steps: Sequence[StepRun], flow_start_ms: int) -> str:
    """One row per step call in call order: status, attempts, cache, start offset, duration, worker."""
    headers = ("call", "status", "attempts", "cache", "started at", "duration", "worker", "ranks", "error")
    table = Table(headers, numeric=frozenset({2, 4, 5, 7}), name="steps")
    for step in steps:
        offset = (step.start_ms - flow_start_ms) / 1000 if step.start_ms is not None else None
        ranks = step.usage.get("ranks") or []
        table.add(
            [
                code(step.call),
                badge(step.status.value),
                str(step.attempts),
                "hit" if step.status is StepStatus.CACHED else "—",
                f"+{duration(offset)}" if offset is not None else "—",
                duration(step.duration_s),
                esc(step.usage.get("worker") or "—"),
                str(len(ranks)) if ranks else "",
                clip(step.error, 100) if step.error else "",
            ],
            key=step.call,
        )
    return table.render(more="step calls")


def ranks_html(step: StepRun) -> str:
    """The ranks of a distributed step's latest attempt: where each ran, how it ended, what it used."""
    ranks: list[dict[str, Any]] = step.usage.get("ranks") or []
    headers = ("rank", "worker", "state", "time", "cpu time", "peak memory", "gpus", "error")
    table = Table(headers, numeric=frozenset({0, 3, 4, 5}), name=f"ranks-{step.call}")
    for rank in sorted(ranks, key=lambda r: int(r.get("rank", 0))):
        table.add(
            [
                str(rank.get("rank", "")),
                esc(rank.get("worker") or "—"),
                badge(str(rank.get("outcome") or "unknown")),
                duration(rank.get("wall_s")),
                duration(rank.get("cpu_s")),
                size(rank.get("max_rss")),
                esc(",".join(str(g) for g in rank.get("gpus") or []) or "—"),
                clip(str(rank.get("error") or ""), 100),
            ],
            key=str(rank.get("rank", "")),
        )
    summary = f"Group {step.call}: {len(ranks)} ranks, attempt {step.attempts}"
    return details(summary, table.render(more="ranks"), kind="ranks")
