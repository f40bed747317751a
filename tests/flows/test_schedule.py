"""The cron scheduler: each scheduled time runs once, across restarts; catch-up policies."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

from plinth.core.errors import InvalidInput
from plinth.flows.schedule import Scheduler, check_cron, due_times
from plinth.tracking.context import Backend

sys.path.insert(0, str(Path(__file__).parent.parent / "resources"))
import flows_example as ex

T0 = dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC).timestamp()  # on a five-minute boundary


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def test_due_times() -> None:
    start = int(T0 * 1000)
    assert due_times("*/5 * * * *", start, start + 11 * 60_000) == [start + 300_000, start + 600_000]
    assert due_times("*/5 * * * *", start - 1, start) == [start]


@pytest.mark.parametrize("bad", ["", "every day", "61 * * * *", "* * *"])
def test_bad_cron_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="cron"):
        check_cron(bad)


def test_each_time_runs_once_also_across_a_restart(tracking: Backend) -> None:
    clock = Clock(T0 + 10)
    first = Scheduler([ex.every_five_minutes], tracking, started_ms=int(T0 * 1000) - 1, clock=clock)
    [trigger] = first.tick()
    assert (trigger.status, trigger.result.result) == ("started", "tick")  # type: ignore[union-attr]
    assert first.tick() == []
    restarted = Scheduler([ex.every_five_minutes], tracking, started_ms=int(T0 * 1000) - 1, clock=clock)
    assert restarted.tick() == []  # T0 was already started by the first scheduler
    clock.at = T0 + 301
    assert [t.status for t in restarted.tick()] == ["started"]
    recorded = tracking.store.triggers("every_five_minutes")
    assert [(at - int(T0 * 1000), status) for at, status, _run in recorded] == [
        (0, "started"),
        (300_000, "started"),
    ]
    assert all(run for _at, _status, run in recorded)


@pytest.mark.parametrize(
    ("policy", "expected"), [("skip", ["skipped"] * 3), ("once", ["coalesced"] * 2 + ["started"])]
)
def test_catch_up_after_downtime(tracking: Backend, policy: str, expected: list[str]) -> None:
    clock = Clock(T0 + 10)
    Scheduler([ex.every_five_minutes], tracking, started_ms=int(T0 * 1000) - 1, clock=clock).tick()
    clock.at = T0 + 3 * 300 + 120  # down for three scheduled times, back two minutes late
    after = Scheduler([ex.every_five_minutes], tracking, catchup=policy, clock=clock).tick()
    assert [t.status for t in after] == expected


def test_scheduler_needs_scheduled_flows(tracking: Backend) -> None:
    with pytest.raises(InvalidInput, match="schedule"):
        Scheduler([ex.pipeline], tracking)
    with pytest.raises(InvalidInput, match="policy"):
        Scheduler([ex.every_five_minutes], tracking, catchup="all")
