"""Every metric point of an MLflow database, run by run, from one ordered, streamed query.

The bulk of an MLflow store is its `metrics` table, one row per point. Building a Python string
for the run id and the key of every row would cost more than reading the row, so they are read
once per series instead:

1. the layout: `run_uuid, key, count(*)` of each series, in (run_uuid, key) order, an index-only
   scan of MLflow's `(run_uuid, key, step)` index;
2. the points: `step, timestamp, value, is_nan` of every row in the same order, streamed in
   blocks through the driver's own cursor (a server-side cursor on PostgreSQL);

and the layout's counts say which rows belong to which series. Both queries read one snapshot
(a read transaction; REPEATABLE READ on PostgreSQL), so the counts match the rows even while
MLflow goes on writing.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterator, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from plinth.core.errors import StoreError
from plinth.importers.mlflow.records import RunPoints, restore_infinities

BLOCK_ROWS = 50_000
"""Point rows fetched at a time."""


def metric_queries(metrics: sa.Table, runs: sa.Select[Any] | None, dialect: sa.Dialect) -> tuple[str, str]:
    """(layout SQL, points SQL) over the metrics of the runs `runs` selects, or of every run
    when None (a scan along the index, faster than a search per run; see the module's docstring)."""
    order = (metrics.c.run_uuid, metrics.c.key)
    layout = sa.select(metrics.c.run_uuid, metrics.c.key, sa.func.count())
    step = metrics.c.step if "step" in metrics.c else sa.literal(0)
    is_nan = metrics.c.is_nan if "is_nan" in metrics.c else sa.literal(False)
    points = sa.select(step, metrics.c.timestamp, metrics.c.value, is_nan)
    if runs is not None:
        chosen = metrics.c.run_uuid.in_(sa.select(runs.subquery().c.run_uuid))
        layout, points = layout.where(chosen), points.where(chosen)
    return _sql(layout.group_by(*order).order_by(*order), dialect), _sql(points.order_by(*order), dialect)


def _sql(query: sa.Select[Any], dialect: sa.Dialect) -> str:
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def read_points(
    raw: Any, dialect: str, queries: tuple[str, str], wanted: Collection[str]
) -> Iterator[RunPoints]:
    """The points of each run in `wanted`, one run at a time, through the DB-API connection `raw`.

    Raises:
        StoreError: the points did not match the layout (the database changed under a reader
            that could not hold a snapshot).
    """
    _snapshot(raw, dialect)
    cursor = raw.cursor()
    try:
        cursor.execute(queries[0])
        layout = cursor.fetchall()
    finally:
        cursor.close()
    blocks = _stream(raw, dialect, queries[1])
    try:
        rows = _Rows(blocks)
        for run_id, keys, counts in _series_by_run(layout):
            step, stamp, value = rows.take(sum(counts))
            if run_id in wanted:
                key = np.repeat(np.array(keys, dtype=object), counts)
                yield RunPoints(run_id, key, step, stamp, value)
    finally:
        blocks.close()


def _snapshot(raw: Any, dialect: str) -> None:
    """Start the read transaction both queries share."""
    if dialect == "sqlite":
        raw.execute("BEGIN")
    elif dialect == "postgresql":
        raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def _series_by_run(layout: Sequence[tuple[str, str, int]]) -> Iterator[tuple[str, list[str], list[int]]]:
    """(run id, its keys, their point counts) of each run, in layout order."""
    run_id: str | None = None
    keys: list[str] = []
    counts: list[int] = []
    for run, key, count in layout:
        if run != run_id:
            if run_id is not None:
                yield run_id, keys, counts
            run_id, keys, counts = run, [], []
        keys.append(key)
        counts.append(int(count))
    if run_id is not None:
        yield run_id, keys, counts


def _stream(raw: Any, dialect: str, sql: str) -> Generator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Blocks of (step, timestamp, value) columns of the points query, streamed."""
    cursor = raw.cursor(name="plinth_import_metrics") if dialect == "postgresql" else raw.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(BLOCK_ROWS):
            yield _columns(rows)
    finally:
        cursor.close()


_ROW = np.dtype([("step", "i8"), ("timestamp", "i8"), ("value", "f8"), ("is_nan", "?")])


def _columns(rows: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(step, timestamp, value) of fetched rows: NaN where MLflow marked one, infinities restored."""
    try:
        table = np.fromiter(rows, dtype=_ROW, count=len(rows))
    except (TypeError, ValueError):  # a NULL value (older MLflow stores allowed one)
        steps, stamps, values, nans = zip(*rows, strict=True)
        table = np.empty(len(rows), dtype=_ROW)
        table["step"], table["timestamp"] = steps, stamps
        table["value"] = np.array(values, dtype=np.float64)  # None -> NaN
        table["is_nan"] = np.array(nans, dtype=bool)
    value = restore_infinities(table["value"].copy())
    value[table["is_nan"]] = np.nan
    return table["step"].copy(), table["timestamp"].copy(), value


class _Rows:
    """The streamed point rows, taken a series at a time across block boundaries."""

    def __init__(self, blocks: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        self._blocks = blocks
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._held = 0

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The next `n` rows as (step, timestamp, value)."""
        while self._held < n:
            block = next(self._blocks, None)
            if block is None:
                raise StoreError(
                    "MLflow's metrics changed while they were read (fewer points than counted); "
                    "import again once MLflow is idle."
                )
            self._parts.append(block)
            self._held += len(block[0])
        parts = self._parts
        joined = parts[0] if len(parts) == 1 else tuple(np.concatenate(c) for c in zip(*parts, strict=True))
        rest = tuple(column[n:] for column in joined)
        self._parts = [rest] if len(rest[0]) else []
        self._held -= n
        return joined[0][:n], joined[1][:n], joined[2][:n]
