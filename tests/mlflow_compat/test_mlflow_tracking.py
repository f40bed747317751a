"""MLflow's tracking client against `plinth server`: everything it writes arrives in plinth.

scripts/tracking.py logs the way MLflow's documentation shows (quickstart, nested runs,
log_batch, artifacts, datasets) and reads back through the client; each test here checks one
part of it, through plinth's own API, value by value.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest
from mlflow_clients import run_script

import plinth
from plinth.core.entities import RunStatus
from plinth.tracking.context import Backend
from team_servers import ThreadServer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mlflow_compat_tracking")]

T0 = 1_700_000_000_000
EXPERIMENT = "compat-tracking"
LOGGED_FILES = ["hello.txt", "data/a.csv", "data/sub/b.bin", "data/sub/empty.txt"]


@pytest.fixture(scope="module")
def logged(plinth_server: ThreadServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What scripts/tracking.py wrote and read back through the MLflow client."""
    folder = tmp_path_factory.mktemp("tracking-client")
    return run_script(
        "tracking", plinth_server.url, plinth_server.admin_token, folder, {"experiment": EXPERIMENT, "t0": T0}
    )


def _same(a: float | str, b: float) -> bool:
    """Equal values, NaN equal to NaN; an infinity may come back as MLflow's clamp (±max float)."""
    if a == "nan" or (isinstance(a, float) and math.isnan(a)):
        return math.isnan(b)
    if isinstance(a, str):
        a = float(a)
    if math.isinf(a) or abs(a) == sys.float_info.max:
        return b == a or (abs(b) in (math.inf, sys.float_info.max) and (b > 0) == (a > 0))
    return a == b


def _points(history: Any) -> list[tuple[int, int, float]]:
    return sorted(
        zip(history.steps.tolist(), history.timestamps_ms.tolist(), history.values.tolist(), strict=True)
    )


def test_the_client_sees_its_experiment_and_runs(logged: dict[str, Any]) -> None:
    experiment = logged["experiment"]
    assert experiment["name"] == EXPERIMENT
    assert experiment["tags"] == {"project": "compat", "owner": "tests"}
    assert experiment["lifecycle_stage"] == "active"
    assert experiment["artifact_location"] == f"mlflow-artifacts:/{logged['experiment_id']}"
    views = logged["views"]
    assert {name: v["info"]["status"] for name, v in views.items()} == {
        "quickstart": "FINISHED",
        "child": "FINISHED",
        "crashes": "FAILED",
        "batch": "KILLED",
    }
    for name, view in views.items():
        info = view["info"]
        assert info["run_id"] == logged["runs"][name]
        assert info["run_name"] == name
        assert info["experiment_id"] == logged["experiment_id"]
        assert (
            info["artifact_uri"] == f"mlflow-artifacts:/{logged['experiment_id']}/{info['run_id']}/artifacts"
        )
        assert info["lifecycle_stage"] == "active"
        assert info["end_time"] >= info["start_time"]
    assert (views["batch"]["info"]["start_time"], views["batch"]["info"]["end_time"]) == (
        T0 + 50_000,
        T0 + 60_000,
    )
    quick = views["quickstart"]
    assert quick["params"] == {
        "lr": "0.01",
        "epochs": "3",
        "optimizer": "adam",
        "layers": "[64, 32]",
        "title": "résumé ✓",
    }
    # MLflow's latest value of a metric is the one at the highest step, not the last one logged
    assert quick["metrics"]["loss"] == 0.2 and quick["metrics"]["acc"] == 0.9
    assert views["batch"]["metrics"] == {"m": 49.5, "m2": -11.25, "long": 29_999 * 1e-4, "after_end": 1.0}
    assert views["batch"]["params"] == {"p1": "v1", "p2": "2"}
    assert {"team": "vision", "priority": "high", "ünïcode": "✓ ok", "stage": "dev"}.items() <= quick[
        "tags"
    ].items()
    assert quick["tags"]["mlflow.note.content"] == "first run"
    assert "to_delete" not in quick["tags"]
    assert views["child"]["tags"]["mlflow.parentRunId"] == logged["runs"]["quickstart"]
    assert {"kind": "batch", "t1": "x", "t2": ""}.items() <= views["batch"]["tags"].items()


