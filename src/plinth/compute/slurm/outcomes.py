"""How a task run by a SLURM job ended, as a `TaskResult`.

The worker inside the job writes one result file per task (`result_name`): a pickled dict of
TaskResult's fields, OK/ERROR from the call itself, TIMEOUT/MEMORY from its watchdog, CRASHED
when the call's process died. A task with no result file when its job has ended was stopped by
SLURM or something outside plinth, and is mapped from the job's state:

    TIMEOUT                                  TIMEOUT  (SLURM's --time, should the watchdog not act)
    OUT_OF_MEMORY                            MEMORY   (SLURM's --mem)
    CANCELLED (scancel from outside plinth)  CRASHED  (so the flow driver runs it again)
    NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE, FAILED, COMPLETED, gone   CRASHED
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from plinth.compute.base import Outcome, Task, TaskResult

RESULT_SUFFIX = ".result"
_LOG_TAIL = 600  # characters of a job's log quoted when it ended without results


def result_name(task_id: str) -> str:
    """The file name of a task's result: its id made safe for a file name."""
    return quote(task_id, safe="") + RESULT_SUFFIX


def task_of(file_name: str) -> str | None:
    """The task id a result file name stands for (None for temporary and other files)."""
    if file_name.startswith(".") or not file_name.endswith(RESULT_SUFFIX):
        return None
    return unquote(file_name[: -len(RESULT_SUFFIX)])


def encode(result: TaskResult) -> dict[str, Any]:
    """A result as the dict the worker writes."""
    return {
        "task_id": result.task_id,
        "outcome": result.outcome.value,
        "value": result.value,
        "error": result.error,
        "traceback": result.traceback,
        "gpus": tuple(result.gpus),
        "max_rss": result.max_rss,
        "cpu_s": result.cpu_s,
        "wall_s": result.wall_s,
        "worker": result.worker,
    }


def from_file(task_id: str, data: bytes) -> TaskResult:
    """The result a worker wrote; an ERROR result when it cannot be read here."""
    try:
        fields: Mapping[str, Any] = pickle.loads(data)
        return TaskResult(
            task_id=task_id,
            outcome=Outcome(fields["outcome"]),
            value=fields.get("value"),
            error=fields.get("error"),
            traceback=fields.get("traceback"),
            gpus=tuple(fields.get("gpus", ())),
            max_rss=int(fields.get("max_rss", 0)),
            cpu_s=float(fields.get("cpu_s", 0.0)),
            wall_s=float(fields.get("wall_s", 0.0)),
            worker=str(fields.get("worker", "")),
        )
    except Exception as exc:
        error = f"{type(exc).__name__}: the task's result could not be read here ({exc})"
        return TaskResult(task_id, Outcome.ERROR, error=error)


def timed_out(task_id: str, label: str, limit_s: float, wall_s: float, worker: str) -> TaskResult:
    """The result of a task its watchdog stopped at its timeout."""
    error = f"Task {label!r} ran longer than its timeout of {limit_s:.1f} s and was stopped."
    return TaskResult(task_id, Outcome.TIMEOUT, error=error, wall_s=wall_s, worker=worker)


def over_memory(task_id: str, label: str, rss: int, limit: int, wall_s: float, worker: str) -> TaskResult:
    """The result of a task its watchdog stopped for using more memory than its limit."""
    error = (
        f"Task {label!r} used {size(rss)} of memory, over its limit of {size(limit)}, and was "
        "stopped; raise its memory or make it use less."
    )
    return TaskResult(task_id, Outcome.MEMORY, error=error, max_rss=rss, wall_s=wall_s, worker=worker)


def died(task_id: str, label: str, status: int, wall_s: float, worker: str) -> TaskResult:
    """The result of a task whose process ended without reporting (`status` as from os.waitpid)."""
    how = (
        f"was killed by signal {os.WTERMSIG(status)}"
        if os.WIFSIGNALED(status)
        else f"exited with code {os.waitstatus_to_exitcode(status)}"
    )
    error = f"Task {label!r}: its process {how} before reporting a result."
    return TaskResult(task_id, Outcome.CRASHED, error=error, wall_s=wall_s, worker=worker)


def from_state(task: Task, job_id: str, state: str, log: str | None) -> TaskResult:
    """The result of a task left without one by its job, which SLURM reports in `state`."""
    label = name(task)
    where = f"job {job_id}"
    if state == "TIMEOUT":
        error = f"Task {label!r} was stopped by SLURM at its job's time limit ({where}, state TIMEOUT)."
        return TaskResult(task.id, Outcome.TIMEOUT, error=error)
    if state == "OUT_OF_MEMORY":
        error = (
            f"Task {label!r} was stopped by SLURM for going over its job's memory ({where}, state "
            "OUT_OF_MEMORY); give it a larger memory= ask."
        )
        return TaskResult(task.id, Outcome.MEMORY, error=error)
    if state == "CANCELLED":
        error = f"Task {label!r}: its SLURM {where} was cancelled outside plinth (state CANCELLED)."
    elif not state:
        error = f"Task {label!r}: its SLURM {where} is no longer known to SLURM and left no result."
    else:
        error = f"Task {label!r}: its SLURM {where} ended in state {state} without a result for it."
    tail = log_tail(log)
    if tail:
        error += f" The end of its log {log}: {tail}"
    return TaskResult(task.id, Outcome.CRASHED, error=error)


def log_tail(path: str | None) -> str:
    """The last few hundred characters of a job's log, on one line ('' when there is none)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - _LOG_TAIL))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return " ".join(text.split())[-_LOG_TAIL:]


def name(task: Task) -> str:
    """A task's name for messages: its label, else its id."""
    return task.label or task.id


def size(n: int | float) -> str:
    """Bytes as MiB or GiB."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB"
