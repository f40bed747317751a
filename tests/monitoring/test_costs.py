"""Costs: resource-hours of runs grouped by experiment, flow or user, times the prices set."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

import plinth
from plinth.core.errors import ConfigError, InvalidInput
from plinth.core.settings import Settings
from plinth.monitoring.costs import CostRow, Prices, run_totals

sys.path.insert(0, str(Path(__file__).parent.parent / "resources"))
import sampled_flows

PRICES = Prices(cpu_hour=0.5, gpu_hour=3.0, memory_gb_hour=0.01)


def logged_run(experiment: str, cpu: float, gpu: int, hours: float, used: float = 0.0) -> None:
    """A run with the totals a sampled run would have logged."""
    with plinth.start_run(
        experiment, system_metrics=False, tags={"plinth.cpu": cpu, "plinth.gpu": gpu}
    ) as run:
        run.log_metrics(
            {
                "system/wall_hours": hours,
                "system/cpu_hours": cpu * hours,
                "system/gpu_hours": gpu * hours,
                "system/memory_gib_hours": 2 * hours,
                "system/cpu_hours_used": used,
                "system/gpu_hours_used": 0.0,
            }
        )


def by_group(rows: list[CostRow]) -> dict[str, CostRow]:
    return {row.group: row for row in rows}


def test_costs_by_experiment_multiply_resource_hours_by_prices(settings: Settings) -> None:
    plinth.configure(settings)
    logged_run("train", cpu=4, gpu=1, hours=2.0, used=4.0)
    logged_run("train", cpu=2, gpu=0, hours=1.0, used=1.0)
    logged_run("eval", cpu=1, gpu=0, hours=3.0, used=0.0)
    rows = plinth.costs(by="experiment", prices=PRICES)
    assert [r.group for r in rows] == ["train", "eval"]  # costliest first
    train, evaluation = rows
    assert (train.runs, train.cpu_hours, train.gpu_hours, train.wall_hours) == (2, 10.0, 2.0, 3.0)
    assert train.cost == pytest.approx(10 * 0.5 + 2 * 3.0 + 6 * 0.01)
    assert train.cpu_utilization == pytest.approx(100 * 5 / 10)
    assert train.gpu_utilization is None  # no GPU was sampled
    assert evaluation.cost == pytest.approx(3 * 0.5 + 6 * 0.01)


def test_costs_by_user(acting_as: Callable[[str], Settings]) -> None:
    plinth.configure(acting_as("alice"))
    logged_run("a", cpu=2, gpu=0, hours=1.0)
    plinth.configure(acting_as("bob"))
    logged_run("a", cpu=1, gpu=1, hours=1.0)
    logged_run("b", cpu=1, gpu=0, hours=1.0)
    rows = by_group(plinth.costs(by="user", prices=Prices(cpu_hour=1.0, gpu_hour=10.0)))
    assert set(rows) == {"alice", "bob"}
    assert rows["alice"].cost == pytest.approx(2.0)
    assert rows["bob"].runs == 2 and rows["bob"].cost == pytest.approx(1 + 10 + 1)


def test_costs_by_flow_add_up_their_steps(settings: Settings) -> None:
    plinth.configure(replace(settings, sample_s=0.1, gpus="1"))
    logged_run("not-a-flow", cpu=1, gpu=0, hours=1.0)
    first = sampled_flows.sampled.run(seconds=0.3)
    second = sampled_flows.other.run(seconds=0.3)
    rows = by_group(plinth.costs(by="flow", prices=PRICES))
    assert set(rows) == {"sampled", "other-flow"}
    for result, name in ((first, "sampled"), (second, "other-flow")):
        totals = [run_totals(plinth.get_run(s.id)) for s in result.steps]
        assert rows[name].runs == len(result.steps)
        assert rows[name].cpu_hours == pytest.approx(sum(t.cpu_hours for t in totals))
        assert rows[name].gpu_hours == pytest.approx(sum(t.gpu_hours for t in totals))
        assert rows[name].cost == pytest.approx(sum(PRICES.of(t) for t in totals))
    assert rows["sampled"].gpu_hours > 0 and rows["other-flow"].gpu_hours == 0


def test_unsampled_runs_count_by_their_allocation_tags(settings: Settings) -> None:
    plinth.configure(settings)
    with plinth.start_run("short", tags={"plinth.cpu": 8, "plinth.gpu": 2}) as run:
        pass
    got = plinth.get_run(run.id)
    totals = run_totals(got)
    assert got.duration_s is not None
    assert totals.wall_hours == pytest.approx(got.duration_s / 3600)
    assert totals.cpu_hours == pytest.approx(8 * totals.wall_hours)
    assert totals.gpu_hours == pytest.approx(2 * totals.wall_hours)


def test_prices_default_to_the_settings(settings: Settings) -> None:
    plinth.configure(replace(settings, price_cpu_hour=2.0))
    logged_run("a", cpu=1, gpu=0, hours=1.5)
    assert plinth.costs()[0].cost == pytest.approx(3.0)


def test_since_leaves_out_older_runs(settings: Settings) -> None:
    plinth.configure(settings)
    logged_run("a", cpu=1, gpu=0, hours=1.0)
    assert len(plinth.costs(since="1d")) == 1 and len(plinth.costs(since=None)) == 1
    assert plinth.costs(since=0) == []


def test_bad_arguments_are_refused(tracking: object) -> None:
    with pytest.raises(InvalidInput, match="experiment, flow, user"):
        plinth.costs(by="team")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="not a time"):
        plinth.costs(since="a month")


def test_a_bad_price_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_PRICE_GPU_HOUR", "$2")
    with pytest.raises(ConfigError, match="PLINTH_PRICE_GPU_HOUR='\\$2' is not a price"):
        plinth.costs()
