"""Batch inference: chunks, id passthrough, 2-D outputs, resume after kill -9, lineage, errors, CLI."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import plinth
from plinth.cli.main import cli, main
from plinth.cli.predict import predict
from plinth.core.errors import ConflictError, InvalidInput, ModelFailed
from plinth.serving.batch import BatchResult, batch_predict
from plinth.tracking.context import Backend, backend

RESOURCES = Path(__file__).parent.parent / "resources"
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, LogisticRegression]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, LogisticRegression(max_iter=1000).fit(x, y)


@pytest.fixture
def champion(tracking: Backend, iris: tuple[pd.DataFrame, LogisticRegression]) -> plinth.ModelVersion:
    x, clf = iris
    mv = plinth.register_model("iris-clf", clf, input_example=x[:5])
    plinth.set_alias("iris-clf", "champion", mv.version)
    return mv


def frame_with_ids(x: pd.DataFrame, start: int = 0) -> pd.DataFrame:
    """The features with an `id` column in front (ids `start`, `start`+1, ...)."""
    return x.assign(id=np.arange(start, start + len(x)))[["id", *x.columns]]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def staging_folders(output: Path) -> list[str]:
    return [n for n in os.listdir(output.parent) if n.startswith(f".{output.name}.plinth-")]


# inputs and outputs -----------------------------------------------------------------------------
def test_parquet_with_ids_records_run_and_lineage(
    tracking: Backend,
    iris: tuple[pd.DataFrame, LogisticRegression],
    champion: plinth.ModelVersion,
    tmp_path: Path,
) -> None:
    x, clf = iris
    source, out = tmp_path / "data.parquet", tmp_path / "preds.parquet"
    frame_with_ids(x, start=1000).to_parquet(source, index=False)
    result = batch_predict("iris-clf@champion", source, out, batch_size=40, id_columns="id")

    assert isinstance(result, BatchResult)
    assert (result.rows, result.chunks, result.chunks_skipped) == (150, 4, 0)
    assert result.model_version == "iris-clf/1" and result.output == str(out)
    got = pd.read_parquet(out)
    assert list(got.columns) == ["id", "prediction", "model_version"]
    assert got["id"].tolist() == list(range(1000, 1150))
    np.testing.assert_array_equal(got["prediction"].to_numpy(), clf.predict(x))
    assert set(got["model_version"]) == {"iris-clf/1"}
    assert staging_folders(out) == []

    run = plinth.get_run(result.run_id)
    assert run.experiment_name == "batch-predict" and run.status.value == "FINISHED"
    assert run.params["model"] == "iris-clf@champion" and run.params["model_version"] == "iris-clf/1"
    assert run.params["batch_size"] == "40" and run.params["input"] == str(source)
    assert run.params["id_columns"] == "id" and run.params["output_kind"] == "prediction"
    assert run.metrics["rows"] == 150 and run.metrics["chunks"] == 4 and run.metrics["chunks_skipped"] == 0
    assert run.metrics["rows_per_s"] > 0
    [artifact] = run.artifacts
    assert artifact.path == "predictions.parquet" and artifact.digest == sha256(out) == result.output_digest
    assert result.input_digest == sha256(source) == run.tags["input_digest"]

    [consumed] = tracking.store.edges(dst=("run", run.id))
    assert (consumed.src_type, consumed.src_id, consumed.relation) == (
        "dataset_input",
        sha256(source),
        "consumed_by",
    )
    assert consumed.attributes["path"] == str(source) and consumed.attributes["role"] == "inference"
    edges = {(e.relation, e.dst_type, e.dst_id) for e in tracking.store.edges(src=("run", run.id))}
    assert edges == {("used_model", "model_version", champion.id), ("produced", "blob", sha256(out))}


def test_csv_input_with_probabilities(
    tracking: Backend,
    iris: tuple[pd.DataFrame, LogisticRegression],
    champion: plinth.ModelVersion,
    tmp_path: Path,
) -> None:
    x, clf = iris
    source, out = tmp_path / "data.csv", tmp_path / "proba.parquet"
    x.to_csv(source, index=False)
    result = batch_predict("iris-clf/1", source, out, batch_size=7, proba=True, store_output=False)
    assert (result.rows, result.chunks) == (150, 22)  # the last chunk holds 3 rows
    got = pd.read_parquet(out)
    assert list(got.columns) == ["prediction_0", "prediction_1", "prediction_2", "model_version"]
    np.testing.assert_allclose(got.iloc[:, :3].to_numpy(), clf.predict_proba(x))
    run = plinth.get_run(result.run_id)
    assert run.params["output_kind"] == "proba" and run.artifacts == []
    produced = [e for e in tracking.store.edges(src=("run", run.id)) if e.relation == "produced"]
    assert produced[0].dst_id == sha256(out)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_folder_input_is_read_in_path_order(
    iris: tuple[pd.DataFrame, LogisticRegression], champion: plinth.ModelVersion, tmp_path: Path, fmt: str
) -> None:
    x, clf = iris
    folder = tmp_path / "in"
    (folder / "b").mkdir(parents=True)
    parts = [
        (folder / f"a.{fmt}", 0, 37),
        (folder / "b" / f"x.{fmt}", 37, 100),
        (folder / f"c.{fmt}", 100, 150),
    ]
    for path, lo, hi in parts:
        piece = frame_with_ids(x.iloc[lo:hi], start=lo)
        piece.to_parquet(path, index=False) if fmt == "parquet" else piece.to_csv(path, index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / ".hidden.crc").write_text("ignored")
    out = tmp_path / "preds.parquet"
    result = batch_predict("iris-clf", folder, out, batch_size=25, id_columns=["id"])
    assert (result.rows, result.chunks) == (150, 6)  # chunks span file boundaries
    got = pd.read_parquet(out)
    assert got["id"].tolist() == list(range(150))
    np.testing.assert_array_equal(got["prediction"].to_numpy(), clf.predict(x))
    lines = "".join(f"{os.path.relpath(p, folder)}\t{p.stat().st_size}\t{sha256(p)}\n" for p, _, _ in parts)
    assert result.input_digest == hashlib.sha256(lines.encode()).hexdigest()


def test_without_id_columns_and_output_folder_created(
    iris: tuple[pd.DataFrame, LogisticRegression], champion: plinth.ModelVersion, tmp_path: Path
) -> None:
    x, clf = iris
    source, out = tmp_path / "data.pq", tmp_path / "deep" / "er" / "preds.parquet"
    x.to_parquet(source, index=False)
    batch_predict("iris-clf", source, out)
    got = pd.read_parquet(out)
    assert list(got.columns) == ["prediction", "model_version"]
    np.testing.assert_array_equal(got["prediction"].to_numpy(), clf.predict(x))


def test_two_dimensional_predictions_of_a_plain_model(tracking: Backend, tmp_path: Path) -> None:
    plinth.register_model("pair", lambda d: np.stack([d["a"], d["a"] * 2], axis=1), flavor="python")
    source, out = tmp_path / "d.parquet", tmp_path / "o.parquet"
    pd.DataFrame({"a": np.arange(10.0)}).to_parquet(source, index=False)
    batch_predict("pair", source, out, batch_size=3)
    got = pd.read_parquet(out)
    assert got["prediction_0"].tolist() == list(np.arange(10.0))
    assert got["prediction_1"].tolist() == list(np.arange(10.0) * 2)


@pytest.mark.slow
@sqlite_only
def test_workers_give_the_same_bytes(
    iris: tuple[pd.DataFrame, LogisticRegression], champion: plinth.ModelVersion, tmp_path: Path
) -> None:
    x, _clf = iris
    source = tmp_path / "data.parquet"
    frame_with_ids(pd.concat([x] * 20, ignore_index=True)).to_parquet(source, index=False)
    one, two = tmp_path / "one.parquet", tmp_path / "two.parquet"
    batch_predict("iris-clf", source, one, batch_size=250, id_columns="id")
    result = batch_predict("iris-clf", source, two, batch_size=250, id_columns="id", workers=2)
    assert result.chunks == 12
    assert one.read_bytes() == two.read_bytes()
    assert plinth.get_run(result.run_id).params["workers"] == "2"


# resume ----------------------------------------------------------------------------------------------
class FailsWhenAsked:
    """Sums features; raises on rows whose id-free features hit `x >= FAIL_AT` while the env says so."""

    def predict(self, data: Any) -> Any:
        limit = os.environ.get("BATCH_TEST_FAIL_AT")
        if limit is not None and (data["x"] >= float(limit)).any():
            raise RuntimeError("simulated crash")
        return data["x"] * 10


def test_resume_after_a_failure_skips_written_chunks(
    tracking: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plinth.register_model("flaky", FailsWhenAsked(), flavor="python")
    source = tmp_path / "d.parquet"
    pd.DataFrame({"id": np.arange(100), "x": np.arange(100.0)}).to_parquet(source, index=False)
    clean, resumed = tmp_path / "clean.parquet", tmp_path / "resumed.parquet"
    batch_predict("flaky", source, clean, batch_size=10, id_columns="id")

    monkeypatch.setenv("BATCH_TEST_FAIL_AT", "65")
    with pytest.raises(ModelFailed, match=r"failed on rows 60-69 of .*d\.parquet: RuntimeError: simulated"):
        batch_predict("flaky", source, resumed, batch_size=10, id_columns="id")
    assert not resumed.exists()
    [folder] = staging_folders(resumed)
    parts = sorted(n for n in os.listdir(tmp_path / folder) if n.startswith("part-"))
    assert parts == [f"part-{i:08d}.arrow" for i in range(6)]
    failed = plinth.search_runs(experiment="batch-predict", where="status = 'FAILED'")
    assert len(failed) == 1 and "simulated crash" in (failed[0].error or "")

    monkeypatch.delenv("BATCH_TEST_FAIL_AT")
    result = batch_predict("flaky", source, resumed, batch_size=10, id_columns="id")
    assert (result.chunks, result.chunks_skipped, result.rows) == (10, 6, 100)
    assert resumed.read_bytes() == clean.read_bytes()
    assert staging_folders(resumed) == []
    assert plinth.get_run(result.run_id).metrics["chunks_skipped"] == 6


def test_a_changed_input_starts_afresh_and_drops_the_old_parts(
    tracking: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plinth.register_model("flaky", FailsWhenAsked(), flavor="python")
    source, out = tmp_path / "d.parquet", tmp_path / "o.parquet"
    pd.DataFrame({"x": np.arange(50.0)}).to_parquet(source, index=False)
    monkeypatch.setenv("BATCH_TEST_FAIL_AT", "30")
    with pytest.raises(ModelFailed):
        batch_predict("flaky", source, out, batch_size=10)
    [old] = staging_folders(out)
    monkeypatch.delenv("BATCH_TEST_FAIL_AT")
    pd.DataFrame({"x": np.arange(50.0) + 1}).to_parquet(source, index=False)
    os.utime(source, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    result = batch_predict("flaky", source, out, batch_size=10)
    assert result.chunks_skipped == 0 and not (tmp_path / old).exists()
    assert pd.read_parquet(out)["prediction"].tolist() == [(i + 1) * 10.0 for i in range(50)]


def test_a_second_process_on_the_same_job_is_refused(
    tracking: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plinth.register_model("flaky", FailsWhenAsked(), flavor="python")
    source, out = tmp_path / "d.parquet", tmp_path / "o.parquet"
    pd.DataFrame({"x": np.arange(20.0)}).to_parquet(source, index=False)
    monkeypatch.setenv("BATCH_TEST_FAIL_AT", "15")
    with pytest.raises(ModelFailed):
        batch_predict("flaky", source, out, batch_size=10)
    monkeypatch.delenv("BATCH_TEST_FAIL_AT")
    [folder] = staging_folders(out)
    fd = os.open(tmp_path / folder / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(ConflictError, match="Another process is writing this output"):
            batch_predict("flaky", source, out, batch_size=10)
    finally:
        os.close(fd)
    assert batch_predict("flaky", source, out, batch_size=10).chunks_skipped == 1


@pytest.mark.slow
def test_resume_after_kill_9_gives_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(RESOURCES))
    from slow_model import SlowSum

    plinth.register_model("slow", SlowSum(delay=0.15), flavor="python")
    source = tmp_path / "d.parquet"
    pd.DataFrame({"id": np.arange(400), "a": np.arange(400.0), "b": np.ones(400)}).to_parquet(
        source, index=False
    )
    killed, clean = tmp_path / "killed.parquet", tmp_path / "clean.parquet"
    proc = subprocess.Popen(
        [sys.executable, str(RESOURCES / "slow_model.py"), "slow", str(source), str(killed), "20"],
        env={**os.environ, "PYTHONPATH": str(RESOURCES)},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            folders = staging_folders(killed)
            if folders and sum(n.startswith("part-") for n in os.listdir(tmp_path / folders[0])) >= 4:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the scoring process ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and not killed.exists()

    result = batch_predict("slow", source, killed, batch_size=20, id_columns="id", progress=False)
    assert result.chunks == 20 and 4 <= result.chunks_skipped < 20
    batch_predict("slow", source, clean, batch_size=20, id_columns="id")
    assert killed.read_bytes() == clean.read_bytes()
    assert pd.read_parquet(killed)["prediction"].tolist() == [i + 1.0 for i in range(400)]
    assert staging_folders(killed) == []


# errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "output", "message"),
    [
        (lambda d: d / "missing.parquet", "o.parquet", "does not exist"),
        (lambda d: _write(d / "data.json", "[]"), "o.parquet", "use a .parquet, .pq or .csv file"),
        (lambda d: _iris_file(d / "data.parquet"), "o.csv", "must be a .parquet file"),
        (lambda d: _iris_file(d / "data.parquet"), "data.parquet", "would overwrite or join the input"),
        (lambda d: _mkdir(d / "empty"), "o.parquet", "holds no .parquet or .csv files"),
        (lambda d: _mixed(d / "mixed"), "o.parquet", "mixes Parquet and CSV"),
        (lambda d: _with_readme(d / "r"), "o.parquet", "'README.md', which is not .parquet"),
        (lambda d: _write(d / "bad.csv", "a,b\n1,2\n3\n"), "o.parquet", "Cannot read"),
        (lambda d: _write(d / "bad.parquet", "not parquet"), "o.parquet", "Cannot read"),
        (lambda d: _iris_file(d / "data.parquet", rows=0), "o.parquet", "holds no rows"),
    ],
)
def test_bad_inputs_are_invalid_input(champion, tmp_path: Path, make, output: str, message: str) -> None:  # type: ignore[no-untyped-def]
    source = make(tmp_path)
    with pytest.raises(InvalidInput, match=message):
        batch_predict("iris-clf", source, tmp_path / output)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _iris_file(path: Path, rows: int = 150) -> Path:
    load_iris(as_frame=True).data.iloc[:rows].to_parquet(path, index=False)
    return path


def _mixed(path: Path) -> Path:
    path.mkdir()
    x = load_iris(as_frame=True).data
    x.to_parquet(path / "a.parquet", index=False)
    x.to_csv(path / "b.csv", index=False)
    return path


def _with_readme(path: Path) -> Path:
    path.mkdir()
    _iris_file(path / "a.parquet")
    (path / "README.md").write_text("about the data")
    return path


def test_columns_that_do_not_fit_fail_before_any_run(
    iris: tuple[pd.DataFrame, LogisticRegression], champion: plinth.ModelVersion, tmp_path: Path
) -> None:
    x, _clf = iris
    source = tmp_path / "d.parquet"
    frame_with_ids(x).drop(columns=["petal width (cm)"]).to_parquet(source, index=False)
    with pytest.raises(InvalidInput, match=r"does not fit model iris-clf/1") as info:
        batch_predict("iris-clf", source, tmp_path / "o.parquet", id_columns="id")
    fields = {p["field"]: p["got"] for p in info.value.problems}
    assert fields == {"petal width (cm)": "missing"}
    with pytest.raises(InvalidInput, match=r"id: expected no such column, got present"):
        batch_predict("iris-clf", source, tmp_path / "o.parquet")  # without --id-column, id is a feature
    with pytest.raises(InvalidInput, match="Id column 'key' is not in"):
        batch_predict("iris-clf", source, tmp_path / "o.parquet", id_columns="key")
    with pytest.raises(InvalidInput, match="clashes with an output column"):
        batch_predict("iris-clf", source, tmp_path / "o.parquet", id_columns="prediction")
    with pytest.raises(InvalidInput, match="batch_size must be a positive integer"):
        batch_predict("iris-clf", source, tmp_path / "o.parquet", batch_size=0)
    with pytest.raises(InvalidInput, match="workers must be a positive integer"):
        batch_predict("iris-clf", source, tmp_path / "o.parquet", workers=0)
    assert "batch-predict" not in [e.name for e in plinth.list_experiments()]
    assert staging_folders(tmp_path / "o.parquet") == []


class RefusesSeven:
    """Doubles `n`, but raises on 7 the way a native model raises on a value it cannot handle."""

    def predict(self, data: Any) -> Any:
        if (data["n"] == 7).any():
            raise ValueError("7 is not allowed")
        return data["n"] * 2


def test_a_bad_chunk_is_named_by_its_rows(tracking: Backend, tmp_path: Path) -> None:
    example = pd.DataFrame({"n": [1]})
    plinth.register_model("typed", RefusesSeven(), flavor="python", input_example=example)
    source, out = tmp_path / "d.parquet", tmp_path / "o.parquet"
    values = pa.array([0, 1, 2, 3, None, 5, 6, 8, 9], pa.int64())  # pandas gets rows 4-7 as float64
    pq.write_table(pa.table({"n": values}), source)
    with pytest.raises(InvalidInput, match=r"Rows 4-7 of .*d\.parquet: Input does not match") as info:
        batch_predict("typed", source, out, batch_size=4)
    assert info.value.problems == [{"field": "n", "expected": "int64", "got": "float64"}]

    pd.DataFrame({"n": np.arange(10)}).to_parquet(source, index=False)
    with pytest.raises(ModelFailed, match=r"Model typed/1 failed on rows 4-7 of .*: ValueError: 7 is not"):
        batch_predict("typed", source, out, batch_size=4)
    assert not out.exists()


def test_a_model_returning_too_few_rows_is_refused(tracking: Backend, tmp_path: Path) -> None:
    plinth.register_model("short", lambda d: np.zeros(len(d) - 1), flavor="python")
    source = tmp_path / "d.parquet"
    pd.DataFrame({"a": np.arange(5.0)}).to_parquet(source, index=False)
    with pytest.raises(ModelFailed, match=r"returned 4 predictions for the 5 rows 0-4"):
        batch_predict("short", source, tmp_path / "o.parquet")


# progress, CLI -----------------------------------------------------------------------------------
def test_progress_bar_counts_rows_on_a_terminal(
    iris: tuple[pd.DataFrame, LogisticRegression],
    champion: plinth.ModelVersion,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    x, _clf = iris
    source = tmp_path / "data.parquet"
    x.to_parquet(source, index=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "120")
    batch_predict("iris-clf", source, tmp_path / "o.parquet", batch_size=50)
    drawn = capsys.readouterr()
    assert drawn.out == "" and "Scoring with iris-clf/1" in drawn.err
    assert "150/150 rows" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn.err)


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """`plinth ARGS...` in-process with the predict command registered; (code, stdout, stderr)."""
    monkeypatch.setitem(cli.commands, "predict", predict)

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def test_cli_predict(run_cli, iris, champion, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    x, clf = iris
    source, out = tmp_path / "d.parquet", tmp_path / "p.parquet"
    frame_with_ids(x).to_parquet(source, index=False)
    args = ["predict", "iris-clf@champion", "-i", str(source), "-o", str(out), "--id-column", "id"]
    code, stdout, _err = run_cli(*args, "--batch-size", "50", "--proba")
    assert code == 0, stdout
    assert "Wrote 150 predictions of iris-clf/1 to" in stdout and "rows/s" in stdout
    got = pd.read_parquet(out)
    assert list(got.columns) == ["id", "prediction_0", "prediction_1", "prediction_2", "model_version"]
    np.testing.assert_allclose(got.iloc[:, 1:4].to_numpy(), clf.predict_proba(x))
    assert pq.ParquetFile(out).metadata.num_rows == 150

    code, stdout, err = run_cli("predict", "iris-clf", "-i", str(source), "-o", str(out))
    assert code == 2 and stdout == "" and "Traceback" not in err
    assert err.startswith("error: ") and "id: expected no such column, got present" in err
    code, _stdout, err = run_cli("predict", "iris-clf", "-i", str(tmp_path / "nope.csv"), "-o", str(out))
    assert code == 2 and err.startswith("error: Input") and "does not exist" in err
    code, _stdout, err = run_cli(
        "predict", "iris-clf", "-i", str(source), "-o", str(out), "--batch-size", "0"
    )
    assert code == 2 and "Invalid value for '--batch-size'" in err
    code, stdout, _err = run_cli("predict", "--help")
    assert code == 0 and "--id-column" in stdout and "--workers" in stdout


def test_cli_reports_a_resume(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    plinth.register_model("flaky", FailsWhenAsked(), flavor="python")
    source, out = tmp_path / "d.parquet", tmp_path / "o.parquet"
    pd.DataFrame({"x": np.arange(30.0)}).to_parquet(source, index=False)
    monkeypatch.setenv("BATCH_TEST_FAIL_AT", "25")
    code, _stdout, err = run_cli("predict", "flaky", "-i", str(source), "-o", str(out), "-b", "10")
    assert (
        code == 1 and err.startswith("error: Model flaky/1 failed on rows 20-29") and "Traceback" not in err
    )
    monkeypatch.delenv("BATCH_TEST_FAIL_AT")
    code, stdout, _err = run_cli("predict", "flaky", "-i", str(source), "-o", str(out), "-b", "10")
    assert code == 0 and "Resumed: 2 of 3 chunks were already written." in stdout
    assert backend().store.edges(src=("run", stdout.rsplit("run ", 1)[1].strip()))
