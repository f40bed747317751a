"""`plinth import mlflow` against stores the real MLflow 3.17.2 wrote (see conftest.py).

Every test imports into a fresh plinth home and checks through plinth's own API what arrived:
each value, step and timestamp of every metric, each artifact's bytes, datasets, logged models,
model versions with their files, tags and aliases.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow_stores import MlflowStore, relocate

import plinth
from plinth.cli.main import main
from plinth.core.errors import NotFound, SchemaError
from plinth.core.filters import parse_filter
from plinth.core.ids import now_ms
from plinth.importers.mlflow import ImportSummary, import_mlflow
from plinth.tracking.context import Backend, backend
from team_servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mlflow_import")]

IMPORTED = "mlflow.importedRunId"
T0 = 1_700_000_000_000  # the fill's clock for the points it times itself


def run_import(source: MlflowStore | str, **options: Any) -> ImportSummary:
    url = source if isinstance(source, str) else source.url
    return import_mlflow(backend(), url, show_progress=False, **{"models": True, **options})


def imported(be: Backend) -> dict[str, plinth.Run]:
    """Every imported run in plinth, by MLflow run id."""
    where = parse_filter(f"tags.`{IMPORTED}` is not null")
    found = be.store.search_runs(experiments=None, where=where, order_by=(), limit=None, now_ms=now_ms())
    return {run.tags[IMPORTED]: run for run in found}


def points(be: Backend) -> int:
    """Metric points plinth holds for the imported runs."""
    return sum(
        len(be.store.metric_history(r.id, k))
        for r in imported(be).values()
        for k in be.store.metric_keys(r.id)
    )


def history(run_id: str, key: str) -> np.ndarray:
    h = plinth.metric_history(run_id, key)
    return np.column_stack([h.steps, h.timestamps_ms, h.values])


def check_everything(store: MlflowStore, *, models: bool = True) -> None:
    """What the fill logged is in plinth, value for value."""
    facts, be = store.facts, backend()
    runs = imported(be)
    assert set(runs) == {facts["parent"], *(c["id"] for c in facts["children"]), facts["live"]}
    assert facts["deleted"] not in runs

    exp = {e.name: e for e in plinth.list_experiments()}[facts["experiment"]]
    assert exp.tags["team"] == "ïnfra" and exp.tags["mlflow.importedExperimentId"] == facts["experiment_id"]

    parent = plinth.get_run(runs[facts["parent"]].id)
    info = facts["parent_run"]
    assert (parent.name, parent.user, parent.status) == (
        "päränt ✓",
        info["user_id"],
        plinth.RunStatus.FINISHED,
    )
    assert (parent.start_ms, parent.end_ms) == (info["start_time"], info["end_time"])
    assert parent.experiment_name == facts["experiment"]
    assert parent.params == {"学习率": "0.01", "batch size": "32"}
    assert parent.tags["ключ"] == "значение" and parent.tags["mlflow.runName"] == "päränt ✓"
    assert parent.tags["mlflow.user"] == info["user_id"] and parent.tags[IMPORTED] == facts["parent"]

    loss = history(parent.id, "loss")
    assert loss.shape == (100_000, 3)
    assert np.array_equal(loss, np.array(facts["loss"], dtype=np.float64))
    odd = history(parent.id, "odd")
    assert odd[:, :2].tolist() == [[s, t] for s, t, _ in facts["odd"]]
    assert np.isnan(odd[0, 2]) and odd[1:, 2].tolist() == [np.inf, -np.inf, 0.5]
    assert history(parent.id, "twice").tolist() == facts["twice"]
    assert parent.metrics["twice"] == 2.0  # the later of two points at one step is the latest

    for child in facts["children"]:
        run = plinth.get_run(runs[child["id"]].id)
        assert run.status.value == child["status"]
        assert run.tags["mlflow.parentRunId"] == parent.id
        edges = be.store.edges(src=("run", parent.id))
        assert any(e.relation == "parent_of" and e.dst_id == run.id for e in edges)
    live = plinth.get_run(runs[facts["live"]].id)
    assert live.status in (plinth.RunStatus.RUNNING, plinth.RunStatus.CRASHED) and live.end_ms is None
    assert live.start_ms == 1_700_000_000_000 and history(live.id, "m").tolist() == [
        [0, 1_700_000_000_000, 1.0]
    ]

    held = {a.path: a for a in be.store.list_artifacts(parent.id)}
    for path, hexed in facts["artifacts"].items():
        assert be.blobs.read_bytes(held[path].digest) == bytes.fromhex(hexed)
    model_files = {p for p in held if p.startswith(f"models/{facts['model_id']}/")}
    assert f"models/{facts['model_id']}/MLmodel" in model_files

    dataset = plinth.get_dataset(facts["dataset"]["name"])
    assert (dataset.digest, dataset.rows, dataset.size) == (facts["dataset"]["digest"], 4, 0)
    assert dataset.profile["bytes_held"] is False and dataset.source == "s3://bucket/iris.csv"
    assert [c["name"] for c in dataset.schema] == ["x", "y"]
    consumed = be.store.edges(src=("dataset_version", dataset.id))
    assert [(e.relation, e.dst_id, e.attributes) for e in consumed] == [
        ("consumed_by", parent.id, {"role": "training"})
    ]

    logged = be.store.get_logged_model(facts["model_id"])
    assert (logged.run_id, logged.source_run_id, logged.status) == (parent.id, parent.id, "READY")
    if models:
        check_registry(be, facts, parent, model_files)


def check_registry(be: Backend, facts: dict[str, Any], parent: plinth.Run, model_files: set[str]) -> None:
    versions = plinth.list_model_versions("iris-clf")
    assert [v.version for v in versions] == facts["versions"] == [1, 2]
    first, second = versions
    assert {v.flavor for v in versions} == {"mlflow"} and {v.run_id for v in versions} == {parent.id}
    assert first.tags["validated"] == "yes" and first.tags["mlflow.importedVersion"] == "1"
    assert (first.description, second.description) == ("first ✓", "")
    assert first.source == f"models:/{facts['model_id']}"
    files = {f.path: f.digest for f in be.store.model_files(first.id)}
    held = {a.path: a.digest for a in be.store.list_artifacts(parent.id)}
    prefix = f"models/{facts['model_id']}/"
    assert files == {p[len(prefix) :]: held[p] for p in model_files}  # the run's bytes, not copies
    model = {m.name: m for m in plinth.list_models()}["iris-clf"]
    assert model.aliases == {"champion": 1, "challenger": 2}
    assert model.description == "Iris classifier ✓" and model.tags["domain"] == "botany"
    produced = be.store.edges(src=("run", parent.id))
    assert {e.dst_id for e in produced if e.relation == "produced"} == {first.id, second.id}


@pytest.mark.parametrize("source", ["mlflow_sqlite", "mlflow_postgres"])
def test_import_brings_every_value(source: str, request: pytest.FixtureRequest) -> None:
    store: MlflowStore = request.getfixturevalue(source)

    summary = run_import(store)

    check_everything(store)
    assert summary.count("runs") == 4 and summary.count("metric points") == 100_000 + 4 + 2 + 2 + 1
    assert summary.count("model versions") == 2 and summary.count("aliases") == 2
    assert summary.problem_lines() == []


def test_import_again_adds_nothing(mlflow_sqlite: MlflowStore) -> None:
    run_import(mlflow_sqlite)
    before = points(backend())

    again = run_import(mlflow_sqlite)

    assert points(backend()) == before
    assert {entity: n for entity, n, _ in again.rows() if n} == {}
    assert again.existing["runs"] == 4 and again.existing["model versions"] == 2
    check_everything(mlflow_sqlite)


def test_import_over_mlflows_server_with_the_files_it_serves(mlflow_http: MlflowStore) -> None:
    summary = run_import(mlflow_http)

    check_everything(mlflow_http)
    assert summary.source == f"the MLflow server {mlflow_http.url}" and summary.problem_lines() == []


def test_one_experiment_first_then_the_rest(mlflow_sqlite: MlflowStore) -> None:
    first = run_import(mlflow_sqlite, experiments=["other"], models=False)
    assert first.count("runs") == 1

    rest = run_import(mlflow_sqlite)

    assert rest.count("runs") == 3 and rest.existing["runs"] == 1
    check_everything(mlflow_sqlite)


class Killed(BaseException):
    """Stands for the process being killed in the middle of a write."""


@contextlib.contextmanager
def killed_at_end_runs(be: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The import dies when it first ends runs (after it wrote their points and files)."""

    def die(*args: Any, **kwargs: Any) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(be.store, "end_runs", die)
        with pytest.raises(Killed):
            yield


