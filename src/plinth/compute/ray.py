"""`RayExecutor`: runs tasks as Ray tasks on a Ray cluster, each within its CPU, GPU and memory ask.

One `Task` attempt is one Ray task (`num_cpus`, `num_gpus` and `memory` from its Resources) with
Ray's own retries off: retrying is the flow driver's job, so every attempt is recorded, as with
the local executor. Ray keeps worker processes alive between tasks, so what a worker caches
(open stores, unpickled step functions, loaded inputs) serves the next task as in the local pool;
an actor per worker would add nothing. Results come back through Ray's object store only as the
small reply of `worker.run_request` (for flow steps: a report naming the stored result blob).

Outcomes: OK and ERROR from the reply; TIMEOUT and MEMORY from the note the task's watchdog
leaves before ending its worker (see `ray_worker`); CANCELLED when `cancel` force-cancels it;
CRASHED when Ray reports the worker, its node or its reply lost (`WorkerCrashedError`,
`NodeDiedError`, `ObjectLostError`, ...), which the driver retries like a dead local worker.

`ray` is imported only when an executor is made.
"""

from __future__ import annotations

import atexit
import os
import pickle
import threading
import time
from dataclasses import dataclass
from typing import Any

import cloudpickle

from plinth.compute import ray_cluster
from plinth.compute.base import Executor, Outcome, Resources, Task, TaskResult
from plinth.compute.ray_worker import execute, read_note
from plinth.core.errors import InvalidInput, ResourceError
from plinth.core.settings import Settings

NODES_TTL_S = 5.0
"""How long the list of nodes that `submit` checks asks against is reused."""
_lock = threading.Lock()
_shared: dict[str, RayExecutor] = {}


@dataclass
class _Flight:
    """A task handed to Ray and not yet ended."""

    task: Task
    ref: Any
    submitted: float


