"""How a Ray task ended, as a `TaskResult`: its reply decoded, or what Ray raised mapped to an Outcome.

fn returned / raised                        OK / ERROR (from the reply of `worker.run_request`)
watchdog note "timeout" / "memory"          TIMEOUT / MEMORY (the worker was ended past a limit)
TaskCancelledError                          CANCELLED
OutOfMemoryError (Ray's memory monitor)     MEMORY
TaskUnschedulableError, RuntimeEnvSetupError, RayTaskError   ERROR (it could not run)
WorkerCrashedError, NodeDiedError, ObjectLostError, ...       CRASHED (the driver retries it)
"""

from __future__ import annotations

import time

import cloudpickle

from plinth.compute.base import Outcome, Task, TaskResult
from plinth.compute.ray.worker import read_note

Reply = tuple[bytes, str, tuple[int, ...], int]
"""What `ray/worker.py`'s `execute` returns: (encoded reply, where it ran, GPU ids, peak memory watched)."""


def from_reply(task: Task, answer: Reply) -> TaskResult:
    """The result of a task whose Ray task returned."""
    reply, where, gpus, watched_rss = answer
    try:
        status, value, error, trace, cpu_s, wall_s, rss, peak, _total = cloudpickle.loads(reply)
    except Exception as exc:
        error = f"{type(exc).__name__}: the task's reply could not be unpickled here ({exc})"
        return TaskResult(task.id, Outcome.ERROR, error=error, worker=where)
    return TaskResult(
        task_id=task.id,
        outcome=Outcome.OK if status == "ok" else Outcome.ERROR,
        value=value,
        error=error,
        traceback=trace,
        gpus=tuple(gpus),
        max_rss=max(rss, peak, watched_rss),
        cpu_s=cpu_s,
        wall_s=wall_s,
        worker=where,
    )


def from_error(task: Task, exc: Exception, submitted: float) -> TaskResult:
    """The result of a task whose Ray task raised `exc` instead of returning."""
    from ray import exceptions as rex

    wall_s = time.monotonic() - submitted
    if isinstance(exc, rex.TaskCancelledError):
        return TaskResult(task.id, Outcome.CANCELLED, error=f"Task {name(task)!r} was cancelled.")
    if isinstance(exc, (rex.TaskUnschedulableError, rex.RuntimeEnvSetupError)):
        error = f"Task {name(task)!r} could not be started by Ray: {first_line(exc)}"
        return TaskResult(task.id, Outcome.ERROR, error=error, wall_s=wall_s)
    if isinstance(exc, rex.RayTaskError):  # the runner itself raised: a broken worker environment
        return TaskResult(task.id, Outcome.ERROR, error=first_line(exc), wall_s=wall_s)
    note = read_note(task.id)
    if note is not None:
        return _noted(task, note, wall_s)
    if isinstance(exc, rex.OutOfMemoryError):
        error = (
            f"Task {name(task)!r} was stopped by Ray because its node ran out of memory; give it a "
            f"memory= ask so Ray places it where there is room. ({first_line(exc)})"
        )
        return TaskResult(task.id, Outcome.MEMORY, error=error, wall_s=wall_s)
    error = f"Task {name(task)!r}: its Ray worker or node died while running it ({first_line(exc)})."
    return TaskResult(task.id, Outcome.CRASHED, error=error, wall_s=wall_s)


def _noted(task: Task, note: tuple[str, list[str]], wall_s: float) -> TaskResult:
    """The outcome a task's watchdog recorded before ending its worker."""
    outcome, detail = note
    if outcome == "memory":
        rss, limit = int(detail[0]), int(detail[1])
        error = (
            f"Task {name(task)!r} used {size(rss)} of memory, over its limit of {size(limit)}, and was "
            "stopped; raise its memory or make it use less."
        )
        return TaskResult(task.id, Outcome.MEMORY, error=error, max_rss=rss, wall_s=wall_s)
    limit_s = float(detail[0]) if detail else task.timeout_s or 0.0
    error = f"Task {name(task)!r} ran longer than its timeout of {limit_s:.1f} s and was stopped."
    return TaskResult(task.id, Outcome.TIMEOUT, error=error, wall_s=wall_s)


def name(task: Task) -> str:
    """A task's name for messages: its label, else its id."""
    return task.label or task.id


def first_line(exc: BaseException) -> str:
    """'TypeName: first line of the message', at most 500 characters."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def size(n: int | float) -> str:
    """Bytes as MiB or GiB."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB"
