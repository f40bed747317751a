"""Checkpoints of runs: each kind round trips, keep rules prune, ids load, corruption is caught."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import plinth
from plinth.errors import IntegrityError, InvalidInput, NotFound, RunNotActive
from plinth.tracking.checkpoints import Checkpoint
from plinth.tracking.context import Backend


@dataclass
class Trainer:
    epoch: int
    history: list[float]


def state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"layer.weight": torch.randn(8, 4, generator=gen), "layer.bias": torch.randn(8, generator=gen)}


def steps(run_id: str) -> list[int]:
    return [c.step for c in plinth.list_checkpoints(run_id)]


def test_a_state_dict_round_trips_as_it_was_at_the_call(tracking: Backend) -> None:
    sd = state()
    before = {k: v.clone() for k, v in sd.items()}
    with plinth.start_run("ckpt") as run:
        pending = run.log_checkpoint(sd, step=100, metrics={"val_loss": 0.25})
        for tensor in sd.values():  # the loop goes on training in place
            tensor.add_(1.0)
        ckpt = pending.wait()
    assert (ckpt.step, ckpt.kind, ckpt.run_id, dict(ckpt.metrics)) == (
        100,
        "torch",
        run.id,
        {"val_loss": 0.25},
    )
    loaded = ckpt.load()
    assert set(loaded) == set(before)
    for key, tensor in before.items():
        assert torch.equal(loaded[key], tensor)
    assert plinth.latest_checkpoint(run.id) == ckpt


def test_a_module_its_optimizer_and_plain_values_round_trip(tracking: Backend) -> None:
    model = torch.nn.Linear(4, 2)
    optim = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(3, 4)).sum().backward()
    optim.step()
    bundle = {"model": model.state_dict(), "optim": optim.state_dict(), "epoch": 3}
    with plinth.start_run("ckpt") as run:
        from_module = run.log_checkpoint(model, step=1).wait()
        nested = run.log_checkpoint(bundle, step=2).wait()
    assert from_module.kind == nested.kind == "torch"
    fresh = torch.nn.Linear(4, 2)
    fresh.load_state_dict(from_module.load())  # a state dict, with its metadata
    assert torch.equal(fresh.weight, model.weight)
    loaded = plinth.load_checkpoint(nested.id)
    assert loaded["epoch"] == 3
    assert loaded["optim"]["param_groups"] == optim.state_dict()["param_groups"]
    assert torch.equal(loaded["optim"]["state"][0]["exp_avg"], optim.state_dict()["state"][0]["exp_avg"])


def test_tensors_shared_in_the_state_stay_shared(tracking: Backend) -> None:
    tied = torch.arange(100_000.0)  # 400 kB
    with plinth.start_run("ckpt") as run:
        ckpt = run.log_checkpoint({"embed": tied, "head": tied}, step=1).wait()
    loaded = ckpt.load()
    assert loaded["embed"].data_ptr() == loaded["head"].data_ptr()
    assert 400_000 < ckpt.size < 500_000  # stored once


def test_a_picklable_object_round_trips(tracking: Backend) -> None:
    trainer = Trainer(epoch=2, history=[0.5, 0.4])
    with plinth.start_run("ckpt") as run:
        pending = run.log_checkpoint(trainer, step=2, metrics={"loss": 0.4})
        trainer.history.append(0.3)  # pickled at the call: this is not in the checkpoint
        ckpt = pending.wait()
    assert ckpt.kind == "pickle"
    assert plinth.load_checkpoint(ckpt.id) == Trainer(epoch=2, history=[0.5, 0.4])


def test_an_object_that_cannot_be_pickled_is_refused_at_the_call(tracking: Backend) -> None:
    with plinth.start_run("ckpt") as run, pytest.raises(InvalidInput, match="cannot be pickled"):
        run.log_checkpoint({"lock": __import__("threading").Lock()}, step=1)
    assert plinth.list_checkpoints(run.id) == []


def test_a_folder_round_trips_with_nested_files(tracking: Backend, tmp_path: Path) -> None:
    src = tmp_path / "hf-model"
    (src / "tokenizer").mkdir(parents=True)
    (src / "config.json").write_text('{"layers": 2}')
    (src / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    with plinth.start_run("ckpt") as run:
        pending = run.log_checkpoint(src, step=5)
        (src / "config.json").write_text("changed after the call")
        ckpt = pending.wait()
    assert ckpt.kind == "folder"
    folder = plinth.load_checkpoint(ckpt.id)
    assert isinstance(folder, Path) and folder.is_dir()
    assert (folder / "config.json").read_text() == '{"layers": 2}'
    assert (folder / "tokenizer" / "vocab.txt").read_text() == "a\nb\n"
    (folder / "config.json").write_text("edited in the cache")
    assert (ckpt.load() / "config.json").read_text() == '{"layers": 2}'  # verified, fetched again


def test_a_path_that_is_not_a_folder_is_refused(tracking: Backend, tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    with plinth.start_run("ckpt") as run:
        with pytest.raises(InvalidInput, match="is not a folder"):
            run.log_checkpoint(str(tmp_path / "weights.bin"), step=1)
        with pytest.raises(InvalidInput, match="is not a folder"):
            run.log_checkpoint(tmp_path / "missing", step=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step": -1}, "step must be an integer"),
        ({"step": 1.5}, "step must be an integer"),
        ({"step": True}, "step must be an integer"),
        ({"step": 1, "metrics": {"loss": "low"}}, "loss"),
        ({"step": 1, "metrics": [("loss", 1.0)]}, "metrics must be a mapping"),
        ({"step": 1, "keep_last": 0}, "keep_last must be a positive integer"),
        ({"step": 1, "keep_last": "3"}, "keep_last must be a positive integer"),
        ({"step": 1, "keep_best": ("loss", "lowest"), "metrics": {"loss": 1.0}}, "keep_best must be"),
        ({"step": 1, "keep_best": 3}, "keep_best must be"),
        ({"step": 1, "keep_best": "val_loss", "metrics": {"loss": 1.0}}, "do not hold"),
    ],
)
def test_bad_arguments_are_refused_at_the_call(tracking: Backend, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with plinth.start_run("ckpt") as run, pytest.raises(InvalidInput, match=message):
        run.log_checkpoint(state(), **kwargs)
    assert plinth.list_checkpoints(run.id) == []


def test_an_ended_run_takes_no_checkpoint(tracking: Backend) -> None:
    with plinth.start_run("ckpt") as run:
        pass
    with pytest.raises(RunNotActive):
        run.log_checkpoint(state(), step=1)


def test_keep_last_keeps_the_newest_by_step(tracking: Backend) -> None:
    with plinth.start_run("ckpt") as run:
        for step in [10, 20, 5, 30, 40]:
            run.log_checkpoint({"step": step}, step=step, keep_last=2)
        assert steps(run.id) == [30, 40]
        run.log_checkpoint({"step": 1}, step=1, keep_last=2)  # an older step is the first to go
        assert steps(run.id) == [30, 40]


@pytest.mark.parametrize(
    ("keep_best", "kept"),
    [
        ("val_loss", [2, 4, 5]),  # the lowest (step 2) and the two newest
        (("val_loss", "min"), [2, 4, 5]),
        (("val_loss", "max"), [3, 4, 5]),
    ],
)
def test_keep_best_keeps_the_best_by_its_metric(
    tracking: Backend, keep_best: object, kept: list[int]
) -> None:
    losses = {1: 0.5, 2: 0.1, 3: 0.9, 4: 0.3, 5: 0.4}
    with plinth.start_run("ckpt") as run:
        for step, loss in losses.items():
            run.log_checkpoint(
                {"step": step}, step=step, metrics={"val_loss": loss}, keep_last=2, keep_best=keep_best
            )
        assert steps(run.id) == kept


def test_keep_best_alone_keeps_one(tracking: Backend) -> None:
    with plinth.start_run("ckpt") as run:
        for step, acc in enumerate([0.7, 0.9, 0.8]):
            handle = run.log_checkpoint(
                {"s": step}, step=step, metrics={"acc": acc}, keep_best=("acc", "max")
            )
        assert steps(run.id) == [1]
    pruned = handle.wait()  # stored, then pruned at once: worse than the best
    with pytest.raises(NotFound, match="no longer recorded"):
        plinth.load_checkpoint(pruned.id)


def test_no_keep_rule_keeps_everything(tracking: Backend) -> None:
    with plinth.start_run("ckpt") as run:
        for step in range(4):
            run.log_checkpoint({"s": step}, step=step, keep_last=None, keep_best=None)
    assert steps(run.id) == [0, 1, 2, 3]


def test_pruned_checkpoints_free_their_records(tracking: Backend) -> None:
    with plinth.start_run("ckpt") as run:
        first = run.log_checkpoint(state(1), step=1, keep_last=1).wait()
        second = run.log_checkpoint(state(2), step=2, keep_last=1).wait()
    paths = [a.path for a in plinth.get_run(run.id).artifacts]
    assert all(p.startswith(second.path + "/") for p in paths)
    assert paths == [f"{second.path}/checkpoint.json", f"{second.path}/state.pt"]
    assert first.files[0].digest not in tracking.store.referenced_digests()  # `plinth gc` takes it


def test_latest_is_the_highest_step_then_the_latest_made(tracking: Backend) -> None:
    with plinth.start_run("ckpt") as run:
        assert run.latest_checkpoint() is None
        run.log_checkpoint({"a": 1}, step=7)
        run.log_checkpoint({"a": 2}, step=3)
        again = run.log_checkpoint({"a": 3}, step=7)
        assert run.latest_checkpoint() == again.wait()  # waits for this run's pending writes
    stored = plinth.get_run(run.id)
    for handle in (run, run.id, stored):
        latest = plinth.latest_checkpoint(handle)
        assert latest is not None and latest.load() == {"a": 3}
    assert [c.step for c in plinth.list_checkpoints(stored)] == [3, 7, 7]


def test_load_by_id(tracking: Backend) -> None:
    with plinth.start_run("ckpt") as run:
        ckpt = run.log_checkpoint([1, 2, 3], step=1, metrics={"acc": 0.5}).wait()
    assert plinth.load_checkpoint(ckpt.id) == [1, 2, 3]
    assert plinth.load_checkpoint(ckpt) == [1, 2, 3]
    assert isinstance(ckpt, plinth.Checkpoint) and ckpt.created.year >= 2024
    with pytest.raises(NotFound, match="No checkpoint"):
        plinth.load_checkpoint("0" * 64)
    with pytest.raises(InvalidInput, match="64 hex digits"):
        plinth.load_checkpoint(ckpt.id[:12])


def test_a_corrupted_blob_is_refused_naming_the_checkpoint(tracking: Backend) -> None:
    with plinth.start_run("ckpt") as run:
        ckpt = run.log_checkpoint(state(), step=4).wait()
    blob = Path(tracking.blobs.path_of(ckpt.files[0].digest))
    blob.write_bytes(blob.read_bytes()[:-10] + b"bit rot!!!")
    with pytest.raises(
        IntegrityError, match=f"Checkpoint {ckpt.id} \\(step 4 of run {run.id}\\) is corrupted"
    ) as info:
        plinth.load_checkpoint(ckpt.id)
    assert "Load another of the run's checkpoints" in str(info.value)


def test_a_corrupted_manifest_is_refused(tracking: Backend) -> None:
    with plinth.start_run("ckpt") as run:
        ckpt = run.log_checkpoint({"a": 1}, step=1).wait()
    from plinth.tracking import checkpoints

    checkpoints._manifests.clear()  # as a fresh process, which has read no manifest yet
    with open(tracking.blobs.path_of(ckpt.id), "ab") as fh:
        fh.write(b" ")
    with pytest.raises(IntegrityError, match=f"manifest of checkpoint {ckpt.id}"):
        plinth.list_checkpoints(run.id)


def test_a_checkpoint_is_a_value(tracking: Backend) -> None:
    with plinth.start_run("ckpt") as run:
        ckpt = run.log_checkpoint({"a": 1}, step=1, metrics={"m": 1.0}).wait()
    assert pickle.loads(pickle.dumps(ckpt)) == ckpt
    assert isinstance(hash(ckpt), int)
    assert isinstance(ckpt, Checkpoint) and ckpt.path.startswith("checkpoints/0000000001-")
    assert os.path.basename(ckpt.path) in repr(ckpt)
