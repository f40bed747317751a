"""A metric's points as a live view keeps them: added as they arrive, never more than `KEPT`.

A chart is at most a few hundred pixels wide, so a series that grows past `KEPT` points is
folded: consecutive points are bucketed and each bucket keeps its min and max (as the charts
draw a long line, `svg.reduce_points`), the last point always kept as it is. A view watching a
run for days holds a few thousand numbers per metric, not its whole history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from plinth.notebook.svg import reduce_points

KEPT = 1000
"""Points a series holds at most; past it, it folds to about half as many."""


class Series:
    """(x, y) points in the order added, folded when long; `seen` counts every point added."""

    def __init__(self) -> None:
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.seen = 0

    def __repr__(self) -> str:
        return f"<Series of {self.seen} points, {len(self.xs)} kept>"

    @classmethod
    def of(cls, xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray) -> Series:
        """A series of these points (a metric's history), folded at once when long."""
        series = cls()
        series.seen = len(xs)
        if len(xs):
            series._keep(reduce_points(xs[:-1], ys[:-1], KEPT // 4), (float(xs[-1]), float(ys[-1])))
        return series

    @property
    def last(self) -> float | None:
        """The value added last, or None before any."""
        return self.ys[-1] if self.ys else None

    def add(self, x: float, y: float) -> None:
        """Append one point, folding the series when it passes `KEPT`."""
        self.xs.append(x)
        self.ys.append(y)
        self.seen += 1
        if len(self.xs) > KEPT:
            self._keep(reduce_points(self.xs[:-1], self.ys[:-1], KEPT // 4), (self.xs[-1], self.ys[-1]))

    def changed_by(self, value: float) -> bool:
        """Whether `value` differs from the last one added (NaN equals NaN here); True when empty."""
        last = self.last
        if last is None:
            return True
        return not (last == value or (math.isnan(last) and math.isnan(value)))

    def _keep(self, points: list[tuple[float, float]], last: tuple[float, float]) -> None:
        points.append(last)
        self.xs = [x for x, _ in points]
        self.ys = [y for _, y in points]
