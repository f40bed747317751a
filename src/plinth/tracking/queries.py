"""Reading tracked data back: runs, searches, metric histories, experiments, datasets."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, overload

from plinth.core.entities import DatasetVersion, Experiment, Run
from plinth.core.errors import InvalidInput
from plinth.core.filters import parse_filter, parse_order_by
from plinth.core.refs import DatasetRef
from plinth.tracking.context import backend
from plinth.tracking.history import MetricHistory
from plinth.tracking.results import Runs

if TYPE_CHECKING:
    import pandas as pd


def get_run(run_id: str) -> Run:
    """One run with its params, latest metrics, tags, status, environment and artifacts."""
    be = backend()
    be.writer.flush()
    return be.store.get_run(run_id)


@overload
def search_runs(
    experiment: str | Sequence[str] | None = None,
    where: str | None = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = 1000,
    *,
    as_frame: Literal[False] = False,
) -> Runs: ...
@overload
def search_runs(
    experiment: str | Sequence[str] | None = None,
    where: str | None = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = 1000,
    *,
    as_frame: Literal[True],
) -> pd.DataFrame: ...
@overload
def search_runs(
    experiment: str | Sequence[str] | None = None,
    where: str | None = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = 1000,
    *,
    as_frame: bool,
) -> Runs | pd.DataFrame: ...
def search_runs(
    experiment: str | Sequence[str] | None = None,
    where: str | None = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = 1000,
    *,
    as_frame: bool = False,
) -> Runs | pd.DataFrame:
    """Runs matching a filter, e.g. `where="metrics.acc > 0.9 and params.lr = 0.1"`.

    Args:
        experiment: an experiment name (or several); all experiments when None.
        where: a filter over `metrics.`, `params.`, `tags.` and attributes
            (`status`, `name`, `start_time`, ...) with = != < <= > >= like ilike in and or not;
            `like` is case-sensitive, `ilike` is not. A NaN metric satisfies no comparison.
        order_by: e.g. `["-metrics.acc", "start_time"]`; newest first by default; runs whose
            metric is NaN or missing sort last either way.
        limit: at most this many runs (None: all).
        as_frame: return `Runs.to_frame()`, a pandas DataFrame, instead of the `Runs`.

    Returns:
        `Runs`, a read-only sequence of `Run` in the order asked for.

    Raises:
        InvalidInput: a bad filter (the message points at the position), order or limit.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidInput(f"limit must be a non-negative integer or None, got {limit!r}.")
    expr = parse_filter(where)
    order = parse_order_by(order_by)
    names = [experiment] if isinstance(experiment, str) else experiment
    be = backend()
    be.writer.flush()
    runs = Runs(
        be.store.search_runs(
            experiments=list(names) if names is not None else None,
            where=expr,
            order_by=order,
            limit=limit,
            now_ms=time.time_ns() // 1_000_000,
        )
    )
    return runs.to_frame() if as_frame else runs


@overload
def metric_history(run_id: str, key: str, *, as_frame: Literal[False] = False) -> MetricHistory: ...
@overload
def metric_history(run_id: str, key: str, *, as_frame: Literal[True]) -> pd.DataFrame: ...
@overload
def metric_history(run_id: str, key: str, *, as_frame: bool) -> MetricHistory | pd.DataFrame: ...
def metric_history(run_id: str, key: str, *, as_frame: bool = False) -> MetricHistory | pd.DataFrame:
    """Every point of metric `key` of a run, in step order (a MetricHistory or a DataFrame)."""
    be = backend()
    be.writer.flush()
    history = MetricHistory(run_id, key, be.store.metric_history(run_id, key))
    return history.to_frame() if as_frame else history


def list_experiments() -> list[Experiment]:
    """All experiments, oldest first."""
    return backend().store.list_experiments()


def list_datasets(name: str | None = None) -> list[DatasetVersion]:
    """Dataset versions, all or of one name."""
    return backend().store.list_dataset_versions(name)


def get_dataset(name: str | DatasetRef, version: int | None = None) -> DatasetVersion:
    """One dataset version: `name` with `version` (the latest when None), or a reference.

    `get_dataset("org/churn", 3)` and `get_dataset("org/churn/3")` name the same version.

    Raises:
        InvalidInput: a bad reference, or a version given both in the reference and as `version`.
        NotFound: no such dataset or version.
    """
    from plinth.tracking.datasets import find_dataset  # `import plinth` stays light

    return find_dataset(backend(), name, version)


def load_dataset(name: str | DatasetRef, version: int | None = None) -> pd.DataFrame:
    """A stored dataset version (`name` and `version`, or a reference) read back as a pandas DataFrame."""
    from plinth.tracking.datasets import load_dataset as load  # `import plinth` stays light

    return load(backend(), name, version)


def reap_runs() -> list[str]:
    """Record CRASHED for every RUNNING run whose heartbeats stopped; return their ids."""
    return backend().store.reap_crashed(time.time_ns() // 1_000_000)
