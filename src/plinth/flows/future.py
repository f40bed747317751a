"""A scheduled step call (`StepFuture`) and what it was given: futures among its arguments,
their stored results as refs, and its params and resource tags as its run records them."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plinth.compute.base import RankResult, Resources
from plinth.core.entities import StepRun
from plinth.core.errors import InvalidInput
from plinth.core.validation import param_text
from plinth.flows.values import Ref

if TYPE_CHECKING:
    from plinth.flows.driver import FlowDriver
    from plinth.flows.step import Step, StepOptions

_SCALARS = (str, int, float, bool)


@dataclass(eq=False)
class StepFuture:
    """A scheduled step call. Pass it to other steps, or call `result()` to wait for its value."""

    driver: FlowDriver
    call: str
    step: Step[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    deps: list[StepFuture]
    dependents: list[StepFuture] = field(default_factory=list)
    state: str = "waiting"  # waiting, ready, running, done, failed, cancelled
    row: StepRun | None = None
    attempts: int = 0
    task_id: str | None = None
    experiment_id: str = ""
    pending: int = 0  # deps not done yet

    def __repr__(self) -> str:
        return f"<StepFuture {self.call} {self.state}>"

    @property
    def done(self) -> bool:
        """True once the result is stored."""
        return self.state == "done"

    def result(self) -> Any:
        """Wait for this call (running the flow meanwhile) and return its value."""
        return self.driver.value_of(self)


def futures_in(value: Any) -> list[StepFuture]:
    """Every StepFuture in `value`, looking inside lists, tuples and dict values."""
    if isinstance(value, StepFuture):
        return [value]
    if isinstance(value, (list, tuple)):
        return [f for v in value for f in futures_in(v)]
    if isinstance(value, dict):
        return [f for v in value.values() for f in futures_in(v)]
    return []


def with_refs(value: Any) -> Any:
    """`value` with each (done) StepFuture inside replaced by a Ref to its stored result."""
    if isinstance(value, StepFuture):
        assert value.row is not None and value.row.result_digest is not None
        return Ref(value.row.result_digest, value.call)
    if isinstance(value, list):
        return [with_refs(v) for v in value]
    if isinstance(value, tuple):
        return tuple(with_refs(v) for v in value)
    if isinstance(value, dict):
        return {k: with_refs(v) for k, v in value.items()}
    return value


def resource_tags(resources: Resources) -> dict[str, str]:
    """The tags of a step's run that say what it asked for: plinth.cpu, plinth.gpu, plinth.memory."""
    tags = {"plinth.cpu": f"{resources.cpu:g}", "plinth.gpu": str(resources.gpu)}
    if resources.memory is not None:
        tags["plinth.memory"] = str(resources.memory)
    return tags


def group_tags(options: StepOptions) -> dict[str, str]:
    """The tags of a step's run that say how it runs: plinth.workers, plinth.distributed,
    plinth.checkpointed, plinth.image (only those that are set)."""
    tags: dict[str, str] = {}
    if options.workers > 1:
        tags["plinth.workers"] = str(options.workers)
    if options.distributed:
        tags["plinth.distributed"] = options.distributed
    if options.checkpoint:
        tags["plinth.checkpointed"] = "true"
    if options.image:
        tags["plinth.image"] = options.image
    return tags


def rank_usage(ranks: Sequence[RankResult]) -> list[dict[str, Any]]:
    """What each rank of a group used and how it ended, as kept in the step's usage record."""
    return [
        {
            "rank": r.rank,
            "worker": r.worker,
            "outcome": r.outcome.value,
            "error": r.error,
            "cpu_s": r.cpu_s,
            "max_rss": r.max_rss,
            "wall_s": r.wall_s,
            "gpus": list(r.gpus),
        }
        for r in ranks
    ]


def call_params(future: StepFuture) -> dict[str, str]:
    """Scalar arguments of a call, by parameter name, as the step run's params.

    Text no param may hold (a lone surrogate, a control character) is left out: these params
    describe the call, and the call itself still runs with its arguments.
    """
    try:
        bound = inspect.signature(future.step.fn).bind_partial(*future.args, **future.kwargs)
    except TypeError:
        return {}
    params = {}
    for name, value in bound.arguments.items():
        if isinstance(value, _SCALARS) and len(str(value)) < 500:
            with contextlib.suppress(InvalidInput):
                params[name] = param_text(name, value)
    return params
