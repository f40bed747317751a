"""Checkpoints through a team server: the blobs go through its blob API, the records and the
pruning (`delete_artifacts`) through its store API, as for any other client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import plinth
from plinth.core.settings import Settings
from plinth.store.remote import RemoteStore
from plinth.tracking import context
from plinth.tracking.context import Backend
from team_servers import ThreadServer, start_thread_server


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[ThreadServer]:
    started = start_thread_server(store_url, tmp_path)
    yield started
    context.reset()  # close the client before the server
    started.stop()


@pytest.fixture
def remote(server: ThreadServer, tmp_path: Path) -> Backend:
    settings = Settings(home=str(tmp_path / "client"), store_url=server.url, token=server.admin_token)
    return plinth.configure(settings)


def test_a_state_dict_and_a_folder_round_trip_through_the_server(remote: Backend, tmp_path: Path) -> None:
    assert isinstance(remote.store, RemoteStore)
    sd = {"w": torch.arange(12.0).reshape(3, 4)}
    folder = tmp_path / "saved"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 100)
    with plinth.start_run("remote-ckpt") as run:
        first = run.log_checkpoint(sd, step=1, metrics={"loss": 0.3})
        sd["w"].zero_()
        second = run.log_checkpoint(folder, step=2).wait()
    assert torch.equal(plinth.load_checkpoint(first.wait().id)["w"], torch.arange(12.0).reshape(3, 4))
    loaded = plinth.load_checkpoint(second.id)
    assert (loaded / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 100
    latest = plinth.latest_checkpoint(run.id)
    assert latest is not None and latest.id == second.id


def test_keep_rules_prune_through_the_server(remote: Backend) -> None:
    with plinth.start_run("remote-ckpt") as run:
        for step, loss in enumerate([0.5, 0.1, 0.4, 0.6]):
            run.log_checkpoint({"s": step}, step=step, metrics={"loss": loss}, keep_last=1, keep_best="loss")
    assert [c.step for c in plinth.list_checkpoints(run.id)] == [1, 3]
    kept = {a.path.split("/")[1] for a in plinth.get_run(run.id).artifacts}
    assert kept == {c.path.split("/")[1] for c in plinth.list_checkpoints(run.id)}


def test_delete_artifacts_through_the_server(remote: Backend, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    with plinth.start_run("remote-ckpt") as run:
        run.log_artifact(str(tmp_path / "a.txt"), "x/a.txt")
        run.log_artifact(str(tmp_path / "a.txt"), "x/b.txt")
    assert remote.store.delete_artifacts(run.id, ["x/a.txt", "x/missing"]) == 1
    assert [a.path for a in plinth.get_run(run.id).artifacts] == ["x/b.txt"]
