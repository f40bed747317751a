"""`start_run` and the `ActiveRun` handle users log through."""

from __future__ import annotations

import functools
import itertools
import numbers
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plinth.compute.sampling import Allocation, process_allocation
from plinth.core import hooks
from plinth.core.entities import Artifact, DatasetVersion, Run, RunStatus
from plinth.core.errors import InvalidInput, RunNotActive
from plinth.core.validation import (
    MAX_INT64,
    check_key,
    check_metric_value,
    check_name,
    check_step,
    metric_array_problem,
    param_text,
)
from plinth.store.base import NewRun
from plinth.tracking.checkpoint_buffers import buffer_pool
from plinth.tracking.checkpoint_writer import current_writer
from plinth.tracking.context import (
    Backend,
    add_open_run,
    backend,
    forget_open_run,
    newest_open_run,
)
from plinth.tracking.context import end_open_runs as end_open_runs
from plinth.tracking.environment import run_environment
from plinth.tracking.progress import LiveView, live_view
from plinth.tracking.system import SystemMetrics, carried_totals

if TYPE_CHECKING:
    import numpy as np

    from plinth.tracking.checkpoint_writer import PendingCheckpoint
    from plinth.tracking.checkpoints import Checkpoint

# Unique, increasing point ids: start at process start in ns so processes rarely overlap.
_seq = itertools.count(time.time_ns())
DROPPED_TAG = "plinth.metrics_dropped"
"""The tag that counts a run's metric points the store refused, set when the run ends."""


class Terminated(SystemExit):
    """Raised in the main thread when SIGTERM arrives while a run is open."""


