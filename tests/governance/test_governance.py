"""Audit verification, lineage from prediction to data, erasure by subject and retention."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import text

import plinth
from plinth.cli.main import main
from plinth.core.entities import PredictionLog
from plinth.core.errors import InvalidInput
from plinth.core.ids import new_id, now_ms
from plinth.tracking.context import Backend

pytestmark = pytest.mark.usefixtures("logs_in")


class Doubler:
    def predict(self, data: object) -> object:
        return np.asarray(data).sum(axis=1) * 2


def logs(be: Backend, subjects: list[str | None], *, age_ms: int = 0, version: int = 1) -> None:
    at = now_ms() - age_ms
    be.store.write_prediction_logs(
        [
            PredictionLog(new_id(), "d", version, "primary", at, 1.0, s, '{"instances": [[1, 2]]}', "[6]")
            for s in subjects
        ]
    )


def test_audit_verify_detects_an_edited_and_a_deleted_event(tracking: Backend) -> None:
    for i in range(3):
        with plinth.start_run(experiment="a", params={"i": i}):
            pass
    check = plinth.verify_audit()
    assert check.ok and check.events >= 7
    engine = tracking.store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    bad = plinth.verify_audit()
    assert (bad.ok, bad.first_bad_seq) == (False, 3) and "edited" in (bad.reason or "")
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'tester' WHERE seq = 3"))
        conn.execute(text("DELETE FROM audit_events WHERE seq = 5"))
    gone = plinth.verify_audit()
    assert (gone.ok, gone.first_bad_seq) == (False, 5) and "deleted" in (gone.reason or "")
    with engine.begin() as conn:  # every keyed hash and the head removed: no longer vouched for
        conn.execute(text("UPDATE audit_events SET mac = NULL"))
        conn.execute(text("DELETE FROM audit_head"))
    stripped = plinth.verify_audit()
    assert (stripped.ok, stripped.first_bad_seq) == (False, 5)  # the damage comes first
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq > 4"))
    assert plinth.verify_audit().problem == "not keyed"  # never "intact"


def test_audit_cli(tracking: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    with plinth.start_run(experiment="a") as run:
        pass
    assert main(["audit", "verify"]) == 0 and "intact" in capsys.readouterr().out
    assert main(["audit", "adopt"]) == 0 and "Nothing to adopt" in capsys.readouterr().out
    assert main(["audit", "list", "--entity", run.id]) == 0
    listed = capsys.readouterr().out
    assert "run.create" in listed and "run.end" in listed
    assert main(["audit", "list", "--actor", "nobody"]) == 0 and "run.create" not in capsys.readouterr().out


def test_lineage_from_predictions_back_to_the_dataset(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    data = np.arange(12.0).reshape(6, 2)
    with plinth.start_run(experiment="lin") as run:
        ds = run.log_dataset(data, name="train-set")
        mv = run.log_model(Doubler(), name="d", input_example=data[:2])
    plinth.set_alias("d", "champion", mv.version)
    logs(tracking, ["s1", "s2"])
    graph = plinth.lineage("d@champion")
    edges = {(a[0], r, b[0]) for a, r, b in graph.edges}
    assert ("run", "produced", "model_version") in edges
    assert ("dataset_version", "consumed_by", "run") in edges
    assert ("model_version", "served", "predictions") in edges
    up = "\n".join(graph.tree("up"))
    assert "dataset train-set/1" in up and run.id in up
    down = "\n".join(graph.tree("down"))
    assert "prediction logs of d/1 (2 requests, 0 labeled)" in down and "deployment d@champion" in down
    assert plinth.lineage(ds.ref, "down").edges  # from the data forward
    assert main(["lineage", "d/1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {n["type"] for n in doc["nodes"]} >= {"model_version", "run", "dataset_version", "predictions"}
    consumed = next(e for e in doc["edges"] if e["relation"] == "consumed_by")
    assert (consumed["reads"], consumed["reads_back"]) == ("consumed by", "consumed")


def test_lineage_reads_right_walking_either_way(tracking: Backend) -> None:
    data = np.arange(12.0).reshape(6, 2)
    with plinth.start_run(experiment="lin") as run:
        run.log_dataset(data, name="train-set")
        run.log_model(Doubler(), name="d", input_example=data[:2])
    up = list(plinth.lineage("d/1", "up").tree("up"))
    assert up[1].startswith("└── produced by: run ")  # the model was produced by the run,
    assert "└── consumed: dataset train-set/1" in up[2]  # which consumed the dataset
    down = list(plinth.lineage("train-set/1", "down").tree("down"))
    assert down[1].startswith("└── consumed by: run ") and down[2].strip().startswith(
        "└── produced: model d/1"
    )
    with pytest.raises(InvalidInput):
        plinth.lineage("d/1", direction="sideways")


def test_erasure_leaves_no_trace_of_the_subject_and_keeps_the_rest(tracking: Backend) -> None:
    logs(tracking, ["alice", "bob", "alice", None])
    preview = plinth.erase_subject("alice", dry_run=True)
    assert preview.prediction_logs == 2 and tracking.store.count_prediction_logs(subject_id="alice") == 2
    receipt = plinth.erase_subject("alice")
    assert (receipt.prediction_logs, receipt.digest) == (2, preview.digest)
    assert tracking.store.count_prediction_logs(subject_id="alice") == 0
    assert sorted(str(p.subject_id) for p in tracking.store.prediction_logs("d")) == ["None", "bob"]
    [event] = [e for e in tracking.store.audit_events(entity_id="alice") if e.action == "governance.erasure"]
    assert json.loads(event.after or "{}")["prediction_logs"] == 2
    assert plinth.verify_audit().ok
    with pytest.raises(InvalidInput):
        plinth.erase_subject(" ")


def test_retention_removes_only_old_logs(tracking: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    logs(tracking, ["old"] * 3, age_ms=100 * 86_400_000)
    logs(tracking, ["new"] * 2)
    assert main(["retention", "apply", "--predictions", "90d", "--dry-run"]) == 0
    assert "Would remove 3" in capsys.readouterr().out
    assert plinth.apply_retention("90d").prediction_logs == 3
    assert {p.subject_id for p in tracking.store.prediction_logs("d")} == {"new"}
    assert main(["erase", "--subject", "new"]) == 0
    assert json.loads(capsys.readouterr().out)["prediction_logs"] == 2


def test_lineage_of_one_prediction_reaches_its_data_and_its_label(
    tracking: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    data = np.arange(12.0).reshape(6, 2)
    with plinth.start_run(experiment="lin") as run:
        run.log_dataset(data, name="train-set", role="train")
        run.log_model(Doubler(), name="d", input_example=data[:2])
    logs(tracking, ["s1", "s2"])
    first = tracking.store.prediction_logs("d")[0].request_id
    plinth.log_labels("d", [(first, 6)])
    up = "\n".join(plinth.lineage(first, "up").tree("up"))
    assert f"prediction {first} (d/1, subject s1)" in up
    assert "model d/1" in up and run.id in up and "dataset train-set/1" in up and "Python " in up
    down = plinth.lineage("d/1", "down")
    assert ("predictions", "labeled by", "labels") in {(a[0], r, b[0]) for a, r, b in down.edges}
    assert "labels of d/1 (1 requests)" in "\n".join(down.tree("down"))
    assert main(["lineage", first]) == 0
    out = capsys.readouterr().out
    assert "label 6" in out and "dataset train-set/1" in out
