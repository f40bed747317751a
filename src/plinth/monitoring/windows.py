"""Logged requests turned into frames of features and predictions.

`Logged` holds a window's requests as the store's segment table (plinth.store.segments), read
once and shared by drift, performance and operations: features are taken as columns, without
parsing each request's JSON. `rows_of` and `predictions_of` do the same for `PredictionLog`s.

`Window` and `Moment` live in `plinth.core.windows`; they are importable from here as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from plinth.core.windows import Moment as Moment
from plinth.core.windows import Window as Window
from plinth.store import segments as seg

UNMEASURED = "external"
"""The route of predictions logged with `plinth.log_predictions`, whose latency is unknown."""

if TYPE_CHECKING:
    import pandas
    import pyarrow as pa

    from plinth.core.entities import PredictionLog
    from plinth.store.base import Store


@dataclass(frozen=True)
class OpsColumns:
    """One entry per request, oldest first: time, version, latency, status and rows; whether a
    shadow version answered it, and whether its latency was measured (not for predictions
    logged with `plinth.log_predictions`)."""

    times: np.ndarray
    versions: np.ndarray
    latency: np.ndarray
    status: np.ndarray
    rows: np.ndarray
    shadow: np.ndarray
    measured: np.ndarray


@dataclass(frozen=True)
class Logged:
    """A window's logged requests as columns: one table row per row a request sent, oldest first.

    Build one with `Logged.read`; narrow it with `answered`, `unshadowed` and `between`, which
    share the table's memory.
    """

    table: pa.Table

    @classmethod
    def read(cls, store: Store, model: str, span: Window, version: int | None = None) -> Logged:
        """The requests of `model` (of one version, where given) in `span`, in one read."""
        found = store.prediction_table(model, since_ms=span.start_ms, until_ms=span.end_ms, version=version)
        return cls(found)

    @property
    def requests(self) -> int:
        """How many requests."""
        return int(np.count_nonzero(self._column("row") == 0))

    @property
    def times(self) -> np.ndarray:
        """Time of each table row (its request's), epoch ms."""
        return self._column("time_ms")

    def versions(self) -> set[int]:
        """The model versions that answered."""
        import pyarrow.compute as pc

        return {int(v) for v in pc.unique(self.table.column("version")).to_pylist()}

    def unshadowed(self) -> Logged:
        """The requests answered by the primary or canary version (shadow answers left out)."""
        return self._where(self._unshadowed())

    def answered(self) -> Logged:
        """The successfully answered, non-shadow requests."""
        return self._where((self._column("status") == 200) & self._unshadowed())

    def _unshadowed(self) -> np.ndarray:
        return ~self._route_is("shadow")

    def _route_is(self, route: str) -> np.ndarray:
        import pyarrow.compute as pc

        found = pc.equal(self.table.column("route"), route)
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)

    def between(self, start_ms: int | None, end_ms: int | None) -> Logged:
        """The requests in [start_ms, end_ms) (the table is in time order: a slice)."""
        times = self.times
        lo = 0 if start_ms is None else int(np.searchsorted(times, start_ms, side="left"))
        hi = len(times) if end_ms is None else int(np.searchsorted(times, end_ms, side="left"))
        return Logged(self.table.slice(lo, max(hi - lo, 0)))

    def ops(self) -> OpsColumns:
        """The request columns operations are summarized from."""
        first = self._column("row") == 0
        return OpsColumns(
            times=self._column("time_ms")[first],
            versions=self._column("version")[first],
            latency=self._column("latency_ms")[first],
            status=self._column("status")[first],
            rows=self._column("n_rows")[first],
            shadow=self._route_is("shadow")[first],
            measured=~self._route_is(UNMEASURED)[first],
        )

    def features(self, names: Sequence[str] | None = None) -> pandas.DataFrame:
        """The input rows as a frame, one column per input (by name, as str).

        Inputs sent as lists take `names` (the signature's inputs) when there are as many, and
        their positions ('0', '1', ...) otherwise.
        """
        import pandas as pd

        inputs = self._where(self._column("row") < self._column("n_in")).table
        named = [f for f in inputs.schema if f.name.startswith(seg.INPUT)]
        placed = [f for f in inputs.schema if f.name.startswith(seg.POSITION)]
        labels = list(names) if names is not None and len(names) == len(placed) else None
        columns: dict[str, Any] = {}
        for item in named:
            columns[item.name[len(seg.INPUT) :]] = _series(inputs, item)
        for i, item in enumerate(placed):
            name = labels[i] if labels is not None else item.name[len(seg.POSITION) :]
            series = _series(inputs, item)
            columns[name] = series if name not in columns else _filled(columns[name], series)
        return pd.DataFrame(columns, index=pd.RangeIndex(inputs.num_rows), copy=False)

    def prediction_rows(self) -> Logged:
        """The rows that carry a prediction (as many per request as it has predictions)."""
        return self._where(self._column("row") < self._column("n_out"))

    def predictions(self) -> np.ndarray:
        """One prediction per predicted row: the class or value, or the top class of probabilities."""
        rows = self.prediction_rows()
        return prediction_column(rows.outputs())

    def outputs(self) -> Any:
        """The output column's values as an array (2-D for equal-length probability lists)."""
        if seg.OUTPUT not in self.table.column_names:
            return np.array([], dtype=np.float64)
        return _values(self.table, self.table.schema.field(seg.OUTPUT))

    def output_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(request id, predictions) of each request, in order."""
        first = self._column("row") == 0
        ids = np.asarray(self.table.column("request_id").to_numpy(zero_copy_only=False))[first]
        return ids, self._column("n_out")[first]

    def _where(self, mask: np.ndarray) -> Logged:
        if bool(mask.all()):
            return self
        return Logged(self.table.filter(self._mask(mask)))

    @staticmethod
    def _mask(mask: np.ndarray) -> pa.Array:
        import pyarrow as pa

        return pa.array(mask, type=pa.bool_())

    def _column(self, name: str) -> np.ndarray:
        return np.asarray(self.table.column(name).to_numpy())


def _series(table: pa.Table, item: pa.Field) -> pandas.Series:
    """One input as a pandas Series: numbers as numbers (NaN where missing), text as categories."""
    import pandas as pd
    import pyarrow as pa

    column = table.column(item.name)
    if seg.is_json(item):
        return pd.Series(seg.json_values(column), dtype=object)
    kind = column.type
    if pa.types.is_dictionary(kind):
        return pd.Series(column.to_pandas())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pd.Series(column.dictionary_encode().to_pandas())
    if pa.types.is_null(kind):
        return pd.Series([None] * len(column), dtype=object)
    return pd.Series(column.to_pandas())


def _filled(first: pandas.Series, second: pandas.Series) -> pandas.Series:
    """`first`, with `second`'s values where `first` is missing."""
    return first.astype(object).where(first.notna(), second.astype(object))


