"""Distributed steps on the local executor: DDP over 2 and 4 processes equals one process on the
same global batch, a killed rank restarts the group from its last checkpoint, the group on record."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import plinth
from plinth import step
from plinth.cli.main import main
from plinth.core.errors import InvalidInput
from plinth.core.settings import Settings
from plinth.monitoring.costs import run_totals
from plinth.tracking.context import Backend

sys.path.insert(0, str(Path(__file__).parent.parent / "resources"))
import ddp_flows

pytestmark = pytest.mark.slow
on_sqlite = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def train_step(result: plinth.FlowResult) -> plinth.StepRun:
    return next(s for s in result.steps if s.step == "train")


@on_sqlite
@pytest.mark.parametrize("workers", [2, 4])
def test_ddp_matches_one_process_on_the_same_global_batch(tracking: Backend, workers: int) -> None:
    out = ddp_flows.ddp.run(executor="local", workers=workers, steps=12).result
    weights = np.array(out["weights"])
    assert out["world"] == workers and out["rank"] == 0
    assert weights.shape[0] == workers
    assert np.array_equal(weights, np.repeat(weights[:1], workers, axis=0))  # every rank holds the same model
    np.testing.assert_allclose(weights[0], ddp_flows.train_alone(12), rtol=1e-5, atol=1e-6)
    assert out["env"]["WORLD_SIZE"] == str(workers) and out["env"]["MASTER_ADDR"] == "127.0.0.1"


@on_sqlite
def test_the_group_is_on_record(tracking: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    result = ddp_flows.ddp.run(executor="local", workers=2, steps=4)
    row = train_step(result)
    run = plinth.get_run(row.id)
    assert run.tags["plinth.workers"] == "2"
    assert run.tags["plinth.distributed"] == "torch"
    assert run.tags["plinth.checkpointed"] == "true"
    ranks = row.usage["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["outcome"] == "ok" for r in ranks)
    assert len({r["worker"] for r in ranks}) == 2  # two processes
    assert row.usage["cpu_s"] == pytest.approx(sum(r["cpu_s"] for r in ranks))
    assert sorted(plinth.metric_history(row.id, "loss").steps) == [0, 1, 2, 3]  # rank 0 alone logged
    billed = run.metrics["system/cpu_hours"], run.metrics["system/rank1/cpu_hours"]  # each rank sampled
    assert run_totals(run).cpu_hours == pytest.approx(sum(billed))  # both workers are billed
    assert main(["flows", "show", result.id]) == 0
    out = capsys.readouterr().out
    assert "Group train#0: 2 workers" in out
    assert ranks[1]["worker"] in out


@on_sqlite
def test_a_killed_rank_restarts_the_group_from_its_last_checkpoint(tracking: Backend, tmp_path: Path) -> None:
    marker = tmp_path / "killed"
    result = ddp_flows.ddp.run(
        executor="local", workers=2, steps=12, ckpt_every=4, kill_at=6, marker=str(marker)
    )
    out = result.result
    assert marker.exists()  # rank 1 did die in the first attempt
    row = train_step(result)
    assert row.attempts == 2
    assert out["start"] == 4  # the second attempt went on from the checkpoint of step 3
    uninterrupted = ddp_flows.ddp.run(executor="local", workers=2, steps=12, ckpt_every=4).result
    assert out["weights"] == uninterrupted["weights"]  # same seeds, same batches: same model
    np.testing.assert_allclose(out["weights"][0], ddp_flows.train_alone(12), rtol=1e-5, atol=1e-6)
    kept = plinth.list_checkpoints(row.id)
    assert [c.step for c in kept] == [7, 11]  # keep_last=2


@on_sqlite
def test_resume_continues_from_the_failed_calls_checkpoint(tracking: Backend, tmp_path: Path) -> None:
    marker = tmp_path / "killed"
    failed = ddp_flows.ddp_once.run(executor="local", raise_on_failure=False, steps=12, marker=str(marker))
    assert failed.flow_run.status.value == "FAILED"
    assert "rank 1 of 2" in (train_step(failed).error or "")
    resumed = plinth.resume_flow(failed.id, executor="local")
    assert resumed.result["start"] == 4
    np.testing.assert_allclose(resumed.result["weights"][0], ddp_flows.train_alone(12), rtol=1e-5, atol=1e-6)


@on_sqlite
def test_a_distributed_step_of_one_process_gets_a_group_of_one(tracking: Backend) -> None:
    out = ddp_flows.ddp.run(executor="local", workers=1, steps=3).result
    assert out["world"] == 1
    np.testing.assert_allclose(out["weights"][0], ddp_flows.train_alone(3), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 0}, "workers must be"),
        ({"workers": 2.5}, "workers must be"),
        ({"distributed": "mpi"}, "distributed='mpi'"),
        ({"checkpoint": "yes"}, "checkpoint takes"),
    ],
)
def test_bad_group_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        step(**kwargs)(ddp_flows.train_alone)


def test_checkpointed_steps_are_retried_at_least_once() -> None:
    assert step(checkpoint=True)(ddp_flows.train_alone).options.retries == 1
    assert step(checkpoint=True, retries=3)(ddp_flows.train_alone).options.retries == 3
    assert step(ddp_flows.train_alone).options.retries == 0


@on_sqlite
def test_step_checkpoint_outside_a_step_is_none(settings: Settings) -> None:
    plinth.configure(replace(settings))
    assert plinth.step_checkpoint() is None
