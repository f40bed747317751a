"""Runs and flow steps log their CPU, memory and GPU use as `system/*` metrics."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import plinth
from plinth.core.errors import ConfigError
from plinth.core.settings import Settings
from waiting import wait_until

sys.path.insert(0, str(Path(__file__).parent.parent / "resources"))
import sampled_flows

TOTALS = ("system/wall_hours", "system/cpu_hours", "system/gpu_hours", "system/cpu_hours_used")


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.fixture
def sampled(settings: Settings) -> Settings:
    plinth.configure(replace(settings, sample_s=0.1))
    return settings


def test_a_run_logs_system_metrics_and_totals(sampled: Settings) -> None:
    with plinth.start_run("sys") as run:
        busy(0.6)
        # the sampler's thread may be starved on a loaded machine: its first sample, not a time, ends the wait
        wait_until(lambda: "system/cpu_cores_used" in run.get().metrics, "the run's first system sample")
    got = plinth.get_run(run.id)
    assert {"system/cpu_utilization", "system/cpu_cores_used", "system/memory_rss_bytes"} <= set(got.metrics)
    assert set(TOTALS) <= set(got.metrics)
    assert got.metrics["system/memory_rss_bytes"] > 0
    assert len(plinth.metric_history(run.id, "system/cpu_cores_used")) >= 1  # more unless starved
    cpu = float(got.tags["plinth.cpu"])
    assert got.metrics["system/cpu_hours"] == pytest.approx(cpu * got.metrics["system/wall_hours"])
    assert got.metrics["system/gpu_hours"] == float(got.tags["plinth.gpu"]) * got.metrics["system/wall_hours"]


def test_system_metrics_can_be_switched_off(sampled: Settings) -> None:
    with plinth.start_run("sys", system_metrics=False) as run:
        time.sleep(0.4)
    assert plinth.get_run(run.id).metrics == {}


def test_the_setting_switches_them_off(settings: Settings) -> None:
    plinth.configure(replace(settings, sample_s=0.1, system_metrics=False))
    with plinth.start_run("sys") as run:
        time.sleep(0.4)
    assert plinth.get_run(run.id).metrics == {}


def test_a_run_shorter_than_the_first_sample_logs_none(tracking: object) -> None:
    with plinth.start_run("sys", params={"lr": 0.1}) as run:
        run.log_metric("loss", 0.5)
    got = plinth.get_run(run.id)
    assert got.metrics == {"loss": 0.5} and got.tags == {}


def test_a_flow_step_run_logs_system_metrics_for_its_allocation(sampled: Settings) -> None:
    plinth.configure(replace(sampled, sample_s=0.1, gpus="1"))
    result = sampled_flows.sampled.run(seconds=0.6)
    assert result.status is plinth.RunStatus.FINISHED
    runs = {s.step: plinth.get_run(s.id) for s in result.steps}
    cpu_step, gpu_step = runs["busy"], runs["on_gpu"]
    for run in (cpu_step, gpu_step):
        assert set(TOTALS) <= set(run.metrics) and "system/cpu_cores_used" in run.metrics
    wall = cpu_step.metrics["system/wall_hours"]
    assert cpu_step.metrics["system/cpu_hours"] == pytest.approx(2 * wall)  # the step's cpu=2
    assert cpu_step.metrics["system/gpu_hours"] == 0.0
    assert gpu_step.metrics["system/gpu_hours"] == pytest.approx(gpu_step.metrics["system/wall_hours"])
    assert cpu_step.metrics["system/cpu_hours_used"] > 0


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("PLINTH_PRICE_CPU_HOUR", "cheap", "not a price"),
        ("PLINTH_PRICE_GPU_HOUR", "-1", "non-negative"),
        ("PLINTH_PRICE_MEMORY_GB_HOUR", "nan", "PLINTH_PRICE_MEMORY_GB_HOUR"),
        ("PLINTH_SYSTEM_METRICS", "maybe", "on or off"),
        ("PLINTH_SAMPLE_S", "0", "positive"),
    ],
)
def test_bad_settings_are_refused(name: str, value: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Settings.from_env({name: value})


def test_settings_read_prices_and_switches() -> None:
    env = {"PLINTH_PRICE_CPU_HOUR": "0.05", "PLINTH_PRICE_GPU_HOUR": "2.5", "PLINTH_SYSTEM_METRICS": "off"}
    got = Settings.from_env({**env, "PLINTH_SAMPLE_S": "2"})
    assert (got.price_cpu_hour, got.price_gpu_hour, got.price_memory_gb_hour) == (0.05, 2.5, 0.0)
    assert got.system_metrics is False and got.sample_s == 2.0


def test_a_run_whose_sampler_was_starved_is_sampled_at_its_end(
    sampled: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded machine the sampler thread may not run before a short run ends."""
    from plinth.compute.sampling import ResourceSampler
    from plinth.tracking import system

    monkeypatch.setattr(ResourceSampler, "_loop", lambda self: None)  # a thread that never samples
    monkeypatch.setattr(system, "_sampler", None)
    with plinth.start_run("sys") as run:
        time.sleep(0.3)  # past the first sample's due time (0.1 s)
    got = plinth.get_run(run.id)
    assert len(plinth.metric_history(run.id, "system/cpu_cores_used")) == 1
    assert set(TOTALS) <= set(got.metrics) and float(got.tags["plinth.cpu"]) > 0
