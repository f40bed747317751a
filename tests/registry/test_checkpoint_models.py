"""`register_model(..., from_checkpoint=...)`: a checkpoint becomes a model version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import plinth
from plinth.errors import IntegrityError, InvalidInput, NotFound
from plinth.tracking.context import Backend

RESOURCES = Path(__file__).parent.parent / "resources"


@pytest.fixture
def torch_models(monkeypatch: pytest.MonkeyPatch) -> Any:
    """tests/resources/torch_models.py, importable by name."""
    monkeypatch.syspath_prepend(str(RESOURCES))
    import torch_models

    return torch_models


class Doubler:
    """A plain model: predicts twice its input."""

    def predict(self, x: Any) -> Any:
        return np.asarray(x) * 2


def test_a_state_dict_checkpoint_loaded_into_a_module(tracking: Backend, torch_models: Any) -> None:
    torch.manual_seed(0)
    trained = torch_models.Mlp()
    with plinth.start_run("train") as run:
        ckpt = run.log_checkpoint(trained, step=30, metrics={"val_loss": 0.2}).wait()
    mv = plinth.register_model("mlp", torch_models.Mlp(), from_checkpoint=ckpt)
    assert mv.run_id == run.id
    assert mv.tags["plinth.checkpoint"] == ckpt.id
    [edge] = tracking.store.edges(src=("run", run.id))
    assert (edge.relation, edge.dst_type, edge.dst_id) == ("produced", "model_version", mv.id)
    x = np.ones((2, 4), dtype=np.float32)
    expected = trained(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(plinth.load_model("mlp/1").predict(x), expected)


def test_the_model_entry_of_a_training_state_and_an_id(tracking: Backend, torch_models: Any) -> None:
    trained = torch_models.Mlp()
    optim = torch.optim.SGD(trained.parameters(), lr=0.1)
    with plinth.start_run("train") as run:
        ckpt = run.log_checkpoint(
            {"model": trained.state_dict(), "optim": optim.state_dict(), "epoch": 3}, step=3
        ).wait()
    module = torch_models.Mlp()
    mv = plinth.register_model("mlp", module, from_checkpoint=ckpt.id, run_id=None)
    assert torch.equal(module.layers[0].weight, trained.layers[0].weight)
    assert (mv.run_id, mv.tags["plinth.checkpoint"]) == (run.id, ckpt.id)


def test_a_bare_state_dict_is_not_a_model(tracking: Backend, torch_models: Any) -> None:
    with plinth.start_run("train") as run:
        ckpt = run.log_checkpoint(torch_models.Mlp(), step=1).wait()
    with pytest.raises(InvalidInput, match="not a model by itself: pass model="):
        plinth.register_model("mlp", from_checkpoint=ckpt)
    with pytest.raises(InvalidInput, match="does not fit the Linear"):
        plinth.register_model("mlp", torch.nn.Linear(2, 2), from_checkpoint=ckpt)
    assert plinth.list_models() == []


def test_a_pickled_model_is_registered_as_it_is(tracking: Backend) -> None:
    with plinth.start_run("train") as run:
        ckpt = run.log_checkpoint(Doubler(), step=1).wait()
    mv = plinth.register_model("doubler", from_checkpoint=ckpt)
    assert (mv.run_id, mv.tags["plinth.checkpoint"]) == (run.id, ckpt.id)
    assert plinth.load_model("doubler").predict(np.array([[1.0, 2.0]])).tolist() == [[2.0, 4.0]]
    with pytest.raises(InvalidInput, match="the model itself"):
        plinth.register_model("doubler", Doubler(), from_checkpoint=ckpt)


def test_refusals_name_the_checkpoint(tracking: Backend, tmp_path: Path) -> None:
    (tmp_path / "cfg.json").write_text("{}")
    with plinth.start_run("train") as run:
        folder = run.log_checkpoint(tmp_path, step=1).wait()
        weights = run.log_checkpoint({"w": torch.ones(3)}, step=2).wait()
    with pytest.raises(InvalidInput, match="is a folder, not a model object"):
        plinth.register_model("m", from_checkpoint=folder)
    with pytest.raises(NotFound, match="No checkpoint"):
        plinth.register_model("m", from_checkpoint="f" * 64)
    with pytest.raises(InvalidInput, match="needs a model"):
        plinth.register_model("m")
    blob = Path(tracking.blobs.path_of(weights.files[0].digest))
    blob.write_bytes(b"not the weights")
    with pytest.raises(IntegrityError, match=f"Checkpoint {weights.id}"):
        plinth.register_model("m", torch.nn.Linear(3, 1), from_checkpoint=weights)
