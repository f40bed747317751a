"""`RayExecutor`: runs tasks as Ray tasks on a Ray cluster, each within its CPU, GPU and memory ask.

A `Task` attempt becomes a Ray task (`num_cpus`, `num_gpus` and `memory` from its Resources) with
Ray's own retries off: retrying is the flow driver's job, so every attempt is recorded, as with
the local executor. Ray keeps worker processes alive between tasks, so what a worker caches
(open stores, unpickled step functions, loaded inputs) serves the next task as in the local pool;
an actor per worker would add nothing. Results come back through Ray's object store only as the
small reply of `worker.run_request` (for flow steps: a report naming the stored result blob).

Packing: Ray costs about half a millisecond of cluster CPU per task, more than a trivial step
costs plinth. When many tasks with the same ask and no timeout or memory limit are submitted at
once (a fan-out), up to `pack` of them ride one Ray task and run one after the other in its
worker, as long as that still leaves at least two Ray tasks per slot of the cluster, so every
CPU stays busy. Should such a Ray task die, its tasks run again one per Ray task, so a task that
crashes its worker takes no other task's attempt with it.

Submitted tasks reach Ray when `wait` is next called (or when `FLUSH_AT` are waiting).
A group task (`Task.workers` > 1) is never packed: it gets a placement group at once and its
ranks run as fresh Ray worker processes (`ray/groups.py`, `ray/placement.py`).
Outcomes are mapped in `ray/outcomes.py`; limits are enforced in the Ray worker (`ray/worker.py`).
`ray` is imported only when an executor is made.
"""

from __future__ import annotations

import atexit
import os
import pickle
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from plinth.compute.base import Executor, Outcome, Resources, Task, TaskResult, check_new_task, task_payload
from plinth.compute.ray import cluster, placement
from plinth.compute.ray.groups import RayGroups
from plinth.compute.ray.outcomes import from_error, from_reply, name, size
from plinth.compute.ray.worker import execute, execute_many
from plinth.core.errors import ResourceError
from plinth.core.settings import Settings
from plinth.store.audit_key import audit_key_env

NODES_TTL_S = 5.0
"""How long the list of nodes that `submit` checks asks against is reused."""
PACK = 8
"""Default most tasks per Ray task (1 turns packing off)."""
FLUSH_AT = 1024
"""Submitted tasks handed to Ray at once without waiting for the next `wait`."""
_lock = threading.Lock()
_shared: dict[str, RayExecutor] = {}

_Item = tuple[Task, bytes]  # a task and its encoded request


@dataclass(eq=False)
class _Flight:
    """One Ray task in flight and the tasks it runs (several when packed)."""

    items: list[_Item]
    ref: Any
    submitted: float
    live: set[str] = field(default_factory=set)  # ids of its tasks not cancelled


