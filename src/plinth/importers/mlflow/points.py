"""MLflow's metric points as plinth's: columns for `Store.write_metrics`, with a stable `seq`.

plinth orders the points of one step by `seq` (the latest value of a metric is the point with
the largest (step, seq)); MLflow orders them by timestamp, then value. An imported point's seq
is `timestamp_ms * SEQ_PER_MS + n`, n counting the points of that run, metric, step and
timestamp in value order: the same order as MLflow's, and the same number on every import, so
an import that continues a run gives its new points numbers that fit between the old ones.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np

from plinth.importers.mlflow.records import RunPoints
from plinth.store.points import PointColumns

SEQ_PER_MS = 1024
"""Room for this many points of one run, metric and step at one millisecond."""


def columns(batch: Sequence[tuple[str, RunPoints, np.ndarray | None]]) -> PointColumns | None:
    """The points of several runs as one write; None when there are none.

    Each item is (plinth run id, the run's points, which of them to write: None for all). The
    seq of a point counts every point of the run, written or not (see the module's docstring).
    Points come out ordered by run, metric, step and seq, the order of plinth's index.
    """
    batch = [item for item in batch if len(item[1])]
    if not batch:
        return None
    run_index = np.repeat(np.arange(len(batch), dtype=np.uint32), [len(points) for _, points, _ in batch])
    keys, key_index = _factorized(np.concatenate([p.key for _, p, _ in batch]))
    step = np.concatenate([p.step for _, p, _ in batch])
    stamp = np.concatenate([p.timestamp_ms for _, p, _ in batch])
    value = np.concatenate([p.value for _, p, _ in batch])
    order = np.lexsort((value, stamp, step, key_index, run_index))
    run_index, key_index = run_index[order], key_index[order].astype(np.uint32)
    step, stamp, value = step[order], stamp[order], value[order]
    seq = stamp * SEQ_PER_MS + _tie_rank(run_index, key_index, step, stamp)
    kept = _kept(batch)
    if kept is not None:
        kept = kept[order]
        run_index, key_index, step, seq, stamp, value = (
            c[kept] for c in (run_index, key_index, step, seq, stamp, value)
        )
        if not len(step):
            return None
    return PointColumns(
        runs=tuple(run_id for run_id, _, _ in batch),
        keys=keys,
        run_index=run_index,
        key_index=key_index,
        step=step,
        seq=seq,
        timestamp_ms=stamp,
        value=value,
    )


def _factorized(names: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """The distinct names, sorted, and each name's place among them.

    Names come in runs of one name (a source streams a run's points key by key), so only the
    first of each run is looked up: comparing neighbours is a C loop, a dict lookup per point
    is not.
    """
    n = len(names)
    heads = np.ones(n, dtype=bool)
    heads[1:] = names[1:] != names[:-1]
    starts = np.flatnonzero(heads)
    seen: dict[str, int] = {}
    code = seen.setdefault
    head_codes = np.array([code(name, len(seen)) for name in names[starts].tolist()], dtype=np.int64)
    distinct = sorted(seen)
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[[seen[name] for name in distinct]] = np.arange(len(distinct))
    lengths = np.diff(np.append(starts, n))
    return tuple(distinct), np.repeat(rank[head_codes], lengths)


def _kept(batch: Sequence[tuple[str, RunPoints, np.ndarray | None]]) -> np.ndarray | None:
    """Which points of the whole batch to write, in batch order; None for all of them."""
    if all(mask is None for _, _, mask in batch):
        return None
    return np.concatenate(
        [np.ones(len(points), dtype=bool) if mask is None else mask for _, points, mask in batch]
    )


def _tie_rank(*sorted_columns: np.ndarray) -> np.ndarray:
    """For rows sorted by these columns: how many earlier rows share all of them (0, 1, ...)."""
    n = len(sorted_columns[0])
    new = np.ones(n, dtype=bool)
    if n > 1:
        same = np.ones(n - 1, dtype=bool)
        for column in sorted_columns:
            same &= column[1:] == column[:-1]
        new[1:] = ~same
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    return np.arange(n, dtype=np.int64) - starts[group]


def missing(points: RunPoints, stored: dict[str, np.ndarray]) -> np.ndarray:
    """Which points of a run plinth does not hold yet (`stored`: each metric's history as
    `Store.metric_history` gives it), compared by step, timestamp and value."""
    have: collections.Counter[tuple[str, int, int, bytes]] = collections.Counter()
    for key, history in stored.items():
        for step, stamp, value in zip(
            history["step"].tolist(), history["timestamp_ms"].tolist(), history["value"], strict=True
        ):
            have[(key, step, stamp, _bits(value))] += 1
    keep = np.zeros(len(points), dtype=bool)
    rows = zip(
        points.key.tolist(), points.step.tolist(), points.timestamp_ms.tolist(), points.value, strict=True
    )
    for i, (key, step, stamp, value) in enumerate(rows):
        mark = (key, step, stamp, _bits(value))
        if have[mark]:
            have[mark] -= 1
        else:
            keep[i] = True
    return keep


def _bits(value: np.floating) -> bytes:
    """A value as its bytes, so that NaN matches NaN."""
    return np.float64(np.nan if np.isnan(value) else value).tobytes()
