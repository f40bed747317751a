"""A flow's steps advancing in the cell that runs it, then the flow run as stored.

`Flow.run` in a notebook, with no observer of the caller's, opens a `FlowView`: the driver
calls `observe` after each wait on its executor, and the view redraws (at most every
`UPDATE_EVERY_S`) the graph of the step calls made so far, each box coloured by its state, with
a count per step and state as the terminal's table has. `close` replaces it with the flow
run's own view (`plinth.notebook.flows`): its graph, facts and every step's status; a cell
ending with the flow's result then shows one graph, not two (`flows.flow_result_html`).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import TYPE_CHECKING

from plinth.core.entities import StepStatus
from plinth.notebook import graph
from plinth.notebook.flows import flow_run_html
from plinth.notebook.html import Table, badge, code, duration, esc, head, muted
from plinth.notebook.live import Bundle, Display, shown_live
from plinth.notebook.style import document
from plinth.tracking import context

if TYPE_CHECKING:
    from plinth.flows.driver import FlowDriver
    from plinth.flows.future import StepFuture

STATES = ("waiting", "ready", "running", "done", "cached", "failed", "cancelled")
"""A step call's states in the order it moves through them (the columns of the counts table)."""
GRAPH_CALLS = 80
"""Step calls up to which the graph is drawn; a wider fan-out shows only the counts table."""


class FlowView:
    """The live output of one flow run: `observe(driver)` while it runs, `close()` when it ends."""

    def __init__(self, flow: str, flow_run_id: str) -> None:
        self.flow = flow
        self.flow_run_id = flow_run_id
        self.errors = 0
        self._display = Display(self._bundle([]))

    def __repr__(self) -> str:
        return f"<FlowView of flow run {self.flow_run_id}>"

    def observe(self, driver: FlowDriver) -> None:
        """Redraw the calls of `driver` when a redraw is due (a view's failure never stops the flow)."""
        if not self._display.due():
            return
        try:
            self._display.update(self._bundle(driver.futures))
        except Exception:  # a display problem must not fail the flow it shows
            self.errors += 1

    def close(self) -> None:
        """Replace the view with the flow run as stored: status, graph, facts and steps.

        The flow's result, if the cell ends with it, then draws a line rather than the same
        graph again (`live.shown_live`).
        """
        try:
            store = context.backend().store
            run = store.get_flow_run(self.flow_run_id)
            steps = store.step_runs(self.flow_run_id)
            done = sum(1 for s in steps if s.status.has_result)
            text = f"flow {self.flow} {run.status.value}: {done}/{len(steps)} steps done ({self.flow_run_id})"
            self._display.update({"text/html": flow_run_html(run, steps), "text/plain": text})
        except Exception:
            self.errors += 1
            return
        shown_live(f"flow-run:{self.flow_run_id}")

    def _bundle(self, futures: Sequence[StepFuture]) -> Bundle:
        counts = _counts(futures)
        done = counts["done"] + counts["cached"]
        summary = ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s] and s not in ("done", "cached"))
        line = f"{done}/{len(futures)} step calls done" + (f", {summary}" if summary else "")
        title = head(
            badge("RUNNING"),
            f'<span class="title">flow {esc(self.flow)}</span>',
            code(self.flow_run_id),
            f'<span class="muted" data-progress="{done}/{len(futures)}">{esc(line)}</span>',
        )
        parts = [title]
        if not futures:
            parts.append(muted("Starting: no step has been called yet."))
        elif len(futures) <= GRAPH_CALLS:
            parts.append(graph.draw(_nodes(futures), _edges(futures), label=f"flow {self.flow}"))
        parts.append(_table(futures))
        html = document("flow-live", "".join(parts), flow_run_id=self.flow_run_id, done=str(done))
        return {"text/html": html, "text/plain": f"flow {self.flow} ({self.flow_run_id}): {line}"}


def state_of(future: StepFuture) -> str:
    """A call's state as the counts name it: a done call whose result was reused is "cached"."""
    if future.state == "done" and future.row is not None and future.row.status is StepStatus.CACHED:
        return "cached"
    return future.state


STATUS = {
    "waiting": "PENDING",
    "ready": "PENDING",
    "running": "RUNNING",
    "done": "FINISHED",
    "cached": "CACHED",
    "failed": "FAILED",
    "cancelled": "CANCELLED",
}
"""The status colour of each state, as the flow run's graph draws the stored statuses."""


def _counts(futures: Sequence[StepFuture]) -> collections.Counter[str]:
    return collections.Counter(state_of(f) for f in futures)


def _nodes(futures: Sequence[StepFuture]) -> list[graph.Node]:
    nodes = []
    for future in futures:
        state = state_of(future)
        row = future.row
        detail = duration(row.duration_s) if row is not None and row.duration_s is not None else state
        if future.attempts > 1:
            detail += f" · attempt {future.attempts}"
        nodes.append(graph.Node(future.call, future.call, STATUS.get(state, state.upper()), detail))
    return nodes


def _edges(futures: Sequence[StepFuture]) -> list[tuple[str, str]]:
    return [(dep.call, future.call) for future in futures for dep in future.deps]


def _table(futures: Sequence[StepFuture]) -> str:
    by_step: dict[str, collections.Counter[str]] = {}
    for future in futures:
        by_step.setdefault(future.step.name, collections.Counter())[state_of(future)] += 1
    table = Table(("step", *STATES), numeric=frozenset(range(1, len(STATES) + 1)), name="step-states")
    for name, counts in by_step.items():
        table.add([esc(name), *(str(counts[s]) if counts[s] else "" for s in STATES)], key=name)
    return table.render(more="steps")
