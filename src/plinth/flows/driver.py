"""The flow driver: turns step calls into tasks, runs them on an executor, records everything.

The flow body runs in the driver's thread; each step call returns a `StepFuture` at once.
The driver launches a call when its inputs are done, reusing an earlier result where resume
or the cache allows, and writes runs, step rows, ends and lineage in batches.

On an executor that runs attempts as scheduler jobs (one with `job_of`, such as SLURM's), each
attempt's job id is recorded on the step's run as the tag `plinth.slurm_job` (its log file as
`plinth.slurm_log`, for `plinth flows logs`). On resume, a call that the dead driver left
running in a job the executor can still `adopt` is waited for, not run again.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from plinth.compute.base import Executor, Outcome, Task, TaskResult
from plinth.core.entities import LineageEdge, RunStatus, StepRun, StepStatus
from plinth.core.errors import StepFailed
from plinth.core.ids import new_id, now_ms
from plinth.flows import hashing
from plinth.flows.credentials import payload_settings
from plinth.flows.future import (
    StepFuture,
    call_params,
    futures_in,
    group_tags,
    rank_usage,
    resource_tags,
    with_refs,
)
from plinth.flows.runtime import StepPayload, StepReport, run_step
from plinth.flows.values import Ref, ValueCache
from plinth.store.base import ArtifactRecord, NewRun

if TYPE_CHECKING:
    from plinth.flows.step import Step
    from plinth.tracking.context import Backend

# Step records are written at most this often while steps run (and always at the end): a crash
# loses at most this much bookkeeping, which resume redoes; results are already stored blobs.
PERSIST_EVERY_S = 0.2
JOB_TAG = "plinth.slurm_job"
"""Tag of a step's run: the scheduler job that runs (or ran) its latest attempt."""
JOB_LOG_TAG = "plinth.slurm_log"
"""Tag of a step's run: the file that job writes its own stdout and stderr to."""
ADOPTED_TAG = "plinth.adopted_from"
"""Tag of a step's run on resume: the earlier run whose attempt, still running in a job, it waited for."""
_ADOPTABLE = (StepStatus.RUNNING, StepStatus.CRASHED)


