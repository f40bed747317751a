"""`MetricHistory`: a metric's points as columns, cheap to build for long series."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, overload

from plinth.core.entities import MetricPoint

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


class MetricHistory:
    """All points of one metric of one run, in step order.

    Columns are NumPy arrays (`steps`, `timestamps_ms`, `values`); iterating or indexing
    yields `MetricPoint`s; `to_frame()` gives a pandas DataFrame.
    """

    def __init__(self, run_id: str, key: str, data: np.ndarray) -> None:
        self.run_id = run_id
        self.key = key
        self._data = data

    @property
    def steps(self) -> np.ndarray:
        """Step of each point."""
        return self._data["step"]

    @property
    def timestamps_ms(self) -> np.ndarray:
        """Epoch milliseconds of each point."""
        return self._data["timestamp_ms"]

    @property
    def values(self) -> np.ndarray:
        """Value of each point."""
        return self._data["value"]

    def __len__(self) -> int:
        return len(self._data)

    @overload
    def __getitem__(self, index: int) -> MetricPoint: ...
    @overload
    def __getitem__(self, index: slice) -> list[MetricPoint]: ...
    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        step, ts, value = self._data[index].tolist()
        return MetricPoint(self.key, value, step, ts)

    def __iter__(self) -> Iterator[MetricPoint]:
        key = self.key
        for step, ts, value in self._data.tolist():
            yield MetricPoint(key, value, step, ts)

    def __repr__(self) -> str:
        return f"<MetricHistory {self.key!r} of run {self.run_id}: {len(self)} points>"

    def to_frame(self) -> pd.DataFrame:
        """Columns step, timestamp (datetime, UTC), value."""
        import pandas as pd

        return pd.DataFrame(
            {
                "step": self.steps,
                "timestamp": pd.to_datetime(self.timestamps_ms, unit="ms", utc=True),
                "value": self.values,
            }
        )
