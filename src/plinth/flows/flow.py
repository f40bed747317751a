"""`@flow`: ordinary Python whose step calls run as tracked tasks; `run` and `resume_flow`."""

from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from plinth.compute.base import Executor
from plinth.core.entities import FlowRun, RunStatus, StepRun
from plinth.core.errors import ConflictError, InvalidInput, PlinthError, StepFailed
from plinth.core.ids import now_ms
from plinth.core.validation import check_name
from plinth.flows.credentials import step_credentials
from plinth.flows.driver import FlowDriver
from plinth.flows.liveness import DriverCheck, check_driver, this_driver
from plinth.flows.source import load_object, source_of
from plinth.flows.step import current_driver
from plinth.flows.values import Ref, ValueCache, store_value
from plinth.tracking.context import Backend, backend
from plinth.tracking.progress import live_view
from plinth.tracking.run import Terminated, start_run

P = ParamSpec("P")
R = TypeVar("R")

EXECUTORS = ("local", "ray", "slurm")
EXECUTOR_TAG = "plinth.executor"
"""Tag of a flow's run: the executor it ran on by name; `resume_flow` uses it again by default."""
_executor_lock = threading.Lock()
_executors: dict[str | None, Executor] = {}


class FlowResult(Generic[R]):
    """A finished (or failed) flow run: id, status, step calls and the flow's return value."""

    def __init__(self, run: FlowRun, be: Backend) -> None:
        self.flow_run = run
        self._be = be

    def __repr__(self) -> str:
        return f"<FlowResult {self.flow_run.flow} {self.id} {self.status.value}>"

    @property
    def id(self) -> str:
        """The flow run's id (also its tracked run's id)."""
        return self.flow_run.id

    @property
    def status(self) -> RunStatus:
        """FINISHED, FAILED, KILLED or CRASHED."""
        return self.flow_run.status

    @property
    def error(self) -> str | None:
        """Why it failed."""
        return self.flow_run.error

    @property
    def steps(self) -> list[StepRun]:
        """Every step call, in call order."""
        return self._be.store.step_runs(self.id)

    @property
    def result(self) -> R:
        """What the flow function returned (step results resolved)."""
        if self.flow_run.result_digest is None:
            raise InvalidInput(f"Flow run {self.id} has no result ({self.status.value}).")
        return ValueCache().load(self._be.blobs, Ref(self.flow_run.result_digest, "flow result"))