class ActiveRun:
    """A run being logged to. Use it as a context manager, or call `end()` yourself."""

    def __init__(self, run: Run, be: Backend) -> None:
        self._run = run
        self._backend = be
        self._writer = be.writer
        self._ended = False
        self._keys: set[str] = set()
        self._steps: dict[str, int] = {}
        self._system: SystemMetrics | None = None
        self._views: list[LiveView] = []
        self.id = run.id
        self.experiment_id = run.experiment_id
        self.name = run.name

    def __repr__(self) -> str:
        return f"<ActiveRun {self.id} {self.name!r}>"

    # metrics ---------------------------------------------------------------------------------
    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp_ms: int | None = None
    ) -> None:
        """Log one metric value; returns at once (a background writer stores it).

        Args:
            key: metric name, e.g. "loss" or "val/acc".
            value: a real number (NaN and inf are kept as such).
            step: training step; defaults to one past this key's last step.
            timestamp_ms: epoch milliseconds; defaults to now.

        Raises:
            InvalidInput: the key, value (text, a boolean), step or timestamp cannot be stored.
        """
        if self._ended:
            self._refuse()
        if key not in self._keys:
            self._keys.add(check_key(key, "metric"))
        if type(value) is not float:
            value = check_metric_value(key, value)
        if step is None:
            step = self._steps.get(key, -1) + 1
        elif type(step) is not int or not 0 <= step <= MAX_INT64:
            step = check_step(key, step)
        self._steps[key] = step
        if timestamp_ms is None:
            ts = time.time_ns() // 1_000_000
        elif type(timestamp_ms) is int and 0 <= timestamp_ms <= MAX_INT64:
            ts = timestamp_ms
        else:
            ts = _check_timestamp(key, timestamp_ms)
        self._writer.append((self.id, key, step, next(_seq), ts, value))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log several metrics at the same step."""
        for key, value in metrics.items():
            self.log_metric(key, value, step=step)

    def log_metric_points(
        self,
        key: str,
        values: Sequence[float] | np.ndarray,
        steps: Sequence[int] | np.ndarray | None = None,
        timestamps_ms: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Log a whole series of one metric at once (the fast batch path).

        Args:
            key: metric name.
            values: the values, any real numbers (NaN and inf are kept as such).
            steps: one step per value; defaults to continuing after this key's last step.
            timestamps_ms: one timestamp per value; defaults to now.

        Raises:
            InvalidInput: the values are not real numbers (booleans neither), or the steps or
                timestamps are not that many integers from 0 to 2**63 - 1.
        """
        import numpy as np

        if self._ended:
            self._refuse()
        check_key(key, "metric")
        vals = _as_float_array(key, values)
        n = len(vals)
        if steps is None:
            start = self._steps.get(key, -1) + 1
            step_arr = np.arange(start, start + n, dtype=np.int64)
        else:
            step_arr = _as_int_array(key, steps, n, "steps")
        if timestamps_ms is None:
            ts_arr = np.full(n, time.time_ns() // 1_000_000, dtype=np.int64)
        else:
            ts_arr = _as_int_array(key, timestamps_ms, n, "timestamps_ms")
        if n == 0:
            return
        self._keys.add(key)
        self._steps[key] = int(step_arr.max())
        first = next(_seq)
        seqs = range(first, first + n)
        for _ in range(n - 1):  # reserve the range so other logs keep unique seqs
            next(_seq)
        run_id = self.id
        self._writer.extend(
            zip(
                itertools.repeat(run_id, n),
                itertools.repeat(key, n),
                step_arr.tolist(),
                seqs,
                ts_arr.tolist(),
                vals.tolist(),
                strict=True,
            )
        )

    def flush(self) -> None:
        """Return once the run and every metric logged so far are durable in the store."""
        self._writer.flush()
        self._backend.store.settle()

    def live(self, every: float = 1.0) -> LiveView:
        """Show this run's metrics in the notebook, one chart per key, redrawn while the run is open.

        A background thread reads the metrics from the store every `every` seconds and updates
        the output in place; the run's end draws it one last time and stops it. A failed read
        is counted in the view, never raised into the cell.

        Args:
            every: seconds between redraws.

        Returns:
            The view; `view.stop()` stops redrawing before the run ends.

        Raises:
            InvalidInput: `every` is not a positive number of seconds.
            ConfigError: no notebook is running (no IPython kernel): there is nowhere to draw.

        Example:
            with plinth.start_run(experiment="iris") as run:
                run.live()
                for epoch in range(100):
                    run.log_metric("loss", train_one_epoch())
        """
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not 0 < every < float("inf"):
            raise InvalidInput(f"run.live(every={every!r}): give the seconds between redraws, e.g. 1.0.")
        view: LiveView = live_view("run", self, self._backend.store, float(every))
        self._views.append(view)
        return view

    # params, tags, artifacts, datasets -------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        """Log one param (immutable once logged)."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; re-logging a key with a different value raises ConflictError."""
        self._check_open()
        self._backend.store.log_params(self.id, _params(params))

    def set_tag(self, key: str, value: Any) -> None:
        """Set one tag."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (overwriting earlier values)."""
        self._check_open()
        self._backend.store.set_tags(self.id, _tags(tags))

    def log_artifact(self, path: str, artifact_path: str | None = None) -> list[Artifact]:
        """Store a file or a whole folder, content-addressed, under this run.

        Args:
            path: a local file or folder.
            artifact_path: the logical path to record it under (default: its base name).
        """
        from plinth.tracking.artifacts import log_artifact  # shutil and its codecs: loaded when used

        self._check_open()
        return log_artifact(self._backend, self.id, path, artifact_path)

    def log_dataset(
        self, data: Any, name: str, role: str = "train", *, source: str | None = None
    ) -> DatasetVersion:
        """Store a dataset version (once per content) with its profile, linked to this run.

        Args:
            data: a pandas DataFrame, a NumPy array, or a path to a CSV or Parquet file.
            name: dataset name, e.g. "iris-train".
            role: how the run uses it: "train", "validation", "test", "inference", ...
        """
        from plinth.tracking.datasets import log_dataset  # loaded when used: `import plinth` stays light

        self._check_open()
        return log_dataset(self._backend, data, name, role=role, run_id=self.id, source=source)

    def log_model(self, model: Any, name: str, **kwargs: Any) -> Any:
        """Register `model` as the next version of `name`, linked to this run (a ModelVersion).

        Accepts the keyword arguments of `plinth.register_model` (input_example, flavor, ...).
        """
        self._check_open()
        return hooks.call("log_model", self, model, name, **kwargs)

    # checkpoints -----------------------------------------------------------------------------
    def log_checkpoint(
        self,
        obj: Any,
        *,
        step: int,
        metrics: Mapping[str, float] | None = None,
        keep_last: int | None = None,
        keep_best: str | tuple[str, str] | None = None,
    ) -> PendingCheckpoint[Checkpoint] | None:
        """Store a checkpoint of `obj` as it is now; the writing happens in the background.

        The call copies the state before it returns (tensors to CPU memory, an object pickled,
        a folder to a staging folder), so the loop may go on changing it; serialising and
        storing happen on a background thread. While two checkpoints are being written, a third
        call waits for the first (memory stays bounded). The run's end waits for them all.

        Args:
            obj: a PyTorch state dict, a `torch.nn.Module` (its state dict), a dict holding
                tensors (`{"model": sd, "optim": opt.state_dict(), "epoch": 3}`), any picklable
                object, or the path of a folder (e.g. a `save_pretrained` output).
            step: the training step it was taken at.
            metrics: numbers to keep with it (what `keep_best` ranks by).
            keep_last: keep only the N newest checkpoints by step (None: all).
            keep_best: also keep the best by this metric: a name (lowest is best) or
                (name, "min" | "max"). A checkpoint either rule keeps stays; the others' records
                are deleted once this one is stored, and `plinth gc` frees their bytes.

        Returns:
            A handle whose `wait()` returns the stored `Checkpoint` (or raises why it was not
            stored); None where this process stores no checkpoints (a non-zero rank of a
            distributed step).

        Raises:
            InvalidInput: a bad step, metrics or keep rule (a keep_best metric missing from
                `metrics`), a path that is not a folder, an object that cannot be pickled.

        Example:
            run.log_checkpoint(model.state_dict(), step=epoch, metrics={"val_loss": v},
                               keep_last=3, keep_best="val_loss")
        """
        from plinth.tracking.checkpoints import log_checkpoint  # torch, cloudpickle: when used

        self._check_open()
        return log_checkpoint(
            self._backend,
            self.id,
            obj,
            step=step,
            metrics=metrics,
            keep_last=keep_last,
            keep_best=keep_best,
        )

    def latest_checkpoint(self) -> Checkpoint | None:
        """This run's newest complete checkpoint (its pending writes are waited for), or None."""
        from plinth.tracking.checkpoints import latest_checkpoint

        return latest_checkpoint(self.id)

    def _wait_checkpoints(self) -> None:
        """Wait until this process has stored (or failed) every checkpoint of this run; then,
        unless another run is checkpointing, drop the memory kept for the next copy."""
        writer = current_writer()
        if writer is not None:
            writer.wait_for(self.id)
            if writer.idle():
                buffer_pool().clear()

    # lifecycle -------------------------------------------------------------------------------
    def end(self, status: RunStatus | str = RunStatus.FINISHED, error: str | None = None) -> None:
        """Wait for the run's checkpoints, flush metrics and end the run with `status` (FINISHED
        by default).

        Metric points the store refused, and checkpoints that could not be stored, are reported
        by a PlinthWarning; the dropped points are counted in the run's `plinth.metrics_dropped` tag.
        """
        if self._ended:
            return
        status = RunStatus(status)
        if status is RunStatus.RUNNING:
            raise InvalidInput("A run cannot be ended as RUNNING; use FINISHED, FAILED or KILLED.")
        self._ended = True
        forget_open_run(self)
        try:
            self._wait_checkpoints()  # a finished run has its checkpoints stored
        finally:
            try:
                self._close(status, error)
            finally:
                self._stop_views()

    def _stop_views(self) -> None:
        """Draw each live view of this run a last time, as it ended (a view never raises)."""
        views, self._views = self._views, []
        for view in views:
            view.stop()

    def _close(self, status: RunStatus, error: str | None) -> None:
        """Stop sampling, then write the last points and the end of the run."""
        try:
            self._stop_system_metrics()
        finally:
            try:  # the points and the end in one commit, where the store can
                self._writer.flush_then(functools.partial(self._record_end, status, error))
            finally:  # beating until then: a flush waiting on a locked store is not a crash
                self._backend.heartbeat.remove(self.id)

    def _record_end(self, status: RunStatus, error: str | None) -> None:
        """Store the end of the run, with the count of points the store refused, if any."""
        try:
            dropped = self._writer.dropped_for(self.id)
            if dropped:  # kept with the run, for whoever reads it after this process is gone
                self._backend.store.set_tags(self.id, {DROPPED_TAG: str(dropped)})
        finally:
            self._backend.store.end_run(self.id, status, error, time.time_ns() // 1_000_000)

    def get(self) -> Run:
        """The run as stored now (params, latest metrics, tags, environment, artifacts)."""
        self._writer.flush()
        return self._backend.store.get_run(self.id)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.end(RunStatus.FINISHED)
        elif issubclass(exc_type, (KeyboardInterrupt, Terminated)):
            self.end(RunStatus.KILLED, f"{exc_type.__name__}: interrupted")
        elif issubclass(exc_type, SystemExit) and getattr(exc, "code", 1) in (0, None):
            self.end(RunStatus.FINISHED)
        else:
            self.end(RunStatus.FAILED, f"{exc_type.__name__}: {exc}"[:4000])

    def _start_system_metrics(self, allocation: Allocation, *, tag: bool, attempt: int = 1) -> None:
        carried, first_step = None, 0
        if attempt > 1:
            carried, first_step = carried_totals(self._backend.store, self.id)
        self._system = SystemMetrics(
            self._log_system,
            allocation,
            self._backend.settings.sample_s,
            tag=self._tag_system if tag else None,
            carried=carried,
            first_step=first_step,
        )

    def _stop_system_metrics(self) -> None:
        system, self._system = self._system, None
        if system is not None:
            system.close()

    def _log_system(self, values: Mapping[str, float], step: int) -> None:
        ts = time.time_ns() // 1_000_000
        append = self._writer.append
        for key, value in values.items():
            append((self.id, key, step, next(_seq), ts, value))

    def _tag_system(self, tags: dict[str, str]) -> None:
        self._backend.store.set_tags(self.id, tags)

    def _check_open(self) -> None:
        if self._ended:
            self._refuse()

    def _refuse(self) -> None:
        raise RunNotActive(f"Run {self.id} has ended; start a new run to log more.")


def start_run(
    experiment: str = "default",
    *,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    capture_env: bool = True,
    system_metrics: bool | None = None,
) -> ActiveRun:
    """Start a run in `experiment` (created on first use) and return its handle.

    Args:
        experiment: experiment name.
        name: run name; generated when None.
        params: hyper-parameters to log at once.
        tags: tags to set at once.
        capture_env: record Python, packages, git state, host and GPUs.
        system_metrics: sample CPU, memory and GPU use into `system/*` metrics while the run is
            open; default: the PLINTH_SYSTEM_METRICS setting (on). The run is billed for the
            cores this process may run on and the GPUs it can see (CUDA_VISIBLE_DEVICES).

    Example:
        with plinth.start_run(experiment="iris", params={"lr": 0.1}) as run:
            run.log_metric("loss", 0.3, step=1)
    """
    check_name(experiment, "experiment")
    if name is not None:
        check_name(name, "run")
    clean_params, clean_tags = _params(params or {}), _tags(tags or {})
    be = backend()
    env = run_environment() if capture_env else None
    spec = NewRun(experiment, name, clean_params, clean_tags, env, be.settings.heartbeat_s, be.settings.user)
    run = be.store.create_run_deferred(spec)  # written with the run's first points or its end
    active = ActiveRun(run, be)
    if be.settings.system_metrics if system_metrics is None else system_metrics:
        active._start_system_metrics(process_allocation(), tag=True)
    add_open_run(active, be)
    be.heartbeat.add(run.id)
    _install_sigterm()
    return active


def active_run() -> ActiveRun | None:
    """The most recently started run of this process that is still open, if any."""
    run = newest_open_run()
    return run if isinstance(run, ActiveRun) else None


def _params(params: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(params, Mapping):
        raise InvalidInput(f"params must be a mapping of name to value, got {type(params).__name__}.")
    return {check_key(k, "param"): param_text(k, v) for k, v in params.items()}


def _tags(tags: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(tags, Mapping):
        raise InvalidInput(f"tags must be a mapping of name to value, got {type(tags).__name__}.")
    return {check_key(k, "tag"): param_text(k, v, "tag") for k, v in tags.items()}


def _as_float_array(key: str, values: Any) -> np.ndarray:
    import numpy as np

    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"Values of metric {key!r} must be numbers: {exc}") from exc
    if arr.dtype == object and arr.ndim == 1:  # Decimals, Fractions, a None among numbers
        return np.array([check_metric_value(f"{key}[{i}]", v) for i, v in enumerate(arr)], dtype=np.float64)
    problem = metric_array_problem(arr.dtype.kind, str(arr.dtype), arr.shape)
    if problem is not None:
        raise InvalidInput(f"Values of metric {key!r} must be a 1-D sequence of real numbers: {problem}.")
    return arr.astype(np.float64, copy=False)


def _as_int_array(key: str, values: Any, n: int, what: str) -> np.ndarray:
    import numpy as np

    arr = np.asarray(values)
    if (
        arr.shape != (n,)
        or not np.issubdtype(arr.dtype, np.integer)
        or (n and (arr.min() < 0 or arr.max() > MAX_INT64))
    ):
        raise InvalidInput(
            f"{what} of metric {key!r} must be {n} non-negative integers below 2**63, got dtype {arr.dtype} "
            f"and shape {arr.shape}."
        )
    return arr.astype(np.int64, copy=False)


def _check_timestamp(key: str, timestamp_ms: object) -> int:
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, numbers.Integral):
        raise InvalidInput(
            f"timestamp_ms of metric {key!r} must be epoch milliseconds, got {timestamp_ms!r:.60}."
        )
    if not 0 <= int(timestamp_ms) <= MAX_INT64:
        raise InvalidInput(f"timestamp_ms of metric {key!r} must be from 0 to 2**63 - 1, got {timestamp_ms}.")
    return int(timestamp_ms)


_previous_sigterm: Callable[[int, Any], Any] | None = None
"""A Python SIGTERM handler that was there before plinth's (Ray's driver installs one), chained."""


def _on_sigterm(signum: int, frame: Any) -> None:
    previous = _previous_sigterm
    if previous is not None:
        try:
            previous(signum, frame)
        except SystemExit as exc:  # the earlier handler's way of exiting, seen by runs as a kill
            raise Terminated(exc.code) from None
    raise Terminated(128 + signum)


def _install_sigterm() -> None:
    global _previous_sigterm
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_sigterm or not (current is signal.SIG_DFL or callable(current)):
            return
        _previous_sigterm = None if current is signal.SIG_DFL else current
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):
        pass


def attach_run(run: Run, be: Backend, *, allocation: Allocation | None = None, attempt: int = 1) -> ActiveRun:
    """Make an existing RUNNING run the active run of this process (e.g. a flow step in a worker).

    The caller that created the run ends it; `detach_run` flushes and forgets it here.

    Args:
        run: the run, as created elsewhere.
        be: the backend to log through.
        allocation: what this attempt holds; with it (and PLINTH_SYSTEM_METRICS on) the run
            logs `system/*` metrics until detached. Its allocation tags are the creator's to set.
        attempt: 1 for a first attempt; later attempts add to the totals earlier ones logged.
    """
    active = ActiveRun(run, be)
    if allocation is not None and be.settings.system_metrics:
        active._start_system_metrics(allocation, tag=False, attempt=attempt)
    add_open_run(active, be)
    return active


def detach_run(active: ActiveRun) -> None:
    """Wait for `active`'s checkpoints, flush what it logged and stop treating it as this
    process's active run."""
    forget_open_run(active)
    active._ended = True
    try:
        active._wait_checkpoints()
    finally:
        active._stop_system_metrics()
        active._writer.flush()
