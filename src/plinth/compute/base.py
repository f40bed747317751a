"""The `Executor` interface flows run on, and the value types that cross it."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Resources:
    """What a task asks for: CPU slots, memory (bytes, a hard limit when set) and whole GPUs."""

    cpu: float = 1.0
    memory: int | None = None
    gpu: int = 0

    def describe(self) -> str:
        """Human form, e.g. 'cpu=1, memory=2.0 GiB, gpu=1'."""
        parts = [f"cpu={self.cpu:g}"]
        if self.memory is not None:
            parts.append(f"memory={self.memory / 2**30:.1f} GiB")
        if self.gpu:
            parts.append(f"gpu={self.gpu}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Task:
    """One attempt at running `fn(*args)` somewhere.

    Args:
        id: unique per attempt.
        fn: a picklable callable (cloudpickle is used, so closures and `__main__` code work).
        args: its positional arguments (picklable).
        resources: slots it occupies while running.
        timeout_s: the attempt is killed after this many seconds.
        env: environment variables set for the duration of the call.
        label: for messages, e.g. 'train[3]'.
        scheduler: per-executor options of the step, e.g. {"slurm": {"partition": "gpu"}};
            each executor reads its own key and ignores the others.
        workers: more than 1 makes the task a group (gang): `fn(*args)` runs in that many
            processes at once, each holding `resources`, each with the environment of its rank
            (`plinth.compute.groups.rank_env`: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, ...).
            The group starts when every rank's slots are free, ends when every rank has returned,
            and is stopped as a whole when one rank fails; see `plinth.compute.groups`.
    """

    id: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    resources: Resources = field(default_factory=Resources)
    timeout_s: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    label: str = ""
    scheduler: Mapping[str, Any] = field(default_factory=dict)
    workers: int = 1


class Outcome(enum.StrEnum):
    """How an attempt ended."""

    OK = "ok"
    ERROR = "error"  # fn raised
    TIMEOUT = "timeout"  # killed after timeout_s
    MEMORY = "memory"  # killed for going over its memory limit
    CRASHED = "crashed"  # its worker process died (e.g. kill -9, segfault, OOM killer)
    CANCELLED = "cancelled"  # cancelled by the caller


@dataclass(frozen=True)
class RankResult:
    """How one rank of a group ended. Ranks stopped because another failed end CANCELLED."""

    rank: int
    outcome: Outcome
    worker: str = ""  # host:pid
    error: str | None = None
    max_rss: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    gpus: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        """True when this rank's fn returned."""
        return self.outcome is Outcome.OK


@dataclass(frozen=True)
class TaskResult:
    """The end of one attempt: what fn returned, or why it did not."""

    task_id: str
    outcome: Outcome
    value: Any = None
    error: str | None = None  # "TypeName: message" or a sentence for non-ERROR outcomes
    traceback: str | None = None
    gpus: tuple[int, ...] = ()
    max_rss: int = 0  # peak resident memory of the worker during the attempt, bytes
    cpu_s: float = 0.0
    wall_s: float = 0.0
    worker: str = ""  # where it ran (host:pid); rank 0's for a group
    ranks: tuple[RankResult, ...] = ()  # a group's ranks in rank order; empty for one process

    @property
    def ok(self) -> bool:
        """True when fn returned."""
        return self.outcome is Outcome.OK


class Executor(ABC):
    """Runs tasks within resource slots. Not thread-safe: one driver thread uses it."""

    @abstractmethod
    def capacity(self) -> Resources:
        """All slots (CPU count, memory, GPUs) this executor schedules into."""

    @abstractmethod
    def submit(self, task: Task) -> None:
        """Queue a task; it starts when its slots are free.

        Raises:
            ResourceError: the task asks for more than the executor will ever have.
        """

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[TaskResult]:
        """Block until at least one task ends (or `timeout`); return the ended ones."""

    @abstractmethod
    def cancel(self, task_id: str) -> None:
        """Stop a queued or running task; its result arrives as CANCELLED."""

    @abstractmethod
    def running(self) -> int:
        """Tasks queued or running."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop every worker and release resources."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def task_payload(task: Task) -> bytes | TaskResult:
    """The pickled `(fn, args)` of a task, or an ERROR result saying why it could not be pickled."""
    import cloudpickle

    try:
        return bytes(cloudpickle.dumps((task.fn, task.args)))
    except Exception as exc:
        error = f"{type(exc).__name__}: the task's function or arguments could not be pickled ({exc})"
        return TaskResult(task.id, Outcome.ERROR, error=error)


def check_new_task(task: Task, *, closed: bool, known: bool) -> None:
    """What every executor checks before taking a task: open, a new attempt id, no negative asks.

    Raises:
        InvalidInput: the executor is shut down, the id is already queued or running, or the
            task asks for negative resources.
    """
    from plinth.core.errors import InvalidInput

    if closed:
        raise InvalidInput("This executor has been shut down; create a new one to submit tasks.")
    if known:
        raise InvalidInput(f"Task id {task.id!r} is already queued or running; give each attempt an id.")
    res = task.resources
    if not isinstance(task.workers, int) or task.workers < 1:
        raise InvalidInput(
            f"Task {task.label or task.id!r} asks for {task.workers!r} workers; give 1 or more."
        )
    if res.cpu < 0 or res.gpu < 0 or (res.memory is not None and res.memory < 0):
        raise InvalidInput(f"Task {task.label or task.id!r} asks for negative resources ({res.describe()}).")
