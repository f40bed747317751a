"""What runs inside a worker process for one step attempt."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import cloudpickle

from plinth.compute.base import Resources
from plinth.compute.sampling import Allocation
from plinth.core.entities import Run, RunStatus
from plinth.core.errors import PlinthError
from plinth.core.settings import Settings
from plinth.flows.checkpoints import checkpoint_sources
from plinth.flows.distributed import current_rank, process_group
from plinth.flows.values import ValueCache, resolve, store_value
from plinth.store.base import ArtifactRecord
from plinth.tracking import context
from plinth.tracking.ranks import attach_rank_run
from plinth.tracking.run import detach_run

LOG_LIMIT = 64 * 2**20
_values = ValueCache()
_functions: dict[str, Any] = {}


@dataclass(frozen=True)
class StepPayload:
    """Everything a worker needs to run one step call (small: results travel as Refs)."""

    settings: Settings
    run_id: str
    experiment_id: str
    call: str
    fn_digest: str
    fn_bytes: bytes
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    resources: Resources = field(default_factory=Resources)
    attempt: int = 1
    workers: int = 1  # processes running the call together (a distributed step); per-rank resources
    distributed: str | None = None  # "torch": set up torch.distributed around the call
    checkpoint_runs: tuple[str, ...] = ()  # earlier runs of this call whose checkpoints it continues


@dataclass(frozen=True)
class StepReport:
    """How the call went: a stored result, or the error; the captured output either way."""

    result_digest: str | None
    result_size: int
    log_digest: str | None
    log_size: int = 0
    error: str | None = None
    traceback: str | None = None


def run_step(payload: StepPayload) -> StepReport:
    """Load inputs, run the step function with its run active, store its result and output.

    In a group, every rank runs this; rank 0's result and output are the step's, and the other
    ranks store only their output, as the run's `logs/rank-N.txt`.
    """
    be = _backend(payload.settings)
    fn = _function(payload.fn_digest, payload.fn_bytes)
    rank = current_rank(payload.workers)
    with tempfile.TemporaryFile() as log:
        error = None
        digest, size = None, 0
        try:
            with _captured(log):
                value = _call(be, fn, payload, rank)
            if rank == 0:
                digest, size = store_value(be.blobs, value)
        except Exception as exc:  # reported to the driver, which retries or fails the flow
            error = (f"{type(exc).__name__}: {exc}"[:4000], traceback.format_exc()[-20000:])
        log_digest, log_size = _store_log(be, log)
    if rank > 0 and log_digest is not None:
        record = ArtifactRecord(f"logs/rank-{rank}.txt", log_digest, log_size)
        with contextlib.suppress(PlinthError):  # its output is a courtesy; the outcome is what counts
            be.store.add_artifacts(payload.run_id, [record])
    if error is not None:
        return StepReport(None, 0, log_digest, log_size, error[0], error[1])
    return StepReport(digest, size, log_digest, log_size)


def _call(be: context.Backend, fn: Any, payload: StepPayload, rank: int) -> Any:
    load = lambda ref: _values.load(be.blobs, ref)  # noqa: E731
    args = resolve(payload.args, load)
    kwargs = resolve(payload.kwargs, load)
    run = Run(
        id=payload.run_id,
        experiment_id=payload.experiment_id,
        experiment_name="",
        name=payload.call,
        status=RunStatus.RUNNING,
        user=payload.settings.user,
        start_ms=0,
        end_ms=None,
        heartbeat_ms=None,
        heartbeat_s=payload.settings.heartbeat_s,
    )
    res = payload.resources
    allocation = Allocation.for_task(res.cpu, res.gpu, res.memory)
    active = attach_rank_run(run, be, rank, allocation=allocation, attempt=payload.attempt)
    try:
        with checkpoint_sources((payload.run_id, *payload.checkpoint_runs)):
            with process_group(payload.distributed, payload.workers, res.gpu):
                return fn(*args, **kwargs)
    finally:
        detach_run(active)


def _backend(settings: Settings) -> context.Backend:
    if settings.is_remote and settings.token is None and os.environ.get("PLINTH_TOKEN"):
        # the step token travels in the step's environment, never in its payload
        settings = replace(settings, token=os.environ["PLINTH_TOKEN"])
    current = context.current()
    if current is not None and current.settings == settings:
        return current
    return context.configure(settings)


def _function(digest: str, data: bytes) -> Any:
    fn = _functions.get(digest)
    if fn is None:
        fn = _functions[digest] = cloudpickle.loads(data)
    return fn


@contextlib.contextmanager
def _captured(log: Any) -> Iterator[None]:
    """Send this process's stdout and stderr (Python and C level) to `log` meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _store_log(be: context.Backend, log: Any) -> tuple[str | None, int]:
    size = log.seek(0, os.SEEK_END)
    if size == 0:
        return None, 0
    log.seek(max(0, size - LOG_LIMIT))
    return be.blobs.put_bytes(log.read(), durable=False)