def test_searches_and_errors_answer_as_mlflow_documents(logged: dict[str, Any]) -> None:
    searches = logged["searches"]
    assert searches["adam_runs"] == ["quickstart"]
    assert searches["batch_runs"] == searches["all_experiments"] == ["batch"]
    assert searches["experiments"] == [EXPERIMENT]
    assert searches["tagged_experiments"] == [EXPERIMENT]
    starts = {name: view["info"]["start_time"] for name, view in logged["views"].items()}
    assert sorted(searches["by_start_time"]) == sorted(starts)
    assert [starts[n] for n in searches["by_start_time"]] == sorted(starts.values())
    errors = logged["errors"]
    assert errors["missing_run"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert errors["missing_experiment"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert errors["missing_experiment_by_name"] == {"returned": None}
    assert errors["duplicate_experiment"]["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert errors["param_changed"]["error_code"] == "INVALID_PARAMETER_VALUE"
    assert errors["bad_filter"]["error_code"] == "INVALID_PARAMETER_VALUE"


def test_runs_arrive_as_plinth_runs(logged: dict[str, Any], plinth_api: Backend) -> None:
    experiment = plinth_api.store.get_experiment(logged["experiment_id"])
    assert experiment.name == EXPERIMENT
    assert {"project": "compat", "owner": "tests"}.items() <= experiment.tags.items()
    statuses = {"FINISHED": RunStatus.FINISHED, "FAILED": RunStatus.FAILED, "KILLED": RunStatus.KILLED}
    for name, view in logged["views"].items():
        run = plinth.get_run(logged["runs"][name])
        info = view["info"]
        assert run.name == name
        assert run.experiment_id == logged["experiment_id"]
        assert run.status is statuses[info["status"]]
        assert (run.start_ms, run.end_ms) == (info["start_time"], info["end_time"])
        assert run.user == info["user_id"] == "admin"  # the token's principal, never the OS user
        assert run.params == view["params"]
        assert view["tags"].items() <= run.tags.items()  # MLflow's system tags are kept as tags
    quick = plinth.get_run(logged["runs"]["quickstart"])
    assert quick.tags["mlflow.runName"] == "quickstart"
    assert quick.tags["mlflow.source.type"] == "LOCAL"
    assert "mlflow.user" in quick.tags
    assert "to_delete" not in quick.tags
    found = plinth.search_runs(
        experiment=EXPERIMENT, where="params.optimizer = 'adam' and tags.team = 'vision'"
    )
    assert found.ids == [logged["runs"]["quickstart"]]


def test_every_metric_point_arrives_with_its_step_and_timestamp(
    logged: dict[str, Any], plinth_api: Backend
) -> None:
    expected_loss = [(s, T0 + s * 1000, 1.0 / (s + 1)) for s in range(5)]
    assert [tuple(p) for p in logged["histories"]["quickstart/loss"]] == expected_loss
    batch_m = sorted([(i, T0 + i, i * 0.5) for i in range(100)] + [(5, T0 + 500, 99.0)])
    assert sorted(tuple(p) for p in logged["histories"]["batch/m"]) == batch_m
    for key, client_points in logged["histories"].items():
        run_name, metric = key.split("/")
        stored = _points(plinth.metric_history(logged["runs"][run_name], metric))
        wanted = sorted((p[0], p[1], p[2]) for p in client_points)
        assert [(s, t) for s, t, _ in stored] == [(s, t) for s, t, _ in wanted], key
        assert all(_same(w, v) for (_, _, w), (_, _, v) in zip(wanted, stored, strict=True)), (key, stored)
    assert _points(plinth.metric_history(logged["runs"]["quickstart"], "big_step"))[0][0] == 2**40
    assert _points(plinth.metric_history(logged["runs"]["quickstart"], "acc")) == [
        (4, T0 + 4000, 0.875),
        (5, T0 + 5000, 0.9),
    ]


def test_nested_runs_keep_their_parent_as_tag_and_lineage(
    logged: dict[str, Any], plinth_api: Backend
) -> None:
    parent, child = logged["runs"]["quickstart"], logged["runs"]["child"]
    assert plinth.get_run(child).tags["mlflow.parentRunId"] == parent
    edges = plinth_api.store.edges(src=("run", parent))
    assert [(e.relation, e.dst_type, e.dst_id) for e in edges if e.relation == "parent_of"] == [
        ("parent_of", "run", child)
    ]


def test_every_artifact_byte_arrives(logged: dict[str, Any], plinth_api: Backend) -> None:
    run = plinth.get_run(logged["runs"]["quickstart"])
    stored = {a.path: a for a in run.artifacts}
    listed, downloaded = logged["artifacts"]["listed"], logged["artifacts"]["downloaded"]
    assert set(stored) == set(listed) == set(downloaded)
    assert set(stored) >= {
        *LOGGED_FILES,
        "copies/hello.txt",
        "config.json",
        "config.yaml",
        "notes/readme.txt",
        "plots/curve.png",
        "images/square.png",
    }
    for rel in LOGGED_FILES:
        assert stored[rel].digest == logged["local_files"][rel], rel
    for path, artifact in stored.items():
        assert artifact.digest == downloaded[path], path
        assert artifact.size == (listed[path] or 0), path
    assert plinth_api.blobs.read_bytes(stored["hello.txt"].digest) == b"hello, plinth\n"
    assert plinth_api.blobs.read_bytes(stored["notes/readme.txt"].digest) == "hello from mlflow ✓\n".encode()
    assert logged["artifacts"]["readme"] == "hello from mlflow ✓\n"


def test_logged_datasets_become_dataset_versions_that_hold_no_bytes(
    logged: dict[str, Any], plinth_api: Backend
) -> None:
    run_id = logged["runs"]["quickstart"]
    inputs = {d["name"]: d for d in logged["views"]["quickstart"]["inputs"]}
    assert set(inputs) == {"compat-train", "compat-eval"}
    assert inputs["compat-train"]["tags"] == {"mlflow.data.context": "training", "split": "train"}
    for name, role, rows in [("compat-train", "training", 20), ("compat-eval", "evaluation", 5)]:
        (version,) = plinth.list_datasets(name)
        assert version.digest == inputs[name]["digest"]
        assert version.rows == rows
        assert version.size == 0
        assert version.profile["bytes_held"] is False
        assert version.profile["mlflow"]["source_type"] == inputs[name]["source_type"]
        assert [c["name"] for c in version.schema] == ["sepal", "petal", "label"]
        edges = plinth_api.store.edges(src=("dataset_version", version.id))
        assert [(e.relation, e.dst_id, e.attributes.get("role")) for e in edges] == [
            ("consumed_by", run_id, role)
        ]
    assert "https://example.com/data/train.csv" in plinth.list_datasets("compat-train")[0].source


def test_log_batch_and_ends_chosen_by_the_client_arrive(logged: dict[str, Any], plinth_api: Backend) -> None:
    run = plinth.get_run(logged["runs"]["batch"])
    assert run.status is RunStatus.KILLED
    assert (run.start_ms, run.end_ms) == (T0 + 50_000, T0 + 60_000)
    assert run.params == {"p1": "v1", "p2": "2"}
    assert {"kind": "batch", "t1": "x", "t2": "", "mlflow.runName": "batch"}.items() <= run.tags.items()
    assert len(plinth.metric_history(run.id, "m")) == 101
    m2 = _points(plinth.metric_history(run.id, "m2"))
    assert m2 == [(i * 10, T0 + 1000 + i, -i * 1.25) for i in range(10)]


def test_an_ended_run_takes_more_writes(logged: dict[str, Any], plinth_api: Backend) -> None:
    batch = plinth.get_run(logged["runs"]["batch"])
    assert (batch.status, batch.end_ms) == (RunStatus.KILLED, T0 + 60_000)
    assert batch.tags["reviewed"] == "yes"
    assert _points(plinth.metric_history(batch.id, "after_end")) == [(0, T0 + 70_000, 1.0)]


def test_an_ended_run_resumes_with_start_run(logged: dict[str, Any], plinth_api: Backend) -> None:
    """`mlflow.start_run(run_id=...)` on an ended run: MLflow sets it RUNNING, then ends it again."""
    assert logged["errors"]["resume"] == {"raised": None}
    child = plinth.get_run(logged["runs"]["child"])
    assert child.status is RunStatus.FINISHED
    assert _points(plinth.metric_history(child.id, "resumed")) == [(0, T0, 1.0)]
    assert _points(plinth.metric_history(child.id, "async_metric")) == [(1, T0, 3.0)]
    assert logged["views"]["child"]["metrics"] == {"child_loss": 0.5, "resumed": 1.0, "async_metric": 3.0}


def test_a_history_longer_than_a_page_arrives_whole(logged: dict[str, Any], plinth_api: Backend) -> None:
    expected = [(s, T0 + s, s * 1e-4) for s in range(30_000)]
    assert [tuple(p) for p in logged["histories"]["batch/long"]] == expected
    assert _points(plinth.metric_history(logged["runs"]["batch"], "long")) == expected


def test_a_run_that_raised_ends_failed(logged: dict[str, Any], plinth_api: Backend) -> None:
    run = plinth.get_run(logged["runs"]["crashes"])
    assert run.status is RunStatus.FAILED
    assert len(plinth.metric_history(run.id, "before_crash")) == 1
