"""Flows end to end on the local executor, with SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import plinth
from plinth.core.errors import InvalidInput, ResourceError, StepFailed
from plinth.core.settings import Settings
from plinth.flows.source import load_module
from plinth.tracking.context import Backend
from waiting import wait_until

RESOURCES = Path(__file__).parent.parent / "resources"
sys.path.insert(0, str(RESOURCES))
import flows_example as ex  # noqa: E402


def statuses(result: plinth.FlowResult) -> dict[str, str]:
    return {s.call: s.status.value for s in result.steps}


def test_fan_out_and_join(tracking: Backend) -> None:
    result = ex.pipeline.run(lr=0.2)
    assert result.status is plinth.RunStatus.FINISHED
    assert result.result == {"lr": 0.2, "score": pytest.approx(0.6)}
    assert statuses(result) == {
        "load#0": "FINISHED",
        **{f"train#{i}": "FINISHED" for i in range(4)},
        "pick_best#0": "FINISHED",
    }
    steps = {s.call: s for s in result.steps}
    assert all(s.result_digest and tracking.blobs.exists(s.result_digest) for s in steps.values())
    flow_run = plinth.get_run(result.id)  # the flow run is a tracked run
    assert flow_run.params == {"lr": "0.2", "seed": "0"} and flow_run.status is plinth.RunStatus.FINISHED
    train_run = plinth.get_run(steps["train#3"].id)  # so is every step, with its own metrics
    assert train_run.params == {"lr": "0.2"} and train_run.metrics["loss"] == 0.4
    assert train_run.tags["plinth.flow_run"] == result.id
    feeds = tracking.store.edges(dst=("run", steps["pick_best#0"].id))
    assert {e.src_id for e in feeds} == {steps[f"train#{i}"].id for i in range(4)}
    assert steps["load#0"].log_digest is not None  # it printed
    assert b"loading seed 0" in tracking.blobs.read_bytes(steps["load#0"].log_digest)
    load_run = plinth.get_run(steps["load#0"].id)  # resources asked (tags) and used (metrics), output
    assert load_run.tags["plinth.cpu"] == "1" and load_run.tags["plinth.gpu"] == "0"
    assert load_run.metrics["plinth.max_rss"] > 0 and "plinth.wall_s" in load_run.metrics
    assert [a.path for a in load_run.artifacts] == ["logs/output.txt"]


def test_steps_run_concurrently_in_reused_workers(tracking: Backend) -> None:
    (a_start, a_end), (b_start, b_end) = ex.naps.run(seconds=2.0).result
    assert a_start < b_end and b_start < a_end  # the two naps overlapped


def test_cache_hit_and_resume_reuse(tracking: Backend) -> None:
    first = ex.pipeline.run(lr=0.2)
    second = ex.pipeline.run(lr=0.2)
    assert statuses(second)["train#0"] == "CACHED" and statuses(second)["load#0"] == "FINISHED"
    changed = ex.pipeline.run(lr=0.5)
    assert [statuses(changed)[f"train#{i}"] for i in range(4)] == ["CACHED"] * 3 + ["FINISHED"]
    resumed = plinth.resume_flow(first.id)
    assert set(statuses(resumed).values()) == {"CACHED"}
    assert resumed.flow_run.resumed_from == first.id and resumed.result == first.result


def test_cache_misses_when_code_changes(tracking: Backend, tmp_path: Path) -> None:
    source = (RESOURCES / "flows_example.py").read_text()
    (tmp_path / "v1.py").write_text(source)
    (tmp_path / "v2.py").write_text(source.replace("sum(data) * lr", "sum(data) * lr * 2"))
    (tmp_path / "v1_again.py").write_text(source)
    runs = [load_module(str(tmp_path / name)).pipeline.run() for name in ("v1.py", "v2.py", "v1_again.py")]
    assert statuses(runs[1])["train#0"] == "FINISHED"  # new code: miss
    assert statuses(runs[2])["train#0"] == "CACHED"  # the first code again: hit
    assert runs[1].result["score"] == 2 * runs[0].result["score"]


def test_retries_then_success(tracking: Backend, tmp_path: Path) -> None:
    result = ex.flaky_flow.run(marker=str(tmp_path / "m"), fail_times=2)
    [step] = result.steps
    assert (result.result, step.attempts, step.status.value) == (3, 3, "FINISHED")


def test_retries_exhausted_fail_the_flow(tracking: Backend, tmp_path: Path) -> None:
    with pytest.raises(
        StepFailed, match=r"Step flaky#0 failed after 3 attempts: RuntimeError: attempt 3"
    ) as info:
        ex.flaky_flow.run(marker=str(tmp_path / "m"), fail_times=5)
    assert "plinth flows logs" in str(info.value)
    result = info.value.flow_run  # type: ignore[attr-defined]
    assert result.status is plinth.RunStatus.FAILED and statuses(result) == {"flaky#0": "FAILED"}
    assert plinth.get_run(result.steps[0].id).status is plinth.RunStatus.FAILED
    assert plinth.get_run(result.id).status is plinth.RunStatus.FAILED


def test_worker_killed_mid_step_retries(tracking: Backend, tmp_path: Path) -> None:
    result = ex.worker_dies.run(marker=str(tmp_path / "m"))
    assert result.result == 42 and result.steps[0].attempts == 2


@pytest.mark.slow
def test_timeout_stops_the_step(tracking: Backend) -> None:
    result = ex.too_slow.run(raise_on_failure=False)
    assert result.status is plinth.RunStatus.FAILED and "timeout" in (result.error or "")


@pytest.mark.slow
def test_memory_limit_stops_the_step(tracking: Backend) -> None:
    result = ex.too_hungry.run(raise_on_failure=False)
    assert result.status is plinth.RunStatus.FAILED and "memory" in (result.error or "")


def test_resume_after_failure_reuses_finished_steps(tracking: Backend, tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    failed = ex.stages.run(marker=str(marker), raise_on_failure=False)
    assert failed.status is plinth.RunStatus.FAILED
    assert statuses(failed) == {
        "stage#0": "FINISHED",
        "stage#1": "FINISHED",
        "stage#2": "FINISHED",
        "stage#3": "FAILED",
    }
    marker.write_text("fixed")
    resumed = plinth.resume_flow(failed.id)
    assert statuses(resumed) == {
        "stage#0": "CACHED",
        "stage#1": "CACHED",
        "stage#2": "CACHED",
        "stage#3": "FINISHED",
        "stage#4": "FINISHED",
    }
    assert resumed.result == 0 + 1 + 2 + 3 + 4


@pytest.mark.slow
def test_resume_after_driver_kill_9(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "m"
    Path(str(marker) + ".sleep").write_text("sleep in stage 2")
    env = {
        **os.environ,
        "PLINTH_HOME": settings.home,
        "PLINTH_STORE": settings.resolved_store_url,
        "PLINTH_TOKEN": settings.token or "",
        "PLINTH_HEARTBEAT_S": "0.2",
    }
    driver = subprocess.Popen(
        [sys.executable, str(RESOURCES / "run_flow.py"), str(RESOURCES), str(marker)], env=env
    )
    be = plinth.configure(settings)

    def two_stages_done() -> plinth.FlowRun | None:
        flow_runs = be.store.list_flow_runs("stages")
        done = [s for s in be.store.step_runs(flow_runs[0].id) if s.status.has_result] if flow_runs else []
        return flow_runs[0] if len(done) == 2 else None

    flow_run = wait_until(two_stages_done, "two finished stages")
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    Path(str(marker) + ".sleep").unlink()
    running = plinth.RunStatus.RUNNING
    wait_until(lambda: be.store.get_flow_run(flow_run.id).status is not running, "the flow run to stop")
    assert be.store.get_flow_run(flow_run.id).status is plinth.RunStatus.CRASHED
    resumed = plinth.resume_flow(flow_run.id)
    assert statuses(resumed)["stage#0"] == "CACHED" and statuses(resumed)["stage#1"] == "CACHED"
    assert resumed.status is plinth.RunStatus.FINISHED


def test_gpu_slots_are_exclusive(settings: Settings) -> None:
    from dataclasses import replace

    plinth.configure(replace(settings, gpus="2"))
    result = ex.gpu_fanout.run(n=6)
    assert {gpu for gpu, _, _ in result.result} <= {"0", "1"}
    for i, (gpu_a, start_a, end_a) in enumerate(result.result):
        for gpu_b, start_b, end_b in result.result[i + 1 :]:
            if start_a < end_b and start_b < end_a:  # ran at the same time: never on the same GPU
                assert gpu_a != gpu_b
    assert [[int(g)] for g, _, _ in result.result] == [s.usage["gpus"] for s in result.steps]
    with pytest.raises(ResourceError, match="gpu=3"):
        ex.too_many_gpus.run()


def test_bad_params_are_refused(tracking: Backend) -> None:
    with pytest.raises(InvalidInput, match="parameters are"):
        ex.pipeline.run(learning_rate=0.1)
    with pytest.raises(InvalidInput, match="JSON"):
        ex.pipeline.run(lr=object())


def test_steps_outside_a_flow_are_plain_calls() -> None:
    assert ex.load(3) == [3, 4, 5]
    assert ex.load.map([1, 2]) == [[1, 2, 3], [2, 3, 4]]


def test_flow_body_errors_are_recorded_and_raised(tracking: Backend) -> None:
    with pytest.raises(ZeroDivisionError, match="the body is broken"):
        ex.body_raises.run()
    [run] = tracking.store.list_flow_runs("body_raises")
    assert run.status is plinth.RunStatus.FAILED and "ZeroDivisionError" in (run.error or "")
    assert plinth.get_run(run.id).status is plinth.RunStatus.FAILED
    with pytest.raises(ResourceError):
        ex.too_many_gpus.run()
    [refused] = tracking.store.list_flow_runs("too_many_gpus")
    assert refused.status is plinth.RunStatus.FAILED and "gpu=3" in (refused.error or "")
