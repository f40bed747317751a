"""Operations of a served model from its logs: traffic, errors, latency and batch sizes over time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from plinth.core.windows import Window
from plinth.monitoring.windows import UNMEASURED, OpsColumns


@dataclass(frozen=True)
class OpsWindow:
    """One window of one model version (version None: all versions together)."""

    start_ms: int | None
    end_ms: int | None
    version: int | None
    requests: int
    rows: int
    errors: int
    throughput_rps: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    mean_batch_rows: float | None

    @property
    def error_rate(self) -> float:
        """Share of requests answered with an error (0.0 when there were none)."""
        return self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, error rate included."""
        return {**asdict(self), "error_rate": self.error_rate}


@dataclass(frozen=True, repr=False)
class OpsReport:
    """Operations of a model: the whole window, per version, and per sub-window and version."""

    model: str
    overall: OpsWindow
    versions: tuple[OpsWindow, ...]
    windows: tuple[OpsWindow, ...]

    def __repr__(self) -> str:
        overall = self.overall
        return f"<OpsReport {self.model}: {overall.requests} requests, {overall.errors} errors>"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "model": self.model,
            "overall": self.overall.to_dict(),
            "versions": [w.to_dict() for w in self.versions],
            "windows": [w.to_dict() for w in self.windows],
        }


def operations(
    model: str,
    stats: Sequence[tuple[int, int, str, float, int, int]],
    span: Window,
) -> OpsReport:
    """Summarize `stats` rows (time_ms, version, route, latency_ms, status, n_rows); shadow excluded.

    Windows per part of `span` (`span.every_ms` long) are added when `span` has `every_ms`.
    """
    columns = OpsColumns(
        times=np.array([s[0] for s in stats], dtype=np.int64),
        versions=np.array([s[1] for s in stats], dtype=np.int64),
        latency=np.array([s[3] for s in stats], dtype=np.float64),
        status=np.array([s[4] for s in stats], dtype=np.int64),
        rows=np.array([s[5] for s in stats], dtype=np.int64),
        shadow=np.array([s[2] == "shadow" for s in stats], dtype=bool),
        measured=np.array([s[2] != UNMEASURED for s in stats], dtype=bool),
    )
    return operations_of(model, columns, span)


def operations_of(model: str, columns: OpsColumns, span: Window) -> OpsReport:
    """`operations` over request columns read once (`Logged.ops`), oldest first; shadow excluded."""
    kept = ~columns.shadow
    times = np.asarray(columns.times[kept], dtype=np.int64)
    versions = np.asarray(columns.versions[kept], dtype=np.int64)
    latency = np.array(columns.latency[kept], dtype=np.float64)
    latency[~columns.measured[kept]] = np.nan  # left out of the percentiles
    failed = np.asarray(columns.status[kept] != 200, dtype=bool)
    rows = np.asarray(columns.rows[kept], dtype=np.int64)
    arrays = (times, versions, latency, failed, rows)
    first = int(times[0]) if len(times) else 0
    last = int(times[-1]) if len(times) else 0
    whole = Window(span.start_ms if span.start_ms is not None else first, span.end_ms or last + 1)
    overall = _summary(whole, None, np.ones(len(times), dtype=bool), arrays)
    per_version = tuple(_summary(whole, int(v), versions == v, arrays) for v in np.unique(versions))
    parts: list[OpsWindow] = []
    if span.every_ms is not None and len(times):
        for part in span.parts(first, last):
            lo, hi = np.searchsorted(times, np.array([part.start_ms, part.end_ms], dtype=np.int64))
            inside = np.zeros(len(times), dtype=bool)
            inside[lo:hi] = True
            for v in np.unique(versions[lo:hi]) if hi > lo else [None]:
                chosen = inside if v is None else inside & (versions == v)
                parts.append(_summary(part, None if v is None else int(v), chosen, arrays))
    return OpsReport(model, overall, per_version, tuple(parts))


def _summary(
    part: Window, version: int | None, chosen: np.ndarray, columns: tuple[np.ndarray, ...]
) -> OpsWindow:
    _times, _versions, latency, failed, rows = columns
    count = int(chosen.sum())
    seconds = max(((part.end_ms or 0) - (part.start_ms or 0)) / 1000.0, 1e-3)
    answered = chosen & ~failed
    lat = latency[chosen]
    lat = lat[~np.isnan(lat)]
    p50, p95, p99 = (float(x) for x in np.percentile(lat, [50, 95, 99])) if lat.size else (None, None, None)
    return OpsWindow(
        start_ms=part.start_ms,
        end_ms=part.end_ms,
        version=version,
        requests=count,
        rows=int(rows[answered].sum()),
        errors=int((chosen & failed).sum()),
        throughput_rps=count / seconds,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        latency_p99_ms=p99,
        mean_batch_rows=float(rows[answered].mean()) if answered.any() else None,
    )