class Flow(Generic[P, R]):
    """A flow: call `run(**params)` to execute it; its body schedules steps."""

    def __init__(self, fn: Callable[P, R], name: str, schedule: str | None, executor: str) -> None:
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]  # a Flow stands for its function
        self.fn = fn
        self.name = name
        self.schedule = schedule
        self.executor = executor
        self._signature = inspect.signature(fn)

    def __repr__(self) -> str:
        return f"<flow {self.name}>"

    def run(
        self,
        *,
        executor: Executor | str | None = None,
        raise_on_failure: bool = True,
        resume: tuple[str, dict[str, StepRun]] | None = None,
        observer: Callable[[FlowDriver], None] | None = None,
        ray_address: str | None = None,
        **params: Any,
    ) -> FlowResult[R]:
        """Run the flow with `params` (the function's arguments) and wait for it.

        `executor` is an Executor, or a name ("local", "ray", "slurm"; default: the flow's own),
        and `ray_address` the Ray cluster for "ray" ("auto", "HOST:PORT", "ray://HOST:10001").
        "slurm" submits sbatch jobs as the PLINTH_SLURM_* settings say (partition, account, ...).
        `observer` is called with the driver as steps advance; without one, a notebook shows the
        steps advancing in the cell's output, updated in place.

        Raises:
            StepFailed: a step failed after its retries (unless raise_on_failure=False).
            InvalidInput: params the flow function does not take, or that are not JSON values.
        """
        bound = self._bind(params)
        be = backend()
        tags = {"plinth.kind": "flow"}
        if not isinstance(executor, Executor):
            tags[EXECUTOR_TAG] = executor or self.executor
            executor = default_executor(be, tags[EXECUTOR_TAG], ray_address)
        active = start_run(
            experiment=self.name,
            name=f"flow {self.name}",
            params={k: _text(v) for k, v in bound.items()},
            tags=tags,
            capture_env=True,
            system_metrics=False,  # the driver only schedules; its steps' runs measure the work
        )
        here = this_driver()
        record = FlowRun(
            id=active.id,
            flow=self.name,
            status=RunStatus.RUNNING,
            params=bound,
            source=source_of(self.fn),
            start_ms=now_ms(),
            end_ms=None,
            resumed_from=resume[0] if resume else None,
            driver_host=here.host,
            driver_pid=here.pid,
            driver_ns=here.ns,
        )
        be.store.create_flow_run(record)
        # in a notebook, with no observer of the caller's, the steps advance in the cell's output
        shown = live_view("flow", self.name, active.id) if observer is None else None
        with step_credentials(be.settings, active.id) as step_env:
            driver = FlowDriver(be, executor, active.id, self.name, resume[1] if resume else None, step_env)
            driver.observer = shown.observe if shown is not None else observer
            status, error, digest, raised = self._drive(driver, bound)
        be.store.finish_flow_run(active.id, status, now_ms(), digest, error)
        active.end(status, error)
        if shown is not None:
            shown.close()  # the flow run as stored: its graph and every step's status
        if raised is not None:  # the flow body itself raised, or was interrupted: the run is recorded
            raise raised
        result: FlowResult[R] = FlowResult(be.store.get_flow_run(active.id), be)
        if status is RunStatus.FAILED and raise_on_failure and driver.failure is not None:
            failure = StepFailed(str(driver.failure))
            failure.flow_run = result  # type: ignore[attr-defined]
            raise failure
        return result

    def _drive(
        self, driver: FlowDriver, params: dict[str, Any]
    ) -> tuple[RunStatus, str | None, str | None, BaseException | None]:
        """Run the body and every step; returns (status, error, result digest, exception to re-raise)."""
        body: Callable[..., R] = self.fn  # `params` were bound to its signature by `_bind`
        token = current_driver.set(driver)
        try:
            value = body(**params)
            driver.pump()
            digest, _ = store_value(driver.be.blobs, driver.materialize(value))
            return RunStatus.FINISHED, None, digest, None
        except StepFailed as exc:
            return RunStatus.FAILED, str(exc), None, None
        except (KeyboardInterrupt, Terminated) as exc:
            driver.cancel_all("cancelled: the flow was interrupted")
            return RunStatus.KILLED, f"{type(exc).__name__}: interrupted", None, exc
        except Exception as exc:
            driver.cancel_all(f"cancelled: the flow body raised {type(exc).__name__}")
            return RunStatus.FAILED, f"{type(exc).__name__}: {exc}"[:4000], None, exc
        finally:
            with contextlib.suppress(PlinthError):
                driver._persist()
            current_driver.reset(token)

    def _bind(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            bound = self._signature.bind(**params)
        except TypeError as exc:
            raise InvalidInput(
                f"Flow {self.name}: {exc}; its parameters are {list(self._signature.parameters)}."
            ) from exc
        bound.apply_defaults()
        try:
            json.dumps(bound.arguments)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"Flow {self.name}: params must be JSON values (numbers, strings, lists): {exc}"
            ) from exc
        return dict(bound.arguments)


