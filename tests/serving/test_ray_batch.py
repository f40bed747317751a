"""Batch inference on a real local Ray cluster: same bytes as the local path, resume, lineage, CLI."""

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
from ray_cluster import RAY_MARK, shared_cluster

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this module
pytestmark = [*RAY_MARK, pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)]


@pytest.fixture(autouse=True)
def cluster() -> object:
    return shared_cluster()


@pytest.fixture
def data(tracking: Backend, tmp_path: Path) -> Path:
    x, y = load_iris(return_X_y=True, as_frame=True)
    plinth.register_model("iris-clf", LogisticRegression(max_iter=1000).fit(x, y), input_example=x[:5])
    source = tmp_path / "data.parquet"
    big = pd.concat([x] * 20, ignore_index=True)
    big.assign(id=np.arange(len(big)))[["id", *x.columns]].to_parquet(source, index=False)
    return source


def test_ray_scores_the_same_bytes_with_lineage(data: Path, tracking: Backend, tmp_path: Path) -> None:
    local, on_ray = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    batch_predict("iris-clf", data, local, batch_size=250, id_columns="id")
    result = batch_predict("iris-clf", data, on_ray, batch_size=250, id_columns="id", executor="ray")
    assert (result.rows, result.chunks, result.chunks_skipped) == (3000, 12, 0)
    assert on_ray.read_bytes() == local.read_bytes()
    run = plinth.get_run(result.run_id)
    assert run.params["executor"] == "ray" and run.metrics["rows"] == 3000
    edges = tracking.store.edges(src=("run", result.run_id))
    assert {e.relation for e in edges} == {"used_model", "produced"}


class FailsPastMarker:
    """Scores x * 10, but raises on rows with x >= 65 while the marker file exists."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def predict(self, frame: Any) -> Any:
        if Path(self.marker).exists() and (frame["x"] >= 65).any():
            raise RuntimeError("simulated crash")
        return frame["x"] * 10


def written_parts(output: Path) -> set[str]:
    """The part files in the staging folder of `output` (left by a call that failed)."""
    [folder] = [p for p in output.parent.iterdir() if p.name.startswith(f".{output.name}.plinth-")]
    return {p.name for p in folder.glob("part-*")}


def test_a_failed_ray_job_resumes_from_written_chunks(tracking: Backend, tmp_path: Path) -> None:
    marker = tmp_path / "broken"
    marker.touch()
    plinth.register_model("flaky", FailsPastMarker(str(marker)), flavor="python")
    source, out = tmp_path / "d.parquet", tmp_path / "o.parquet"
    pd.DataFrame({"id": np.arange(100), "x": np.arange(100.0)}).to_parquet(source, index=False)
    # chunks 6-9 all hold rows the model fails on; Ray may score any of them first
    poisoned = r"failed on rows (60-69|70-79|80-89|90-99) of .*d\.parquet: RuntimeError: simulated crash"
    with pytest.raises(ModelFailed, match=poisoned):
        batch_predict("flaky", source, out, batch_size=10, id_columns="id", executor="ray")
    assert not out.exists()
    [failed] = plinth.search_runs(experiment="batch-predict", where="status = 'FAILED'")
    assert "simulated crash" in (failed.error or "")
    # at most two chunks per CPU are in flight, so on the two-CPU test cluster some of the good
    # chunks 0-5 are written before chunk 6 is even sent; none of the poisoned ones ever is
    kept = written_parts(out)
    assert kept and kept <= {f"part-{i:08d}.arrow" for i in range(6)}

    marker.unlink()
    result = batch_predict("flaky", source, out, batch_size=10, id_columns="id", executor="ray")
    assert (result.chunks, result.chunks_skipped) == (10, len(kept))
    assert pd.read_parquet(out)["prediction"].tolist() == [i * 10.0 for i in range(100)]


def test_cli_predict_on_ray(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import ray

    address = ray.get_runtime_context().gcs_address
    out = tmp_path / "cli.parquet"
    args = ["predict", "iris-clf", "-i", str(data), "-o", str(out), "-b", "1000", "--id-column", "id"]
    assert main([*args, "--executor", "ray", "--ray-address", address]) == 0
    assert "Wrote 3,000 predictions" in capsys.readouterr().out and len(pd.read_parquet(out)) == 3000