class RayExecutor(Executor):
    """Runs tasks on a Ray cluster.

    Args:
        address: the cluster: "auto", "HOST:PORT", "ray://HOST:10001" or None (RAY_ADDRESS, a
            running local cluster, or a new single-node Ray). Ignored when this process is already
            connected (`ray.init` done elsewhere) to that cluster.
        init_options: more keyword arguments for `ray.init`.
        wait_for_resources: queue tasks no node can run yet (an autoscaler may add one) instead of
            raising ResourceError.
        pack: most tasks one Ray task may run (see the module docstring); 1 for one each.

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
        pack: int = PACK,
    ) -> None:
        self._ray = cluster.import_ray()
        self._owns_connection = not self._ray.is_initialized()
        self.address = cluster.connect(address, init_options)
        self._one = self._ray.remote(execute)
        self._many = self._ray.remote(execute_many)
        self._wait_for_resources = wait_for_resources
        self._pack = max(1, int(pack))
        self._cwd = os.getcwd()
        self._pending: dict[str, _Item] = {}
        self._flights: dict[Any, _Flight] = {}
        self._by_id: dict[str, _Flight] = {}
        self._done: list[TaskResult] = []
        self._nodes: list[cluster.NodeInfo] = []
        self._nodes_at = float("-inf")
        self._env: dict[str, str] | None = None  # forwarded variables, read once per round of submits
        self._groups = RayGroups(self._ray, self._cwd, self._node_addresses)
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
        """Queue `task` for Ray; ResourceError if the cluster could never run it (all its ranks at once)."""
        known = task.id in self._by_id or task.id in self._pending or task.id in self._groups
        check_new_task(task, closed=self._closed, known=known)
        if task.workers > 1:
            self._check_group_fits(task)
        else:
            self._check_fits(task)
        payload = task_payload(task)
        if isinstance(payload, TaskResult):
            self._done.append(payload)
            return
        if self._env is None:  # with the audit key, which a key file on this host cannot give other nodes
            self._env = {**cluster.forwarded_env(), **audit_key_env(os.environ)}
        env = {**self._env, **task.env} if task.env else self._env
        if task.workers > 1:
            self._groups.start(task, env, payload)
            return
        self._pending[task.id] = (task, pickle.dumps((None, env, payload), protocol=pickle.HIGHEST_PROTOCOL))
        if len(self._pending) >= FLUSH_AT:
            self._flush()

    def wait(self, timeout: float | None = None) -> list[TaskResult]:
        """Block until at least one task ends (or `timeout` seconds pass); return the ended ones."""
        self._env = None
        self._flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done and (self._flights or self._groups):
            refs = [*self._flights, *self._groups.refs()]
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = self._ray.wait(refs, num_returns=1, timeout=left)
            if ready and len(refs) > 1:
                ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in ready:
                if ref in self._flights:
                    self._collect(self._flights.pop(ref))
            self._done.extend(self._groups.collect(ref for ref in ready if self._groups.owns(ref)))
            if deadline is not None and time.monotonic() >= deadline:
                break
        done, self._done = self._done, []
        return done

    def cancel(self, task_id: str) -> None:
        """Drop a queued task or force-cancel a running one (its worker is ended); it ends CANCELLED.

        A group's ranks are all force-cancelled and its placement group removed.
        """
        stopped = self._groups.cancel(task_id)
        if stopped is not None:
            self._done.append(stopped)
            return
        item = self._pending.pop(task_id, None)
        flight = self._by_id.pop(task_id, None)
        if flight is not None:
            item = next(i for i in flight.items if i[0].id == task_id)
            flight.live.discard(task_id)
            if not flight.live:  # a packed Ray task runs on while any of its tasks is wanted
                del self._flights[flight.ref]
                try:
                    self._ray.cancel(flight.ref, force=True)
                except Exception:  # already ended, or the cluster is gone: nothing left to stop
                    pass
        if item is not None:
            message = f"Task {name(item[0])!r} was cancelled."
            self._done.append(TaskResult(task_id, Outcome.CANCELLED, error=message))

    def running(self) -> int:
        """Tasks queued or running."""
        return len(self._pending) + len(self._by_id) + len(self._groups)

    def shutdown(self) -> None:
        """Cancel every task; disconnect from Ray when this executor connected."""
        if self._closed:
            return
        self._closed = True
        for task_id in [*self._pending, *self._by_id, *self._groups.ids()]:
            self.cancel(task_id)
        self._done.clear()
        if self._owns_connection and self._ray.is_initialized():
            self._ray.shutdown()

    def check_storage(self, settings: Settings) -> None:
        """Raise StorageNotShared when nodes on other hosts could not use these settings' stores."""
        cluster.check_shared_storage(settings)

    # ------------------------------------------------------------------------------ sending

    def _flush(self) -> None:
        """Hand every queued task to Ray, packing fan-outs of small tasks."""
        if not self._pending:
            return
        pending, self._pending = list(self._pending.values()), {}
        groups: dict[Resources, list[_Item]] = {}
        for item in pending:
            task = item[0]
            if (
                self._pack > 1
                and task.timeout_s is None
                and task.resources.memory is None
                and not task.resources.gpu
            ):
                groups.setdefault(task.resources, []).append(item)
            else:
                self._send([item])
        for res, items in groups.items():
            size = self._pack_size(res, len(items))
            for start in range(0, len(items), size):
                self._send(items[start : start + size])

    def _pack_size(self, res: Resources, count: int) -> int:
        """Tasks per Ray task: at most `pack`, and at least two Ray tasks for each slot of `res`."""
        cpus = sum(n.cpus for n in self._current_nodes())
        slots = max(1, int(cpus / res.cpu)) if res.cpu > 0 else count
        return max(1, min(self._pack, count // (2 * slots)))

    def _send(self, items: list[_Item]) -> None:
        task, request = items[0]
        res = task.resources
        options: dict[str, Any] = {"num_cpus": res.cpu, "max_retries": 0}
        if res.gpu:
            options["num_gpus"] = res.gpu
        if res.memory is not None:
            options["memory"] = res.memory
        if len(items) == 1:
            options["name"] = task_name(task)
            ref = self._one.options(**options).remote(request, task.id, self._cwd, task.timeout_s, res.memory)
        else:
            options["name"] = "plinth " + " ".join(t.id for t, _ in items)
            ref = self._many.options(**options).remote([r for _, r in items], self._cwd)
        flight = _Flight(items, ref, time.monotonic(), {t.id for t, _ in items})
        self._flights[ref] = flight
        for item in items:
            self._by_id[item[0].id] = flight

    # ------------------------------------------------------------------------------ results

    def _collect(self, flight: _Flight) -> None:
        """Record the results of an ended Ray task's live tasks (or send them again, one each)."""
        live = [item for item in flight.items if item[0].id in flight.live]
        for task, _ in live:
            del self._by_id[task.id]
        try:
            answer = self._ray.get(flight.ref)
        except Exception as exc:
            if len(flight.items) == 1:
                self._done.append(from_error(flight.items[0][0], exc, flight.submitted))
            else:  # a packed Ray task died: run each of its tasks again on its own
                for item in live:
                    self._send([item])
            return
        if len(flight.items) == 1:
            self._done.extend(from_reply(task, answer) for task, _ in live)
            return
        for (task, _), reply in zip(flight.items, answer, strict=True):
            if task.id in flight.live:
                self._done.append(from_reply(task, reply))

    # ------------------------------------------------------------------------------ resources

    def _current_nodes(self, refresh: bool = False) -> list[cluster.NodeInfo]:
        now = time.monotonic()
        if refresh or now - self._nodes_at > NODES_TTL_S:
            self._nodes = cluster.nodes()
            self._nodes_at = now
        return self._nodes

    def _node_addresses(self) -> dict[str, str]:
        return {n.id: n.address for n in self._current_nodes(refresh=True)}

    def _check_group_fits(self, task: Task) -> None:
        chosen = placement.strategy(task)
        if self._wait_for_resources:
            return
        try:
            placement.check_fits(task, chosen, self._current_nodes())
        except ResourceError:
            placement.check_fits(task, chosen, self._current_nodes(refresh=True))

    def _check_fits(self, task: Task) -> None:
        res = task.resources
        if self._wait_for_resources or any(_fits(res, n) for n in self._current_nodes()):
            return
        if any(_fits(res, n) for n in self._current_nodes(refresh=True)):
            return
        nodes = ", ".join(
            f"{n.address} {n.cpus:g} CPUs, {n.gpus:g} GPUs, {size(n.memory)}" for n in self._nodes
        )
        raise ResourceError(
            f"Task {name(task)!r} asks for {res.describe()} but no node of the Ray cluster has that much "
            f"(nodes: {nodes or 'none'}); lower what it asks for, add a node that has it, or use "
            "RayExecutor(wait_for_resources=True) where an autoscaler adds nodes."
        )


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


def task_name(task: Task) -> str:
    """The Ray task name of an attempt: 'plinth LABEL TASK_ID' (Ray's task list shows it)."""
    return f"plinth {name(task)} {task.id}"


def _fits(res: Resources, node: cluster.NodeInfo) -> bool:
    if res.cpu > node.cpus + 1e-9 or res.gpu > node.gpus + 1e-9:
        return False
    return res.memory is None or res.memory <= node.memory
