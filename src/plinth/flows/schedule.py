"""Cron schedules: `plinth scheduler` runs flows at their times, each time once, ever.

Every scheduled time is claimed in the store before its run starts (a unique row per flow and
time), so a restarted scheduler, or a second one, never starts the same time twice. Times
missed while no scheduler ran are handled by the catch-up policy: `skip` records them as
skipped and runs nothing late; `once` runs the flow once for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plinth.core.errors import InvalidInput, PlinthError

if TYPE_CHECKING:
    from plinth.flows.flow import Flow, FlowResult
    from plinth.tracking.context import Backend

POLICIES = ("skip", "once")


def check_cron(expression: str) -> str:
    """Return a valid five-field cron expression, or raise InvalidInput saying what is wrong."""
    from croniter import croniter

    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise InvalidInput(
            f"Schedule {expression!r} is not a cron expression; use e.g. '0 3 * * *' (03:00 daily)."
        )
    return expression


def due_times(expression: str, after_ms: int, until_ms: int, limit: int = 10_000) -> list[int]:
    """Scheduled times (epoch ms, UTC) in (after_ms, until_ms], oldest first."""
    from croniter import croniter

    it = croniter(expression, after_ms / 1000.0)
    found: list[int] = []
    while len(found) < limit:
        at = round(it.get_next(float) * 1000)
        if at > until_ms:
            break
        found.append(at)
    return found


@dataclass(frozen=True)
class Trigger:
    """What the scheduler did about one scheduled time."""

    flow: str
    scheduled_ms: int
    status: str  # started, skipped, coalesced
    result: FlowResult[Any] | None = None
    error: str | None = None


class Scheduler:
    """Runs flows on their schedules; `tick()` does one round, `serve()` loops.

    Args:
        flows: flows with a `schedule`.
        catchup: "skip" (missed times are not run) or "once" (one run covers them all).
        started_ms: a flow never triggered before counts from here (default: now).
    """

    def __init__(
        self,
        flows: Sequence[Flow[..., Any]],
        be: Backend,
        *,
        catchup: str = "skip",
        started_ms: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if catchup not in POLICIES:
            raise InvalidInput(f"Catch-up policy {catchup!r} is unknown; use one of {', '.join(POLICIES)}.")
        self.flows = [f for f in flows if f.schedule]
        if not self.flows:
            raise InvalidInput("None of the given flows has a schedule; add @flow(schedule='0 3 * * *').")
        self.be = be
        self.catchup = catchup
        self.clock = clock
        self.started_ms = started_ms if started_ms is not None else int(clock() * 1000)

    def tick(self) -> list[Trigger]:
        """Trigger every flow whose scheduled time has come; returns what was done."""
        now = int(self.clock() * 1000)
        done: list[Trigger] = []
        for flow in self.flows:
            done += self._tick_flow(flow, now)
        return done

    def _tick_flow(self, flow: Flow[..., Any], now: int) -> list[Trigger]:
        recorded = self.be.store.triggers(flow.name)
        after = recorded[-1][0] if recorded else self.started_ms - 1
        due = due_times(flow.schedule or "", after, now)
        if not due:
            return []
        *missed, latest = due
        late = missed or now - latest > 60_000
        out = [self._mark(flow, at, "coalesced" if self.catchup == "once" else "skipped") for at in missed]
        if late and self.catchup == "skip":
            out.append(self._mark(flow, latest, "skipped"))
        else:
            out.append(self._start(flow, latest))
        return [t for t in out if t is not None]

    def _mark(self, flow: Flow[..., Any], at: int, status: str) -> Trigger | None:
        if not self.be.store.claim_trigger(flow.name, at, status):
            return None
        return Trigger(flow.name, at, status)

    def _start(self, flow: Flow[..., Any], at: int) -> Trigger | None:
        if not self.be.store.claim_trigger(flow.name, at, "started"):
            return None  # another scheduler (or an earlier life of this one) took it
        try:
            result = flow.run(raise_on_failure=False)
        except PlinthError as exc:
            return Trigger(flow.name, at, "started", error=str(exc))
        self.be.store.set_trigger_run(flow.name, at, result.id)
        return Trigger(flow.name, at, "started", result=result)

    def serve(self, stop: Callable[[], bool] = lambda: False, poll_s: float = 1.0) -> None:
        """Tick every `poll_s` seconds until `stop()` is true."""
        while not stop():
            self.tick()
            time.sleep(poll_s)
