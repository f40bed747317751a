"""Flows on a real local Ray cluster: fan-out, tracking in tasks, retries, node loss, resume, limits."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import plinth
from plinth.cli.main import main
from plinth.core.errors import InvalidInput, ResourceError, StepFailed, StorageNotShared
from plinth.core.settings import Settings
from plinth.flows.status import running_steps
from plinth.tracking.context import Backend
from ray_cluster import RAY_MARK, add_node, client_address, remove_node, shared_cluster
from waiting import wait_until

RESOURCES = Path(__file__).parent.parent / "resources"
sys.path.insert(0, str(RESOURCES))
import flows_example as ex  # noqa: E402
import ray_flows  # noqa: E402

pytestmark = RAY_MARK


@pytest.fixture(autouse=True)
def cluster() -> object:
    return shared_cluster()


@pytest.fixture
def extra_node() -> Iterator[Any]:
    """A third node (1 CPU), removed at the end if the test did not remove it itself."""
    node = add_node()
    yield node
    if node in shared_cluster().worker_nodes:  # later tests count the cluster's nodes
        remove_node(node)


def calls(result: plinth.FlowResult) -> dict[str, plinth.StepRun]:
    return {s.call: s for s in result.steps}


@pytest.mark.slow
def test_fan_out_with_tracking_inside_tasks(tracking: Backend) -> None:
    result = ray_flows.fan_out.run(n=40)  # @flow(executor="ray")
    assert result.status is plinth.RunStatus.FINISHED and result.result == sum(i * i for i in range(40))
    steps = calls(result)
    assert {s.status.value for s in steps.values()} == {"FINISHED"}
    assert all(" node " in s.usage["worker"] for s in steps.values())  # host:pid node ID (IP)
    run = plinth.get_run(steps["square#7"].id)  # logged inside a Ray task, landed in the step's run
    assert run.metrics["square"] == 49 and run.metrics["plinth.wall_s"] >= 0
    assert run.tags["plinth.flow_run"] == result.id
    joined = plinth.get_run(steps["total#0"].id)  # an artifact logged inside a Ray task
    [report] = [a for a in joined.artifacts if a.path == "total.txt"]
    assert tracking.blobs.read_bytes(report.digest) == str(result.result).encode()


def test_an_unknown_executor_is_refused() -> None:
    with pytest.raises(InvalidInput, match="use one of local, ray"):
        plinth.flow(executor="spark")


def test_artifacts_on_s3_and_output_captured(
    pg_schema_factory, s3_bucket: str, s3_server: str, tmp_path: Path
) -> None:
    settings = Settings(
        home=str(tmp_path / "home"),
        store_url=pg_schema_factory(),
        artifacts_url=s3_bucket,
        storage_options={"endpoint_url": s3_server},
        user="tester",
    )
    be = plinth.configure(settings)
    result = ex.pipeline.run(executor="ray", lr=0.2)
    assert result.result == {"lr": 0.2, "score": pytest.approx(0.6)}
    load = calls(result)["load#0"]
    assert load.result_digest and be.blobs.exists(load.result_digest)
    assert b"loading seed 0" in be.blobs.read_bytes(load.log_digest or "")
    assert plinth.get_run(calls(result)["train#3"].id).metrics["loss"] == 0.4


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_retries_timeouts_and_resources(tracking: Backend, tmp_path: Path) -> None:
    result = ex.flaky_flow.run(executor="ray", marker=str(tmp_path / "m"), fail_times=2)
    assert result.result == 3 and calls(result)["flaky#0"].attempts == 3
    with pytest.raises(StepFailed, match=r"ran longer than its timeout of 1\.0 s"):
        ex.too_slow.run(executor="ray")
    with pytest.raises(ResourceError, match="gpu=3 but no node of the Ray cluster"):
        ex.too_many_gpus.run(executor="ray")
    gpus = ex.gpu_fanout.run(executor="ray", n=2).result
    assert [g[0] for g in gpus] == ["0", "0"]  # the one simulated GPU, on the node that has it


def test_resume_a_failed_ray_flow(tracking: Backend, tmp_path: Path) -> None:
    marker = str(tmp_path / "fixed")
    failed = ex.stages.run(executor="ray", raise_on_failure=False, marker=marker, fail_at=3)
    assert failed.status is plinth.RunStatus.FAILED
    Path(marker).touch()
    resumed = plinth.resume_flow(failed.id, executor="ray")
    states = {c: s.status.value for c, s in calls(resumed).items()}
    assert states == {
        **{f"stage#{i}": "CACHED" for i in range(3)},
        "stage#3": "FINISHED",
        "stage#4": "FINISHED",
    }
    assert resumed.result == 10


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_node_dies_mid_step_and_the_flow_finishes(
    tracking: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra_node: Any
) -> None:
    import threading

    folder = tmp_path / "where"
    folder.mkdir()
    outcome: dict[str, object] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(r=ray_flows.spread.run(executor="ray", folder=str(folder), n=3)),
        daemon=True,
    )
    runner.start()
    try:  # the steps wait for `release`, so the one on the extra node is mid-step when it dies
        wait_until(lambda: len(list(folder.glob("*.0"))) == 3, "a first attempt of each step")
        victims = [p for p in folder.glob("*.0") if p.read_text() == extra_node.node_id]
        assert victims, "no first attempt ran on the extra node"
        # step rows are written at most PERSIST_EVERY_S after a scheduling round
        wait_until(lambda: len(running_steps(tracking)) == 3, "three running steps in the store")
        capsys.readouterr()
        assert main(["cluster", "status"]) == 0  # the running steps, from the store
        shown = capsys.readouterr().out
        assert "3 nodes" in shown and "Running steps (3)" in shown and "stay#2" in shown
        remove_node(extra_node)
    finally:
        (folder / "release").touch()
    runner.join(timeout=90)
    assert not runner.is_alive(), "the flow did not finish after the node was removed"
    result = outcome["r"]
    assert isinstance(result, plinth.FlowResult) and result.status is plinth.RunStatus.FINISHED
    retried = calls(result)[f"stay#{victims[0].name.split('.')[0]}"]
    assert retried.attempts == 2
    assert extra_node.node_id not in result.result


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_local_stores_with_a_node_on_another_host_are_refused(tracking: Backend) -> None:
    other = add_node(node_ip_address="127.0.0.2")  # another IP: Ray counts it as another host
    try:
        with pytest.raises(StorageNotShared, match=r"PLINTH_STORE=postgresql://") as info:
            ex.pipeline.run(executor="ray")
        assert "127.0.0.2" in str(info.value)
    finally:
        remove_node(other)
    assert ex.pipeline.run(executor="ray").status is plinth.RunStatus.FINISHED  # one host again


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_cli_runs_a_flow_on_ray_and_shows_the_cluster(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    address = ray.get_runtime_context().gcs_address
    target = f"{RESOURCES / 'flows_example.py'}:pipeline"
    assert main(["flows", "run", target, "--executor", "ray", "--ray-address", address, "-p", "lr=0.2"]) == 0
    assert "FINISHED" in capsys.readouterr().out
    assert main(["cluster", "status", "--ray-address", address]) == 0
    out = capsys.readouterr().out
    assert "2 nodes" in out and "head" in out and "No plinth steps are running." in out


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_driver_elsewhere_runs_a_flow_through_ray_client(settings: Settings, tmp_path: Path) -> None:
    """`plinth flows run --ray-address ray://…` from another process, as from a laptop."""
    import os
    import subprocess

    from plinth.tracking.context import backend

    plinth.configure(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(PLINTH_HOME=str(tmp_path / "laptop"), PLINTH_STORE=settings.store_url or "")
    env["PLINTH_ARTIFACTS"] = str(tmp_path / "shared-artifacts")  # one machine: a shared folder
    target = f"{RESOURCES / 'flows_example.py'}:pipeline"
    plinth_cli = str(Path(sys.executable).parent / "plinth")
    done = subprocess.run(
        [
            plinth_cli,
            "flows",
            "run",
            target,
            "--executor",
            "ray",
            "--ray-address",
            client_address(),
            "-p",
            "lr=0.2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FINISHED" in done.stdout
    store = backend().store
    [flow_run] = store.list_flow_runs()
    assert flow_run.status is plinth.RunStatus.FINISHED
    steps = store.step_runs(flow_run.id)
    assert steps and all(s.status.value == "FINISHED" and " node " in s.usage["worker"] for s in steps)


@pytest.mark.parametrize(("workers", "cpu"), [(2, 1.0), (4, 0.5)])  # 1 CPU per node: 1 or 2 ranks on each
def test_a_ddp_step_spans_the_clusters_nodes(tracking: Backend, workers: int, cpu: float) -> None:
    import ddp_flows
    import numpy as np

    result = ddp_flows.ddp.run(executor="ray", workers=workers, steps=8, cpu=cpu)
    out = result.result
    weights = np.array(out["weights"])
    assert out["world"] == workers
    assert np.array_equal(weights, np.repeat(weights[:1], workers, axis=0))
    np.testing.assert_allclose(weights[0], ddp_flows.train_alone(8), rtol=1e-5, atol=1e-6)
    ranks = next(s for s in result.steps if s.step == "train").usage["ranks"]
    assert [r["outcome"] for r in ranks] == ["ok"] * workers