class FlowDriver:
    """Schedules one flow run's step calls on an executor and records them."""

    def __init__(
        self,
        be: Backend,
        executor: Executor,
        flow_run_id: str,
        flow_name: str,
        previous: dict[str, StepRun] | None = None,
        step_env: Mapping[str, str] | None = None,
    ) -> None:
        self.be = be
        self.step_env = dict(step_env or {})  # a team server's step token (plinth.flows.credentials)
        self.step_settings = payload_settings(be.settings)
        self.store = be.store
        self.executor = executor
        self.flow_run_id = flow_run_id
        self.flow_name = flow_name
        self.previous = previous or {}
        self.futures: list[StepFuture] = []
        self._counts: collections.Counter[str] = collections.Counter()
        self._ready: list[StepFuture] = []
        self._retry_at: list[tuple[float, StepFuture]] = []
        self._by_task: dict[str, StepFuture] = {}
        self._fn_bytes: dict[str, tuple[str, bytes]] = {}
        self._values = ValueCache()
        self._rows: dict[str, StepRun] = {}
        self._ends: list[tuple[str, RunStatus, str | None, int]] = []
        self._edges: list[LineageEdge] = []
        self._points: list[tuple[str, str, int, int, int, float]] = []
        self._logs: list[tuple[str, ArtifactRecord]] = []
        self._tags: dict[str, dict[str, str]] = {}
        self._job_of: Callable[[str], str | None] | None = getattr(executor, "job_of", None)
        self._unnoted: dict[str, str] = {}  # task id -> run id, for attempts whose job is not tagged yet
        self.failure: StepFailed | None = None
        self._persisted_at = 0.0
        self.observer: Callable[[FlowDriver], None] | None = None

    # the flow body's side ----------------------------------------------------------------------
    def submit(self, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> StepFuture:
        """Record a step call; it launches once every future among its arguments is done."""
        if self.failure is not None:
            raise self.failure
        call = f"{step.name}#{self._counts[step.name]}"
        self._counts[step.name] += 1
        deps = list(dict.fromkeys(futures_in((args, kwargs))))
        future = StepFuture(self, call, step, args, kwargs, deps)
        self.futures.append(future)
        waiting = [d for d in deps if not d.done]
        for dep in waiting:
            dep.dependents.append(future)
        future.pending = len(waiting)
        if not waiting:
            future.state = "ready"
            self._ready.append(future)
        return future

    def value_of(self, future: StepFuture) -> Any:
        """The value of a call, running the flow until it is done."""
        self.pump(until=future)
        assert future.row is not None and future.row.result_digest is not None
        return self._values.load(self.be.blobs, Ref(future.row.result_digest, future.call))

    def materialize(self, value: Any) -> Any:
        """`value` with every StepFuture inside replaced by its result."""
        if isinstance(value, StepFuture):
            return self.value_of(value)
        if isinstance(value, list):
            return [self.materialize(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.materialize(v) for v in value)
        if isinstance(value, dict):
            return {k: self.materialize(v) for k, v in value.items()}
        return value

    # the loop ------------------------------------------------------------------------------------
    def pump(self, until: StepFuture | None = None) -> None:
        """Run until `until` is done (or everything is, when None); raise StepFailed on failure."""
        try:
            while True:
                if self.failure is not None:
                    raise self.failure
                if until is not None and until.done:
                    return
                self._launch(self._ready)
                self._launch_due_retries()
                if not self._by_task and not self._retry_at and not self._ready:
                    return
                results = self.executor.wait(timeout=self._wait_timeout())
                self._note_jobs()  # before the results: an attempt that already ended had a job too
                for result in results:
                    self._handle(result)
                if time.monotonic() - self._persisted_at >= PERSIST_EVERY_S:
                    self._persist()
                if self.observer is not None:
                    self.observer(self)
        finally:
            self._persist()

    def _wait_timeout(self) -> float:
        if not self._retry_at:
            return 1.0
        return max(0.0, min(t for t, _ in self._retry_at) - time.monotonic())

    def _launch_due_retries(self) -> None:
        now = time.monotonic()
        due = [f for t, f in self._retry_at if t <= now]
        if due:
            self._retry_at = [(t, f) for t, f in self._retry_at if t > now]
            for future in due:
                self._submit_attempt(future)

    def counts(self) -> dict[str, collections.Counter[str]]:
        """Per step name: how many calls are waiting, running, done, cached, failed, cancelled."""
        out: dict[str, collections.Counter[str]] = {}
        for future in self.futures:
            state = future.state
            if state == "done" and future.row is not None and future.row.status is StepStatus.CACHED:
                state = "cached"
            out.setdefault(future.step.name, collections.Counter())[state] += 1
        return out

    # launching -----------------------------------------------------------------------------------
    def _launch(self, ready: list[StepFuture]) -> None:
        if not ready:
            return
        batch, self._ready = list(ready), []
        fresh = []
        for future in batch:
            args, kwargs = with_refs(future.args), with_refs(future.kwargs)
            inputs = hashing.input_digest(args, kwargs)
            future.args, future.kwargs = args, kwargs
            reused = self._reusable(future, inputs)
            if reused is not None:
                self._reuse(future, inputs, reused)
            else:
                fresh.append((future, inputs))
        if fresh:
            self._start(fresh)

    def _reusable(self, future: StepFuture, inputs: str) -> StepRun | None:
        earlier = self.previous.get(future.call)
        if earlier is not None and earlier.input_digest == inputs and earlier.status.has_result:
            return earlier
        if future.step.options.cache:
            return self.store.cached_step(self._cache_key(future.step, inputs))
        return None

    def _cache_key(self, step: Step[..., Any], inputs: str) -> str:
        return hashing.cache_key(self._function(step)[0], inputs)

    def _reuse(self, future: StepFuture, inputs: str, earlier: StepRun) -> None:
        at = now_ms()
        future.row = StepRun(
            id=new_id(),
            flow_run_id=self.flow_run_id,
            call=future.call,
            step=future.step.name,
            status=StepStatus.CACHED,
            attempts=0,
            start_ms=at,
            end_ms=at,
            input_digest=inputs,
            cache_key=earlier.cache_key,
            result_digest=earlier.result_digest,
            log_digest=earlier.log_digest,
            resources=earlier.resources,
            usage=earlier.usage,
            reused_from=earlier.reused_from or earlier.id,
        )
        self._rows[future.row.id] = future.row
        self._link_inputs(future)
        self._finish(future)

    def _start(self, fresh: list[tuple[StepFuture, str]]) -> None:
        settings = self.be.settings
        specs = [
            NewRun(
                experiment=self.flow_name,
                name=future.call,
                params=call_params(future),
                tags={
                    "plinth.kind": "step",
                    "plinth.flow_run": self.flow_run_id,
                    "plinth.step": future.step.name,
                    **resource_tags(future.step.options.resources),
                    **group_tags(future.step.options),
                },
                environment=None,
                heartbeat_s=settings.heartbeat_s,
                user=settings.user,
            )
            for future, _ in fresh
        ]
        runs = self.store.create_runs(specs)
        at = now_ms()
        for (future, inputs), run in zip(fresh, runs, strict=True):
            options = future.step.options
            future.row = StepRun(
                id=run.id,
                flow_run_id=self.flow_run_id,
                call=future.call,
                step=future.step.name,
                status=StepStatus.RUNNING,
                attempts=0,
                start_ms=at,
                end_ms=None,
                input_digest=inputs,
                cache_key=self._cache_key(future.step, inputs) if options.cache else None,
                resources={
                    "cpu": options.resources.cpu,
                    "memory": options.resources.memory,
                    "gpu": options.resources.gpu,
                },
            )
            future.experiment_id = run.experiment_id
            self._rows[run.id] = future.row
            self._link_inputs(future)
            self.be.heartbeat.add(run.id)
            if not self._adopt(future):
                self._submit_attempt(future)

    def _submit_attempt(self, future: StepFuture) -> None:
        assert future.row is not None
        future.attempts += 1
        task = self._task(future, future.row.id, future.attempts)
        self._track(future, task)
        self.executor.submit(task)

    def _adopt(self, future: StepFuture) -> bool:
        """On resume: track the attempt of this call that the earlier driver left running in a
        job, when the executor can still deliver its result; False when it must run again."""
        adopt = getattr(self.executor, "adopt", None)
        earlier = self.previous.get(future.call)
        assert future.row is not None
        if adopt is None or earlier is None or earlier.status not in _ADOPTABLE or earlier.attempts < 1:
            return False
        if earlier.input_digest != future.row.input_digest:
            return False
        task = self._task(future, earlier.id, earlier.attempts)
        if not adopt(task):
            return False
        future.attempts = earlier.attempts
        self._track(future, task)
        self._tags.setdefault(future.row.id, {})[ADOPTED_TAG] = earlier.id
        return True

    def _task(self, future: StepFuture, run_id: str, attempt: int) -> Task:
        """The task of one attempt at a call, run in (and logging to) the tracked run `run_id`."""
        fn_digest, fn_bytes = self._function(future.step)
        options = future.step.options
        payload = StepPayload(
            settings=self.step_settings,
            run_id=run_id,
            experiment_id=future.experiment_id,
            call=future.call,
            fn_digest=fn_digest,
            fn_bytes=fn_bytes,
            args=future.args,
            kwargs=future.kwargs,
            resources=options.resources,
            attempt=attempt,
            workers=options.workers,
            distributed=options.distributed,
            checkpoint_runs=self._earlier_runs(future.call, run_id),
        )
        return Task(
            id=f"{run_id}:{attempt}",
            fn=run_step,
            args=(payload,),
            resources=options.resources,
            timeout_s=options.timeout_s,
            env=self.step_env,
            label=future.call,
            scheduler=options.scheduler,
            workers=options.workers,
        )

    def _earlier_runs(self, call: str, run_id: str) -> tuple[str, ...]:
        """On resume: the run of the same call in the flow run resumed, when it left no result
        (its checkpoints are where this call's attempts continue from)."""
        earlier = self.previous.get(call)
        if earlier is None or earlier.status.has_result or earlier.id == run_id:
            return ()
        return (earlier.id,)

    def _track(self, future: StepFuture, task: Task) -> None:
        """`future` is running as `task` (its latest attempt)."""
        assert future.row is not None
        future.state = "running"
        future.task_id = task.id
        self._by_task[task.id] = future
        future.row = replace(future.row, attempts=future.attempts)
        self._rows[future.row.id] = future.row
        if self._job_of is not None:
            self._unnoted[task.id] = future.row.id

    def _note_jobs(self) -> None:
        """Tag each attempt's run with its scheduler job once the executor has submitted it."""
        if self._job_of is None or not self._unnoted:
            return
        for task_id, run_id in list(self._unnoted.items()):
            job = self._job_of(task_id)
            if job is not None:
                tags = self._tags.setdefault(run_id, {})
                tags[JOB_TAG] = job
                log = getattr(self.executor, "log_path", lambda _: None)(task_id)
                if log:
                    tags[JOB_LOG_TAG] = log
            if job is not None or task_id not in self._by_task:
                del self._unnoted[task_id]

    def _function(self, step: Step[..., Any]) -> tuple[str, bytes]:
        found = self._fn_bytes.get(step.name)
        if found is None:
            from plinth.flows.source import pickled_function

            found = self._fn_bytes[step.name] = (hashing.code_hash(step.fn), pickled_function(step.fn))
        return found

    # results ---------------------------------------------------------------------------------------
    def _handle(self, result: TaskResult) -> None:
        future = self._by_task.pop(result.task_id, None)
        if future is None or result.outcome is Outcome.CANCELLED:
            return
        usage = {
            "max_rss": result.max_rss,
            "cpu_s": result.cpu_s,
            "wall_s": result.wall_s,
            "gpus": list(result.gpus),
            "worker": result.worker,
        }
        if result.ranks:
            usage["ranks"] = rank_usage(result.ranks)
        report = result.value if result.ok else None
        assert future.row is not None
        self._record_usage(future.row.id, usage, future.attempts)
        if isinstance(report, StepReport):
            if report.log_digest is not None:
                self._logs.append(
                    (future.row.id, ArtifactRecord("logs/output.txt", report.log_digest, report.log_size))
                )
            future.row = replace(future.row, log_digest=report.log_digest, usage=usage)
            if report.error is None:
                future.row = replace(future.row, result_digest=report.result_digest)
                return self._finish(future)
            return self._attempt_failed(future, report.error)
        future.row = replace(future.row, usage=usage)
        return self._attempt_failed(future, result.error or f"ended as {result.outcome.value}")

    def _record_usage(self, run_id: str, usage: dict[str, Any], attempt: int) -> None:
        """The resources an attempt used, as metrics of the step's run (step = attempt number)."""
        at = now_ms()
        for key in ("max_rss", "cpu_s", "wall_s"):
            self._points.append((run_id, f"plinth.{key}", attempt, time.time_ns(), at, float(usage[key])))

    def _finish(self, future: StepFuture) -> None:
        assert future.row is not None
        future.state = "done"
        if future.row.status is not StepStatus.CACHED:
            future.row = replace(future.row, status=StepStatus.FINISHED, end_ms=now_ms(), error=None)
            self._ends.append((future.row.id, RunStatus.FINISHED, None, future.row.end_ms or now_ms()))
            self.be.heartbeat.remove(future.row.id)
        self._rows[future.row.id] = future.row
        self._link(future)
        for dependent in future.dependents:
            dependent.pending -= 1
            if dependent.state == "waiting" and dependent.pending == 0:
                dependent.state = "ready"
                self._ready.append(dependent)

    def _link_inputs(self, future: StepFuture) -> None:
        """Edges from the calls that feed `future`, recorded at launch: a call that fails or
        still runs has its place in the flow's graph too."""
        assert future.row is not None
        at = now_ms()
        me = future.row.reused_from or future.row.id
        for dep in future.deps:
            if dep.row is not None:
                source = dep.row.reused_from or dep.row.id
                self._edges.append(
                    LineageEdge("run", source, "feeds", "run", me, at, {"flow_run": self.flow_run_id})
                )

    def _link(self, future: StepFuture) -> None:
        assert future.row is not None
        me = future.row.reused_from or future.row.id
        if future.row.status is StepStatus.FINISHED and future.row.result_digest:
            self._edges.append(
                LineageEdge("run", me, "produced", "blob", future.row.result_digest, now_ms(), {})
            )

    def _attempt_failed(self, future: StepFuture, error: str) -> None:
        assert future.row is not None
        options = future.step.options
        if future.attempts <= options.retries:
            future.row = replace(future.row, error=error)
            self._rows[future.row.id] = future.row
            delay = options.delay_before(future.attempts + 1)
            self._retry_at.append((time.monotonic() + delay, future))
            return
        end = now_ms()
        future.state = "failed"
        future.row = replace(future.row, status=StepStatus.FAILED, end_ms=end, error=error)
        self._rows[future.row.id] = future.row
        self._ends.append((future.row.id, RunStatus.FAILED, error, end))
        self.be.heartbeat.remove(future.row.id)
        tries = f"{future.attempts} attempt{'s' if future.attempts > 1 else ''}"
        log = f"plinth flows logs {self.flow_run_id} {future.call}"
        self.failure = StepFailed(f"Step {future.call} failed after {tries}: {error}. Its output: `{log}`.")
        self.cancel_all(f"cancelled: step {future.call} failed")

    def cancel_all(self, reason: str) -> None:
        """Stop every running or waiting call (after a failure or an interrupt)."""
        end = now_ms()
        for task_id, future in list(self._by_task.items()):
            self.executor.cancel(task_id)
            self._cancel(future, reason, end)
        for _, future in self._retry_at:
            self._cancel(future, reason, end)
        self._by_task.clear()
        self._retry_at = []
        self._drain_cancelled()

    def _cancel(self, future: StepFuture, reason: str, end: int) -> None:
        future.state = "cancelled"
        if future.row is not None and future.row.status is StepStatus.RUNNING:
            future.row = replace(future.row, status=StepStatus.CANCELLED, end_ms=end, error=reason)
            self._rows[future.row.id] = future.row
            self._ends.append((future.row.id, RunStatus.KILLED, reason, end))
            self.be.heartbeat.remove(future.row.id)

    def _drain_cancelled(self) -> None:
        deadline = time.monotonic() + 10
        while self.executor.running() and time.monotonic() < deadline:
            self.executor.wait(timeout=0.2)

    def _persist(self) -> None:
        """Write what changed since the last call: step records in one transaction, metrics apart.

        Usage metrics go to the process's metric writer, which drops only a point the store
        refuses (reported when the flow's run ends), so one bad point cannot undo the step records.
        """
        self._persisted_at = time.monotonic()
        rows, self._rows = list(self._rows.values()), {}
        ends, self._ends = self._ends, []
        edges, self._edges = self._edges, []
        points, self._points = self._points, []
        logs, self._logs = self._logs, []
        tags, self._tags = self._tags, {}
        if points:
            self.be.writer.extend(points)
        if not (rows or logs or ends or edges or tags):
            return
        with self.store.batch():
            if rows:
                self.store.save_step_runs(rows)
            for run_id, values in tags.items():
                self.store.set_tags(run_id, values)
            for run_id, record in logs:
                self.store.add_artifacts(run_id, [record])
            if ends:
                self.store.end_runs(ends)
            if edges:
                self.store.add_edges(edges)
