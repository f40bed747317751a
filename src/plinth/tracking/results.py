"""`Runs`: what `search_runs` returns, a read-only sequence of `Run` that becomes a DataFrame on request."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

from plinth.core.entities import Run
from plinth.core.units import format_duration

if TYPE_CHECKING:
    import pandas as pd

REPR_ROWS = 10
"""How many runs `repr(runs)` lists before it only counts the rest."""

_COLUMNS = ("run_id", "experiment", "name", "status", "started (UTC)", "duration")
_CELL_WIDTH = 28


class Runs(Sequence[Run]):
    """Runs in the order a search asked for: index, slice, iterate, `len`, or `to_frame()`.

    Equal to another `Runs`, list or tuple holding the same runs in the same order.

    Example:
        runs = plinth.search_runs(experiment="iris", order_by="-metrics.acc", limit=5)
        best = runs[0]
        frame = runs.to_frame()  # one row per run, params.* / metrics.* / tags.* columns
    """

    __slots__ = ("_runs",)

    def __init__(self, runs: Iterable[Run] = ()) -> None:
        self._runs = tuple(runs)

    def __len__(self) -> int:
        return len(self._runs)

    @overload
    def __getitem__(self, index: int) -> Run: ...
    @overload
    def __getitem__(self, index: slice) -> Runs: ...
    def __getitem__(self, index: int | slice) -> Run | Runs:
        if isinstance(index, slice):
            return Runs(self._runs[index])
        return self._runs[index]

    def __iter__(self) -> Iterator[Run]:
        return iter(self._runs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Runs):
            return self._runs == other._runs
        if isinstance(other, (list, tuple)):
            return self._runs == tuple(other)
        return NotImplemented

    @property
    def ids(self) -> list[str]:
        """The run ids, in order."""
        return [run.id for run in self._runs]

    def to_frame(self) -> pd.DataFrame:
        """A pandas DataFrame: one row per run, `params.*`, `metrics.*` and `tags.*` columns.

        The fixed columns are run_id, experiment, name, status, user, start_time and end_time
        (UTC timestamps; NaT while a run is running).
        """
        import pandas as pd

        rows = []
        for run in self._runs:
            row: dict[str, Any] = {
                "run_id": run.id,
                "experiment": run.experiment_name,
                "name": run.name,
                "status": run.status.value,
                "user": run.user,
                "start_time": pd.Timestamp(run.start_ms, unit="ms", tz="UTC"),
                "end_time": pd.Timestamp(run.end_ms, unit="ms", tz="UTC") if run.end_ms else pd.NaT,
            }
            row.update({f"params.{k}": v for k, v in run.params.items()})
            row.update({f"metrics.{k}": v for k, v in run.metrics.items()})
            row.update({f"tags.{k}": v for k, v in run.tags.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        count = len(self._runs)
        if not count:
            return "<Runs: no runs>"
        shown = self._runs[:REPR_ROWS]
        lines = [f"<Runs: {count} run{'s' if count != 1 else ''}>", *_table([_COLUMNS, *map(_cells, shown)])]
        if count > len(shown):
            lines.append(f"... {count - len(shown)} more; .to_frame() has every run, params and metrics")
        return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _cells(run: Run) -> tuple[str, ...]:
    started = dt.datetime.fromtimestamp(run.start_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    duration = run.duration_s
    return (
        run.id,
        _clip(run.experiment_name),
        _clip(run.name),
        run.status.value,
        started,
        "-" if duration is None else format_duration(duration),
    )


def _clip(text: str) -> str:
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 1] + "…"
