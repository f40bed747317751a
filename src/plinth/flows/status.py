"""What flows are doing now: the step calls recorded as running."""

from __future__ import annotations

from plinth.core.entities import FlowRun, RunStatus, StepRun, StepStatus
from plinth.tracking.context import Backend


def running_steps(be: Backend, flows: int = 50) -> list[tuple[FlowRun, StepRun]]:
    """(flow run, step call) for every step call running in the latest `flows` flow runs that are running."""
    found: list[tuple[FlowRun, StepRun]] = []
    for run in be.store.list_flow_runs(None, flows):
        if run.status is not RunStatus.RUNNING:
            continue
        found.extend((run, step) for step in be.store.step_runs(run.id) if step.status is StepStatus.RUNNING)
    return found