def test_an_import_killed_in_a_transaction_leaves_nothing_half_written(
    mlflow_sqlite: MlflowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    be = backend()
    with killed_at_end_runs(be, monkeypatch):
        run_import(mlflow_sqlite)
    assert imported(be) == {}  # the runs were one chunk, rolled back whole

    summary = run_import(mlflow_sqlite)

    assert summary.count("runs") == 4
    check_everything(mlflow_sqlite)


def test_a_half_written_run_is_completed_by_the_next_import(
    mlflow_sqlite: MlflowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    be = backend()  # as through a team server, where a batch is not one transaction
    monkeypatch.setattr(be.store, "batch_is_atomic", lambda: False)
    monkeypatch.setattr(be.store, "batch", contextlib.nullcontext)
    with killed_at_end_runs(be, monkeypatch):
        run_import(mlflow_sqlite)
    half = imported(be)
    assert len(half) == 4 and {r.status for r in half.values()} <= {plinth.RunStatus.RUNNING}

    summary = run_import(mlflow_sqlite)

    assert summary.count("runs completed") == 3 and summary.count("runs") == 0
    assert summary.count("metric points") == 0 and summary.count("artifact files") == 0
    check_everything(mlflow_sqlite)


def test_the_command_prints_a_summary(mlflow_sqlite: MlflowStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "mlflow", "--from", mlflow_sqlite.url, "--models"]) == 0
    out = capsys.readouterr().out
    assert "Imported from the MLflow database" in out and "metric points" in out and "100009" in out

    assert main(["import", "mlflow", "--from", mlflow_sqlite.url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["existing"]["runs"] == 4 and report["imported"]["runs"] == 0 and report["problems"] == []


def test_the_command_imports_into_a_workspace(mlflow_sqlite: MlflowStore, tmp_path: Path) -> None:
    assert main(["workspaces", "create", "team"]) == 0
    assert main(["import", "mlflow", "--from", mlflow_sqlite.url, "-e", "other", "--workspace", "team"]) == 0

    assert imported(backend()) == {}
    settings = plinth.Settings.from_env()
    from dataclasses import replace

    from plinth.tracking.context import open_backend

    team = open_backend(replace(settings, workspace="team"))
    try:
        assert set(imported(team)) == {mlflow_sqlite.facts["live"]}
    finally:
        team.close()


def moved_copy(store: MlflowStore, tmp_path: Path) -> tuple[str, Path]:
    """A copy of the SQLite store whose recorded artifact locations no longer exist, and a copy of
    its artifact folder to give as --artifacts-root."""
    db = tmp_path / "moved.db"
    shutil.copy(store.folder / "mlflow.db", db)
    relocate(db, str(store.folder / "mlruns"), "/gone/mlruns")
    root = tmp_path / "copy-of-mlruns"
    shutil.copytree(store.folder / "mlruns", root)
    return f"sqlite:///{db}", root


def test_artifacts_root_finds_files_that_moved(mlflow_sqlite: MlflowStore, tmp_path: Path) -> None:
    url, root = moved_copy(mlflow_sqlite, tmp_path)

    summary = run_import(url, artifacts_root=str(root))

    assert summary.problem_lines() == []
    check_everything(mlflow_sqlite)


def test_a_missing_artifact_is_named_and_the_rest_goes_on(mlflow_sqlite: MlflowStore, tmp_path: Path) -> None:
    url, root = moved_copy(mlflow_sqlite, tmp_path)
    facts = mlflow_sqlite.facts
    shutil.rmtree(root / facts["experiment_id"] / "models")

    summary = run_import(url, artifacts_root=str(root))

    problems = "\n".join(summary.problem_lines())
    assert facts["model_id"] in problems and "/gone/mlruns" in problems
    assert "Version 1 of model 'iris-clf' not imported" in problems
    assert "Alias 'champion' of model 'iris-clf' not set" in problems
    parent = imported(backend())[facts["parent"]]
    held = {a.path for a in backend().store.list_artifacts(parent.id)}
    assert held == set(facts["artifacts"])  # the run's own files arrived
    assert summary.count("runs") == 4 and summary.count("metric points") == 100_009


def test_an_unreadable_source_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.db"
    assert main(["import", "mlflow", "--from", f"sqlite:///{missing}"]) == 3
    assert f"No MLflow database at {str(missing)!r}" in capsys.readouterr().err

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert main(["import", "mlflow", "--from", f"sqlite:///{other}"]) == 5
    assert "holds no MLflow tables" in capsys.readouterr().err

    closed = f"http://127.0.0.1:{free_port()}"
    assert main(["import", "mlflow", "--from", closed]) == 5
    err = capsys.readouterr().err
    assert f"Could not check /health at the MLflow server {closed}" in err and "Traceback" not in err

    assert main(["import", "mlflow", "--from", "nonsense"]) == 2
    assert "is not a database URL" in capsys.readouterr().err


def test_an_unknown_schema_revision_is_refused_by_name(mlflow_sqlite: MlflowStore, tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    shutil.copy(mlflow_sqlite.folder / "mlflow.db", db)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    conn.close()

    with pytest.raises(SchemaError, match="schema revision 'f00dfeedbeef'"):
        run_import(f"sqlite:///{db}")
    assert imported(backend()) == {}


def test_an_unknown_experiment_is_named(mlflow_sqlite: MlflowStore) -> None:
    with pytest.raises(NotFound, match=r"no active experiment 'nope'.*'other'"):
        run_import(mlflow_sqlite, experiments=["nope"])