class RayExecutor(Executor):
    """Runs tasks on a Ray cluster.

    Args:
        address: the cluster: "auto", "HOST:PORT", "ray://HOST:10001" or None (RAY_ADDRESS, a
            running local cluster, or a new single-node Ray). Ignored when this process is already
            connected (`ray.init` done elsewhere) to that cluster.
        init_options: more keyword arguments for `ray.init`.
        wait_for_resources: queue tasks no node can run yet (an autoscaler may add one) instead of
            raising ResourceError.

    Example:
        with RayExecutor("ray://head:10001") as ex:
            ex.submit(Task("t1", sum, ([1, 2],)))
            [result] = ex.wait()
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        init_options: dict[str, Any] | None = None,
        wait_for_resources: bool = False,
    ) -> None:
        self._ray = ray_cluster.import_ray()
        self._owns_connection = not self._ray.is_initialized()
        self.address = ray_cluster.connect(address, init_options)
        self._remote = self._ray.remote(execute)
        self._wait_for_resources = wait_for_resources
        self._cwd = os.getcwd()
        self._flights: dict[Any, _Flight] = {}
        self._by_id: dict[str, _Flight] = {}
        self._done: list[TaskResult] = []
        self._nodes: list[ray_cluster.NodeInfo] = []
        self._nodes_at = float("-inf")
        self._closed = False

    # ------------------------------------------------------------------------------ interface

    def capacity(self) -> Resources:
        """Everything the cluster's alive nodes have, together."""
        nodes = self._current_nodes(refresh=True)
        return Resources(
            cpu=sum(n.cpus for n in nodes),
            memory=sum(n.memory for n in nodes),
            gpu=int(sum(n.gpus for n in nodes)),
        )

    def submit(self, task: Task) -> None:
        """Hand `task` to Ray; ResourceError if no node of the cluster could ever run it."""
        if self._closed:
            raise InvalidInput("This executor has been shut down; create a new one to submit tasks.")
        if task.id in self._by_id:
            raise InvalidInput(f"Task id {task.id!r} is already queued or running; give each attempt an id.")
        self._check_fits(task)
        try:
            payload = cloudpickle.dumps((task.fn, task.args))
        except Exception as exc:
            error = f"{type(exc).__name__}: the task's function or arguments could not be pickled ({exc})"
            self._done.append(TaskResult(task.id, Outcome.ERROR, error=error))
            return
        env = {**ray_cluster.forwarded_env(), **task.env}
        request = pickle.dumps((None, env, payload), protocol=pickle.HIGHEST_PROTOCOL)
        res = task.resources
        options: dict[str, Any] = {"num_cpus": res.cpu, "max_retries": 0, "name": task_name(task)}
        if res.gpu:
            options["num_gpus"] = res.gpu
        if res.memory is not None:
            options["memory"] = res.memory
        ref = self._remote.options(**options).remote(request, task.id, self._cwd, task.timeout_s, res.memory)
        flight = _Flight(task, ref, time.monotonic())
        self._flights[ref] = flight
        self._by_id[task.id] = flight

    def wait(self, timeout: float | None = None) -> list[TaskResult]:
        """Block until at least one task ends (or `timeout` seconds pass); return the ended ones."""
        if not self._done and self._flights:
            refs = list(self._flights)
            ready, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
            if ready and len(refs) > 1:
                ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in ready:
                flight = self._flights.pop(ref)
                del self._by_id[flight.task.id]
                self._done.append(self._collect(flight))
        done, self._done = self._done, []
        return done

    def cancel(self, task_id: str) -> None:
        """Force-cancel a queued or running task (its worker is ended); its result is CANCELLED."""
        flight = self._by_id.pop(task_id, None)
        if flight is None:
            return
        del self._flights[flight.ref]
        try:
            self._ray.cancel(flight.ref, force=True)
        except Exception:  # already ended, or the cluster is gone: nothing left to stop
            pass
        message = f"Task {_name(flight.task)!r} was cancelled."
        self._done.append(TaskResult(task_id, Outcome.CANCELLED, error=message))

    def running(self) -> int:
        """Tasks handed to Ray and not yet ended."""
        return len(self._by_id)

    def shutdown(self) -> None:
        """Cancel every task in flight; disconnect from Ray when this executor connected."""
        if self._closed:
            return
        self._closed = True
        for task_id in list(self._by_id):
            self.cancel(task_id)
        self._done.clear()
        if self._owns_connection and self._ray.is_initialized():
            self._ray.shutdown()

    def check_storage(self, settings: Settings) -> None:
        """Raise StorageNotShared when nodes on other hosts could not use these settings' stores."""
        ray_cluster.check_shared_storage(settings)

    # ------------------------------------------------------------------------------ resources

    def _current_nodes(self, refresh: bool = False) -> list[ray_cluster.NodeInfo]:
        now = time.monotonic()
        if refresh or now - self._nodes_at > NODES_TTL_S:
            self._nodes = ray_cluster.nodes()
            self._nodes_at = now
        return self._nodes

    def _check_fits(self, task: Task) -> None:
        res = task.resources
        if res.cpu < 0 or res.gpu < 0 or (res.memory is not None and res.memory < 0):
            raise InvalidInput(f"Task {_name(task)!r} asks for negative resources ({res.describe()}).")
        if self._wait_for_resources or any(_fits(res, n) for n in self._current_nodes()):
            return
        if any(_fits(res, n) for n in self._current_nodes(refresh=True)):
            return
        largest = ", ".join(
            f"{n.address} {n.cpus:g} CPUs, {n.gpus:g} GPUs, {_size(n.memory)}" for n in self._nodes
        )
        raise ResourceError(
            f"Task {_name(task)!r} asks for {res.describe()} but no node of the Ray cluster has that much "
            f"(nodes: {largest or 'none'}); lower what it asks for, add a node that has it, or use "
            "RayExecutor(wait_for_resources=True) where an autoscaler adds nodes."
        )

    # ------------------------------------------------------------------------------ results

    def _collect(self, flight: _Flight) -> TaskResult:
        """The TaskResult of an ended Ray task."""
        try:
            reply, where, gpus, watched_rss = self._ray.get(flight.ref)
        except Exception as exc:
            return self._failed(flight, exc)
        try:
            status, value, error, trace, cpu_s, wall_s, rss, peak, _total = cloudpickle.loads(reply)
        except Exception as exc:
            error = f"{type(exc).__name__}: the task's reply could not be unpickled here ({exc})"
            return TaskResult(flight.task.id, Outcome.ERROR, error=error, worker=where)
        return TaskResult(
            task_id=flight.task.id,
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

    def _failed(self, flight: _Flight, exc: Exception) -> TaskResult:
        """Map what Ray raised for a task onto an Outcome."""
        from ray import exceptions as rex

        task = flight.task
        wall_s = time.monotonic() - flight.submitted
        if isinstance(exc, rex.RayTaskError):  # execute itself raised: a bug or a broken worker
            return TaskResult(task.id, Outcome.ERROR, error=_first_line(exc), wall_s=wall_s)
        if isinstance(exc, rex.TaskCancelledError):
            return TaskResult(task.id, Outcome.CANCELLED, error=f"Task {_name(task)!r} was cancelled.")
        if isinstance(exc, (rex.TaskUnschedulableError, rex.RuntimeEnvSetupError)):
            error = f"Task {_name(task)!r} could not be started by Ray: {_first_line(exc)}"
            return TaskResult(task.id, Outcome.ERROR, error=error, wall_s=wall_s)
        note = read_note(task.id)
        if note is not None:
            return self._noted(task, note, wall_s)
        if isinstance(exc, rex.OutOfMemoryError):
            error = (
                f"Task {_name(task)!r} was stopped by Ray because its node ran out of memory; give it "
                f"a memory= ask so Ray places it where there is room. ({_first_line(exc)})"
            )
            return TaskResult(task.id, Outcome.MEMORY, error=error, wall_s=wall_s)
        error = f"Task {_name(task)!r}: its Ray worker or node died while running it ({_first_line(exc)})."
        return TaskResult(task.id, Outcome.CRASHED, error=error, wall_s=wall_s)

    def _noted(self, task: Task, note: tuple[str, list[str]], wall_s: float) -> TaskResult:
        """The outcome a task's watchdog recorded before ending its worker."""
        outcome, detail = note
        if outcome == "memory":
            rss, limit = int(detail[0]), int(detail[1])
            error = (
                f"Task {_name(task)!r} used {_size(rss)} of memory, over its limit of {_size(limit)}, and "
                "was stopped; raise its memory or make it use less."
            )
            return TaskResult(task.id, Outcome.MEMORY, error=error, max_rss=rss, wall_s=wall_s)
        limit_s = float(detail[0]) if detail else task.timeout_s or 0.0
        error = f"Task {_name(task)!r} ran longer than its timeout of {limit_s:.1f} s and was stopped."
        return TaskResult(task.id, Outcome.TIMEOUT, error=error, wall_s=wall_s)


def shared_executor(address: str | None = None, settings: Settings | None = None) -> RayExecutor:
    """This process's RayExecutor (made on first use); checks that `settings`' stores are shared.

    Raises:
        ConfigError: Ray is missing or the cluster cannot be reached.
        StorageNotShared: the cluster has nodes on other hosts and the stores are local.
    """
    key = address or ""
    with _lock:
        found = _shared.get(key)
        if found is None or found._closed:
            found = _shared[key] = RayExecutor(address)
    if settings is not None:
        found.check_storage(settings)
    return found


@atexit.register
def _shutdown_shared() -> None:
    with _lock:
        for executor in _shared.values():
            try:
                executor.shutdown()
            except Exception:  # the cluster may be gone already at exit
                pass
        _shared.clear()


# ---------------------------------------------------------------------------------- helpers


def _fits(res: Resources, node: ray_cluster.NodeInfo) -> bool:
    if res.cpu > node.cpus + 1e-9 or res.gpu > node.gpus + 1e-9:
        return False
    return res.memory is None or res.memory <= node.memory


def task_name(task: Task) -> str:
    """The Ray task name of an attempt: 'plinth LABEL TASK_ID' (Ray's task list shows it)."""
    return f"plinth {_name(task)} {task.id}"


def _name(task: Task) -> str:
    return task.label or task.id


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def _size(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB"
