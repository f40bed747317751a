"""Keep rules: which checkpoints of a run stay when a new one is stored.

`KeepRules.parse(keep_last, keep_best, metrics)` checks the arguments of `log_checkpoint` at the
call; `pruned(checkpoints)` names the ones neither rule keeps. A checkpoint kept by either rule
stays: `keep_last=3, keep_best="val_loss"` keeps the three newest and the best one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from plinth.core.errors import InvalidInput

DIRECTIONS = ("min", "max")


class Ranked(Protocol):
    """What the rules read of a checkpoint."""

    @property
    def step(self) -> int: ...

    @property
    def created_ms(self) -> int: ...

    @property
    def id(self) -> str: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...


R = TypeVar("R", bound=Ranked)


@dataclass(frozen=True)
class KeepRules:
    """Which checkpoints to keep: the `last` newest by step, and the best by `metric`.

    Args:
        last: how many of the newest (highest step) to keep; None: no limit from this rule.
        metric: the metric whose best value is kept; None: no such rule.
        direction: "min" (the lowest value is best) or "max".
    """

    last: int | None = None
    metric: str | None = None
    direction: str = "min"

    @classmethod
    def parse(cls, keep_last: object, keep_best: object, metrics: Mapping[str, float]) -> KeepRules:
        """The rules `log_checkpoint(keep_last=..., keep_best=...)` asks for.

        Raises:
            InvalidInput: keep_last is not a positive integer, keep_best is not a metric name or
                (name, "min" | "max"), or its metric is missing from `metrics`.
        """
        if keep_last is not None and (
            isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1
        ):
            raise InvalidInput(
                f"keep_last must be a positive integer (how many of the newest checkpoints to keep) "
                f"or None to keep them all, got {keep_last!r:.80}."
            )
        if keep_best is None:
            return cls(keep_last)
        metric, direction = _best(keep_best)
        if metric not in metrics:
            raise InvalidInput(
                f"keep_best names metric {metric!r}, which this checkpoint's metrics do not hold "
                f"({', '.join(sorted(metrics)) or 'none'}); pass metrics={{{metric!r}: value}}."
            )
        return cls(keep_last, metric, direction)

    @property
    def keeps_all(self) -> bool:
        """True when no rule limits what is kept."""
        return self.last is None and self.metric is None

    def pruned(self, checkpoints: Sequence[R]) -> list[R]:
        """The checkpoints neither rule keeps (none when no rule is set)."""
        if self.keeps_all:
            return []
        newest = sorted(checkpoints, key=lambda c: (c.step, c.created_ms, c.id), reverse=True)
        kept = {c.id for c in newest[: self.last]} if self.last is not None else set()
        best = self._best(checkpoints)
        if best is not None:
            kept.add(best.id)
        return [c for c in newest if c.id not in kept]

    def _best(self, checkpoints: Sequence[R]) -> R | None:
        metric = self.metric
        if metric is None:
            return None
        scored = [c for c in checkpoints if _number(c.metrics.get(metric))]
        if not scored:
            return None
        sign = 1.0 if self.direction == "min" else -1.0
        # the best value; among equals the newest
        return min(scored, key=lambda c: (sign * c.metrics[metric], -c.step, -c.created_ms))


def _best(keep_best: object) -> tuple[str, str]:
    if isinstance(keep_best, str) and keep_best:
        return keep_best, "min"
    if (
        isinstance(keep_best, (tuple, list))
        and len(keep_best) == 2
        and isinstance(keep_best[0], str)
        and keep_best[0]
        and keep_best[1] in DIRECTIONS
    ):
        return keep_best[0], keep_best[1]
    raise InvalidInput(
        f"keep_best must be a metric name (the lowest value is best) or (name, 'min' | 'max'), "
        f"got {keep_best!r:.80}."
    )


def _number(value: float | None) -> bool:
    return value is not None and not math.isnan(value)
