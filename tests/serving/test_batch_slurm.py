"""Batch inference in jobs on the real one-node SLURM cluster: the same bytes as the local path,
the model's errors as in the local path, and the CLI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.cli.main import main
from plinth.core.errors import ModelFailed
from plinth.serving.batch import batch_predict
from plinth.tracking.context import Backend

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # jobs cannot import this module
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("slurm"),
    pytest.mark.parametrize("store_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def data(tracking: Backend, tmp_path: Path) -> Path:
    x, y = load_iris(return_X_y=True, as_frame=True)
    plinth.register_model("iris-clf", LogisticRegression(max_iter=1000).fit(x, y), input_example=x[:5])
    source = tmp_path / "data.parquet"
    big = pd.concat([x] * 4, ignore_index=True)
    big.assign(id=np.arange(len(big)))[["id", *x.columns]].to_parquet(source, index=False)
    return source


def test_slurm_scores_the_same_bytes_as_local(data: Path, tracking: Backend, tmp_path: Path) -> None:
    local, in_jobs = tmp_path / "local.parquet", tmp_path / "slurm.parquet"
    batch_predict("iris-clf", data, local, batch_size=150, id_columns="id")
    result = batch_predict("iris-clf", data, in_jobs, batch_size=150, id_columns="id", executor="slurm")
    assert (result.rows, result.chunks, result.chunks_skipped) == (600, 4, 0)
    assert in_jobs.read_bytes() == local.read_bytes()
    run = plinth.get_run(result.run_id)
    assert run.params["executor"] == "slurm" and run.metrics["rows"] == 600


class Broken:
    """Raises on every chunk: the model's own failure."""

    def predict(self, frame: Any) -> Any:
        raise RuntimeError("simulated crash")


def test_a_model_error_in_a_job_is_the_local_error(tracking: Backend, tmp_path: Path) -> None:
    plinth.register_model("broken", Broken(), flavor="python")
    source, out = tmp_path / "d.parquet", tmp_path / "o.parquet"
    pd.DataFrame({"id": np.arange(20), "x": np.arange(20.0)}).to_parquet(source, index=False)
    with pytest.raises(ModelFailed, match=r"failed on rows \d+-\d+ of .*d\.parquet: RuntimeError: simulated"):
        batch_predict("broken", source, out, batch_size=10, id_columns="id", executor="slurm")
    assert not out.exists()


def test_cli_predict_in_slurm_jobs(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.parquet"
    args = ["predict", "iris-clf", "-i", str(data), "-o", str(out), "-b", "300", "--id-column", "id"]
    assert main([*args, "--executor", "slurm"]) == 0
    assert "Wrote 600 predictions" in capsys.readouterr().out and len(pd.read_parquet(out)) == 600