@overload
def flow(
    fn: Callable[P, R],
    *,
    name: str | None = None,
    schedule: str | None = None,
    executor: str = "local",
) -> Flow[P, R]: ...
@overload
def flow(
    fn: None = None,
    *,
    name: str | None = None,
    schedule: str | None = None,
    executor: str = "local",
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...
def flow(
    fn: Callable[P, R] | None = None,
    *,
    name: str | None = None,
    schedule: str | None = None,
    executor: str = "local",
) -> Flow[P, R] | Callable[[Callable[P, R]], Flow[P, R]]:
    """Declare a flow: ordinary Python whose step calls are scheduled, tracked and stored.

    `@flow` or `@flow(name=..., schedule=..., executor=...)` over a function; run it with
    `.run(**params)`, which returns a `FlowResult` whose `.result` is what the function returned.

    Example:
        @flow(name="iris-train", schedule="0 3 * * *")
        def pipeline(lr: float = 0.1):
            return train(load(), lr)
    """

    if executor not in EXECUTORS:
        raise InvalidInput(f"@flow(executor={executor!r}): use one of {', '.join(EXECUTORS)}.")

    def wrap(func: Callable[P, R]) -> Flow[P, R]:
        if schedule is not None:
            from plinth.flows.schedule import check_cron

            check_cron(schedule)
        return Flow(func, check_name(name or func.__name__, "flow"), schedule, executor)

    return wrap(fn) if fn is not None else wrap


def resume_flow(
    run_id: str,
    *,
    executor: Executor | str | None = None,
    raise_on_failure: bool = True,
    observer: Callable[[FlowDriver], None] | None = None,
    ray_address: str | None = None,
    force: bool = False,
) -> FlowResult[Any]:
    """Run a flow run again with the same params, reusing every step call that finished in it.

    A run still recorded as RUNNING whose driver ran on this host, in this boot and PID namespace,
    and is gone is marked CRASHED (with its running step calls) and resumed at once. On SLURM, a
    call whose job still runs (or has left its result) is adopted: waited for, not run again.

    Args:
        executor: an Executor or a name; default the one the run used (else the flow's own).
        force: Mark a run CRASHED and resume it even though its driver may be alive: one on
            another host, boot or PID namespace (container), whose heartbeat has not decided yet,
            or one alive here (both then run).

    Raises:
        ConflictError: the run's driver is alive, or elsewhere and still beating; the
            message names its host and pid and says when the heartbeat decides.
    """
    be = backend()
    earlier = _ended(be, be.store.get_flow_run(run_id), force)
    target = load_object(earlier.source)
    if not isinstance(target, Flow):
        raise InvalidInput(f"{earlier.source} is no longer a @flow; cannot resume {run_id}.")
    # the driver reuses the calls with a result, and adopts those still running in a job
    earlier_calls = {s.call: s for s in be.store.step_runs(run_id)}
    if executor is None:
        executor = be.store.get_run(run_id).tags.get(EXECUTOR_TAG)
    return target.run(
        executor=executor,
        raise_on_failure=raise_on_failure,
        resume=(run_id, earlier_calls),
        observer=observer,
        ray_address=ray_address,
        **earlier.params,
    )


def _ended(be: Backend, run: FlowRun, force: bool) -> FlowRun:
    """`run` once it has ended: a driver that is gone (or, with force, any driver) is recorded CRASHED."""
    if run.status is RunStatus.CRASHED:  # maybe derived from missed beats: record it, steps included
        be.store.crash_flow_run(run.id, now_ms(), "Its driver stopped beating: it died or lost the store.")
    if run.status is not RunStatus.RUNNING:
        return run
    check = check_driver(run, be.store.get_run(run.id), now_ms())
    if check.verdict == "alive" and not force:
        raise ConflictError(
            f"Flow run {run.id} is still running: its driver, {check.driver}, is alive. Wait for it, "
            f"or {check.how_to_stop} and resume again; `plinth flows resume "
            f"--force {run.id}` marks it CRASHED and resumes now, beside the driver that still runs."
        )
    if check.verdict == "unknown" and not force:
        raise ConflictError(_undecided(run, check))
    why = "is gone" if check.verdict == "gone" else "was taken for dead by a forced resume"
    be.store.crash_flow_run(run.id, now_ms(), f"Its driver, {check.driver}, {why}.")
    return be.store.get_flow_run(run.id)


def _undecided(run: FlowRun, check: DriverCheck) -> str:
    whose = f"its driver, {check.driver}, ran {check.elsewhere}" if check.host else "it names no driver"
    return (
        f"Flow run {run.id} is recorded as running: {whose}, so "
        f"this process on {check.here} cannot tell whether it is alive. Its heartbeat decides in "
        f"{check.decides_in_s:.3g} s (a driver that misses 3 beats, {check.heartbeat_s:g} s apart, "
        f"is CRASHED); resume then, or now with `plinth flows resume --force {run.id}` "
        f"(resume_flow(..., force=True)) if you know the driver is gone."
    )


def default_executor(be: Backend, name: str = "local", ray_address: str | None = None) -> Executor:
    """The process's executor called `name` ("local", "ray" or "slurm") for these settings,
    started on first use. "slurm" takes its options from the PLINTH_SLURM_* variables.

    Raises:
        InvalidInput: an unknown name.
        StorageNotShared: "ray" or "slurm" on a cluster with nodes on other hosts while the
            stores are local.
    """
    if name == "ray":
        from plinth.compute.ray import shared_executor

        return shared_executor(ray_address, be.settings)
    if name == "slurm":
        from plinth.compute.slurm import SlurmOptions
        from plinth.compute.slurm import shared_executor as slurm_executor

        return slurm_executor(be.settings, SlurmOptions.from_env())
    if name != "local":
        raise InvalidInput(f"Unknown executor {name!r}; use one of {', '.join(EXECUTORS)}.")
    from plinth.compute.gpus import discover_gpus
    from plinth.compute.local import LocalExecutor

    key = be.settings.gpus
    with _executor_lock:
        found = _executors.get(key)
        if found is None:
            found = _executors[key] = LocalExecutor(gpus=discover_gpus(be.settings.gpus))
        return found


@atexit.register
def _shutdown_executors() -> None:
    with _executor_lock:
        for executor in _executors.values():
            executor.shutdown()
        _executors.clear()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
