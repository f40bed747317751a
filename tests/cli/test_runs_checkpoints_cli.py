"""`plinth runs show` lists a run's checkpoints in a table of their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import plinth
from plinth.cli.main import main
from plinth.tracking.context import Backend


def show(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["runs", "show", *args]) == 0
    return capsys.readouterr().out


def test_runs_show_lists_checkpoints_apart_from_artifacts(
    tracking: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "report.txt").write_text("fine")
    with plinth.start_run("cli-ckpt") as run:
        run.log_artifact(str(tmp_path / "report.txt"))
        run.log_checkpoint({"w": torch.zeros(1000)}, step=100, metrics={"val_loss": 0.23456})
        last = run.log_checkpoint({"w": torch.ones(1000)}, step=200, metrics={"val_loss": 0.12}).wait()
    out = show(capsys, run.id)
    assert "Checkpoints (2)" in out and "Artifacts (1)" in out
    assert "report.txt" in out and "state.pt" not in out and "checkpoint.json" not in out
    rows = [line for line in out.splitlines() if last.id in line]
    assert any("200" in row and "val_loss 0.12" in row and "kB" in row for row in rows)
    assert "val_loss 0.235" in out
    assert f'plinth.load_checkpoint("{last.id}")' in out

    found = json.loads(show(capsys, run.id, "--json"))
    assert [(c["step"], c["kind"], c["metrics"]) for c in found["checkpoints"]] == [
        (100, "torch", {"val_loss": 0.23456}),
        (200, "torch", {"val_loss": 0.12}),
    ]


def test_runs_show_without_checkpoints_has_no_such_table(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    with plinth.start_run("cli-ckpt") as run:
        run.log_metric("loss", 0.5)
    out = show(capsys, run.id)
    assert "Checkpoints" not in out
    assert json.loads(show(capsys, run.id, "--json"))["checkpoints"] == []
