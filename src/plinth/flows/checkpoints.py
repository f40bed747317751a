"""`plinth.step_checkpoint()`: where an attempt of a step picks up after an earlier one died."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plinth.tracking.checkpoints import Checkpoint

# The runs whose checkpoints the step call running in this process continues from: its own run
# (earlier attempts log to it too), then the run of the same call in the flow run it resumes.
_sources: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "plinth_checkpoint_runs", default=()
)


@contextlib.contextmanager
def checkpoint_sources(run_ids: Sequence[str]) -> Iterator[None]:
    """Make `run_ids` the runs `step_checkpoint` looks in while the step function runs."""
    token = _sources.set(tuple(run_ids))
    try:
        yield
    finally:
        _sources.reset(token)


def step_checkpoint() -> Checkpoint | None:
    """The newest checkpoint of this step call: from an earlier attempt after a retry, from the
    same call of the flow run being resumed, or logged by this attempt; None if there is none.

    Call it at the top of a step's function to continue training where a failed, killed or
    preempted attempt stopped:

        ckpt = plinth.step_checkpoint()
        start = 0 if ckpt is None else ckpt.step + 1
        if ckpt is not None:
            model.load_state_dict(ckpt.load()["model"])

    Outside a flow step it returns None, so the same function runs as a plain call too.
    """
    from plinth.tracking.checkpoints import latest_checkpoint

    for run_id in _sources.get():
        found = latest_checkpoint(run_id)
        if found is not None:
            return found
    return None