def _values(table: pa.Table, item: pa.Field) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.column(item.name)
    if seg.is_json(item):
        return seg.json_values(column)
    kind = column.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        if len(lengths) and column.null_count == 0 and bool(np.all(lengths == lengths[0])):
            flat = pc.list_flatten(column).to_numpy(zero_copy_only=False)
            return np.asarray(flat, dtype=np.float64).reshape(len(lengths), int(lengths[0]))
        return column.to_pylist()
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
    return column.to_numpy()


def rows_of(logs: Sequence[PredictionLog], names: Sequence[str] | None = None) -> pandas.DataFrame:
    """The feature rows of logged requests as one frame (one row per predicted row).

    Records (`{"instances": [{...}]}`) give their keys as columns; lists and `columns`/`data`
    bodies use `names` (the signature's inputs) or their own column list.
    """
    return Logged(seg.encode_logs(logs, range(len(logs)))).features(names)


def predictions_of(logs: Sequence[PredictionLog]) -> list[Any]:
    """The predictions of logged requests, one per predicted row, in log order."""
    import orjson

    out: list[Any] = []
    for entry in logs:
        out.extend(orjson.loads(entry.outputs))
    return out


def prediction_column(values: Any) -> Any:
    """Predictions as a 1-D array: the class or value, or the top class index of probability rows."""
    if isinstance(values, np.ndarray):
        return values.argmax(axis=1) if values.ndim == 2 else values
    if len(values) and isinstance(values[0], list):
        return np.asarray(values, dtype=np.float64).argmax(axis=1)
    if any(isinstance(v, list) for v in values):  # probabilities among plain predictions
        return np.asarray([int(np.argmax(v)) if isinstance(v, list) else v for v in values], dtype=object)
    return np.asarray(values)
