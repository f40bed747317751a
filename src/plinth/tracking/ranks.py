"""The run of a non-zero rank of a distributed step: it runs the same code, and logs only its system metrics.

Every rank of a group runs the step function with the step's run active, so the same training
script works on every rank. Rank 0 logs to the run as usual. Any other rank gets a `RankRun`:
its metrics, params, tags, artifacts, datasets, models and checkpoints are dropped (what rank 0
logs is what the step logged, as with `torchrun` scripts that guard logging with `rank == 0`),
while its system metrics are kept under `system/rank{N}/...`, so every worker's load and cost
is on record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plinth.compute.sampling import Allocation
from plinth.core.entities import Artifact, Run
from plinth.tracking.context import Backend, add_open_run
from plinth.tracking.run import ActiveRun
from plinth.tracking.system import SystemMetrics, carried_totals


def rank_prefix(rank: int) -> str:
    """Where a rank's system metrics go: `system/` for rank 0, `system/rank{N}/` for the others."""
    return "system/" if rank == 0 else f"system/rank{rank}/"


class RankRun(ActiveRun):
    """The step's run as a non-zero rank sees it: logging calls are accepted and dropped."""

    def __init__(self, run: Run, be: Backend, rank: int) -> None:
        super().__init__(run, be)
        self.rank = rank

    def __repr__(self) -> str:
        return f"<RankRun {self.id} rank {self.rank}>"

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp_ms: int | None = None
    ) -> None:
        """Dropped: only rank 0 logs metrics to the step's run."""

    def log_metric_points(self, key: str, values: Any, steps: Any = None, timestamps_ms: Any = None) -> None:
        """Dropped: only rank 0 logs metrics to the step's run."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Dropped: only rank 0 logs params."""

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Dropped: only rank 0 sets tags."""

    def log_artifact(self, path: str, artifact_path: str | None = None) -> list[Artifact]:
        """Dropped: only rank 0 stores artifacts; returns no records."""
        return []

    def log_dataset(self, data: Any, name: str, role: str = "train", *, source: str | None = None) -> Any:
        """Dropped: only rank 0 logs datasets; returns None."""
        return None

    def log_model(self, model: Any, name: str, **kwargs: Any) -> Any:
        """Dropped: only rank 0 registers models; returns None."""
        return None

    def log_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Dropped: only rank 0 writes checkpoints (every rank holds the same state); returns None."""
        return None

    def _start_system_metrics(self, allocation: Allocation, *, tag: bool, attempt: int = 1) -> None:
        prefix = rank_prefix(self.rank)
        carried, first_step = None, 0
        if attempt > 1:
            carried, first_step = carried_totals(self._backend.store, self.id, prefix=prefix)
        self._system = SystemMetrics(
            self._log_system,
            allocation,
            self._backend.settings.sample_s,
            carried=carried,
            first_step=first_step,
        )

    def _log_system(self, values: Mapping[str, float], step: int) -> None:
        prefix = rank_prefix(self.rank)
        super()._log_system({prefix + k.removeprefix("system/"): v for k, v in values.items()}, step)


def attach_rank_run(
    run: Run, be: Backend, rank: int, *, allocation: Allocation | None = None, attempt: int = 1
) -> ActiveRun:
    """`attach_run` for one rank of a group: rank 0 gets the usual run, others a `RankRun`."""
    from plinth.tracking.run import attach_run

    if rank == 0:
        return attach_run(run, be, allocation=allocation, attempt=attempt)
    active = RankRun(run, be, rank)
    if allocation is not None and be.settings.system_metrics:
        active._start_system_metrics(allocation, tag=False, attempt=attempt)
    add_open_run(active, be)
    return active
